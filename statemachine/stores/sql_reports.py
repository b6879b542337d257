"""The SQL stores' answers to :class:`~statemachine.stores.base.Reports`: one aggregate query
each, where :class:`~statemachine.stores.base.DerivedReports` would read every debit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from ..records import Notice, StoredEvent
from .base import StoreCounts
from .sql_hooks import SQLHooks
from .sql_receipts import _BEST
from .timeline import DAWN, bucket_at, width_seconds


class SQLReports(SQLHooks):
    """Report queries over the dialect's connection; ``SQLStore`` provides the hooks."""

    def _stored_events(self, cursor: Any) -> list[StoredEvent]:
        raise NotImplementedError

    def stuck(self, state: str, before: datetime) -> list[tuple[str, datetime]]:
        """Debits in ``state`` whose latest accepted event occurred before ``before``."""
        with self._read() as conn:
            rows = conn.execute(self.SQL.stuck, (state, self._time_in(before))).fetchall()
        return [(debit_id, self._time_out(last)) for debit_id, last in rows]

    def counts(self) -> StoreCounts:
        with self._read() as conn:

            def pairs(query: str) -> dict[str, int]:
                return {str(key): count for key, count in conn.execute(query)}

            return StoreCounts(
                verdicts=pairs(self.SQL.verdicts),
                states=pairs(self.SQL.states),
                notices=pairs(self.SQL.notice_statuses),
                needs_review=conn.execute(self.SQL.review).fetchone()[0],
                sources=pairs(self.SQL.sources),
            )

    def notice_tally(self) -> list[tuple[str, str, str, int]]:
        with self._read() as conn:
            return [(k, s, str(day), n) for k, s, day, n in conn.execute(self.SQL.notice_tally)]

    def last_origin(self, prefix: str) -> str | None:
        pattern = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"
        with self._read() as conn:
            row = conn.execute(self.SQL.last_origin, (pattern,)).fetchone()
        return None if row is None else str(row[0])

    def review_ids(self) -> list[str]:
        with self._read() as conn:
            return [row[0] for row in conn.execute(self.SQL.review_ids)]

    def outcomes(self, debit_ids: list[str]) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        with self._read() as conn:
            for chunk in chunks(debit_ids):
                for debit_id, state, attempt in self._select_in(conn, self.SQL.outcomes, chunk):
                    found[debit_id] = (state, attempt)
        return found

    def misinformed_count(self, states: Iterable[str]) -> int:
        with self._read() as conn:
            rows = self._select_in(conn, self.SQL.misinformed, sorted(states))
        return int(rows[0][0])

    def told(self, outcome: str, states: Iterable[str]) -> list[str]:
        with self._read() as conn:
            rows = self._select_in(conn, self.SQL.told, sorted(states), (outcome,))
        return [row[0] for row in rows]

    def outcome_tally(
        self, states: Iterable[str], width: timedelta, since: datetime | None = None
    ) -> list[tuple[datetime, str, int]]:
        params = (width_seconds(width), self._time_in(since or DAWN))
        with self._read() as conn:
            rows = self._select_in(conn, self.SQL.outcome_tally, sorted(states), params)
        return [(bucket_at(int(n), width), state, count) for n, state, count in rows]

    def delivery_tally(
        self, width: timedelta, since: datetime | None = None
    ) -> list[tuple[str, datetime, str, int]]:
        params = (width_seconds(width), self._time_in(since or DAWN))
        with self._read() as conn:
            rows = conn.execute(self.SQL.delivery_tally, params).fetchall()
        return sorted((c, bucket_at(int(n), width), _BEST[best].value, k) for c, n, best, k in rows)

    def conflicts(self, limit: int) -> list[StoredEvent]:
        with self._read() as conn:
            return self._stored_events(conn.execute(self.SQL.conflicts, (limit,)))

    def waiting(self, limit: int) -> list[Notice]:
        with self._read() as conn:
            return self._notices(conn.execute(self.SQL.waiting, (limit,)))


def chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    """``ids`` a few hundred at a time: what one IN list or array parameter carries."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]
