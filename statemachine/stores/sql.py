"""The SQL stores' shared logic: transactions, the record cache, batches, notices, reads.

A dialect (``sqlite.py``, ``postgres.py``) supplies its statements as a ``Queries`` class
(``queries.py``, written once; a dialect overrides only what differs), its
connections (``_write`` for a transaction, ``_read`` outside one), how times and lists of ids
travel, and, where the database does not serialize writers by itself, the lock that
serializes the writers of one debit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import orjson

from ..decide import Decide, Decision
from ..events import Event
from ..precedence import Verdict, fold
from ..records import DebitRecord, Notice, NoticeStatus, Result, StoredEvent
from ..spec import Spec
from .base import Item, Stop
from .queries import Queries
from .sql_receipts import SQLReceipts
from .sql_reports import SQLReports, chunks

T = TypeVar("T")
Connection = Any  # sqlite3.Connection or psycopg.Connection: both have execute()


def utc_text(moment: datetime) -> str:
    """UTC ISO 8601 with fixed width, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class _Batch:
    """What one transaction has read and decided, written with executemany at its end."""

    def __init__(self, revisions: dict[str, int | None], priors: dict[str, str]) -> None:
        self.revisions = revisions  # debit_id -> revision in the database, None if new
        self.priors = priors  # event_id -> payload of the accepted event already stored
        self.records: dict[str, DebitRecord] = {}  # debits decided on in this batch
        self.accepted: dict[str, Event] = {}  # events accepted in this batch
        self.events: list[tuple[Any, ...]] = []
        self.notices: dict[str, Notice] = {}

    def flush(self, conn: Connection, store: SQLStore) -> None:
        sql = store.SQL
        store._many(conn, sql.insert_event, self.events)
        store._many(
            conn,
            sql.upsert_debit,
            [(r.debit_id, r.state, r.attempt, r.version, r.needs_review, r.review_reason,
              r.amount, r.currency) for r in self.records.values()],
        )  # fmt: skip
        store._many(conn, sql.upsert_notice, [store._notice_row(n) for n in self.notices.values()])
        for record in self.records.values():
            record.revision = (self.revisions.get(record.debit_id) or 0) + 1
            store._remember(record)


class SQLStore(SQLReports, SQLReceipts):
    """The logic of every SQL store; subclasses speak their dialect."""

    SQL: ClassVar[type[Queries]]
    name: str  # how messages name the store: a path or a DSN
    spec: Spec

    def _setup_cache(self, cache_size: int) -> None:
        self._cache: OrderedDict[str, DebitRecord] = OrderedDict()
        self._cache_size = cache_size

    # -- what a dialect provides -----------------------------------------------------------

    def _write(self) -> AbstractContextManager[Connection]:
        """A transaction; on any error it rolls back, clears the cache and raises our error."""
        raise NotImplementedError

    # _read and _select_in: see SQLReports.

    def _many(self, conn: Connection, query: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _lock(self, conn: Connection, debit_ids: Iterable[str]) -> None:
        """Serialize the writers of these debits until the transaction ends."""

    def _retrying(self, work: Callable[[], T]) -> T:
        """Run a whole transaction, again if the database asks for it."""
        return work()

    def _text_in(self, text: str | None) -> str | None:
        """Text as the database can hold it."""
        return text

    def _time_in(self, moment: datetime) -> Any:
        return utc_text(moment)

    def _time_out(self, value: Any) -> datetime:
        return value if isinstance(value, datetime) else datetime.fromisoformat(value)

    def close(self) -> None:
        raise NotImplementedError

    # -- applying --------------------------------------------------------------------------

    def execute(self, event: Event, decide: Decide, raw: str | None, origin: str | None) -> Result:
        def work() -> Result:
            with self._write() as conn:
                self._lock(conn, [event.debit_id])
                row = conn.execute(self.SQL.lookup, (event.debit_id, event.event_id)).fetchone()
                revision, prior = row
                batch = _Batch({event.debit_id: revision}, {event.event_id: prior} if prior else {})
                result = self._execute(conn, batch, event, decide, raw, origin, None)
                batch.flush(conn, self)
            return result

        return self._retrying(work)

    def execute_many(
        self, items: Iterable[Item], decide: Decide, stop: Stop | None = None
    ) -> list[Result]:
        """Apply a batch in one transaction: all of it is written (up to ``stop``), or none."""
        todo = list(items)

        def work() -> list[Result]:
            with self._write() as conn:
                self._lock(conn, [item[0].debit_id for item in todo])
                batch = self._prefetch(conn, [item[0] for item in todo])
                results = []
                for event, raw, origin, now in todo:
                    results.append(self._execute(conn, batch, event, decide, raw, origin, now))
                    if stop is not None and stop(results[-1]):
                        break
                batch.flush(conn, self)
            return results

        return self._retrying(work)

    def _prefetch(self, conn: Connection, events: list[Event]) -> _Batch:
        """The revisions and prior events of a whole batch, a few hundred ids a query."""
        revisions: dict[str, int | None] = {}
        priors: dict[str, str] = {}
        debit_ids = list({e.debit_id: None for e in events})
        event_ids = list({e.event_id: None for e in events})
        for chunk in chunks(debit_ids):
            revisions.update(self._select_in(conn, self.SQL.revisions, chunk))
        for chunk in chunks(event_ids):
            priors.update(self._select_in(conn, self.SQL.priors, chunk))
        for debit_id in debit_ids:
            revisions.setdefault(debit_id, None)
        return _Batch(revisions, priors)

    def _execute(
        self,
        conn: Connection,
        batch: _Batch,
        event: Event,
        decide: Decide,
        raw: str | None,
        origin: str | None,
        now: datetime | None = None,
    ) -> Result:
        debit_id = event.debit_id
        record = batch.records.get(debit_id)
        if record is None:
            record = self._record(conn, debit_id, batch.revisions.get(debit_id))
        prior = batch.accepted.get(event.event_id)
        if prior is None and event.event_id in batch.priors:
            prior = Event.from_json(batch.priors[event.event_id])
        decision: Decision = decide(event, record, prior, now)
        result, changed, accepted, notice = decision
        batch.events.append(
            (event.event_id, debit_id, event.type, event.attempt, self._time_in(event.occurred_at),
             event.source, result.verdict.value, result.reason, self._text_in(raw),
             event.to_json(), self._text_in(origin),
             int(accepted))
        )  # fmt: skip
        if accepted:
            batch.accepted[event.event_id] = event
        if changed is not None:
            batch.records[debit_id] = changed
        if notice is not None:
            batch.notices[notice.notice_id] = notice
        return result

    def _record(self, conn: Connection, debit_id: str, revision: int | None) -> DebitRecord | None:
        """The debit as stored now: the cached copy if its revision is current, else reloaded."""
        if revision is None:
            self._cache.pop(debit_id, None)
            return None
        cached = self._cache.get(debit_id)
        if cached is not None and cached.revision == revision:
            self._cache.move_to_end(debit_id)
            return cached
        record = self._load(conn, debit_id, revision)
        self._remember(record)
        return record

    def _load(self, conn: Connection, debit_id: str, revision: int) -> DebitRecord:
        """The record from its row, its stored events and its notices."""
        facts = [Event.from_json(p) for (p,) in conn.execute(self.SQL.facts, (debit_id,))]
        record = DebitRecord(debit_id, self.spec.initial)
        record.take(fold(facts, self.spec))  # the winning strength is kept nowhere else
        # The row is the live state; `verify` compares it with the fold (P6).
        row = conn.execute(self.SQL.debit_row, (debit_id,)).fetchone()
        (record.state, record.attempt, record.version, needs_review, record.review_reason,
         record.amount, record.currency) = row  # fmt: skip
        record.needs_review = bool(needs_review)
        record.facts = facts
        record.max_attempt = max((f.attempt for f in facts), default=1)
        record.revision = revision
        for notice in self._notices(conn.execute(self.SQL.notices_of, (debit_id,))):
            record.notices[notice.notice_id] = notice
        return record

    def _remember(self, record: DebitRecord) -> None:
        self._cache[record.debit_id] = record
        self._cache.move_to_end(record.debit_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def reject(
        self,
        raw: str,
        reason: str,
        debit_id: str | None,
        event_id: str | None,
        origin: str | None,
    ) -> Result:
        with self._write() as conn:
            conn.execute(
                self.SQL.insert_event,
                (event_id, debit_id, None, None, None, None, Verdict.INVALID.value, reason,
                 self._text_in(raw), None, self._text_in(origin), 0),
            )  # fmt: skip
            row = conn.execute(self.SQL.revision, (debit_id,)).fetchone() if debit_id else None
            record = self._record(conn, debit_id, row[0]) if debit_id and row else None
        return Result.invalid(reason, event_id, debit_id, record)

    # -- reading ---------------------------------------------------------------------------

    def debit(self, debit_id: str) -> DebitRecord | None:
        with self._read() as conn:
            row = conn.execute(self.SQL.revision, (debit_id,)).fetchone()
            if row is None:
                return None
            cached = self._cache.get(debit_id)
            if cached is not None and cached.revision == row[0]:
                return cached
            return self._load(conn, debit_id, row[0])

    def debits(self, debit_ids: Iterable[str]) -> dict[str, DebitRecord]:
        wanted = list(dict.fromkeys(debit_ids))
        found: dict[str, DebitRecord] = {}
        with self._read() as conn:
            for chunk in chunks(wanted):
                for debit_id, revision in self._select_in(conn, self.SQL.revisions, chunk):
                    cached = self._cache.get(debit_id)
                    if cached is not None and cached.revision == revision:
                        found[debit_id] = cached
                    else:
                        found[debit_id] = self._load(conn, debit_id, revision)
        return found

    def debit_ids(self) -> Iterable[str]:
        with self._read() as conn:
            return [row[0] for row in conn.execute(self.SQL.debit_ids)]

    def history(self, debit_id: str | None) -> list[StoredEvent]:
        with self._read() as conn:
            cursor = conn.execute(self.SQL.history, (debit_id,))
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
        stored = []
        for row in rows:
            event = Event.from_json(row["payload"]) if row["payload"] else None
            stored.append(
                StoredEvent(
                    row["seq"],
                    row["event_id"],
                    row["debit_id"],
                    row["type"],
                    row["attempt"],
                    event.occurred_at if event else None,
                    row["source"],
                    Verdict(row["verdict"]),
                    row["reason"],
                    row["raw"],
                    row["origin"],
                    event,
                )
            )
        return stored

    def notices(self, debit_id: str | None = None) -> list[Notice]:
        with self._read() as conn:
            if debit_id is None:
                return self._notices(conn.execute(self.SQL.all_notices))
            found = self._notices(conn.execute(self.SQL.notices_of, (debit_id,)))
        return sorted(found, key=lambda n: (n.created_at, n.notice_id))

    def queued(self, since: datetime, until: datetime) -> list[tuple[str, str, datetime]]:
        with self._read() as conn:
            rows = conn.execute(self.SQL.queued, (self._time_in(since), self._time_in(until)))
            return [(debit_id, notice_id, self._time_out(due)) for debit_id, notice_id, due in rows]

    def next_due(self, after: datetime) -> datetime | None:
        with self._read() as conn:
            row = conn.execute(self.SQL.next_due, (self._time_in(after),)).fetchone()
        return None if row is None or row[0] is None else self._time_out(row[0])

    def claim_due(
        self, now: datetime, lease: timedelta, limit: int | None = None, *, token: str
    ) -> list[Notice]:
        """Due notices, claimed under ``token`` for ``lease`` so that other dispatchers pass
        them by."""
        at, until = self._time_in(now), self._time_in(now + lease)
        with self._write() as conn:
            found = self._notices(
                conn.execute(
                    self.SQL.claimable, (at, at, self.SQL.no_limit if limit is None else limit)
                )
            )
            for notice in found:
                conn.execute(self.SQL.claim, (until, token, notice.notice_id))
        return found

    def renew_claim(self, notice_id: str, token: str, now: datetime, lease: timedelta) -> bool:
        """Whether ``token`` still holds the queued notice's live claim; if so, extend it."""
        with self._write() as conn:
            until, at = self._time_in(now + lease), self._time_in(now)
            return bool(conn.execute(self.SQL.renew_claim, (until, notice_id, token, at)).rowcount)

    def renew_claims(
        self, notice_ids: Sequence[str], token: str, now: datetime, lease: timedelta
    ) -> set[str]:
        """``renew_claim`` for many notices, in one transaction."""
        if not notice_ids:
            return set()
        with self._write() as conn:
            until, at = self._time_in(now + lease), self._time_in(now)
            return {
                notice_id
                for notice_id in notice_ids
                if conn.execute(self.SQL.renew_claim, (until, notice_id, token, at)).rowcount
            }

    def save_notices(self, notices: Iterable[Notice], *, token: str | None = None) -> None:
        """Record dispatches; with ``token``, only where that claim holds. A claimed notice
        re-planned meanwhile by an apply keeps the outcome and version the apply gave it."""
        todo = list(notices)
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
                written = []
                for notice in todo:
                    row = self._claimed_row(notice, token)
                    if conn.execute(self.SQL.save_claimed, row).rowcount:
                        written.append(notice)
                    else:
                        refused.add(notice.debit_id)  # taken over: the new holder records it
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

    def _notices(self, cursor: Any) -> list[Notice]:
        names = [d[0] for d in cursor.description]
        found = []
        for values in cursor.fetchall():
            row = dict(zip(names, values, strict=True))
            found.append(
                Notice(
                    row["notice_id"],
                    row["debit_id"],
                    row["attempt"],
                    row["kind"],
                    row["outcome"],
                    self._time_out(row["due_at"]),
                    self._time_out(row["created_at"]),
                    NoticeStatus(row["status"]),
                    self._time_out(row["sent_at"]) if row["sent_at"] is not None else None,
                    row["channel"],
                    row["deliveries"],
                    row["last_error"],
                    row["status_reason"],
                    row["version"],
                    tuple(orjson.loads(row["tried"])) if row["tried"] else (),
                    self._time_out(row["receipt_by"]) if row["receipt_by"] else None,
                )
            )
        return found

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
