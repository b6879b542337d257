"""Events: facts reported by a source about one debit, in DESIGN's JSON form.

>>> e = Event.from_dict({"event_id": "gw-1", "debit_id": "loan-42/2026-03", "type": "succeeded",
...                      "occurred_at": "2026-03-05T10:00:00+08:00", "source": "gateway"})
>>> e.attempt, e.occurred_at.utcoffset()
(1, datetime.timedelta(seconds=28800))
>>> Event.from_dict({**e.to_dict(), "attempt": 0})
Traceback (most recent call last):
...
statemachine.errors.InvalidEvent: attempt: expected an integer >= 1, got 0

Raw input of any kind takes one way in, :func:`parse_input`, which never raises:

>>> parse_input(b'{"event_id": "gw-2", "type": "paid"}')[0].reason
'debit_id: expected a value (the field is required), got None'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs
import orjson

from .errors import InvalidEvent, shown

CREATED: Final = "created"
SUBMITTED: Final = "submitted"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
REVERSED: Final = "reversed"
RETRIED: Final = "retried"
REINSTATED: Final = "reinstated"  # a reversal of the attempt was itself cancelled (P3b)
EVENT_TYPES: Final = (CREATED, SUBMITTED, SUCCEEDED, FAILED, REVERSED, REINSTATED, RETRIED)
OUTCOME_TYPES: Final = frozenset({SUCCEEDED, FAILED})

FIELDS: Final = (
    "event_id",
    "debit_id",
    "type",
    "attempt",
    "occurred_at",
    "source",
    "amount",
    "currency",
    "reason",
    "data",
)
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
# A lone surrogate (a "\\ud800" escape a lax JSON parser let through, a str from bytes Python
# could not decode) has no UTF-8 form: no store can hold it.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Bounds every store can hold and every clock can add a settle window to.
MAX_ATTEMPT: Final = 2**31 - 1
MAX_TEXT: Final = 1000  # characters of an id, a source or a reason
EARLIEST: Final = datetime(1900, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)


def _non_empty_str(field: str) -> Any:
    def check(_: Any, __: Any, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            raise InvalidEvent(field, "a non-empty string", value)
        _check_text(field, value)

    return check


def _check_text(field: str, value: str) -> None:
    problem = _text_problem(value)
    if problem is not None:
        raise InvalidEvent(field, *problem)


def _text_problem(value: str) -> tuple[str, object] | None:
    """Why ``value`` cannot be an id, a source or a reason, as (expected, received); or None."""
    if len(value) > MAX_TEXT:
        return f"at most {MAX_TEXT} characters", f"{len(value)} characters"
    if "\x00" in value:
        return "text without NUL characters", value
    if not value.isascii() and _SURROGATE.search(value):
        return "UTF-8 text (no lone surrogates)", value
    return None


def _check_type(_: Any, __: Any, value: Any) -> None:
    if value not in EVENT_TYPES:
        raise InvalidEvent("type", f"one of {', '.join(EVENT_TYPES)}", value)


def _check_attempt(_: Any, __: Any, value: Any) -> None:
    if type(value) is not int or value < 1:
        raise InvalidEvent("attempt", "an integer >= 1", value)
    if value > MAX_ATTEMPT:
        raise InvalidEvent("attempt", f"an attempt number up to {MAX_ATTEMPT}", value)


def _check_time(_: Any, __: Any, value: Any) -> None:
    if not isinstance(value, datetime):
        raise InvalidEvent("occurred_at", "an ISO 8601 time with a UTC offset", value)
    if value.utcoffset() is None:
        raise InvalidEvent(
            "occurred_at", "a UTC offset (a naive time is ambiguous)", value.isoformat()
        )
    # Offsets are under a day, so a year well inside the bounds needs no exact comparison.
    if not 1900 < value.year < 9000 and not _within_bounds(value):
        raise InvalidEvent(
            "occurred_at", "a time from 1900-01-01 to 9000-01-01 UTC", value.isoformat()
        )


def _within_bounds(value: datetime) -> bool:
    try:
        return EARLIEST <= value < LATEST
    except OverflowError:  # its UTC time falls outside what datetime can hold
        return False


def _check_amount(_: Any, __: Any, value: Any) -> None:
    if value is not None and (type(value) is not int or not 0 <= value < 2**63):
        raise InvalidEvent("amount", "an integer number of minor units >= 0 (below 2**63)", value)


def _check_currency(_: Any, __: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not _CURRENCY.match(value)):
        raise InvalidEvent("currency", "a three-letter ISO 4217 code such as CNY", value)


def _check_reason(_: Any, __: Any, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidEvent("reason", "a scheme code string such as AM04, or null", value)
    if value is not None:
        _check_text("reason", value)


def _check_data(_: Any, __: Any, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise InvalidEvent("data", "a JSON object", value)
    if value:
        # Stored events are compared after a JSON round trip (P1): data must survive one.
        try:
            same = orjson.loads(orjson.dumps(value)) == value
        except (TypeError, orjson.JSONEncodeError):
            same = False
        if not same:
            raise InvalidEvent("data", "a JSON object of JSON values only", value)


@attrs.frozen(slots=True)
class Event:
    """One fact about one debit. Immutable; equal events have equal content (P1).

    Build one with :meth:`from_dict` from JSON-like data, or directly with keyword arguments;
    either way every field is checked and a bad one raises :class:`InvalidEvent`.
    """

    event_id: str = attrs.field(validator=_non_empty_str("event_id"))
    debit_id: str = attrs.field(validator=_non_empty_str("debit_id"))
    type: str = attrs.field(validator=_check_type)
    occurred_at: datetime = attrs.field(validator=_check_time)
    attempt: int = attrs.field(default=1, validator=_check_attempt)
    source: str = attrs.field(default="gateway", validator=_non_empty_str("source"))
    amount: int | None = attrs.field(default=None, validator=_check_amount)
    currency: str | None = attrs.field(default=None, validator=_check_currency)
    reason: str | None = attrs.field(default=None, validator=_check_reason)
    data: Mapping[str, Any] = attrs.field(factory=dict, validator=_check_data, hash=False)

    def __attrs_post_init__(self) -> None:
        if self.type == CREATED and self.amount is None:
            raise InvalidEvent("amount", "an amount in minor units on a `created` event", None)
        if self.type == RETRIED and self.attempt < 2:
            raise InvalidEvent(
                "attempt", "the new attempt's number (>= 2) on `retried`", self.attempt
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        """Build an event from DESIGN's JSON form; ``occurred_at`` may be a string or a datetime."""
        if not isinstance(data, Mapping):
            raise InvalidEvent("event", "a JSON object", data)
        unknown = [key for key in data if key not in FIELDS]
        if unknown:
            name = str(unknown[0])
            # The name leads the message: shown quoted unless it reads as a name.
            field = name if len(name) <= 100 and name.isidentifier() else shown(name)
            raise InvalidEvent(field, f"a known field name ({', '.join(FIELDS)})", name)
        for required in ("event_id", "debit_id", "type", "occurred_at"):
            if data.get(required) is None:
                raise InvalidEvent(required, "a value (the field is required)", None)
        fields = dict(data)
        fields["occurred_at"] = parse_time(fields["occurred_at"])
        for optional in ("attempt", "source", "data"):
            if fields.get(optional, 0) is None:
                del fields[optional]
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """Parse one JSON line; a syntax error is reported as :class:`InvalidEvent` too."""
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent("event", "one JSON object", f"unparseable JSON ({exc})") from None
        return cls.from_dict(data)

    @classmethod
    def from_stored(cls, payload: str | bytes) -> Event:
        """An event as a store wrote it with :meth:`to_json`, read back without checking its
        fields again: they were checked on the way in, and a store reloads thousands.

        >>> event = Event.from_dict({"event_id": "gw-1", "debit_id": "d-1", "type": "failed",
        ...     "occurred_at": "2026-03-05T10:00:00+08:00", "reason": "AM04"})
        >>> Event.from_stored(event.to_json()) == event
        True
        """
        data = orjson.loads(payload)
        if not _STORED.issubset(data):  # not a payload this package wrote: the careful way
            return cls.from_dict(data)
        event = object.__new__(cls)
        put = object.__setattr__  # frozen: attrs' own __init__ would check every field again
        for name in _AS_STORED:
            put(event, name, data[name])
        for name in _SHARED:  # as decoding shares them: a store keeps thousands of records
            if data[name] is not None:
                put(event, name, shared(data[name]))
        put(event, "occurred_at", datetime.fromisoformat(data["occurred_at"]))
        return event

    def to_dict(self) -> dict[str, Any]:
        """DESIGN's JSON form, ``occurred_at`` as ISO 8601 text with its original offset."""
        return {
            "event_id": self.event_id,
            "debit_id": self.debit_id,
            "type": self.type,
            "attempt": self.attempt,
            "occurred_at": self.occurred_at.isoformat(),
            "source": self.source,
            "amount": self.amount,
            "currency": self.currency,
            "reason": self.reason,
            "data": dict(self.data),
        }

    def to_json(self) -> str:
        """DESIGN's JSON form as one line of text."""
        return orjson.dumps(self.to_dict()).decode()


# What :meth:`Event.from_stored` expects in a payload: every field, as ``to_dict`` writes.
_STORED: Final = frozenset(FIELDS)
_AS_STORED: Final = tuple(name for name in FIELDS if name != "occurred_at")
_SHARED: Final = ("type", "source", "currency")  # fields every debit's events repeat
_TEXTS: dict[str, str] = {}  # the texts ``shared`` hands out
_TEXTS_MAX: Final = 256


def shared(text: str) -> str:
    """One string object for each of the few texts every debit's events repeat (types,
    sources, currencies), so the records a store keeps share them. Bounded: past 256
    distinct texts (a source may be any name) a text is kept as it came.

    >>> shared("gate" + "way") is shared("gateway")
    True
    """
    found = _TEXTS.get(text)
    if found is not None:
        return found
    if len(_TEXTS) < _TEXTS_MAX:
        _TEXTS[text] = text
    return text


def parse_time(value: object, field: str = "occurred_at") -> datetime:
    """ISO 8601 text (or a datetime) with a UTC offset; a naive time is refused."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(field, "an ISO 8601 time with a UTC offset", value) from None
    else:
        raise InvalidEvent(field, "an ISO 8601 time with a UTC offset", value)
    if moment.utcoffset() is None:
        raise InvalidEvent(field, "a UTC offset (a naive time is ambiguous)", value)
    return moment


@attrs.frozen(slots=True)
class Refusal:
    """Input that is not an event: why, and the debit_id and event_id it named where they
    could be read, to file it under. It is stored with verdict ``invalid`` and its raw text."""

    reason: str
    debit_id: str | None = None
    event_id: str | None = None


def parse_input(
    raw: str | bytes | Mapping[str, Any],
    parsed: Mapping[str, Any] | Refusal | Event | None = None,
) -> tuple[Event | Refusal, str]:
    """The one way in: raw input (a JSON line as text or bytes, or a mapping) to an event or a
    refusal, with the text to store as received. Never raises for bad input.

    ``parsed`` is the input already decoded into DESIGN's fields (a CSV row, say), ``raw``
    then being the line it came from; or the reader's refusal of that line; or the event
    ``decoding.decode_event`` found in it.

    >>> event, text = parse_input('{"event_id": "gw-1", "debit_id": "d-1", "type": "failed",'
    ...                           ' "occurred_at": "2026-03-05T10:00:00+00:00"}')
    >>> event.type, text[:17]
    ('failed', '{"event_id": "gw-')
    >>> parse_input(b'{"event_id": "gw-1", "reason": "\\xff"}')[0]
    Refusal(reason='line: expected UTF-8 text, got byte 0xff at offset 32', debit_id=None, event_id='gw-1')
    """
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 1].hex()
            reason = f"line: expected UTF-8 text, got byte 0x{bad} at offset {exc.start}"
            # Filed under the debit it names, where the rest of the line can tell.
            ids = _salvage_ids(raw.decode("utf-8", "replace"))
            return Refusal(reason, *ids), raw.decode("utf-8", "backslashreplace")
    elif isinstance(raw, str):
        text = raw
        surrogate = None if text.isascii() else _SURROGATE.search(text)
        if surrogate is not None:
            reason = (
                f"line: expected UTF-8 text, got a lone surrogate "
                f"U+{ord(surrogate.group()):04X} at offset {surrogate.start()}"
            )
            ids = _salvage_ids(text.encode("utf-8", "replace"))
            return Refusal(reason, *ids), _escaped(text)
    else:
        text = _as_text(raw)
    if isinstance(parsed, Refusal | Event):
        return parsed, text
    fields: object = parsed if parsed is not None else raw
    try:
        if isinstance(fields, Mapping):
            return Event.from_dict(fields), text
        return Event.from_json(text), text
    except InvalidEvent as exc:
        named = text if isinstance(fields, str | bytes) else fields
        return Refusal(str(exc), *_salvage_ids(named)), text


def _as_text(value: object) -> str:
    """A mapping given as input, as JSON text to store; whatever cannot be JSON, as best it can."""
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return _escaped(json.dumps(value, default=str, ensure_ascii=False))
    except (TypeError, ValueError, RecursionError):
        return f"<input of type {type(value).__name__} that is not JSON>"


def _escaped(text: str) -> str:
    """``text`` with each lone surrogate written as JSON escapes it (``\\ud800``), so a store
    can hold it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _salvage_ids(raw: object) -> tuple[str | None, str | None]:
    """The debit_id and event_id of unusable input, when they can be read, to file it under."""
    data: object = raw
    if isinstance(raw, str | bytes):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None, None
    if not isinstance(data, Mapping):
        return None, None
    return _usable_id(data.get("debit_id")), _usable_id(data.get("event_id"))


def _usable_id(value: object) -> str | None:
    """An id that a refused input may be filed under: one the event format would accept."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value if _text_problem(value) is None else None
