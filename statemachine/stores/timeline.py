"""Counts over time for the operator's page, by buckets of a fixed width: the derived answers
(:class:`DerivedTimeline`, read from every debit) and the buckets themselves.

>>> bucket_start(datetime(2026, 3, 5, 10, 59, 59, 999999, tzinfo=UTC), timedelta(hours=1))
datetime.datetime(2026, 3, 5, 10, 0, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ..receipts import RANK, ReceiptStatus, StoredReceipt
from ..records import DebitRecord, Notice, StoredEvent

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAWN = datetime(1, 1, 1, tzinfo=UTC)  # before any event: ``since`` when none is given


def bucket_start(moment: datetime, width: timedelta) -> datetime:
    """The start of the bucket ``width`` wide (whole seconds, counted from the Unix epoch in
    UTC) that holds ``moment``; fractions of a second do not move a time to the next one."""
    since = moment - EPOCH  # whole seconds in integers: a float would round 10:59:59.999999 up
    return bucket_at((since.days * 86400 + since.seconds) // width_seconds(width), width)


def bucket_at(number: int, width: timedelta) -> datetime:
    """The start of bucket ``number`` (what the SQL stores count by) of ``width``."""
    return EPOCH + timedelta(seconds=number * width_seconds(width))


def width_seconds(width: timedelta) -> int:
    """``width`` in seconds, which must be whole and at least one."""
    seconds = int(width.total_seconds())
    if seconds < 1 or seconds != width.total_seconds():
        raise ValueError(f"a bucket's width must be whole seconds, at least 1; got {width}")
    return seconds


class DerivedTimeline:
    """The timeline queries of :class:`~statemachine.stores.base.Reports`, answered from the
    store's reads debit by debit, as ``DerivedReports`` answers the rest."""

    def debit_ids(self) -> Iterable[str]:
        raise NotImplementedError

    def history(self, debit_id: str | None) -> list[StoredEvent]:
        raise NotImplementedError

    def receipts(self, notice_id: str | None = None) -> list[StoredReceipt]:
        raise NotImplementedError

    def _records(self) -> Iterable[DebitRecord]:
        raise NotImplementedError

    def outcome_tally(
        self, states: Iterable[str], width: timedelta, since: datetime | None = None
    ) -> list[tuple[datetime, str, int]]:
        wanted, since = set(states), since or DAWN
        tally: Counter[tuple[datetime, str]] = Counter()
        for record in self._records():
            if record.state in wanted and record.facts:
                last = max(event.occurred_at for event in record.facts)
                if last >= since:
                    tally[(bucket_start(last, width), record.state)] += 1
        return [(bucket, state, n) for (bucket, state), n in sorted(tally.items())]

    def delivery_tally(
        self, width: timedelta, since: datetime | None = None
    ) -> list[tuple[str, datetime, str, int]]:
        sends: dict[tuple[str, str], tuple[ReceiptStatus, datetime]] = {}
        for stored in self.receipts():
            receipt = stored.receipt
            if stored.verdict != "applied" or receipt.occurred_at is None:
                continue
            key = (receipt.notice_id or "", receipt.channel or "")
            said, at = ReceiptStatus(str(receipt.status)), receipt.occurred_at
            if key in sends:
                best, latest = sends[key]
                said, at = max(said, best, key=RANK.__getitem__), max(at, latest)
            sends[key] = (said, at)
        tally: Counter[tuple[str, datetime, str]] = Counter(
            (channel, bucket_start(at, width), said.value)
            for (_, channel), (said, at) in sends.items()
            if at >= (since or DAWN)
        )
        return [(c, bucket, said, n) for (c, bucket, said), n in sorted(tally.items())]

    def conflicts(self, limit: int) -> list[StoredEvent]:
        found = [
            stored
            for debit_id in self.debit_ids()
            for stored in self.history(debit_id)
            if stored.verdict == "conflict"
        ]
        return sorted(found, key=lambda stored: -stored.seq)[:limit]

    def waiting(self, limit: int) -> list[Notice]:
        queued = [
            notice
            for record in self._records()
            for notice in record.notices.values()
            if notice.status == "queued"
        ]
        return sorted(queued, key=lambda n: (n.due_at, n.notice_id))[:limit]
