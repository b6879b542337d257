"""The engine's surface: apply, ingest of raw input, get, history, metrics."""

from __future__ import annotations

import orjson
from support import ev

from statemachine import Engine, Verdict


def test_ingest_stores_unparseable_input_with_its_raw_text_and_origin() -> None:
    engine = Engine.in_memory()
    result = engine.ingest(b'{"event_id": "gw-1", ', origin="march.jsonl:17")
    assert result.verdict is Verdict.INVALID
    assert result.reason.startswith("event: expected one JSON object, got 'unparseable JSON")
    (stored,) = engine.rejected()
    assert (stored.raw, stored.origin, stored.verdict) == (
        '{"event_id": "gw-1", ',
        "march.jsonl:17",
        "invalid",
    )


def test_ingest_files_invalid_events_under_their_debit_when_it_is_named() -> None:
    engine = Engine.in_memory()
    engine.apply(ev("submitted", 0, debit_id="loan-1"))
    raw = '{"event_id": "gw-2", "debit_id": "loan-1", "type": "succeeded", "occurred_at": "2026-03-05T10:00:00"}'
    result = engine.ingest(raw, origin="log:2")
    assert result.verdict is Verdict.INVALID
    assert "occurred_at: expected a UTC offset" in result.reason
    assert result.state == "submitted"  # nothing changed
    history = engine.history("loan-1")
    assert [h.verdict for h in history] == ["applied", "invalid"]
    assert history[-1].raw == raw
    assert history[-1].event_id == "gw-2"
    assert engine.metrics().events_by_verdict == {"applied": 1, "invalid": 1}


def test_ingest_applies_good_input_and_keeps_the_raw_text() -> None:
    engine = Engine.in_memory()
    raw = orjson.dumps(ev("succeeded", 0).to_dict())
    assert engine.ingest(raw, origin="log:1").state == "succeeded"
    assert engine.history("d-1")[0].raw == raw.decode()


def test_get_unknown_debit_is_none() -> None:
    assert Engine.in_memory().get("nope") is None


def test_history_keeps_arrival_order_and_reasons() -> None:
    engine = Engine.in_memory()
    first = ev("succeeded", 5, event_id="a")
    engine.apply(first)
    engine.apply(ev("submitted", 0, event_id="b"))
    engine.apply(first)
    history = engine.history("d-1")
    assert [(h.event_id, h.verdict) for h in history] == [
        ("a", "applied"),
        ("b", "stale"),
        ("a", "duplicate"),
    ]
    assert history[0].reason == "new debit, succeeded"
    assert history[2].reason == "same event_id and content as a stored event"


def test_metrics_count_verdicts_states_and_reviews() -> None:
    engine = Engine.in_memory()
    engine.apply(ev("succeeded", 0, debit_id="a"))
    engine.apply(ev("failed", 1, debit_id="a", source="internal"))
    engine.apply(ev("failed", 0, debit_id="b"))
    metrics = engine.metrics()
    assert metrics.events_by_verdict == {"applied": 2, "conflict": 1}
    assert metrics.conflicts == 1
    assert metrics.debits_by_state == {"succeeded": 1, "failed": 1}
    assert metrics.success_rate == 0.5
    assert metrics.notices_by_status == {"queued": 2}
    assert metrics.delivery_rate is None
    assert metrics.needs_review == 0


def test_apply_many_returns_one_result_per_event() -> None:
    engine = Engine.in_memory()
    results = engine.apply_many([ev("created", 0), ev("submitted", 1), ev("succeeded", 2)])
    assert [r.state for r in results] == ["pending", "submitted", "succeeded"]
    assert [r.version for r in results] == [1, 2, 3]
