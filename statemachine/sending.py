"""Sending many notices at once (N9): a pool that runs plain senders on threads and coroutine
senders on an event loop, and a rate limiter per channel shared by every worker.

The dispatcher keeps every store call on its own thread; only the sends run here. So a store
needs no thread safety, and a sender used with ``concurrency`` above 1 must be thread-safe
(or a coroutine).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import InvalidDefinition

if TYPE_CHECKING:
    from datetime import datetime

    from .clock import Clock
    from .dispatch import Dispatcher, Sender
    from .records import DebitRecord, Notice

T = TypeVar("T")


def is_async(sender: object) -> bool:
    """Whether the sender's ``send`` or ``send_message`` is a coroutine function (awaited on
    an event loop)."""
    return any(
        inspect.iscoroutinefunction(getattr(sender, method, None))
        for method in ("send", "send_message")
    )


def rate_of(sender: object) -> float | None:
    """The sender's declared rate limit in messages per second, if any."""
    rate = getattr(sender, "rate", None)
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        name = getattr(sender, "name", sender)
        raise InvalidDefinition(
            f"sender {name!r}: rate must be a number of messages per second above 0, got {rate!r}"
        )
    return float(rate)


def _monotonic() -> float:
    return time.monotonic()


def _sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


class RateLimiter:
    """Messages per second per channel, across every worker of a dispatch.

    ``reserve(channel)`` books the channel's next free slot and says how long to wait for it
    (0 while under the rate), so slots are handed out in order whatever the thread. A
    provider's "too many requests" pauses its channel only: ``pause(channel, seconds)``.

    >>> now = [0.0]
    >>> limiter = RateLimiter({"sms": 2.0}, clock=lambda: now[0])
    >>> [limiter.reserve("sms") for _ in range(4)], limiter.reserve("push")
    ([0.0, 0.5, 1.0, 1.5], 0.0)
    """

    def __init__(
        self,
        rates: dict[str, float],
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.rates = dict(rates)
        self.clock = clock or _monotonic
        self.sleep = sleep or _sleep
        self._next: dict[str, float] = {}  # channel -> the earliest time of its next send
        self._lock = threading.Lock()

    @classmethod
    def for_senders(cls, senders: Iterable[object]) -> RateLimiter:
        """A limiter for the senders' declared rates (their ``rate`` attributes)."""
        rates = {}
        for sender in senders:
            rate = rate_of(sender)
            if rate is not None:
                rates[str(getattr(sender, "name", ""))] = rate
        return cls(rates)

    def wait(self, channel: str) -> None:
        """Block until ``channel``'s next slot (a thread's way to honour the rate)."""
        self.sleep(self.reserve(channel))

    def reserve(self, channel: str) -> float:
        """Book ``channel``'s next slot; the seconds to wait before sending in it."""
        rate = self.rates.get(channel)
        with self._lock:
            now = self.clock()
            start = max(now, self._next.get(channel, now))
            if rate is not None:
                self._next[channel] = start + 1.0 / rate
            return start - now

    def pause(self, channel: str, seconds: float) -> None:
        """No slot of ``channel`` before ``seconds`` from now (a provider asked to back off)."""
        with self._lock:
            until = self.clock() + max(seconds, 0.0)
            self._next[channel] = max(self._next.get(channel, until), until)


class SendPool:
    """Runs sends: inline (one at a time, on the caller's thread), on a thread pool, or, when
    any sender is a coroutine, on an event loop in a thread of its own. ``submit`` returns a
    ``concurrent.futures.Future`` either way."""

    def __init__(self, workers: int, *, asynchronous: bool = False) -> None:
        if workers < 1:
            raise InvalidDefinition(f"concurrency must be 1 or more, got {workers}")
        self.workers = workers
        self.inline = workers == 1 and not asynchronous
        self.asynchronous = asynchronous
        self.executor: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        if not self.inline:
            self.executor = ThreadPoolExecutor(workers, thread_name_prefix="statemachine-send")
        if asynchronous:
            self.loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self.loop.run_forever, name="statemachine-send-loop", daemon=True
            )
            self._thread.start()

    def submit(self, call: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``call(*args)`` (a plain function) in the pool."""
        if self.inline:
            future: Future[T] = Future()
            try:
                future.set_result(call(*args))
            except BaseException as exc:  # handed back through the future, as a pool would
                future.set_exception(exc)
            return future
        assert self.executor is not None
        return self.executor.submit(call, *args)

    def submit_coroutine(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on the pool's event loop."""
        assert self.loop is not None, "a pool built with asynchronous=True runs coroutines"
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    async def in_thread(self, call: Callable[..., T], *args: Any) -> T:
        """Await a plain call on the pool's threads (a plain sender among coroutine ones)."""
        assert self.loop is not None
        return await self.loop.run_in_executor(self.executor, call, *args)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            assert self._thread is not None
            self._thread.join()
            self.loop.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    def __enter__(self) -> SendPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SendRun:
    """One dispatch's sends: each checks its lease right before the send (N7), then
    delivers through the channels, inline, on a thread or on the event loop."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        channels: tuple[Sender, ...],
        tick: Clock,
        limiter: RateLimiter,
        holds: Callable[[str], bool] | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.holds = holds  # the claim's check right before each send, where it can run
        self.channels = channels
        self.tick = tick
        self.limiter = limiter
        self.asynchronous = any(is_async(s) for s in channels)

    def submit(
        self, pool: SendPool, notice: Notice, until: datetime, record: DebitRecord | None
    ) -> Future[Notice | None]:
        if self.asynchronous:
            return pool.submit_coroutine(self._send_async(pool, notice, until, record))
        return pool.submit(self.send, notice, until, record)

    def send(self, notice: Notice, until: datetime, record: DebitRecord | None) -> Notice | None:
        """Deliver ``notice`` on this thread if its claim holds (None if it does not)."""
        at = self.tick()
        if at >= until or (self.holds is not None and not self.holds(notice.notice_id)):
            return None
        return self.dispatcher.deliver(notice, self.channels, at, self.limiter, record)

    async def _send_async(
        self, pool: SendPool, notice: Notice, until: datetime, record: DebitRecord | None
    ) -> Notice | None:
        at = self.tick()
        if at >= until:
            return None
        return await self.dispatcher.deliver_async(
            notice, self.channels, at, self.limiter, pool, record
        )
