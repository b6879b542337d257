"""Delivery receipts (N8): a provider's word that a notice reached the customer or did not,
and what that does to the notice. Pure: the store reads the notice and what earlier receipts
said of the same send, :func:`judge` decides, and the store writes both in one transaction.

The rules, in the order they are checked:

- A receipt names a notice and the channel that took it. An unknown notice, a status other
  than ``delivered`` or ``undelivered``, or a channel that never took the notice: ``rejected``,
  and kept with the reason, as every receipt is.
- One send is one notice on one channel, and its outcome only improves: ``expired`` (no
  receipt within the spec's ``receipt_timeout``) < ``undelivered`` < ``delivered``. A receipt
  with the send's outcome is a ``duplicate``; a worse one is ``stale`` (a delivered send stays
  delivered, whatever arrives after). So the same receipts in any order end the same.
- A receipt for a channel the notice has since been sent away from is ``stale``: the fallback
  went out, and the late word changes nothing, the delivery rate included.
- Otherwise it is ``applied``. ``delivered`` makes the notice delivered (withdrawing a fallback
  not yet sent); ``undelivered`` or ``expired`` makes it due again at once for the next channel,
  with the same notice id. The dispatcher re-checks N3 first and skips the channels tried; with
  none left, the notice ends ``undelivered``.

>>> from datetime import UTC, datetime
>>> receipt, problem = check_receipt("d-1#1:failed", "sms", "read", "2026-03-05T10:00:00Z")
>>> problem
"status: expected 'delivered' or 'undelivered', got 'read'"
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import attrs

from .errors import InvalidEvent
from .events import parse_time
from .records import Notice, NoticeStatus


class ReceiptStatus(StrEnum):
    """What a receipt says of one send; ``expired`` is the engine's own, when none came."""

    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"


class ReceiptVerdict(StrEnum):
    """What a receipt did: ``applied``, ``duplicate``, ``stale`` or ``rejected``."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    REJECTED = "rejected"


# How good a send's outcome is: a receipt applies only if it betters the send's outcome.
RANK: Final = {ReceiptStatus.EXPIRED: 0, ReceiptStatus.UNDELIVERED: 1, ReceiptStatus.DELIVERED: 2}
FROM_PROVIDERS: Final = (ReceiptStatus.DELIVERED, ReceiptStatus.UNDELIVERED)


@attrs.frozen
class Receipt:
    """One receipt as received; a field is None where the input did not give it usably."""

    notice_id: str | None
    channel: str | None
    status: str | None
    occurred_at: datetime | None
    ref: str | None = None
    raw: str | None = None  # the input as received (None through the API)
    origin: str | None = None  # where it came from, for example ``receipts.jsonl:7``


@attrs.frozen
class ReceiptResult:
    """What ``engine.record_receipt`` returns: the verdict, why, and the notice as it stands."""

    verdict: ReceiptVerdict
    reason: str
    receipt: Receipt
    notice: Notice | None = None

    @property
    def applied(self) -> bool:
        """Whether the receipt changed what is known of the send."""
        return self.verdict is ReceiptVerdict.APPLIED


@attrs.frozen
class StoredReceipt:
    """One receipt as stored, with its verdict and reason (``engine.receipts()``)."""

    seq: int
    receipt: Receipt
    verdict: ReceiptVerdict
    reason: str


# judge(receipt, notice or None, the send's outcome so far or None, now)
Judge = Callable[
    [Receipt, Notice | None, str | None, datetime], tuple[ReceiptVerdict, str, Notice | None]
]


def check_receipt(
    notice_id: object, channel: object, status: object, at: object, ref: object = None
) -> tuple[Receipt, str | None]:
    """The receipt these fields make, and the first problem with them (None if none)."""
    problem = None
    moment = None
    try:
        moment = parse_time(at, "occurred_at")
    except InvalidEvent as exc:
        problem = str(exc)
    receipt = Receipt(_text(notice_id), _text(channel), _text(status), moment, _text(ref))
    for field, value in (("notice_id", notice_id), ("channel", channel)):
        if not isinstance(value, str) or not value:
            return receipt, f"{field}: expected a non-empty string, got {value!r}"
    if status not in FROM_PROVIDERS:
        return receipt, f"status: expected 'delivered' or 'undelivered', got {status!r}"
    if ref is not None and not isinstance(ref, str):
        return receipt, f"ref: expected a string or null, got {ref!r}"
    return receipt, problem


def receipt_fields(data: Any) -> tuple[dict[str, Any], str | None]:
    """A JSON receipt's fields for :func:`check_receipt`, or why the value is not a receipt."""
    if not isinstance(data, dict):
        return {}, f"line: expected a JSON object, got {_shown(data)}"
    return {
        "notice_id": data.get("notice_id"),
        "channel": data.get("channel"),
        "status": data.get("status"),
        "at": data.get("occurred_at"),
        "ref": data.get("ref"),
    }, None


def judge(
    receipt: Receipt, notice: Notice | None, outcome: str | None, now: datetime
) -> tuple[ReceiptVerdict, str, Notice | None]:
    """The verdict on a well-formed receipt, why, and the notice changed by it (or None).

    ``outcome`` is the best that applied receipts said of the same send so far.
    """
    channel, status = receipt.channel or "", ReceiptStatus(str(receipt.status))
    if notice is None:
        return ReceiptVerdict.REJECTED, f"unknown notice id {receipt.notice_id!r}", None
    if notice.sent_at is None or (channel != notice.channel and channel not in notice.tried):
        took = ", ".join(sorted({*notice.tried, notice.channel or ""} - {""})) or "no channel"
        return (
            ReceiptVerdict.REJECTED,
            f"notice {notice.notice_id} was never sent on {channel!r} (taken by {took})",
            None,
        )
    if outcome == status:
        return ReceiptVerdict.DUPLICATE, f"{channel} already reported {status}", None
    if outcome is not None and RANK[status] < RANK[ReceiptStatus(outcome)]:
        return ReceiptVerdict.STALE, f"{channel} already reported {outcome}, which stands", None
    leaving = channel in notice.tried and notice.status in _LEFT_FOR_NOTHING_YET
    if notice.channel != channel or not (notice.status is NoticeStatus.SENT or leaving):
        where = f" on {notice.channel}" if notice.channel else ""
        return ReceiptVerdict.STALE, f"the notice has left {channel}: {notice.status}{where}", None
    if status is ReceiptStatus.DELIVERED:
        delivered = notice._replace(
            status=NoticeStatus.DELIVERED,
            tried=tuple(c for c in notice.tried if c != channel),
            receipt_by=None,
            status_reason=None,
        )
        after = "; its fallback is withdrawn" if leaving else ""
        return ReceiptVerdict.APPLIED, f"delivered on {channel}{after}", delivered
    if leaving:  # the send was given up already (it expired): now it is known undelivered
        return ReceiptVerdict.APPLIED, f"{status} on {channel}, which the notice left", None
    if status is ReceiptStatus.EXPIRED and (notice.receipt_by is None or notice.receipt_by > now):
        return ReceiptVerdict.STALE, f"still waiting for a receipt from {channel}", None
    why = "no receipt" if status is ReceiptStatus.EXPIRED else "undelivered"
    again = notice._replace(
        status=NoticeStatus.QUEUED,
        due_at=now,
        tried=(*notice.tried, channel),
        receipt_by=None,
        last_error=f"{channel}: {why}" + (f" ({receipt.ref})" if receipt.ref else ""),
    )
    return ReceiptVerdict.APPLIED, f"{why} on {channel}: due again for the next channel", again


# A notice that left a channel and has gone nowhere since: its fallback waits, or none is left.
_LEFT_FOR_NOTHING_YET: Final = frozenset({NoticeStatus.QUEUED, NoticeStatus.UNDELIVERED})


def best(statuses: list[str]) -> str | None:
    """The best outcome among what applied receipts said of one send."""
    return max(statuses, key=lambda s: RANK[ReceiptStatus(s)]) if statuses else None


def delivery_rate(counts: dict[str, int]) -> float | None:
    """delivered / (delivered + undelivered + expired); None with nothing to measure."""
    ended = sum(counts.get(s, 0) for s in ReceiptStatus)
    return counts.get(ReceiptStatus.DELIVERED, 0) / ended if ended else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
