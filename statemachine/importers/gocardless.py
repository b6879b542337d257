"""GoCardless webhook bodies: payment events read as DESIGN's events.

A file holds one webhook body, ``{"events": [...]}`` (pretty-printed or on one line), or many
bodies as JSON lines. Each event of ``resource_type`` ``payments`` with a mapped ``action``
becomes one event for the debit ``links.payment``; other resource types and actions are
skipped. The mapping and its reasons are in ``docs/importers/gocardless.md``.

>>> from pathlib import Path
>>> from tempfile import TemporaryDirectory
>>> body = '''{"events": [{"id": "EV1", "created_at": "2019-07-01T13:00:00.000Z",
...     "resource_type": "payments", "action": "paid_out", "links": {"payment": "PM1"}}]}'''
>>> with TemporaryDirectory() as folder:
...     path = Path(folder, "hook.json")
...     _ = path.write_text(body)
...     [(origin.rsplit(":", 1)[1], event["event_id"], event["type"], event["occurred_at"])
...      for origin, event in read([path], ImportOptions(), ImportTally())]
[('events[0]', 'gc:EV1', 'succeeded', '2019-07-01T13:00:00+00:00')]
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from ..events import FAILED, REINSTATED, RETRIED, REVERSED, SUBMITTED, SUCCEEDED
from . import ImportFailed, ImportOptions, ImportTally, Record
from ._common import aware_time, event_record

PREFIX: Final = "gc:"
SOURCE: Final = "gateway"
RESUBMISSION: Final = "resubmission_requested"

# Payment action -> DESIGN event type; any other action is skipped.
TYPES: Final[Mapping[str, str]] = {
    "submitted": SUBMITTED,
    "confirmed": SUCCEEDED,
    "paid_out": SUCCEEDED,
    "failed": FAILED,
    "cancelled": FAILED,
    "customer_approval_denied": FAILED,
    # GoCardless reports a late failure as `failed`; settling it against a payout corroborates it.
    "late_failure_settled": FAILED,
    "charged_back": REVERSED,
    "chargeback_settled": REVERSED,
    # The chargeback was cancelled: the collection stands again (P3b).
    "chargeback_cancelled": REINSTATED,
    RESUBMISSION: RETRIED,
}

_EXPECTED: Final = 'a GoCardless webhook body, {"events": [...]}'


@attrs.frozen
class _Payment:
    """One payment event as read, before its attempt is known."""

    origin: str
    event_id: str
    payment: str
    action: str
    at: datetime
    reason: str | None
    data: dict[str, Any]


def read(paths: Sequence[Path], options: ImportOptions, tally: ImportTally) -> Iterator[Record]:
    """Yield the payment events of every file in file order, each with its origin.

    Every file is read before the first event is yielded: attempts are counted over the
    whole import, and a bad file fails the import before anything is written.
    """
    tally.unit = ("webhook event", "webhook events")
    payments = [item for path in paths for item in _read_file(path, options, tally)]
    yield from _records(payments, {})


def read_webhook(
    body: bytes,
    retries: Callable[[str], Iterable[tuple[datetime, str]]] = lambda payment: (),
    origin: str = "webhook",
) -> tuple[list[Record], ImportTally]:
    """One webhook body as delivered to an endpoint, mapped as :func:`read` maps a file.

    ``retries(payment)`` gives the (``created_at``, event id) of the payment's
    ``resubmission_requested`` events received before (the store knows them), for the
    attempt numbers; origins are ``ORIGIN events[i]``. A body that is not a webhook body
    raises :class:`ImportFailed` naming the place.

    >>> body = (b'{"events": [{"id": "EV2", "created_at": "2019-07-02T09:00:00Z",'
    ...     b' "resource_type": "payments", "action": "failed", "links": {"payment": "PM1"}}]}')
    >>> earlier = [(datetime.fromisoformat("2019-07-01T00:00Z"), "gc:EV0")]
    >>> records, _ = read_webhook(body, lambda payment: earlier)
    >>> [(origin, event["type"], event["attempt"]) for origin, event in records]
    [('webhook events[0]', 'failed', 2)]
    """
    tally = ImportTally()
    tally.unit = ("webhook event", "webhook events")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ImportFailed(origin, where, f"expected {_EXPECTED}, got {_broken(exc)}") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("events"), list):
        raise ImportFailed(origin, "top level", f"expected {_EXPECTED}, got {_kind(parsed)}")
    payments = []
    for index, raw in enumerate(parsed["events"]):
        where = f"events[{index}]"
        tally.read += 1
        item = _payment(Path(origin), where, f"{origin} {where}", raw, ImportOptions(), tally)
        if item is not None:
            payments.append(item)
    known = {payment: list(retries(payment)) for payment in {item.payment for item in payments}}
    return list(_records(payments, known)), tally


def _records(
    payments: list[_Payment], known: dict[str, list[tuple[datetime, str]]]
) -> Iterator[Record]:
    """The events of these payments, attempts counted from their resubmissions and the
    ``known`` ones received before."""
    retries: dict[str, list[tuple[datetime, str]]] = {key: list(v) for key, v in known.items()}
    for item in payments:
        if item.action == RESUBMISSION:
            retries.setdefault(item.payment, []).append((item.at, item.event_id))
    for key, moments in retries.items():
        retries[key] = sorted(set(moments))  # a body delivered twice retries once
    for item in payments:
        yield item.origin, _event(item, _attempt(item, retries.get(item.payment, [])))


def _attempt(item: _Payment, retries: list[tuple[datetime, str]]) -> int:
    # Counted by created_at, not listing order: webhooks arrive out of order.
    if item.action == RESUBMISSION:
        return 1 + bisect_right(retries, (item.at, item.event_id))
    # An event at the very instant of a resubmission belongs to the attempt it ends.
    return 1 + bisect_left(retries, (item.at, ""))


def _event(item: _Payment, attempt: int) -> dict[str, Any]:
    return event_record(
        event_id=item.event_id,
        debit_id=item.payment,
        type=TYPES[item.action],
        attempt=attempt,
        occurred_at=item.at,
        source=SOURCE,
        reason=item.reason,
        data=item.data,
    )


def _read_file(path: Path, options: ImportOptions, tally: ImportTally) -> Iterator[_Payment]:
    for line, body in _bodies(path):
        here = f"line {line}: " if line else ""
        place = f"{path}:{line}:" if line else f"{path}:"
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            where = f"line {line}" if line else "top level"
            raise ImportFailed(path, where, f"expected {_EXPECTED}, got {_kind(body)}")
        for index, raw in enumerate(body["events"]):
            where, origin = f"{here}events[{index}]", f"{place}events[{index}]"
            tally.read += 1
            item = _payment(path, where, origin, raw, options, tally)
            if item is not None:
                yield item


def _bodies(path: Path) -> Iterator[tuple[int | None, Any]]:
    """Yield ``(line, body)``: line is None for a file that is one JSON document."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(path, None, f"cannot be read ({exc.strerror})") from None
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # orjson refuses a UTF-8 byte order mark
    if not raw.strip():
        raise ImportFailed(path, "line 1", f"expected {_EXPECTED}, got an empty file")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        whole = exc
    else:
        yield None, body
        return
    lines = raw.splitlines()
    # A first line that is JSON by itself marks JSON lines; else the one document is broken.
    if not _is_json(next(line for line in lines if line.strip())):
        got = "markup (an XML file?)" if raw.lstrip()[:1] == b"<" else _broken(whole)
        where = f"line {whole.lineno}, column {whole.colno}"
        raise ImportFailed(path, where, f"expected {_EXPECTED}, got {got}")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            body = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            problem = f"expected one webhook body per line (JSON lines), got {_broken(exc)}"
            raise ImportFailed(path, f"line {number}, column {exc.colno}", problem) from None
        yield number, body


def _broken(error: orjson.JSONDecodeError) -> str:
    truncated = error.pos >= len(error.doc.rstrip()) if error.doc else False
    return f"{error.msg} (a truncated file?)" if truncated else error.msg


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def _payment(
    path: Path, where: str, origin: str, raw: Any, options: ImportOptions, tally: ImportTally
) -> _Payment | None:
    if not isinstance(raw, dict):
        raise ImportFailed(path, where, f"expected a webhook event object, got {_kind(raw)}")
    event_id = _text(path, where, raw, "id")
    resource, action = _text(path, where, raw, "resource_type"), _text(path, where, raw, "action")
    if resource != "payments":
        tally.skip("of a resource type other than payments", resource)
        return None
    if action not in TYPES:
        tally.skip("payment events with an action that maps to no event", action)
        return None
    links = _object(path, where, raw, "links")
    details = _object(path, where, raw, "details")
    metadata = _object(path, where, raw, "metadata")
    reason = details.get("reason_code")
    if reason is not None and not isinstance(reason, str):
        raise ImportFailed(
            path, f"{where}.details.reason_code", f"expected a string, got {reason!r}"
        )
    data: dict[str, Any] = {"action": action, "details": details, "links": links}
    if metadata:
        data["metadata"] = metadata
    return _Payment(
        origin=origin,
        event_id=PREFIX + event_id,
        payment=_text(path, f"{where}.links", links, "payment"),
        action=action,
        at=_time(path, where, raw, options),
        reason=reason,
        data=data,
    )


def _text(path: Path, where: str, raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ImportFailed(path, f"{where}.{key}", f"expected a non-empty string, got {value!r}")
    return value


def _object(path: Path, where: str, raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ImportFailed(path, f"{where}.{key}", f"expected an object, got {_kind(value)}")
    return value


def _time(path: Path, where: str, raw: dict[str, Any], options: ImportOptions) -> datetime:
    text = _text(path, where, raw, "created_at")
    try:
        return aware_time(text, options.timezone, example="2019-07-24T18:04:27.512Z")
    except ValueError as exc:
        raise ImportFailed(path, f"{where}.created_at", str(exc)) from None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(sorted(map(str, value))[:5])
        return f"an object with keys {keys}" if keys else "an empty object"
    names = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), "null")
