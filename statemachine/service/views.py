"""What the service answers, as JSON: results (verdicts) and a debit with its history.

>>> from statemachine import Engine, Event
>>> engine = Engine.in_memory()
>>> result = engine.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "d-1",
...     "type": "succeeded", "occurred_at": "2026-03-05T10:00:00+00:00"}))
>>> result_json(result)["verdict"], debit_json(engine, "d-1")["debit"]["state"]
('applied', 'succeeded')
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from ..engine import Engine
from ..records import Notice, Result, StoredEvent
from .privacy import masked_data, masked_raw, masked_text


def result_json(result: Result) -> dict[str, Any]:
    """One event's verdict and where its debit now stands."""
    return {
        "event_id": result.event_id,
        "debit_id": result.debit_id,
        "verdict": result.verdict.value,
        "reason": masked_text(result.reason),
        "state": result.state,
        "attempt": result.attempt,
        "needs_review": result.needs_review,
    }


def debit_json(engine: Engine, debit_id: str) -> dict[str, Any] | None:
    """The debit, its events with verdicts and its notices; None if no event named it."""
    debit = engine.get(debit_id)
    if debit is None:
        return None
    return {
        "debit": attrs.asdict(debit),
        "events": [_event(stored) for stored in engine.history(debit_id)],
        "notices": [_notice(notice) for notice in engine.notices(debit_id)],
    }


def _event(stored: StoredEvent) -> dict[str, Any]:
    event = stored.event
    return {
        "seq": stored.seq,
        "event_id": stored.event_id,
        "type": stored.type,
        "attempt": stored.attempt,
        "occurred_at": _time(stored.occurred_at),
        "source": stored.source,
        "verdict": stored.verdict.value,
        "reason": masked_text(stored.reason),
        "origin": stored.origin,
        "data": masked_data(dict(event.data)) if event is not None else None,
        "raw": masked_raw(stored.raw),
    }


def _notice(notice: Notice) -> dict[str, Any]:
    return {
        "notice_id": notice.notice_id,
        "attempt": notice.attempt,
        "kind": notice.kind,
        "outcome": notice.outcome,
        "status": notice.status.value,
        "due_at": _time(notice.due_at),
        "sent_at": _time(notice.sent_at),
        "channel": notice.channel,
    }


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
