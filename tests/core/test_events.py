"""Events: DESIGN's field table, and errors that name the field, the expectation and the value."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statemachine import Event, InvalidEvent
from statemachine.testing import single_events

GOOD: dict[str, Any] = {
    "event_id": "gw-8812",
    "debit_id": "loan-42/2026-03",
    "type": "succeeded",
    "attempt": 1,
    "occurred_at": "2026-03-05T10:00:00+08:00",
    "source": "gateway",
    "amount": 356000,
    "currency": "CNY",
    "reason": None,
    "data": {},
}


def test_design_example_parses() -> None:
    event = Event.from_dict(GOOD)
    assert event.type == "succeeded"
    assert event.occurred_at.isoformat() == "2026-03-05T10:00:00+08:00"
    assert event.amount == 356000


def test_defaults() -> None:
    event = Event.from_dict({k: GOOD[k] for k in ("event_id", "debit_id", "type", "occurred_at")})
    assert (event.attempt, event.source, event.amount, event.data) == (1, "gateway", None, {})


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("event_id", "", "event_id: expected a non-empty string"),
        ("event_id", None, "event_id: expected a value (the field is required)"),
        ("debit_id", 42, "debit_id: expected a non-empty string, got 42"),
        (
            "type",
            "paid",
            "type: expected one of created, submitted, succeeded, failed, reversed, reinstated, retried, got 'paid'",
        ),
        ("attempt", 0, "attempt: expected an integer >= 1, got 0"),
        ("attempt", "1", "attempt: expected an integer >= 1, got '1'"),
        ("attempt", True, "attempt: expected an integer >= 1, got True"),
        (
            "occurred_at",
            "2026-03-05T10:00:00",
            "occurred_at: expected a UTC offset (a naive time is ambiguous)",
        ),
        (
            "occurred_at",
            "yesterday",
            "occurred_at: expected an ISO 8601 time with a UTC offset, got 'yesterday'",
        ),
        ("occurred_at", None, "occurred_at: expected a value (the field is required)"),
        ("source", "", "source: expected a non-empty string"),
        (
            "amount",
            -1,
            "amount: expected an integer number of minor units >= 0 (below 2**63), got -1",
        ),
        (
            "amount",
            3.5,
            "amount: expected an integer number of minor units >= 0 (below 2**63), got 3.5",
        ),
        ("currency", "yuan", "currency: expected a three-letter ISO 4217 code"),
        ("reason", 4, "reason: expected a scheme code string"),
        ("data", [], "data: expected a JSON object, got []"),
        ("data", {"when": (1, 2)}, "data: expected a JSON object of JSON values only"),
        ("amount", 2**64, "amount: expected an integer number of minor units >= 0 (below 2**63)"),
        ("ocurred_at", "2026-03-05T10:00:00+08:00", "ocurred_at: expected a known field name"),
    ],
)
def test_bad_field_is_named(field: str, value: object, expected: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        Event.from_dict({**GOOD, field: value})
    assert str(caught.value).startswith(expected)
    assert caught.value.field == field


def test_created_needs_an_amount() -> None:
    with pytest.raises(
        InvalidEvent, match="amount: expected an amount in minor units on a `created` event"
    ):
        Event.from_dict({**GOOD, "type": "created", "amount": None})


def test_retried_carries_the_new_attempt() -> None:
    with pytest.raises(InvalidEvent, match=r"attempt: expected the new attempt's number \(>= 2\)"):
        Event.from_dict({**GOOD, "type": "retried", "attempt": 1})


def test_unparseable_json_is_an_invalid_event() -> None:
    with pytest.raises(
        InvalidEvent, match="event: expected one JSON object, got 'unparseable JSON"
    ):
        Event.from_json(b'{"event_id": ')


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(InvalidEvent, match="occurred_at: expected a UTC offset"):
        Event(event_id="x", debit_id="d", type="failed", occurred_at=datetime(2026, 3, 5))


def test_event_is_frozen_and_slotted() -> None:
    event = Event.from_dict(GOOD)
    with pytest.raises(AttributeError):
        event.type = "failed"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_same_instant_in_other_offset_is_the_same_content() -> None:
    other = Event.from_dict({**GOOD, "occurred_at": "2026-03-05T02:00:00Z"})
    assert other == Event.from_dict(GOOD)


@given(single_events())
def test_json_round_trip(event: Event) -> None:
    assert Event.from_json(event.to_json()) == event
    assert Event.from_dict(event.to_dict()) == event
    # The store's way back, without checking again, gives the same event and the same bytes.
    stored = Event.from_stored(event.to_json())
    assert stored == event
    assert stored.to_json() == event.to_json()
    assert hash(stored) == hash(event)


def test_a_stored_payload_keeps_every_field_and_a_foreign_one_is_checked() -> None:
    event = Event.from_dict({**GOOD, "reason": "AM04", "data": {"batch": [1, {"x": None}]}})
    assert Event.from_stored(event.to_json()).to_dict() == event.to_dict()
    with pytest.raises(InvalidEvent, match=r"^type: expected"):
        Event.from_stored(b'{"event_id": "e", "debit_id": "d", "type": "paid",'
                          b' "occurred_at": "2026-03-05T10:00:00+00:00"}')  # fmt: skip


@given(
    st.dictionaries(
        st.text(max_size=12), st.none() | st.integers() | st.text(max_size=12), max_size=8
    )
)
def test_any_dict_parses_or_raises_invalid_event(data: dict[str, object]) -> None:
    error = None
    try:
        Event.from_dict(data)
    except InvalidEvent as exc:
        error = exc
    if error is not None:
        assert isinstance(error.field, str)
        assert str(error).startswith(f"{error.field}: expected ")
