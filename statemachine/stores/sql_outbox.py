"""The SQL stores' outbox (N7, N9): due notices claimed under a dispatcher's token, claims
renewed and checked right before the sends, and what dispatch did recorded in batches, only
where the claim still holds."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson

from ..records import DebitRecord, Notice, NoticeStatus
from .sql_hooks import Connection
from .sql_reports import chunks
from .sql_staging import SQLStaging


class SQLOutbox(SQLStaging):
    """Notices over the dialect's connection; ``SQLStore`` provides the hooks."""

    _cache: OrderedDict[str, DebitRecord]

    def _many(self, conn: Connection, query: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def queued(self, since: datetime, until: datetime) -> list[tuple[str, str, datetime]]:
        with self._overlay() as staged, self._read() as conn:
            rows = conn.execute(self.SQL.queued, (self._time_in(since), self._time_in(until)))
            found = [
                (debit_id, notice_id, self._time_out(due)) for debit_id, notice_id, due in rows
            ]
        return found if staged is None else staged.queued(found, since, until)

    def next_due(self, after: datetime) -> datetime | None:
        with self._overlay() as staged, self._read() as conn:
            row = conn.execute(self.SQL.next_due, (self._time_in(after),)).fetchone()
        found = None if row is None or row[0] is None else self._time_out(row[0])
        return found if staged is None else staged.next_due(found, after)

    def claim_due(
        self, now: datetime, lease: timedelta, limit: int | None = None, *, token: str
    ) -> list[Notice]:
        """Due notices, claimed under ``token`` for ``lease`` so that other dispatchers pass
        them by."""
        at, until = self._time_in(now), self._time_in(now + lease)
        most = self.SQL.no_limit if limit is None else limit
        with self._write() as conn:
            found = self._notices(conn.execute(self.SQL.claim_due, (until, token, at, at, most)))
        return sorted(found, key=lambda n: (n.due_at, n.debit_id, n.version))

    def renew_claim(self, notice_id: str, token: str, now: datetime, lease: timedelta) -> bool:
        """Whether ``token`` still holds the queued notice's live claim; if so, extend it."""
        with self._write() as conn:
            until, at = self._time_in(now + lease), self._time_in(now)
            return bool(conn.execute(self.SQL.renew_claim, (until, notice_id, token, at)).rowcount)

    def renew_claims(
        self, notice_ids: Sequence[str], token: str, now: datetime, lease: timedelta
    ) -> set[str]:
        """``renew_claim`` for many notices, in one transaction."""
        renewed: set[str] = set()
        if not notice_ids:
            return renewed
        with self._write() as conn:
            until, at = self._time_in(now + lease), self._time_in(now)
            for chunk in chunks(list(notice_ids)):
                rows = self._select_in(conn, self.SQL.renew_claims, chunk, (until, token, at))
                renewed.update(notice_id for (notice_id,) in rows)
        return renewed

    def holds_claim(self, notice_id: str, token: str) -> bool:
        """Whether ``token`` holds the notice's claim now (a read: no write, no wait)."""
        with self._read() as conn:
            return conn.execute(self.SQL.holds_claim, (notice_id, token)).fetchone() is not None

    def save_notices(self, notices: Iterable[Notice], *, token: str | None = None) -> None:
        """Record dispatches; with ``token``, only where that claim holds. A claimed notice
        re-planned meanwhile by an apply keeps the outcome and version the apply gave it."""
        todo = list(notices)
        if not todo:
            return
        if token is None and self._staged is not None:
            todo = self._stage_notices(todo)
            if not todo:
                return
        debit_ids = sorted({n.debit_id for n in todo})
        with self._write() as conn:
            self._lock(conn, debit_ids)
            revisions: dict[str, int] = {}
            for chunk in chunks(debit_ids):
                revisions.update(self._select_in(conn, self.SQL.revisions, chunk))
            written, refused = todo, set()
            if token is None:
                self._many(conn, self.SQL.upsert_notice, [self._notice_row(n) for n in todo])
            else:
                held: set[str] = set()
                for chunk in chunks([n.notice_id for n in todo]):
                    held.update(i for (i,) in self._select_in(conn, self.SQL.held, chunk, (token,)))
                written = [n for n in todo if n.notice_id in held]
                # One taken over is left for its new holder to record.
                refused = {n.debit_id for n in todo if n.notice_id not in held}
                self._many(
                    conn, self.SQL.save_claimed, [self._claimed_row(n, token) for n in written]
                )
            self._many(conn, self.SQL.touch_debit, [(d,) for d in debit_ids if d in revisions])
            # Keep cached records that were current: it saves reloading the debits' events.
            for debit_id in debit_ids:
                cached = self._cache.get(debit_id)
                if (
                    cached is not None
                    and cached.revision == revisions.get(debit_id, -1)
                    and debit_id not in refused
                ):
                    cached.revision += 1
                else:
                    self._cache.pop(debit_id, None)
            for notice in written:
                cached = self._cache.get(notice.debit_id)
                if cached is not None:
                    cached.notices[notice.notice_id] = notice

    def _stage_notices(self, notices: list[Notice]) -> list[Notice]:
        """Stage the dispatches of debits the unit of work holds (staged, or cached and
        current); returns the others, to be written at once."""
        assert self._staged is not None
        staged = self._staged.records
        ids = sorted({n.debit_id for n in notices if n.debit_id not in staged})
        with self._overlay(), self._read() as conn:
            for chunk in chunks(ids):
                for debit_id, revision in self._select_in(conn, self.SQL.revisions, chunk):
                    cached = self._cache.get(debit_id)
                    if cached is not None and cached.revision == revision:
                        staged[debit_id] = cached
        rest: list[Notice] = []
        bumped: set[str] = set()
        for notice in notices:
            record = staged.get(notice.debit_id)
            if record is None:
                rest.append(notice)
                continue
            if notice.debit_id not in bumped:  # one write of the debit's row per save, as below
                bumped.add(notice.debit_id)
                record.revision += 1
            record.notices[notice.notice_id] = notice
            self._staged.notices[notice.notice_id] = notice
        return rest

    def _notices(self, cursor: Any) -> list[Notice]:
        names = [d[0] for d in cursor.description]
        columns = [names.index(field) for field in Notice._fields]
        return [self._notice([values[i] for i in columns]) for values in cursor.fetchall()]

    def _notice(self, row: Sequence[Any]) -> Notice:
        """A notice from its columns in the order of Notice's fields."""
        (notice_id, debit_id, attempt, kind, outcome, due_at, created_at, status, sent_at,
         channel, deliveries, last_error, status_reason, version, tried, receipt_by) = row  # fmt: skip
        return Notice(
            notice_id,
            debit_id,
            attempt,
            kind,
            outcome,
            self._time_out(due_at),
            self._time_out(created_at),
            NoticeStatus(status),
            self._time_out(sent_at) if sent_at is not None else None,
            channel,
            deliveries,
            last_error,
            status_reason,
            version,
            tuple(orjson.loads(tried)) if tried else (),
            self._time_out(receipt_by) if receipt_by else None,
        )

    def _claimed_row(self, notice: Notice, token: str) -> tuple[Any, ...]:
        """``save_claimed``'s parameters: the dispatch's outcome, fenced by ``token``."""
        return (
            notice.status.value,
            self._time_in(notice.due_at),
            self._time_in(notice.sent_at) if notice.sent_at else None,
            notice.channel,
            notice.deliveries,
            notice.last_error,
            notice.status_reason,
            _tried_in(notice.tried),
            self._time_in(notice.receipt_by) if notice.receipt_by else None,
            notice.notice_id,
            token,
        )

    def _notice_row(self, notice: Notice) -> tuple[Any, ...]:
        return (
            notice.notice_id,
            notice.debit_id,
            notice.attempt,
            notice.kind,
            notice.outcome,
            notice.status.value,
            self._time_in(notice.due_at),
            self._time_in(notice.created_at),
            self._time_in(notice.sent_at) if notice.sent_at else None,
            notice.channel,
            notice.deliveries,
            notice.last_error,
            notice.status_reason,
            notice.version,
            _tried_in(notice.tried),
            self._time_in(notice.receipt_by) if notice.receipt_by else None,
        )


def _tried_in(tried: tuple[str, ...]) -> str | None:
    """The channels a notice fell back from, as a JSON list (None for none)."""
    return orjson.dumps(list(tried)).decode() if tried else None
