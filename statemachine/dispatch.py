"""Dispatch: claim due notices under a token of this dispatch's own, renew the claim right
before each notice and pass by one another dispatcher took over (N7), re-check each against
its debit (N3), send it through the channels in order, retry failed deliveries with backoff,
and record what happened where the claim still holds. A notice whose receipt said
undelivered, or whose wait for one ran out, falls back to the channels it has not tried (N8,
``receipts.py``).

>>> from datetime import UTC, datetime
>>> from statemachine import Engine, Event
>>> engine = Engine.in_memory()
>>> _ = engine.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "d-1",
...     "type": "succeeded", "occurred_at": "2026-03-05T10:00:00+00:00"}))
>>> sms = RecordingSender("sms")
>>> [(n.kind, n.status.value, n.channel) for n in engine.dispatch_due([sms])]
[('succeeded', 'sent', 'sms')]
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

import attrs

from .clock import DAWN as _DAWN
from .clock import Clock
from .errors import DeliveryError, InvalidDefinition, TooManyRequests
from .messages import Message, Words
from .notices import matches
from .receipts import Receipt, ReceiptResult, ReceiptStatus, judge
from .records import DebitRecord, Notice, NoticeStatus
from .sending import RateLimiter, SendPool, SendRun, is_async

if TYPE_CHECKING:
    from .stores.base import StoreAdapter

_FLUSH_SECONDS = 0.5  # sent notices wait at most this long to be recorded in a batch
_INLINE_GROUP = 64  # notices whose claims are renewed in one write ahead of inline sends
_RATE_RETRIES = 3
_WAIT_AT_MOST = 5.0  # seconds a send waits out a channel's "too many requests" pause


def _pause(exc: TooManyRequests) -> float:
    """How long the provider asked the channel to pause, in seconds (a second if unsaid)."""
    return (
        1.0 if exc.retry_after is None else exc.retry_after.total_seconds()
    )  # sends to a channel that answered "too many requests" before the next


@runtime_checkable
class Sender(Protocol):
    """A channel (sms, push, e-mail ...). ``send`` returns on acceptance and raises on failure.

    Senders must treat ``notice.notice_id`` as an idempotency key: the engine delivers at least
    once, so the same notice can reach a sender again after a crash. A sender that also has
    ``send_message(message)`` gets the notice rendered for its customer (a
    :class:`~statemachine.messages.Message`) through that method instead.
    """

    name: str

    def send(self, notice: Notice) -> Awaitable[None] | None:
        """Deliver ``notice``; return once the channel accepted it, raise if it did not. It
        may be a coroutine function: dispatch then awaits it on an event loop."""
        ...


class RecordingSender:
    """A sender that records what it is handed (notices in ``sent``, rendered messages in
    ``messages``); ``fail`` refuses the first N deliveries.

    >>> sender = RecordingSender("sms")
    >>> sender.name, sender.sent
    ('sms', [])
    """

    def __init__(
        self,
        name: str = "recording",
        fail: int = 0,
        on_send: Callable[[Notice], None] | None = None,
    ) -> None:
        self.name = name
        self.sent: list[Notice] = []
        self.refused: list[Notice] = []
        self.messages: list[Message] = []
        self._fail = fail
        self._on_send = on_send

    def send(self, notice: Notice) -> None:
        """Record the notice, or refuse it while simulated failures remain."""
        if self._fail > 0:
            self._fail -= 1
            self.refused.append(notice)
            raise DeliveryError(f"{self.name}: refused {notice.notice_id} (simulated outage)")
        if self._on_send is not None:
            self._on_send(notice)
        self.sent.append(notice)

    def send_message(self, message: Message) -> None:
        """Record the message and its notice, or refuse it as :meth:`send` does."""
        assert message.notice is not None  # the dispatcher's messages carry their notice
        self.send(message.notice)
        self.messages.append(message)


class CountingSender:
    """A sender that accepts every notice and keeps only counts by kind: replay's default,
    whose memory does not grow with the log.

    >>> sender = CountingSender()
    >>> sender.name, sender.sent
    ('replay', Counter())
    """

    def __init__(self, name: str = "replay") -> None:
        self.name = name
        self.sent: Counter[str] = Counter()

    def send(self, notice: Notice) -> None:
        """Count the notice by kind; always accepts."""
        self.sent[notice.kind] += 1


def check_senders(senders: Iterable[Sender]) -> tuple[Sender, ...]:
    """Refuse unusable senders at once, saying how to fix them."""
    checked = tuple(senders)
    if not checked:
        raise InvalidDefinition("dispatch needs at least one sender, for example RecordingSender()")
    for sender in checked:
        name = getattr(sender, "name", None)
        if not isinstance(name, str) or not name:
            raise InvalidDefinition(
                f"sender {sender!r} has no name; give it a `name` attribute such as 'sms'"
            )
        if not callable(getattr(sender, "send", None)):
            raise InvalidDefinition(f"sender {name!r} has no send(notice) method")
    return checked


@attrs.frozen
class RetryPolicy:
    """Exponential backoff between failed deliveries, and when to give up (N4)."""

    first_delay: timedelta = timedelta(minutes=1)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=1)
    max_deliveries: int = 8

    def delay(self, deliveries: int) -> timedelta:
        """How long to wait after ``deliveries`` failed deliveries."""
        return min(self.first_delay * self.factor ** max(deliveries - 1, 0), self.max_delay)


class Dispatcher:
    """Sends the due notices of one store. The engine builds one; ``engine.dispatch_due`` and
    the replay's ``engine.dispatch_notices`` call it."""

    def __init__(
        self,
        store: StoreAdapter,
        retry: RetryPolicy,
        receipt_timeout: timedelta = timedelta(0),
        words: Words | None = None,
    ) -> None:
        self.store = store
        self.retry = retry
        self.receipt_timeout = receipt_timeout
        self.words = words or Words()  # renders a notice for senders that take messages

    def dispatch_due(
        self,
        senders: Iterable[Sender],
        now: datetime,
        *,
        limit: int | None = None,
        lease: timedelta = timedelta(minutes=5),
        clock: Clock | None = None,
        concurrency: int = 1,
        batch_size: int = 500,
    ) -> list[Notice]:
        """Claim the notices due at ``now`` for ``lease`` and settle each (send or cancel),
        after the notices whose wait for a receipt ran out are made due again (N8).

        Up to ``concurrency`` sends are in flight at once (N9): plain senders on threads,
        coroutine senders on an event loop; a sender's ``rate`` (messages per second) holds
        across them. Right before a notice goes to a worker its claim is renewed (with the
        others leaving then, in one write) and it is re-checked against its debit (N3); right
        before its send the worker checks the renewed lease has not run out (the ``clock``'s
        time, else ``now``), and a notice whose lease did is renewed again or, if another
        dispatcher took it over, passed by and left out of the result (N7). Results are
        recorded ``batch_size`` at a time, only where the claim still holds.
        """
        channels = check_senders(senders)
        if concurrency < 1:
            raise InvalidDefinition(f"concurrency must be 1 or more, got {concurrency}")
        self.expire(now)
        token = uuid.uuid4().hex  # this dispatch's claims, told apart from any other's
        todo = deque(self.store.claim_due(now, lease, limit, token=token))
        tick: Clock = clock if clock is not None else (lambda: now)
        pooled = concurrency > 1 or any(is_async(s) for s in channels)
        # Claims are renewed for the notices about to go out together, in one write. Inline,
        # each send is then preceded by a read of its claim, in case another dispatcher took
        # it over meanwhile; pooled, the workers start on them at once.
        holds = None if pooled else (lambda notice_id: self.store.holds_claim(notice_id, token))
        run = SendRun(self, channels, tick, RateLimiter.for_senders(channels), holds)
        slots = concurrency if pooled else _INLINE_GROUP
        # A message is rendered from the debit's events (its customer); a plain send needs none.
        rendered = any(hasattr(s, "send_message") for s in channels)
        handled: list[Notice] = []
        unsaved: list[Notice] = []
        flushed = time.monotonic()
        with SendPool(concurrency, asynchronous=run.asynchronous) as pool:
            # In the order sent, so that results are recorded and reported in claim order
            # wherever they finish together.
            inflight: dict[Future[Notice | None], None] = {}
            while todo or inflight:
                # Refill once a quarter of the slots is free: a write and a read per group, not
                # per notice, while the other sends go on.
                if todo and (len(inflight) <= slots - max(1, slots // 4) or not inflight):
                    group = [todo.popleft() for _ in range(min(slots - len(inflight), len(todo)))]
                    at = tick()
                    live = self.store.renew_claims([n.notice_id for n in group], token, at, lease)
                    records = self.store.debits({n.debit_id for n in group}, events=rendered)
                    for notice in group:
                        if notice.notice_id not in live:
                            continue  # taken over, or no longer queued: not ours to send
                        record = records.get(notice.debit_id)
                        if not matches(notice, record):
                            unsaved.append(self.cancel(notice, record))
                        elif pool.inline:  # one at a time on this thread: no future to wait on
                            if (sent := run.send(notice, at + lease, record)) is not None:
                                unsaved.append(sent)
                        else:
                            inflight[run.submit(pool, notice, at + lease, record)] = None
                if inflight:
                    done, _ = wait(inflight, timeout=_FLUSH_SECONDS, return_when=FIRST_COMPLETED)
                    finished = [f for f in inflight if f in done]
                    for f in finished:
                        del inflight[f]
                    # A None: its lease ran out before the send, so another dispatcher may
                    # have it now; passed by, and claimed afresh by a later dispatch if not.
                    unsaved += [sent for f in finished if (sent := f.result()) is not None]
                if unsaved and (
                    len(unsaved) >= batch_size
                    or not (todo or inflight)
                    or time.monotonic() - flushed >= _FLUSH_SECONDS
                ):
                    self.store.save_notices(unsaved, token=token)
                    handled += unsaved
                    unsaved, flushed = [], time.monotonic()
        return handled

    def expire(self, now: datetime) -> list[ReceiptResult]:
        """Give up waiting for the receipts due by ``now``: each notice counts as ``expired``
        on its channel and is due again at once for the next one."""
        return [
            self.store.receive(
                Receipt(notice.notice_id, notice.channel, ReceiptStatus.EXPIRED, notice.receipt_by),
                judge,
                now,
            )
            for notice in self.store.awaiting_receipt(now)
        ]

    def preview(self, now: datetime, limit: int | None = None) -> list[tuple[Notice, bool]]:
        """The notices due at ``now``, each with whether it would be sent (else cancelled as
        superseded). Claims, sends and writes nothing: a look at the outbox."""
        due = self.store.queued(_DAWN, now)[:limit]
        records = self.store.debits(debit_id for debit_id, _, _ in due)
        found = []
        for debit_id, notice_id, _ in due:
            record = records.get(debit_id)
            notice = next(
                (
                    n
                    for n in (record.notices.values() if record else ())
                    if n.notice_id == notice_id
                ),
                None,
            )
            if notice is not None:
                found.append((notice, matches(notice, record)))
        return found

    def dispatch_notices(
        self, wanted: Iterable[tuple[str, str, datetime]], senders: Iterable[Sender]
    ) -> list[Notice]:
        """Settle these (debit_id, notice_id, at), each as at its time if it is still queued
        and due, and record them in one write. Give them in time order."""
        channels = check_senders(senders)
        wanted = list(wanted)
        records = self.store.debits(debit_id for debit_id, _, _ in wanted)
        handled = []
        for debit_id, notice_id, now in wanted:
            record = records.get(debit_id)
            if record is None:
                continue
            notice = next((n for n in record.notices.values() if n.notice_id == notice_id), None)
            if notice is None or notice.status is not NoticeStatus.QUEUED or notice.due_at > now:
                continue
            settled = self.settle(notice, record, channels, now)
            record.notices[notice.notice_id] = settled  # the next one sees it
            handled.append(settled)
        self.store.save_notices(handled)
        return handled

    def settle(
        self,
        notice: Notice,
        record: DebitRecord | None,
        channels: tuple[Sender, ...],
        now: datetime,
    ) -> Notice:
        """Send a due notice if it still states the debit's outcome (N3), else cancel it."""
        if matches(notice, record):
            return self.deliver(notice, channels, now, record=record)
        return self.cancel(notice, record)

    @staticmethod
    def cancel(notice: Notice, record: DebitRecord | None) -> Notice:
        """The notice cancelled as superseded: it no longer states the debit's outcome (N3)."""
        where = f"{record.state} on attempt {record.attempt}" if record else "gone"
        return notice._replace(
            status=NoticeStatus.CANCELLED, status_reason=f"superseded: the debit is {where}"
        )

    def deliver(
        self,
        notice: Notice,
        channels: tuple[Sender, ...],
        now: datetime,
        limiter: RateLimiter | None = None,
        record: DebitRecord | None = None,
    ) -> Notice:
        """Try the channels in order, but those the notice fell back from; the notice as it
        stands after the first that accepts, or rescheduled with backoff (or given up) when
        none does, or ``undelivered`` when every channel was tried. ``record``, the debit's,
        is what a sender taking messages gets the notice rendered from."""
        left = tuple(s for s in channels if s.name not in notice.tried)
        if not left:
            return self.outcome(notice, now, None, [])
        errors: list[str] = []
        for sender in left:
            for _ in range(_RATE_RETRIES):
                if limiter is not None:
                    limiter.wait(sender.name)
                try:
                    self.words.send(sender, notice, record)
                except TooManyRequests as exc:
                    errors.append(f"{sender.name}: {exc}")
                    if limiter is not None:
                        limiter.pause(sender.name, _pause(exc))
                    if _pause(exc) > _WAIT_AT_MOST:
                        break  # too long to hold a worker: the next channel takes it
                    continue  # the same channel again, once its pause is over
                except Exception as exc:  # any sender failure is recorded, and the next one tried
                    errors.append(f"{sender.name}: {exc}")
                    break
                return self.outcome(notice, now, sender, errors)
        return self.outcome(notice, now, None, errors)

    async def deliver_async(
        self,
        notice: Notice,
        channels: tuple[Sender, ...],
        now: datetime,
        limiter: RateLimiter,
        pool: SendPool,
        record: DebitRecord | None = None,
    ) -> Notice:
        """``deliver`` on an event loop: coroutine senders are awaited, plain ones run on the
        pool's threads."""
        left = tuple(s for s in channels if s.name not in notice.tried)
        if not left:
            return self.outcome(notice, now, None, [])
        errors: list[str] = []
        for sender in left:
            for _ in range(_RATE_RETRIES):
                await asyncio.sleep(limiter.reserve(sender.name))
                try:
                    await self._send_async(sender, notice, record, pool)
                except TooManyRequests as exc:
                    errors.append(f"{sender.name}: {exc}")
                    limiter.pause(sender.name, _pause(exc))
                    if _pause(exc) > _WAIT_AT_MOST:
                        break
                    continue
                except Exception as exc:  # any sender failure is recorded, and the next one tried
                    errors.append(f"{sender.name}: {exc}")
                    break
                return self.outcome(notice, now, sender, errors)
        return self.outcome(notice, now, None, errors)

    async def _send_async(
        self, sender: Sender, notice: Notice, record: DebitRecord | None, pool: SendPool
    ) -> None:
        """One send on the event loop: a coroutine ``send_message`` or ``send`` is awaited,
        a plain sender runs on the pool's threads."""
        send_message = getattr(sender, "send_message", None)
        if send_message is not None and inspect.iscoroutinefunction(send_message):
            await send_message(self.words.render(notice, record).to(sender.name))
        elif send_message is None and is_async(sender):
            await cast("Awaitable[None]", sender.send(notice))
        else:
            await pool.in_thread(self.words.send, sender, notice, record)

    def outcome(
        self, notice: Notice, now: datetime, accepted_by: Sender | None, errors: list[str]
    ) -> Notice:
        """The notice after a delivery: sent on ``accepted_by``; else ``undelivered`` when
        it had no channel left to try, rescheduled with backoff, or given up."""
        if accepted_by is not None:
            return notice.sent_on(
                accepted_by.name,
                now,
                "; ".join(errors) or None,
                now + self.receipt_timeout if self.receipt_timeout else None,
            )
        if not errors:
            return notice._replace(
                status=NoticeStatus.UNDELIVERED,
                status_reason=f"undelivered on every channel: {', '.join(notice.tried)}",
            )
        deliveries = notice.deliveries + 1
        if deliveries >= self.retry.max_deliveries:
            return notice._replace(
                status=NoticeStatus.FAILED,
                deliveries=deliveries,
                last_error="; ".join(errors),
                status_reason=f"gave up after {deliveries} deliveries",
            )
        return notice._replace(
            due_at=now + self.retry.delay(deliveries),
            deliveries=deliveries,
            last_error="; ".join(errors),
        )
