"""Work the service runs beside its requests: dispatch of due notices and the inquiry of
stuck debits, each a thread with an engine of its own on the service's store, every few
seconds until the service stops (the round in progress finishes first).

A loop's engine is its own connection: its writes take turns with the writer's commits
through the store (SQLite's lock, PostgreSQL's row locks), and a slow channel or gateway
holds back only its own loop. A round the store refuses (busy, unreachable) is logged and
tried again next round; so is a round that raises.

>>> from statemachine import Engine
>>> engine = Engine.in_memory()
>>> rounds = []
>>> loop = Loop("count", lambda: engine, lambda e: rounds.append(e), every=0)
>>> loop.start(); loop.stop()
>>> len(rounds) >= 1
True
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack

from ..dispatch import Sender
from ..engine import Engine
from ..inquiry import Ask
from .privacy import masked_text

log = logging.getLogger("statemachine.service")


class Loop:
    """``work(engine)`` every ``every`` seconds on a thread of its own, on the engine
    ``opener`` returns (opened on that thread, closed when the loop ends), until :meth:`stop`."""

    def __init__(
        self,
        name: str,
        opener: Callable[[], Engine],
        work: Callable[[Engine], object],
        every: float,
    ) -> None:
        self.name = name
        self.rounds = 0
        self._opener, self._work, self._every = opener, work, every
        self._stop = threading.Event()
        self._started = threading.Event()
        self._problem: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"statemachine-{name}", daemon=True)

    def start(self) -> None:
        """Start the thread; returns once its engine is open, raising what opening raised."""
        self._thread.start()
        self._started.wait()
        if self._problem is not None:
            raise self._problem

    def stop(self) -> None:
        """End the loop once the round in progress is done."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        with ExitStack() as opened:
            try:
                engine = opened.enter_context(self._opener())
            except BaseException as exc:  # handed to start(), which raises it
                self._problem = exc
                return
            finally:
                self._started.set()
            while not self._stop.is_set():
                try:
                    self._work(engine)
                except Exception as exc:  # a round that failed is tried again next time
                    log.error("%s round failed, retrying: %s: %s", self.name,
                              type(exc).__name__, masked_text(str(exc)))  # fmt: skip
                self.rounds += 1
                self._stop.wait(self._every)


def dispatch_loop(
    opener: Callable[[], Engine],
    senders: Sequence[Sender],
    every: float,
    *,
    concurrency: int = 1,
    limit: int | None = None,
) -> Loop:
    """A loop sending the due notices through ``senders`` (as ``statemachine dispatch``)."""

    def dispatch(engine: Engine) -> None:
        handled = engine.dispatch_due(senders, limit=limit, concurrency=concurrency)
        if handled:
            log.info("dispatch: %d notice(s) handled", len(handled))

    return Loop("dispatch", opener, dispatch, every)


def inquiry_loop(
    opener: Callable[[], Engine], ask: Ask, every: float, *, limit: int | None = None
) -> Loop:
    """A loop asking about stuck debits with ``ask`` (as ``statemachine inquire``)."""

    def inquire(engine: Engine) -> None:
        done = engine.inquire_due(ask, limit=limit)
        if done:
            log.info("inquire: %d debit(s) asked about", len(done))

    return Loop("inquire", opener, inquire, every)
