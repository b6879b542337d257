"""The fast way in for well-formed event lines: msgspec decodes and checks them in C.

:func:`decode_event` returns the event a JSON line holds, or None for any line it is not
sure of: the careful path (``Event.from_dict`` through ``parse_input``) then decides, and
its refusals keep their messages. It never refuses: whatever it cannot vouch for (a field
it does not know, an integer wider than 64 bits, an odd time) goes the careful way, so
both paths agree on every input (a property test holds them to it).

>>> decode_event(b'{"event_id": "gw-1", "debit_id": "d-1", "type": "failed",'
...              b' "occurred_at": "2026-03-05T10:00:00+08:00"}').attempt
1
>>> decode_event(b'{"event_id": "gw-1", "type": "paid"}') is None
True
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from .errors import InvalidEvent
from .events import (
    _CURRENCY,
    CREATED,
    MAX_ATTEMPT,
    MAX_TEXT,
    RETRIED,
    Event,
    _check_data,
    _check_time,
    _text_problem,
    shared,
)

_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]
_EventType = Literal["created", "submitted", "succeeded", "failed", "reversed", "reinstated",
                     "retried"]  # fmt: skip
_NO_DATA: Final[dict[str, Any]] = {}


class _Line(msgspec.Struct, forbid_unknown_fields=True):
    """An event line as DESIGN writes it, with the checks msgspec can make as it decodes."""

    event_id: _Text
    debit_id: _Text
    type: _EventType
    occurred_at: str
    attempt: Annotated[int, msgspec.Meta(ge=1, le=MAX_ATTEMPT)] = 1
    source: _Text = "gateway"
    amount: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    currency: str | None = None
    reason: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)] | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


_decode = msgspec.json.Decoder(_Line).decode
_new = object.__new__
_set = object.__setattr__


def decode_event(line: bytes | str) -> Event | None:
    """The event in one JSON line, checked as :class:`Event` checks it; None when the line is
    anything but a plain, valid event (the careful path then says why, or takes it)."""
    try:
        f = _decode(line)
        moment = datetime.fromisoformat(f.occurred_at)
        _check_time(None, None, moment)
        if f.data:
            _check_data(None, None, f.data)
    except (msgspec.DecodeError, ValueError, InvalidEvent):
        return None
    for text in (f.event_id, f.debit_id, f.source):
        if not text.isascii() and _text_problem(text) is not None:
            return None
        if "\x00" in text or not text.strip():
            return None
    if f.reason is not None and _text_problem(f.reason) is not None:
        return None
    if f.currency is not None and not _CURRENCY.match(f.currency):
        return None
    if (f.type == CREATED and f.amount is None) or (f.type == RETRIED and f.attempt < 2):
        return None
    # Every check Event's validators make is made above: build it without repeating them.
    event: Event = _new(Event)
    _set(event, "event_id", f.event_id)
    _set(event, "debit_id", f.debit_id)
    _set(event, "type", f.type)
    _set(event, "occurred_at", moment)
    _set(event, "attempt", f.attempt)
    _set(event, "source", shared(f.source))  # one string for the records a store keeps
    _set(event, "amount", f.amount)
    _set(event, "currency", None if f.currency is None else shared(f.currency))
    _set(event, "reason", f.reason)
    _set(event, "data", f.data)
    return event
