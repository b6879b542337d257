"""PostgreSQL store: the shared state of stateless workers on many machines (psycopg 3).

Each write is one transaction that first takes a transaction-scoped advisory lock per debit,
so the writers of one debit are serialized while other debits proceed in parallel; every
read under the lock sees the debit as it is. Dispatchers claim due notices with
``FOR UPDATE SKIP LOCKED``. Tables live in their own schema (``statemachine`` by default;
``?schema=NAME`` on the DSN, or ``schema=``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool

from ..errors import StoreBusy, StoreError
from ..spec import Spec
from .queries import Queries, pyformat
from .sql import CACHE_SIZE, SQLStore

SCHEMA_VERSION: Final = 5
T = TypeVar("T")
_RETRIES: Final = 8


@pyformat
class SQL(Queries):
    """Where PostgreSQL differs from the shared statements: lists travel as arrays, several
    dispatchers claim with SKIP LOCKED, days come from timestamps, writers of a debit lock."""

    no_limit = None
    # Advisory locks are the database's, not the schema's: the key takes the schema as its
    # seed, so that stores in other schemas with the same debit_ids never wait on each other.
    lock = (
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT"
        " hashtextextended(id, hashtext(current_schema())) AS h"
        " FROM unnest(?::text[]) AS id ORDER BY h) AS ordered"
    )
    revisions = "SELECT debit_id, revision FROM debits WHERE debit_id = ANY(?)"
    priors = "SELECT event_id, payload FROM events WHERE accepted = 1 AND event_id = ANY(?)"
    # Both in one round: (debit_id, revision, NULL) and (event_id, NULL, payload) rows.
    lookups = (
        "SELECT debit_id, revision, NULL FROM debits WHERE debit_id = ANY(?) UNION ALL"
        " SELECT event_id, NULL, payload FROM events WHERE accepted = 1 AND event_id = ANY(?)"
    )
    # The lock, then the lookups, as one simple query: each statement of it takes its own
    # snapshot, so the lookups see what the lock's last holder committed.
    lock_and_look = f"{lock}; {lookups}"
    renew_claims = Queries.renew_claims.replace("notice_id IN ({})", "notice_id = ANY(?)")
    held = "SELECT notice_id FROM notices WHERE claimed_by = ? AND notice_id = ANY(?) FOR UPDATE"
    facts_in = Queries.facts_in.replace("debit_id IN ({})", "debit_id = ANY(?)")
    debit_rows_in = Queries.debit_rows_in.replace("debit_id IN ({})", "debit_id = ANY(?)")
    notices_in = Queries.notices_in.replace("debit_id IN ({})", "debit_id = ANY(?)")
    # Several dispatchers: each takes what no other holds, and skips rather than waits.
    claim_due = Queries.claim_due.replace(
        "notice_id IN (SELECT", "notice_id = ANY(ARRAY(SELECT"
    ).replace("LIMIT ?)", "LIMIT ? FOR UPDATE SKIP LOCKED))")
    notice_tally = (
        "SELECT kind, status, to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*)"
        " FROM notices GROUP BY 1, 2, 3"
    )
    outcomes = "SELECT debit_id, state, attempt FROM debits WHERE debit_id = ANY(?)"
    told = Queries.told.replace("d.state IN ({})", "d.state = ANY(?)")
    misinformed = Queries.misinformed.replace("d.state IN ({})", "d.state = ANY(?)")
    last_inquiries = Queries.last_inquiries.replace("debit_id IN ({})", "debit_id = ANY(?)")
    outcome_tally = (
        "SELECT floor(extract(epoch FROM e.last) / ?)::bigint, d.state, count(*) FROM debits d"
        f" JOIN {Queries.last_news} e ON e.debit_id = d.debit_id WHERE e.last >= ?"
        " AND d.state = ANY(?) GROUP BY 1, 2 ORDER BY 1, 2"
    )
    delivery_tally = Queries.delivery_tally.replace(
        "CAST(strftime('%s', substr(last, 1, 19)) AS INTEGER) / ?",
        "floor(extract(epoch FROM last) / ?)::bigint",
    )


SCHEMA_1: Final = """
CREATE TABLE debits (
    debit_id text PRIMARY KEY, state text NOT NULL, attempt integer NOT NULL,
    version integer NOT NULL, needs_review boolean NOT NULL, review_reason text,
    amount bigint, currency text, revision bigint NOT NULL);
CREATE INDEX debits_by_state ON debits (state);
CREATE TABLE events (
    seq bigserial PRIMARY KEY, event_id text, debit_id text, type text, attempt integer,
    occurred_at timestamptz, source text, verdict text NOT NULL, reason text NOT NULL,
    raw text, payload text, origin text, accepted smallint NOT NULL);
CREATE UNIQUE INDEX events_accepted_id ON events (event_id) WHERE accepted = 1;
CREATE INDEX events_by_debit ON events (debit_id, seq);
CREATE TABLE notices (
    notice_id text PRIMARY KEY, debit_id text NOT NULL, attempt integer NOT NULL,
    kind text NOT NULL, outcome text NOT NULL, status text NOT NULL,
    due_at timestamptz NOT NULL, created_at timestamptz NOT NULL, sent_at timestamptz,
    channel text, deliveries integer NOT NULL DEFAULT 0, last_error text,
    status_reason text, claimed_until timestamptz, version integer NOT NULL DEFAULT 0,
    UNIQUE (debit_id, attempt, kind));
CREATE INDEX notices_due ON notices (due_at) WHERE status = 'queued';
"""
# Notices became a sequence per debit (no cap on corrections): the unique key goes.
SCHEMA_2: Final = """
ALTER TABLE notices DROP CONSTRAINT notices_debit_id_attempt_kind_key;
CREATE INDEX notices_by_debit ON notices (debit_id, attempt, kind);
"""
# N7: the token of the dispatcher holding a claim, beside claimed_until.
SCHEMA_3: Final = "ALTER TABLE notices ADD COLUMN claimed_by text;"
# N8, receipts: the channels a notice fell back from (a JSON list), the end of its wait for a
# receipt, and every receipt as received with its verdict. Additive only.
SCHEMA_4: Final = """
ALTER TABLE notices ADD COLUMN tried text;
ALTER TABLE notices ADD COLUMN receipt_by timestamptz;
CREATE INDEX notices_awaiting_receipt ON notices (receipt_by) WHERE status = 'sent';
CREATE TABLE receipts (
    seq bigserial PRIMARY KEY, notice_id text, channel text, status text,
    occurred_at timestamptz, ref text, verdict text NOT NULL, reason text NOT NULL,
    raw text, origin text);
CREATE INDEX receipts_by_send ON receipts (notice_id, channel);
"""
# The inquiry of stuck debits: each debit's schedule, and every inquiry as recorded.
SCHEMA_5: Final = """
CREATE TABLE inquiry_schedule (
    debit_id text PRIMARY KEY, attempt integer NOT NULL, rounds integer NOT NULL,
    next_at timestamptz NOT NULL);
CREATE TABLE inquiries (
    seq bigserial PRIMARY KEY, debit_id text NOT NULL, attempt integer NOT NULL,
    asked_at timestamptz NOT NULL, answer text, verdict text, error text,
    next_at timestamptz NOT NULL);
CREATE INDEX inquiries_by_debit ON inquiries (debit_id, seq);
"""
# MIGRATIONS[n] takes schema n to n + 1. Append; never edit a released one.
MIGRATIONS: Final = [SCHEMA_1, SCHEMA_2, SCHEMA_3, SCHEMA_4, SCHEMA_5]


class _Retry(StoreError):
    """A transaction the database refused for a reason that a rerun resolves."""


class PostgresStore(SQLStore):
    """A store in a PostgreSQL database, shared by any number of worker processes."""

    SQL = SQL

    def __init__(
        self,
        dsn: str,
        spec: Spec | None = None,
        *,
        schema: str | None = None,
        pool_size: int = 4,
        cache_size: int = CACHE_SIZE,
        timeout: float = 10.0,
        create: bool = True,
    ) -> None:
        dsn, from_dsn = _split_schema(dsn)
        self.schema = schema or from_dsn or "statemachine"
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", self.schema):
            raise ValueError(f"schema must be a lower-case SQL identifier, got {self.schema!r}")
        self.dsn = dsn
        self.name = _redact(dsn)
        self.spec = spec or Spec.default()
        self._setup_cache(cache_size)
        self._local = threading.local()  # .conn: this thread's open transaction(), if any
        self.pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            timeout=timeout,
            configure=self._configure,
            open=False,
        )
        try:
            self.pool.open(wait=True, timeout=timeout)
            self._migrate(create)
        except StoreError:
            self.pool.close()
            raise
        except Exception as exc:  # the pool's own timeouts and psycopg's errors alike
            self.pool.close()
            raise StoreError(f"{self.name}: cannot open ({exc})") from None

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET search_path TO {self.schema}")
        conn.execute("SET TIME ZONE 'UTC'")
        # Prepared statements planned while a table was small (a fresh schema, no statistics
        # yet) would keep a sequential scan as it grows: plan each execution for its table.
        conn.execute("SET plan_cache_mode = force_custom_plan")
        conn.commit()

    # -- schema ----------------------------------------------------------------------------

    def _migrate(self, create: bool = True) -> None:
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('statemachine migrate'))")
            tables = {
                row[0]
                for row in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (self.schema,),
                )
            }
            if not create and "statemachine_meta" not in tables:
                raise StoreError(
                    f"{self.name}: no statemachine schema {self.schema!r} (nothing was created)"
                )
            if tables and "statemachine_meta" not in tables:
                raise StoreError(
                    f"{self.name}: schema {self.schema!r} belongs to another application "
                    f"(tables: {', '.join(sorted(tables)[:5])}); choose another schema"
                )
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS statemachine_meta (key text PRIMARY KEY, value text)"
            )
            conn.execute(
                "INSERT INTO statemachine_meta VALUES ('schema_version', '0'),"
                " ('application', 'statemachine') ON CONFLICT DO NOTHING"
            )
            row = conn.execute(
                "SELECT value FROM statemachine_meta WHERE key = 'schema_version'"
            ).fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.name}: schema version {version} is newer than this package's "
                    f"{SCHEMA_VERSION}; upgrade statemachine to open it"
                )
            for number, script in enumerate(MIGRATIONS[version:], version + 1):
                conn.execute(script)
                conn.execute(
                    "UPDATE statemachine_meta SET value = %s WHERE key = 'schema_version'",
                    (str(number),),
                )

    def schema_version(self) -> int:
        with self._read() as conn:
            row = conn.execute(
                "SELECT value FROM statemachine_meta WHERE key = 'schema_version'"
            ).fetchone()
            assert row is not None
            return int(row[0])

    def drop(self) -> None:
        """Remove the schema and everything in it (tests and teardown); works once closed too."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")

    # -- the dialect -----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes of this thread inside commit together; each write is a savepoint in it."""
        if getattr(self._local, "conn", None) is not None:
            raise StoreError(f"{self.name}: a transaction is already open in this thread")
        try:
            with self.pool.connection() as conn, conn.transaction():
                self._local.conn = conn
                try:
                    yield
                finally:
                    self._local.conn = None
        except BaseException as exc:
            self._cache.clear()
            if isinstance(exc, psycopg.Error):
                raise StoreError(f"{self.name}: {exc}") from None
            raise

    def _connection(self) -> AbstractContextManager[psycopg.Connection[Any]]:
        pinned = getattr(self._local, "conn", None)
        return nullcontext(pinned) if pinned is not None else self.pool.connection()

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            # Inside transaction() the nested block is a savepoint: a retry undoes only itself.
            with self._connection() as conn, conn.transaction():
                yield conn
        except BaseException as exc:
            self._cache.clear()  # records may have been changed by the failed decision
            if isinstance(
                exc, errors.UniqueViolation | errors.SerializationFailure | errors.DeadlockDetected
            ):
                raise _Retry(f"{self.name}: {exc}") from None
            if isinstance(exc, psycopg.Error):
                raise StoreError(f"{self.name}: {exc}") from None
            raise

    @contextmanager
    def _read(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"{self.name}: {exc}") from None

    def _retrying(self, work: Callable[[], T]) -> T:
        # Two workers may insert the same new event_id for two debits at once: the unique
        # index refuses one, and its rerun then sees the other's event.
        for _ in range(_RETRIES - 1):
            try:
                return work()
            except _Retry:
                continue
        try:
            return work()
        except _Retry as exc:
            raise StoreBusy(f"{exc}; gave up after {_RETRIES} tries") from None

    def _lock(self, conn: psycopg.Connection[Any], debit_ids: Iterable[str]) -> None:
        conn.execute(SQL.lock, (list(debit_ids),))

    def _round(self, conn: psycopg.Connection[Any], events: int) -> AbstractContextManager[object]:
        # A batch's writes in one pipeline: one round trip, not one per statement. One event's
        # rows go a statement each: there the pipeline's bookkeeping costs more CPU here than
        # the round trips it saves on a near database.
        return conn.pipeline() if events > 1 else nullcontext()

    def _lock_and_look(
        self, conn: psycopg.Connection[Any], debit_ids: list[str], event_ids: list[str]
    ) -> tuple[dict[str, int | None], dict[str, str]]:
        # One round trip, bound on the client: a pipeline of the two statements costs this
        # process about twice the CPU (psycopg's pipeline bookkeeping) for the same round trip.
        with psycopg.ClientCursor(conn) as cursor:
            cursor.execute(SQL.lock_and_look, (debit_ids, debit_ids, event_ids))
            cursor.nextset()
            rows = cursor.fetchall()
        revisions: dict[str, int | None] = {}
        priors: dict[str, str] = {}
        for key, revision, payload in rows:
            if payload is None:
                revisions[key] = revision
            else:
                priors[key] = payload
        return revisions, priors

    def _many(
        self, conn: psycopg.Connection[Any], query: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        if len(rows) == 1:  # one row: a plain statement, without executemany's machinery
            conn.execute(query, rows[0])
        elif rows:
            with conn.cursor() as cursor:
                cursor.executemany(query, rows)

    def _select_in(
        self, conn: psycopg.Connection[Any], query: str, ids: list[str], params: Sequence[Any] = ()
    ) -> list[Any]:
        return conn.execute(query, (*params, ids)).fetchall()

    def _text_in(self, text: str | None) -> str | None:
        # PostgreSQL text cannot hold NUL: raw input keeps it written as JSON writes it.
        return text.replace("\x00", "\\u0000") if text is not None and "\x00" in text else text

    def _time_in(self, moment: datetime) -> datetime:
        return moment.astimezone(UTC)

    def close(self) -> None:
        self.pool.close()


def _split_schema(dsn: str) -> tuple[str, str | None]:
    """Take ``schema=NAME`` out of a DSN's query: it is ours, not libpq's."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query)
    schema = next((value for key, value in query if key == "schema"), None)
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def _redact(dsn: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", dsn)
