"""Replay on event time (N5): the clock is the latest ``occurred_at`` seen and never runs back.

A notice is dispatched once the clock passes its due time, before the next event is applied;
at the end the clock moves past every settle window. So a replay reports exactly the notices
the engine would have sent. Replay sends through recording senders unless told otherwise.

>>> from statemachine import Engine, Event, ManualClock
>>> replay = Replay(Engine.in_memory(clock=ManualClock()))
>>> replay.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "d-1", "type": "failed",
...     "occurred_at": "2026-03-05T10:00:00+00:00"})).state
'failed'
>>> [n.kind for n in replay.finish()]
['failed']
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .clock import ManualClock
from .debits import Result
from .engine import Engine
from .events import Event
from .notices import Notice, NoticeStatus, RecordingSender, Sender


class Replay:
    """Feeds events to an engine whose clock is a :class:`ManualClock`, dispatching on the way."""

    def __init__(self, engine: Engine, senders: Iterable[Sender] | None = None) -> None:
        if not isinstance(engine.clock, ManualClock):
            raise TypeError("Replay needs an engine built with clock=ManualClock()")
        self.engine = engine
        self.clock: ManualClock = engine.clock
        self.recorder = RecordingSender("replay")
        self.senders: tuple[Sender, ...] = tuple(senders) if senders else (self.recorder,)
        self.dispatched: list[Notice] = []

    def apply(self, event: Event, *, raw: str | None = None, origin: str | None = None) -> Result:
        self._advance(event)
        return self.engine.apply(event, raw=raw, origin=origin)

    def ingest(self, raw: str | bytes | dict[str, Any], origin: str | None = None) -> Result:
        """Parse and apply one input line; bad input is stored as ``invalid`` and replay goes on."""
        try:
            event = Event.from_json(raw) if isinstance(raw, str | bytes) else Event.from_dict(raw)
        except ValueError:
            return self.engine.ingest(raw, origin)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return self.apply(event, raw=text if isinstance(text, str) else None, origin=origin)

    def dispatch(self) -> list[Notice]:
        handled = self.engine.dispatch_due(self.senders, now=self.clock.now)
        self.dispatched.extend(handled)
        return handled

    def finish(self) -> list[Notice]:
        """Move the clock past every pending due time (settle windows, retries) and dispatch."""
        handled: list[Notice] = []
        for _ in range(self.engine.retry.max_deliveries + 1):
            queued = [n for n in self.engine.notices() if n.status is NoticeStatus.QUEUED]
            if not queued:
                break
            self.clock.advance_to(max(n.due_at for n in queued))
            handled.extend(self.dispatch())
        return handled

    def _advance(self, event: Event) -> None:
        if event.occurred_at > self.clock.now:
            self.clock.advance_to(event.occurred_at)
            self.dispatch()
