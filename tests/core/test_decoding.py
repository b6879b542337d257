"""The fast way in (msgspec) and the careful one (``Event.from_dict``) agree on any input: the
same event, or the fast path steps aside and the careful one refuses with its own message."""

from __future__ import annotations

from typing import Any

import attrs
import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from statemachine.decoding import _Line, decode_event
from statemachine.events import EVENT_TYPES, Event, Refusal, parse_input
from statemachine.spec import bundled_path

# Values a field may hold: most are valid somewhere, many are wrong in a telling way.
ODD_TEXT = st.sampled_from(["", " ", "a\x00b", "\u00e9t\u00e9", "x" * 1000, "x" * 1001, "\t"])
TEXT = st.one_of(st.text(max_size=12), ODD_TEXT, st.sampled_from(["gw-1", "d-1", "gateway"]))
INTEGERS = st.one_of(
    st.integers(-3, 5),
    st.sampled_from([2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1]),
)
TIMES = st.one_of(
    st.sampled_from(
        [
            "2026-03-05T10:00:00+00:00",
            "2026-03-05T10:00:00+08:00",
            "2026-03-05T10:00:00Z",
            "2026-03-05T10:00:00.123456789+00:00",
            "2026-03-05 10:00+05:30",
            "2026-03-05T10:00:00",
            "2026-03-05",
            "1900-01-01T00:30:00+01:00",
            "8999-12-31T23:30:00-01:00",
            "0001-01-01T00:00:00+00:00",
            "20260305T100000+0000",
            "yesterday",
        ]
    ),
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
)
JSON_LEAVES = st.one_of(st.none(), st.booleans(), INTEGERS, st.floats(allow_nan=False), TEXT)
DATA = st.one_of(
    st.dictionaries(st.text(max_size=4), st.recursive(JSON_LEAVES, st.lists, max_leaves=4)),
    JSON_LEAVES,
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": TEXT,
    "debit_id": TEXT,
    "type": st.one_of(st.sampled_from(EVENT_TYPES), TEXT),
    "occurred_at": st.one_of(TIMES, INTEGERS),
    "attempt": st.one_of(INTEGERS, st.booleans(), st.just(1.0), TEXT),
    "source": TEXT,
    "amount": st.one_of(INTEGERS, st.just(1.5), TEXT),
    "currency": st.one_of(st.sampled_from(["CNY", "cny", "CNY\n", "EURO"]), INTEGERS),
    "reason": st.one_of(TEXT, INTEGERS),
    "data": DATA,
}


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    """A JSON line: an event that may be valid, with fields left out, null, odd or unknown."""
    record: dict[str, Any] = {
        "event_id": "gw-1",
        "debit_id": "loan-1/2026-03",
        "type": draw(st.sampled_from(EVENT_TYPES)),
        "occurred_at": draw(TIMES),
    }
    if draw(st.booleans()):
        record["attempt"] = draw(st.integers(1, 3))
    if record["type"] == "created" or draw(st.booleans()):
        record["amount"] = draw(st.integers(0, 10**6))
    for name in draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=3)):
        record[name] = draw(st.one_of(VALUES[name], st.none()))
    for name in draw(st.lists(st.sampled_from(sorted(record)), max_size=1)):
        del record[name]
    if draw(st.integers(0, 9)) == 0:
        record[draw(st.sampled_from(["colour", "Type", "", "data "]))] = 1
    try:
        line = orjson.dumps(record)
    except TypeError:  # an integer orjson will not write: the text says it all the same
        line = ("{" + ", ".join(f'"{k}": {_text(v)}' for k, v in record.items()) + "}").encode()
    return draw(st.sampled_from([line, line + b" ", b"[" + line + b"]", line[:-1]]))


def _text(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else _json(value)


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return '"?"'


def agree(line: bytes | str) -> None:
    careful, careful_text = parse_input(line)
    fast, fast_text = parse_input(line, decode_event(line))
    assert fast_text == careful_text
    assert type(fast) is type(careful)
    if isinstance(careful, Refusal):
        assert fast == careful
    else:
        assert isinstance(fast, Event)
        # Equal events, down to how their times and numbers are written.
        assert (fast, repr(fast), fast.to_json()) == (careful, repr(careful), careful.to_json())


@given(lines())
@example(b'{"event_id": "a", "debit_id": "d", "type": "failed", "occurred_at": "2026-03-05T10:00'
         b':00+00:00", "data": {"n": 18446744073709551616}}')  # fmt: skip
@example(b'{"event_id": "a\\ud800", "debit_id": "d", "type": "failed",'
         b' "occurred_at": "2026-03-05T10:00:00+00:00"}')  # fmt: skip
@example(b'{"event_id": "a", "event_id": "b", "debit_id": "d", "type": "failed",'
         b' "occurred_at": "2026-03-05T10:00:00+00:00"}')  # fmt: skip
@example(b'{"event_id": "a", "debit_id": "d", "type": "failed", "amount": 9223372036854775808,'
         b' "occurred_at": "2026-03-05T10:00:00+00:00"}')  # fmt: skip
@example(b'{"event_id": "\xff", "debit_id": "d", "type": "failed",'
         b' "occurred_at": "2026-03-05T10:00:00+00:00"}')  # fmt: skip
def test_the_fast_and_careful_paths_agree_on_any_line(line: bytes) -> None:
    agree(line)
    agree(line.decode("utf-8", "surrogateescape"))


def test_every_event_line_of_the_bundled_book_takes_the_fast_path() -> None:
    lines = bundled_path("examples", "car-loans-month.jsonl").read_bytes().splitlines()
    events = [line for line in lines if b'"notice_sent"' not in line]
    assert events
    assert all(decode_event(line) is not None for line in events)
    for line in events[:200]:
        agree(line)


def test_the_fast_path_knows_every_field_of_an_event() -> None:
    # A field added to Event, with its check, must be added to the fast path too.
    assert set(_Line.__struct_fields__) == {field.name for field in attrs.fields(Event)}
