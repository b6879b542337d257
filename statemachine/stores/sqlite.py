"""SQLite store: the embedded default. One file, WAL, one transaction per decision.

Schema work goes through sqlite-utils; the hot path uses prepared statements (``SQL`` below),
since sqlite-utils' row helpers introspect the table on every call. Several processes may
share one file: every write runs under ``BEGIN IMMEDIATE`` and re-reads the debit's revision,
so no update is lost; contention that outlasts the busy timeout raises :class:`StoreBusy`.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import sqlite_utils

from ..debits import DebitRecord, Result, StoredEvent
from ..errors import StoreBusy, StoreError
from ..events import Event
from ..notices import Notice, NoticeStatus
from ..precedence import Verdict, fold
from ..spec import Spec
from .base import Decide, Decision, StoreCounts

SCHEMA_VERSION: Final = 1
APPLICATION: Final = "statemachine"


class SQL:
    """Every statement of the hot path, named."""

    begin: Final = "BEGIN IMMEDIATE"
    revision: Final = "SELECT revision FROM debits WHERE debit_id = ?"
    lookup: Final = (
        "SELECT (SELECT revision FROM debits WHERE debit_id = ?),"
        " (SELECT payload FROM events WHERE event_id = ? AND accepted = 1)"
    )
    revisions: Final = "SELECT debit_id, revision FROM debits WHERE debit_id IN ({})"
    priors: Final = "SELECT event_id, payload FROM events WHERE accepted = 1 AND event_id IN ({})"
    debit_row: Final = (
        "SELECT state, attempt, version, needs_review, review_reason, amount, currency"
        " FROM debits WHERE debit_id = ?"
    )
    facts: Final = "SELECT payload FROM events WHERE debit_id = ? AND accepted = 1 ORDER BY seq"
    notices_of: Final = "SELECT * FROM notices WHERE debit_id = ?"
    insert_event: Final = (
        "INSERT INTO events (event_id, debit_id, type, attempt, occurred_at, source, verdict,"
        " reason, raw, payload, origin, accepted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    upsert_debit: Final = (
        "INSERT INTO debits (debit_id, state, attempt, version, needs_review, review_reason,"
        " amount, currency, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)"
        " ON CONFLICT (debit_id) DO UPDATE SET state = excluded.state,"
        " attempt = excluded.attempt, version = excluded.version,"
        " needs_review = excluded.needs_review, review_reason = excluded.review_reason,"
        " amount = excluded.amount, currency = excluded.currency, revision = revision + 1"
    )
    touch_debit: Final = "UPDATE debits SET revision = revision + 1 WHERE debit_id = ?"
    # A re-planned notice keeps its claim: a dispatcher may be sending it right now.
    upsert_notice: Final = (
        "INSERT INTO notices (notice_id, debit_id, attempt, kind, outcome, status,"
        " due_at, created_at, sent_at, channel, deliveries, last_error, status_reason, version)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (notice_id) DO UPDATE SET outcome = excluded.outcome,"
        " status = excluded.status, due_at = excluded.due_at, sent_at = excluded.sent_at,"
        " channel = excluded.channel, deliveries = excluded.deliveries,"
        " last_error = excluded.last_error, status_reason = excluded.status_reason,"
        " version = excluded.version"
    )
    due: Final = (
        "SELECT * FROM notices WHERE status = 'queued' AND due_at <= ?"
        " ORDER BY due_at, debit_id, version"
    )
    claimable: Final = (
        "SELECT * FROM notices WHERE status = 'queued' AND due_at <= :now"
        " AND (claimed_until IS NULL OR claimed_until <= :now)"
        " ORDER BY due_at, debit_id, version LIMIT :limit"
    )
    claim: Final = "UPDATE notices SET claimed_until = ? WHERE notice_id = ?"
    save_claimed: Final = (
        "UPDATE notices SET status = ?, due_at = ?, sent_at = ?, channel = ?, deliveries = ?,"
        " last_error = ?, status_reason = ?, claimed_until = NULL"
        " WHERE notice_id = ? AND claimed_until IS ?"
    )
    history: Final = "SELECT * FROM events WHERE debit_id IS ? ORDER BY seq"
    debit_ids: Final = "SELECT debit_id FROM debits ORDER BY debit_id"
    all_notices: Final = "SELECT * FROM notices ORDER BY created_at, notice_id"
    verdicts: Final = "SELECT verdict, count(*) FROM events GROUP BY verdict"
    states: Final = "SELECT state, count(*) FROM debits GROUP BY state"
    notice_statuses: Final = "SELECT status, count(*) FROM notices GROUP BY status"
    review: Final = "SELECT count(*) FROM debits WHERE needs_review"
    sources: Final = "SELECT source, count(*) FROM events WHERE accepted = 1 GROUP BY source"
    stuck: Final = (
        "SELECT d.debit_id, max(e.occurred_at) AS last FROM debits d JOIN events e"
        " ON e.debit_id = d.debit_id AND e.accepted = 1 WHERE d.state = 'submitted'"
        " GROUP BY d.debit_id HAVING last < ? ORDER BY last"
    )


def utc_text(moment: datetime) -> str:
    """UTC ISO 8601 with fixed width, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _marks(chunk: list[str]) -> str:
    return ", ".join("?" * len(chunk))


class _Batch:
    """What one transaction has read and decided, written with executemany at its end."""

    def __init__(self, revisions: dict[str, int | None], priors: dict[str, str]) -> None:
        self.revisions = revisions  # debit_id -> revision in the database, None if new
        self.priors = priors  # event_id -> payload of the accepted event already stored
        self.records: dict[str, DebitRecord] = {}  # debits decided on in this batch
        self.accepted: dict[str, Event] = {}  # events accepted in this batch
        self.events: list[tuple[Any, ...]] = []
        self.notices: dict[str, Notice] = {}

    def flush(self, conn: sqlite3.Connection, store: SQLiteStore) -> None:
        conn.executemany(SQL.insert_event, self.events)
        conn.executemany(
            SQL.upsert_debit,
            [(r.debit_id, r.state, r.attempt, r.version, int(r.needs_review), r.review_reason,
              r.amount, r.currency) for r in self.records.values()],
        )  # fmt: skip
        conn.executemany(SQL.upsert_notice, [_notice_row(n) for n in self.notices.values()])
        for record in self.records.values():
            record.revision = (self.revisions.get(record.debit_id) or 0) + 1
            store._remember(record)


class SQLiteStore:
    """A store in one SQLite file. ``synchronous`` is SQLite's pragma: FULL by default."""

    def __init__(
        self,
        path: str | Path,
        spec: Spec | None = None,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        cache_size: int = 10_000,
    ) -> None:
        self.path = Path(path)
        self.spec = spec or Spec.default()
        self.busy_timeout = busy_timeout
        self._cache: OrderedDict[str, DebitRecord] = OrderedDict()
        self._cache_size = cache_size
        self._claims: dict[str, str] = {}  # notice_id -> claimed_until, for this process's claims
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        try:
            self.conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open ({exc})") from None
        try:
            self._check_foreign()
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._migrate()
        except sqlite3.Error as exc:
            self.conn.close()
            raise self._translate(exc) from None
        except StoreError:
            self.conn.close()
            raise

    # -- schema ----------------------------------------------------------------------------

    def _check_foreign(self) -> None:
        tables = {
            row[0]
            for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if tables and "statemachine_meta" not in tables:
            raise StoreError(
                f"{self.path}: an SQLite database of another application (tables: "
                f"{', '.join(sorted(tables)[:5])}); give the engine a file of its own"
            )

    def _migrate(self) -> None:
        db = sqlite_utils.Database(self.conn)
        with self._write():
            if "statemachine_meta" not in db.table_names():
                db.table("statemachine_meta").create({"key": str, "value": str}, pk="key")
                db.table("statemachine_meta").insert({"key": "application", "value": APPLICATION})
                db.table("statemachine_meta").insert({"key": "schema_version", "value": "0"})
            version = int(
                self.conn.execute(
                    "SELECT value FROM statemachine_meta WHERE key = 'schema_version'"
                ).fetchone()[0]
            )
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this package's "
                    f"{SCHEMA_VERSION}; upgrade statemachine to open it"
                )
            for number, migrate in enumerate(MIGRATIONS[version:], version + 1):
                migrate(db)
                self.conn.execute(
                    "UPDATE statemachine_meta SET value = ? WHERE key = 'schema_version'",
                    (str(number),),
                )

    def schema_version(self) -> int:
        row = self.conn.execute(
            "SELECT value FROM statemachine_meta WHERE key = 'schema_version'"
        ).fetchone()
        return int(row[0])

    # -- transactions ----------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        try:
            conn.execute(SQL.begin)
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        try:
            yield conn
        except BaseException as exc:
            conn.execute("ROLLBACK")
            self._cache.clear()  # records may have been changed by the failed decision
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc) from None
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._cache.clear()
            conn.execute("ROLLBACK")
            raise self._translate(exc) from None

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreBusy(
                f"{self.path}: another writer held the database for more than "
                f"{self.busy_timeout:g} s ({text}); retry, or raise busy_timeout"
            )
        if "not a database" in text or "malformed" in text:
            return StoreError(f"{self.path}: not a usable SQLite database ({text})")
        return StoreError(f"{self.path}: {text}")

    # -- applying --------------------------------------------------------------------------

    def execute(self, event: Event, decide: Decide, raw: str | None, origin: str | None) -> Result:
        with self._write() as conn:
            revision, prior = conn.execute(SQL.lookup, (event.debit_id, event.event_id)).fetchone()
            batch = _Batch({event.debit_id: revision}, {event.event_id: prior} if prior else {})
            result = self._execute(conn, batch, event, decide, raw, origin)
            batch.flush(conn, self)
        return result

    def execute_many(
        self, items: Iterable[tuple[Event, str | None, str | None]], decide: Decide
    ) -> list[Result]:
        """Apply a batch in one transaction: all of it is written, or none."""
        todo = list(items)
        with self._write() as conn:
            batch = self._prefetch(conn, [event for event, _, _ in todo])
            results = [
                self._execute(conn, batch, e, decide, raw, origin) for e, raw, origin in todo
            ]
            batch.flush(conn, self)
        return results

    def _prefetch(self, conn: sqlite3.Connection, events: list[Event]) -> _Batch:
        """The revisions and prior events of a whole batch, a few hundred ids a query."""
        revisions: dict[str, int | None] = {}
        priors: dict[str, str] = {}
        debit_ids = list({e.debit_id: None for e in events})
        event_ids = list({e.event_id: None for e in events})
        for chunk in _chunks(debit_ids):
            revisions.update(conn.execute(SQL.revisions.format(_marks(chunk)), chunk).fetchall())
        for chunk in _chunks(event_ids):
            priors.update(conn.execute(SQL.priors.format(_marks(chunk)), chunk).fetchall())
        for debit_id in debit_ids:
            revisions.setdefault(debit_id, None)
        return _Batch(revisions, priors)

    def _execute(
        self,
        conn: sqlite3.Connection,
        batch: _Batch,
        event: Event,
        decide: Decide,
        raw: str | None,
        origin: str | None,
    ) -> Result:
        debit_id = event.debit_id
        record = batch.records.get(debit_id)
        if record is None:
            record = self._record(conn, debit_id, batch.revisions.get(debit_id))
        accepted_before = batch.accepted.get(event.event_id)
        if accepted_before is None and event.event_id in batch.priors:
            accepted_before = Event.from_json(batch.priors[event.event_id])
        decision: Decision = decide(event, record, accepted_before)
        result, changed, accepted, notice = decision
        batch.events.append(
            (event.event_id, debit_id, event.type, event.attempt, utc_text(event.occurred_at),
             event.source, result.verdict.value, result.reason,
             raw, event.to_json(), origin, int(accepted))
        )  # fmt: skip
        if accepted:
            batch.accepted[event.event_id] = event
        if changed is not None:
            batch.records[debit_id] = changed
        if notice is not None:
            batch.notices[notice.notice_id] = notice
        return result

    def _record(
        self, conn: sqlite3.Connection, debit_id: str, revision: int | None
    ) -> DebitRecord | None:
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

    def _load(self, conn: sqlite3.Connection, debit_id: str, revision: int) -> DebitRecord:
        """Rebuild the record from its stored events (P6) and notices."""
        facts = [Event.from_json(payload) for (payload,) in conn.execute(SQL.facts, (debit_id,))]
        record = DebitRecord(debit_id, self.spec.initial)
        record.take(fold(facts, self.spec))  # the winning strength is kept nowhere else
        # The row is the live state; `verify` compares it with the fold (P6).
        row = conn.execute(SQL.debit_row, (debit_id,)).fetchone()
        (record.state, record.attempt, record.version, needs_review, record.review_reason,
         record.amount, record.currency) = row  # fmt: skip
        record.needs_review = bool(needs_review)
        record.facts = facts
        record.max_attempt = max((f.attempt for f in facts), default=1)
        record.revision = revision
        for notice in self._notices(conn.execute(SQL.notices_of, (debit_id,))):
            record.notices[(notice.attempt, notice.kind)] = notice
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
                SQL.insert_event,
                (event_id, debit_id, None, None, None, None, Verdict.INVALID.value, reason, raw,
                 None, origin, 0),
            )  # fmt: skip
            row = conn.execute(SQL.revision, (debit_id,)).fetchone() if debit_id else None
            record = self._record(conn, debit_id, row[0]) if debit_id and row else None
        return Result(
            Verdict.INVALID,
            reason,
            event_id,
            debit_id,
            record.state if record else None,
            record.attempt if record else None,
            record.version if record else None,
            record.needs_review if record else False,
        )

    # -- reading ---------------------------------------------------------------------------

    def debit(self, debit_id: str) -> DebitRecord | None:
        row = self.conn.execute(SQL.revision, (debit_id,)).fetchone()
        if row is None:
            return None
        cached = self._cache.get(debit_id)
        if cached is not None and cached.revision == row[0]:
            return cached
        return self._load(self.conn, debit_id, row[0])

    def debit_ids(self) -> Iterable[str]:
        return [row[0] for row in self.conn.execute(SQL.debit_ids)]

    def history(self, debit_id: str | None) -> list[StoredEvent]:
        cursor = self.conn.execute(SQL.history, (debit_id,))
        names = [d[0] for d in cursor.description]
        stored = []
        for values in cursor:
            row = dict(zip(names, values, strict=True))
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
        if debit_id is None:
            return self._notices(self.conn.execute(SQL.all_notices))
        found = self._notices(self.conn.execute(SQL.notices_of, (debit_id,)))
        return sorted(found, key=lambda n: (n.created_at, n.notice_id))

    def due_notices(self, now: datetime) -> list[Notice]:
        return self._notices(self.conn.execute(SQL.due, (utc_text(now),)))

    def claim_due(self, now: datetime, lease: timedelta, limit: int | None = None) -> list[Notice]:
        """Due notices, claimed for ``lease`` so that other dispatchers pass them by."""
        with self._write() as conn:
            found = self._notices(
                conn.execute(
                    SQL.claimable, {"now": utc_text(now), "limit": -1 if limit is None else limit}
                )
            )
            until = utc_text(now + lease)
            for notice in found:
                conn.execute(SQL.claim, (until, notice.notice_id))
                self._claims[notice.notice_id] = until
        return found

    def save_notice(self, notice: Notice) -> None:
        """Record a dispatch. A claimed notice re-planned meanwhile by an apply is left as it is."""
        claim = self._claims.pop(notice.notice_id, None)
        with self._write() as conn:
            if claim is None:
                conn.execute(SQL.upsert_notice, _notice_row(notice))
            else:
                conn.execute(
                    SQL.save_claimed,
                    (notice.status.value, utc_text(notice.due_at),
                     utc_text(notice.sent_at) if notice.sent_at else None, notice.channel,
                     notice.deliveries, notice.last_error, notice.status_reason,
                     notice.notice_id, claim),
                )  # fmt: skip
            conn.execute(SQL.touch_debit, (notice.debit_id,))
        self._cache.pop(notice.debit_id, None)

    def stuck(self, before: datetime) -> list[tuple[str, datetime]]:
        """Debits in ``submitted`` whose latest event occurred before ``before``."""
        return [
            (debit_id, _time(last) or before)
            for debit_id, last in self.conn.execute(SQL.stuck, (utc_text(before),))
        ]

    def counts(self) -> StoreCounts:
        def pairs(query: str) -> dict[str, int]:
            return {str(key): count for key, count in self.conn.execute(query)}

        return StoreCounts(
            verdicts=pairs(SQL.verdicts),
            states=pairs(SQL.states),
            notices=pairs(SQL.notice_statuses),
            needs_review=self.conn.execute(SQL.review).fetchone()[0],
            sources=pairs(SQL.sources),
        )

    def close(self) -> None:
        self.conn.close()

    @staticmethod
    def _notices(cursor: sqlite3.Cursor) -> list[Notice]:
        names = [d[0] for d in cursor.description]
        found = []
        for values in cursor:
            row = dict(zip(names, values, strict=True))
            found.append(
                Notice(
                    row["notice_id"],
                    row["debit_id"],
                    row["attempt"],
                    row["kind"],
                    row["outcome"],
                    _time(row["due_at"]),  # type: ignore[arg-type]
                    _time(row["created_at"]),  # type: ignore[arg-type]
                    NoticeStatus(row["status"]),
                    _time(row["sent_at"]),
                    row["channel"],
                    row["deliveries"],
                    row["last_error"],
                    row["status_reason"],
                    row["version"],
                )
            )
        return found


def _notice_row(notice: Notice) -> tuple[Any, ...]:
    return (
        notice.notice_id,
        notice.debit_id,
        notice.attempt,
        notice.kind,
        notice.outcome,
        notice.status.value,
        utc_text(notice.due_at),
        utc_text(notice.created_at),
        utc_text(notice.sent_at) if notice.sent_at else None,
        notice.channel,
        notice.deliveries,
        notice.last_error,
        notice.status_reason,
        notice.version,
    )


def _schema_1(db: sqlite_utils.Database) -> None:
    db.table("debits").create(
        {
            "debit_id": str,
            "state": str,
            "attempt": int,
            "version": int,
            "needs_review": int,
            "review_reason": str,
            "amount": int,
            "currency": str,
            "revision": int,
        },
        pk="debit_id",
        not_null={"state", "attempt", "version", "needs_review", "revision"},
    )
    # seq orders arrivals; a duplicate or an invalid event reuses an event_id, so it is no key.
    # raw: the input as received (None if applied through the API); payload: the parsed event.
    db.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT,"
        " debit_id TEXT, type TEXT, attempt INTEGER, occurred_at TEXT, source TEXT,"
        " verdict TEXT NOT NULL, reason TEXT NOT NULL, raw TEXT, payload TEXT, origin TEXT,"
        " accepted INTEGER NOT NULL)"
    )
    db.execute("CREATE UNIQUE INDEX events_accepted_id ON events (event_id) WHERE accepted = 1")
    db.table("events").create_index(["debit_id", "seq"], index_name="events_by_debit")
    db.table("notices").create(
        {
            "notice_id": str,
            "debit_id": str,
            "attempt": int,
            "kind": str,
            "outcome": str,
            "status": str,
            "due_at": str,
            "created_at": str,
            "sent_at": str,
            "channel": str,
            "deliveries": int,
            "last_error": str,
            "status_reason": str,
            "claimed_until": str,
            "version": int,
        },
        pk="notice_id",
        not_null={"debit_id", "attempt", "kind", "outcome", "status", "due_at", "created_at"},
    )
    db.table("notices").create_index(["debit_id", "attempt", "kind"], unique=True,
                               index_name="notices_one_per_kind")  # fmt: skip
    db.execute("CREATE INDEX notices_due ON notices (due_at) WHERE status = 'queued'")
    db.execute("CREATE INDEX debits_by_state ON debits (state)")


# MIGRATIONS[n] takes schema n to n + 1. Append; never edit a released one.
MIGRATIONS: Final[list[Callable[[sqlite_utils.Database], None]]] = [_schema_1]
