"""Any request body becomes entries without an exception: events, or refusals naming the
place and the field; and the one way in decides, as for every other input."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from statemachine.events import Event, Refusal, parse_input
from statemachine.service.intake import entries, place
from statemachine.strategies import single_events

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.binary(max_size=400))
def test_any_bytes_become_entries_without_an_exception(body: bytes) -> None:
    for outcome, raw, origin in entries(body):
        assert isinstance(outcome, Event | Refusal)
        assert isinstance(raw, str)
        assert place(origin).startswith(("line ", "["))


@given(st.lists(json_values, min_size=1, max_size=5))
def test_an_array_is_read_item_by_item_as_parse_input_reads_each(items: list[object]) -> None:
    found = entries(orjson.dumps(items))
    assert [place(origin) for _, _, origin in found] == [f"[{n}]" for n in range(len(items))]
    for (outcome, raw, _), item in zip(found, items, strict=True):
        assert raw == orjson.dumps(item).decode()
        alone, _ = parse_input(raw)
        assert type(outcome) is type(alone)
        assert outcome == alone


@given(st.lists(single_events(), min_size=1, max_size=5))
def test_events_arrive_the_same_as_one_object_an_array_or_json_lines(listed: list[Event]) -> None:
    lines = b"\n".join(orjson.dumps(event.to_dict()) for event in listed)
    array = orjson.dumps([event.to_dict() for event in listed])
    as_lines = [outcome for outcome, _, _ in entries(lines)]
    as_array = [outcome for outcome, _, _ in entries(array)]
    assert as_lines == as_array == listed
    assert [o for o, _, _ in entries(orjson.dumps(listed[0].to_dict()))] == [listed[0]]
