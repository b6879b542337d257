"""The SQL stores' receipts (N8): each receipt judged under its debit's lock and stored with
the notice it moves, in one transaction; and the waits for receipts that dispatch expires."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from ..receipts import (
    Judge,
    Receipt,
    ReceiptResult,
    ReceiptStatus,
    ReceiptVerdict,
    StoredReceipt,
    best,
)
from ..records import DebitRecord, Notice
from .sql_hooks import Connection, SQLHooks

T = TypeVar("T")
_BEST = {2: ReceiptStatus.DELIVERED, 1: ReceiptStatus.UNDELIVERED, 0: ReceiptStatus.EXPIRED}


class SQLReceipts(SQLHooks):
    """Receipts over the dialect's connection; ``SQLStore`` provides the hooks."""

    _cache: OrderedDict[str, DebitRecord]

    def _retrying(self, work: Callable[[], T]) -> T:
        raise NotImplementedError

    def _notice_row(self, notice: Notice) -> tuple[Any, ...]:
        raise NotImplementedError

    def receive(self, receipt: Receipt, judge: Judge, now: datetime) -> ReceiptResult:
        def work() -> ReceiptResult:
            with self._write() as conn:
                notice, outcome = None, None
                row = conn.execute(self.SQL.notice_debit, (receipt.notice_id,)).fetchone()
                if row is not None:
                    self._lock(conn, [row[0]])  # a debit's writers, receipts included, queue
                    notice = self._notices(
                        conn.execute(self.SQL.notice_by_id, (receipt.notice_id,))
                    )[0]
                    said = conn.execute(
                        self.SQL.send_outcomes, (receipt.notice_id, receipt.channel)
                    ).fetchall()
                    outcome = best([status for (status,) in said])
                verdict, reason, changed = judge(receipt, notice, outcome, now)
                self._insert_receipt(conn, receipt, verdict, reason)
                if changed is not None:
                    conn.execute(self.SQL.upsert_notice, self._notice_row(changed))
                    conn.execute(self.SQL.touch_debit, (changed.debit_id,))
                    self._cache.pop(changed.debit_id, None)
            return ReceiptResult(verdict, reason, receipt, changed or notice)

        return self._retrying(work)

    def reject_receipt(self, receipt: Receipt, reason: str) -> ReceiptResult:
        with self._write() as conn:
            self._insert_receipt(conn, receipt, ReceiptVerdict.REJECTED, reason)
        return ReceiptResult(ReceiptVerdict.REJECTED, reason, receipt)

    def _insert_receipt(
        self, conn: Connection, receipt: Receipt, verdict: ReceiptVerdict, reason: str
    ) -> None:
        text = self._text_in
        when = receipt.occurred_at
        conn.execute(
            self.SQL.insert_receipt,
            (text(receipt.notice_id), text(receipt.channel), text(receipt.status),
             self._time_in(when) if when is not None else None, text(receipt.ref),
             verdict.value, text(reason), text(receipt.raw), text(receipt.origin)),
        )  # fmt: skip

    def receipts(self, notice_id: str | None = None) -> list[StoredReceipt]:
        with self._read() as conn:
            if notice_id is None:
                cursor = conn.execute(self.SQL.all_receipts)
            else:
                cursor = conn.execute(self.SQL.receipts_of, (notice_id,))
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        return [
            StoredReceipt(
                row["seq"],
                Receipt(
                    row["notice_id"],
                    row["channel"],
                    row["status"],
                    self._time_out(row["occurred_at"]) if row["occurred_at"] else None,
                    row["ref"],
                    row["raw"],
                    row["origin"],
                ),
                ReceiptVerdict(row["verdict"]),
                row["reason"],
            )
            for row in rows
        ]

    def awaiting_receipt(self, now: datetime) -> list[Notice]:
        with self._read() as conn:
            return self._notices(conn.execute(self.SQL.awaiting_receipt, (self._time_in(now),)))

    def next_receipt_by(self) -> datetime | None:
        with self._read() as conn:
            row = conn.execute(self.SQL.next_receipt_by).fetchone()
        return None if row is None or row[0] is None else self._time_out(row[0])

    def deliveries(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        with self._read() as conn:
            for channel, rank, count in conn.execute(self.SQL.deliveries):
                found.setdefault(channel, {})[_BEST[rank].value] = count
        return found
