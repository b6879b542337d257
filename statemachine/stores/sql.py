"""The SQL stores' shared logic: transactions, the record cache, batches, notices, reads.

A dialect (``sqlite.py``, ``postgres.py``) supplies its statements as a ``Queries`` class
(``queries.py``, written once; a dialect overrides only what differs), its
connections (``_write`` for a transaction, ``_read`` outside one), how times and lists of ids
travel, and, where the database does not serialize writers by itself, the lock that
serializes the writers of one debit.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, TypeVar

from ..decide import Decide, Decision
from ..events import Event
from ..precedence import Verdict, fold
from ..records import DebitRecord, Notice, Result, StoredEvent
from ..spec import Spec
from .base import Item, Stop
from .queries import Queries
from .sql_inquiries import SQLInquiries
from .sql_outbox import SQLOutbox
from .sql_receipts import SQLReceipts
from .sql_reports import SQLReports, chunks
from .sql_staging import undo_copy

T = TypeVar("T")
# Debits a store keeps in memory (about 2.5 KB each); others are read back when next needed.
CACHE_SIZE: Final = 10_000
Connection = Any  # sqlite3.Connection or psycopg.Connection: both have execute()


# Equal moments have one UTC text whatever their offsets: a replay's event, the notices it
# plans and sends and the clock that dispatches them share a handful of moments.
@functools.lru_cache(maxsize=1024)
def utc_text(moment: datetime) -> str:
    """UTC ISO 8601 with fixed width, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class _Batch:
    """What one transaction has read and decided, written with executemany at its end."""

    def __init__(
        self,
        revisions: dict[str, int | None],
        priors: dict[str, str],
        accepted: dict[str, Event],
    ) -> None:
        self.revisions = revisions  # debit_id -> revision in the database, None if new
        self.priors = priors  # event_id -> payload of the accepted event already stored
        self.records: dict[str, DebitRecord] = {}  # debits decided on in this batch
        self.accepted = accepted  # events accepted in this batch or staged by its unit
        self.events: list[tuple[Any, ...]] = []
        self.notices: dict[str, Notice] = {}
        self.undo: dict[str, DebitRecord] = {}  # staged records as they were before the batch

    def flush(self, conn: Connection, store: SQLStore) -> None:
        sql = store.SQL
        staged = store._staged
        if staged is None:
            with store._round(conn, len(self.events)):
                store._many(conn, sql.insert_event, self.events)
                # upsert_debit counts the revision itself: the row without it
                store._many(conn, sql.upsert_debit,
                            [store._debit_row(r)[:-1] for r in self.records.values()])  # fmt: skip
                store._many(
                    conn, sql.upsert_notice, [store._notice_row(n) for n in self.notices.values()]
                )
        for record in self.records.values():
            record.revision = (self.revisions.get(record.debit_id) or 0) + 1
            store._remember(record)
        if staged is not None:  # written once, when the unit of work ends
            staged.records.update(self.records)
            staged.notices.update(self.notices)
            staged.accepted.update(self.accepted)
            staged.events.extend(self.events)


class SQLStore(SQLOutbox, SQLReports, SQLReceipts, SQLInquiries):
    """The logic of every SQL store; subclasses speak their dialect."""

    SQL: ClassVar[type[Queries]]
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

    def _round(self, conn: Connection, events: int) -> AbstractContextManager[object]:
        """The writes of a batch of ``events``: they may travel to the database together,
        answered once at the end."""
        return nullcontext()

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
            with self._overlay(undoing=True), self._write() as conn:
                batch = self._prefetch(conn, [event])
                with self._undone_on_failure(batch):
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
            with self._overlay(undoing=True), self._write() as conn:
                batch = self._prefetch(conn, [item[0] for item in todo])
                results = []
                with self._undone_on_failure(batch):
                    for event, raw, origin, now in todo:
                        results.append(self._execute(conn, batch, event, decide, raw, origin, now))
                        if stop is not None and stop(results[-1]):
                            break
                    batch.flush(conn, self)
            return results

        return self._retrying(work)

    @contextmanager
    def _undone_on_failure(self, batch: _Batch) -> Iterator[None]:
        """Decisions change records in place: should the batch fail, the staged ones it
        changed are put back as they were (the others are dropped from the cache)."""
        try:
            yield
        except BaseException:
            if self._staged is not None:
                self._staged.records.update(batch.undo)
            for debit_id in batch.undo:
                self._cache.pop(debit_id, None)
            raise

    def _prefetch(self, conn: Connection, events: list[Event]) -> _Batch:
        """Lock the batch's debits, then read their revisions and the prior events."""
        debit_ids = list({e.debit_id: None for e in events})
        event_ids = list({e.event_id: None for e in events})
        accepted: dict[str, Event] = {}
        own: dict[str, int | None] = {}
        if self._staged is not None:
            # The unit of work's own records and accepted events, not yet written: the
            # database need not be asked about them.
            staged, known = self._staged.records, self._staged.accepted
            accepted = {i: known[i] for i in event_ids if i in known}
            own = {i: staged[i].revision for i in debit_ids if i in staged}
            event_ids = [i for i in event_ids if i not in accepted]
            debit_ids = [i for i in debit_ids if i not in own]
        revisions, priors = self._lock_and_look(conn, debit_ids, event_ids)
        revisions.update(own)
        stale: dict[str, int] = {}  # stored debits the cache does not hold as they are
        for debit_id in debit_ids:
            revision = revisions.setdefault(debit_id, None)
            cached = self._cache.get(debit_id)
            if revision is not None and (cached is None or cached.revision != revision):
                stale[debit_id] = revision
        # Loaded together, a few queries for the batch rather than three for each debit.
        if stale and len(stale) < self._cache_size:
            for chunk in chunks(list(stale)):
                loaded = self._load_many(conn, {debit_id: stale[debit_id] for debit_id in chunk})
                for record in loaded.values():
                    self._remember(record)
        return _Batch(revisions, priors, accepted)

    def _lock_and_look(
        self, conn: Connection, debit_ids: list[str], event_ids: list[str]
    ) -> tuple[dict[str, int | None], dict[str, str]]:
        """Lock the debits (``_lock``), then (revision by debit id, payload by accepted event
        id) of those stored, a few hundred ids a query; a dialect may do it in one round."""
        self._lock(conn, debit_ids)
        if len(debit_ids) == 1 and len(event_ids) == 1:  # one event: one query
            revision, prior = conn.execute(self.SQL.lookup, (*debit_ids, *event_ids)).fetchone()
            return {debit_ids[0]: revision}, ({event_ids[0]: prior} if prior else {})
        revisions: dict[str, int | None] = {}
        priors: dict[str, str] = {}
        for chunk in chunks(debit_ids):
            revisions.update(self._select_in(conn, self.SQL.revisions, chunk))
        for chunk in chunks(event_ids):
            priors.update(self._select_in(conn, self.SQL.priors, chunk))
        return revisions, priors

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
            staged = self._staged
            if (
                record is not None
                and staged is not None
                and debit_id in staged.records
                and debit_id not in batch.undo
            ):
                batch.undo[debit_id] = undo_copy(record)
        prior = batch.accepted.get(event.event_id)
        if prior is None and event.event_id in batch.priors:
            prior = Event.from_stored(batch.priors[event.event_id])
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
        staged = self._staged_record(debit_id)
        if staged is not None:
            return staged
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
        return self._load_many(conn, {debit_id: revision})[debit_id]

    def _debit_row(self, record: DebitRecord) -> tuple[Any, ...]:
        return (record.debit_id, record.state, record.attempt, record.version,
                record.needs_review, record.review_reason, record.amount, record.currency,
                record.revision)  # fmt: skip

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
        staged = self._staged_record(debit_id)
        if staged is not None:
            return staged
        with self._overlay(), self._read() as conn:  # a debit not staged: its rows are current
            row = conn.execute(self.SQL.revision, (debit_id,)).fetchone()
            if row is None:
                return None
            cached = self._cache.get(debit_id)
            if cached is not None and cached.revision == row[0]:
                return cached
            return self._load(conn, debit_id, row[0])

    def debits(self, debit_ids: Iterable[str], *, events: bool = True) -> dict[str, DebitRecord]:
        wanted = list(dict.fromkeys(debit_ids))
        found: dict[str, DebitRecord] = {}
        if self._staged is not None:  # the unit of work's own first, the rest from the rows
            staged = self._staged.records
            found = {d: staged[d] for d in wanted if d in staged}
            wanted = [d for d in wanted if d not in found]
        with self._overlay(), self._read() as conn:
            for chunk in chunks(wanted):
                stale: dict[str, int] = {}
                for debit_id, revision in self._select_in(conn, self.SQL.revisions, chunk):
                    cached = self._cache.get(debit_id)
                    if cached is not None and cached.revision == revision:
                        found[debit_id] = cached
                    else:
                        stale[debit_id] = revision
                if stale:
                    found.update(self._load_many(conn, stale, events=events))
        return found

    def _load_many(
        self, conn: Connection, revisions: dict[str, int], *, events: bool = True
    ) -> dict[str, DebitRecord]:
        """``_load`` for many debits, in three queries (two without their events)."""
        ids = list(revisions)
        facts: dict[str, list[Event]] = {debit_id: [] for debit_id in ids}
        for debit_id, payload in self._select_in(conn, self.SQL.facts_in, ids) if events else ():
            facts[debit_id].append(Event.from_stored(payload))
        records = {}
        for row in self._select_in(conn, self.SQL.debit_rows_in, ids):
            record = DebitRecord(row[0], self.spec.initial)
            if events:
                record.take(fold(facts[row[0]], self.spec))  # strength is kept nowhere else
            (record.state, record.attempt, record.version, needs_review, record.review_reason,
             record.amount, record.currency) = row[1:]  # fmt: skip
            record.needs_review = bool(needs_review)
            record.facts = facts[row[0]]
            record.max_attempt = max((f.attempt for f in record.facts), default=1)
            record.revision = revisions[row[0]]
            records[row[0]] = record
        notices = [self._notice(row) for row in self._select_in(conn, self.SQL.notices_in, ids)]
        for notice in sorted(notices, key=lambda n: n.version):
            records[notice.debit_id].notices[notice.notice_id] = notice
        return records

    def debit_ids(self) -> Iterable[str]:
        with self._read() as conn:
            return [row[0] for row in conn.execute(self.SQL.debit_ids)]

    def history(self, debit_id: str | None) -> list[StoredEvent]:
        with self._read() as conn:
            return self._stored_events(conn.execute(self.SQL.history, (debit_id,)))

    def _stored_events(self, cursor: Any) -> list[StoredEvent]:
        """Rows of ``events`` (every column) as stored events."""
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
