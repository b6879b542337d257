"""Input an attacker or a broken system could send: refused with the field named, stored as
``invalid`` with its raw text where it names a debit, never a traceback, on every store."""

from __future__ import annotations

import os
from typing import Any

import pytest
from conftest import EngineFactory

from statemachine import Event, InvalidEvent, ManualClock
from statemachine.events import parse_input

GOOD: dict[str, Any] = {"event_id": "gw-1", "debit_id": "d-1", "type": "failed",
                        "occurred_at": "2026-03-05T10:00:00+00:00"}  # fmt: skip


def nested(depth: int) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for _ in range(depth):
        data = {"a": data}
    return data


HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("settle window past the end of time", {"occurred_at": "9999-12-31T23:59:00+00:00"},
     "occurred_at: expected a time from 1900-01-01 to 9000-01-01 UTC"),
    ("UTC before year 1", {"occurred_at": "0001-01-01T00:00:00+14:00"},
     "occurred_at: expected a time from 1900-01-01 to 9000-01-01 UTC"),
    ("UTC after year 9999", {"occurred_at": "9999-12-31T23:00:00-14:00"},
     "occurred_at: expected a time from 1900-01-01 to 9000-01-01 UTC"),
    ("attempt past 64 bits", {"attempt": 2**63}, "attempt: expected an attempt number up to"),
    ("attempt past 32 bits", {"attempt": 2**31}, "attempt: expected an attempt number up to"),
    ("an integer past 64 bits in data", {"data": {"n": 2**70}},
     "data: expected a JSON object of JSON values only"),
    ("NUL in debit_id", {"debit_id": "d-\x00"}, "debit_id: expected text without NUL"),
    ("NUL in event_id", {"event_id": "gw-\x00"}, "event_id: expected text without NUL"),
    ("NUL in source", {"source": "gate\x00way"}, "source: expected text without NUL"),
    ("a megabyte event_id", {"event_id": os.urandom(600_000).hex()},
     "event_id: expected at most 1000 characters, got '1200000 characters'"),
    ("data nested 1000 deep", {"data": nested(1000)},
     "data: expected a JSON object of JSON values only"),
    # A lone surrogate has no UTF-8 form: no store could hold it.
    ("a lone surrogate in event_id", {"event_id": "gw-\ud800"},
     "event_id: expected UTF-8 text (no lone surrogates), got 'gw-\\ud800'"),
    ("a lone surrogate in source", {"source": "gateway\udfff"},
     "source: expected UTF-8 text (no lone surrogates)"),
    ("a lone surrogate in reason", {"reason": "AM04\udc80"},
     "reason: expected UTF-8 text (no lone surrogates)"),
    ("a field named by a lone surrogate", {"\ud800": None},
     "'\\ud800': expected a known field name"),
    ("a field with no name", {"": 1}, "'': expected a known field name"),
    ("a lone surrogate in an object for debit_id", {"debit_id": {"\ud800": None}},
     "debit_id: expected a non-empty string, got {'\\ud800': None}"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "change", "message"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_fields_are_refused_and_stored(
    make_engine: EngineFactory, case: str, change: dict[str, Any], message: str
) -> None:
    engine = make_engine(clock=ManualClock())
    fields = {**GOOD, **change}
    with pytest.raises(InvalidEvent) as caught:
        Event.from_dict(fields)
    assert str(caught.value).startswith(message)
    assert len(str(caught.value)) < 500  # a bounded message, whatever came
    result = engine.ingest(fields, origin=f"hostile:{case}")
    assert result.verdict == "invalid"
    assert result.reason.startswith(message)
    # Filed under its debit where the debit_id is usable, else with the debit-less rejects.
    stored = engine.history("d-1") if fields["debit_id"] == "d-1" else engine.rejected()
    assert [(s.verdict, s.origin) for s in stored] == [("invalid", f"hostile:{case}")]
    assert (stored[0].raw or "").startswith(("{", "<input"))
    assert engine.get("d-1") is None


def test_a_nul_byte_in_a_raw_line_is_kept_on_every_store(make_engine: EngineFactory) -> None:
    engine = make_engine()
    line = b'{"event_id": "gw-9", "debit_id": "d-1", "type": "fa\x00iled"}'
    result = engine.ingest(line, origin="nul.jsonl:1")
    assert result.verdict == "invalid"
    (stored,) = engine.rejected()  # not JSON (a raw control character): no debit to name
    assert stored.origin == "nul.jsonl:1"
    assert "gw-9" in (stored.raw or "")
    assert "iled" in (stored.raw or "")


def test_a_lone_surrogate_in_a_raw_line_is_refused_and_kept_escaped(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    line = '{"event_id": "gw-9", "debit_id": "d-1", "type": "failed", "reason": "AM04\ud800"}'
    result = engine.ingest(line, origin="api:1")
    assert result.verdict == "invalid"
    assert result.reason == "line: expected UTF-8 text, got a lone surrogate U+D800 at offset 73"
    (stored,) = engine.history("d-1")  # filed under the debit the rest of the line names
    assert stored.raw == line.replace("\ud800", "\\ud800")
    assert stored.origin == "api:1"


def test_apply_takes_a_mapping_and_names_a_bad_field() -> None:
    from statemachine import Engine, InvalidDefinition

    engine = Engine.in_memory()
    assert engine.apply(GOOD).state == "failed"
    with pytest.raises(InvalidEvent, match="attempt: expected an integer >= 1, got 0"):
        engine.apply({**GOOD, "event_id": "gw-2", "attempt": 0})
    with pytest.raises(InvalidDefinition, match=r"use engine\.ingest"):
        engine.apply('{"event_id": "gw-3"}')  # type: ignore[arg-type]


def test_parse_input_never_raises_on_values_json_cannot_hold() -> None:
    refusal, text = parse_input({"event_id": 2**70, "data": {1, 2}})
    assert not isinstance(refusal, Event)
    assert "1180591620717411303424" in text
