"""The SQL stores' inquiries of stuck debits: a schedule row per debit, and each inquiry
stored with the answer it brought, in the transaction that applied that answer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from ..inquiry import Inquiry
from ..precedence import Verdict
from .sql_hooks import SQLHooks
from .sql_reports import chunks


class SQLInquiries(SQLHooks):
    """Inquiries over the dialect's connection; ``SQLStore`` provides the hooks."""

    def inquiries_due(
        self, state: str, quiet_before: datetime, now: datetime, limit: int | None = None
    ) -> list[tuple[str, int, int]]:
        limit = self.SQL.no_limit if limit is None else limit
        with self._read() as conn:
            rows = conn.execute(
                self.SQL.inquiries_due,
                (state, self._time_in(now), self._time_in(quiet_before), limit),
            ).fetchall()
        return [(debit_id, attempt, rounds) for debit_id, attempt, rounds, _ in rows]

    def record_inquiry(self, inquiry: Inquiry, rounds: int) -> None:
        asked, next_at = self._time_in(inquiry.asked_at), self._time_in(inquiry.next_at)
        verdict = None if inquiry.verdict is None else inquiry.verdict.value
        with self._write() as conn:
            conn.execute(
                self.SQL.insert_inquiry,
                (inquiry.debit_id, inquiry.attempt, asked, self._text_in(inquiry.answer),
                 verdict, self._text_in(inquiry.error), next_at),
            )  # fmt: skip
            conn.execute(
                self.SQL.schedule_inquiry, (inquiry.debit_id, inquiry.attempt, rounds, next_at)
            )

    def inquiries(self, debit_id: str | None = None) -> list[Inquiry]:
        with self._read() as conn:
            if debit_id is None:
                rows = conn.execute(self.SQL.all_inquiries).fetchall()
            else:
                rows = conn.execute(self.SQL.inquiries_of, (debit_id,)).fetchall()
        return [self._inquiry(row) for row in rows]

    def last_inquiries(self, debit_ids: Iterable[str]) -> dict[str, Inquiry]:
        found: dict[str, Inquiry] = {}
        with self._read() as conn:
            for chunk in chunks(list(dict.fromkeys(debit_ids))):
                rows = self._select_in(conn, self.SQL.last_inquiries, chunk)
                found.update((row[0], self._inquiry(row)) for row in rows)
        return found

    def inquiry_counts(self) -> dict[str, int]:
        with self._read() as conn:
            asked, answered, errors = conn.execute(self.SQL.inquiry_counts).fetchone()
        return {"asked": asked, "answered": answered, "errors": errors}

    def _inquiry(self, row: Sequence[Any]) -> Inquiry:
        debit_id, asked_at, answer, verdict, error, next_at, attempt = row
        return Inquiry(
            debit_id,
            self._time_out(asked_at),
            answer,
            None if verdict is None else Verdict(verdict),
            error,
            self._time_out(next_at),
            attempt,
        )
