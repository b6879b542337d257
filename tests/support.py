"""Small builders shared by the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from statemachine import Engine, Event, ManualClock

T0 = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
_counter = 0


def ev(
    type: str,
    minutes: float = 0,
    source: str = "gateway",
    attempt: int = 1,
    debit_id: str = "d-1",
    event_id: str | None = None,
    **extra: Any,
) -> Event:
    """An event ``minutes`` after T0; event_ids are unique unless given."""
    global _counter
    _counter += 1
    if type == "created":
        extra.setdefault("amount", 356000)
    return Event(
        event_id=event_id or f"e{_counter}",
        debit_id=debit_id,
        type=type,
        occurred_at=T0 + timedelta(minutes=minutes),
        attempt=attempt,
        source=source,
        **extra,
    )


def clocked_engine(**kwargs: Any) -> tuple[Engine, ManualClock]:
    clock = ManualClock(T0)
    return Engine.in_memory(clock=clock, **kwargs), clock
