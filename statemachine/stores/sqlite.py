"""SQLite store: the embedded default. One file, WAL, one transaction per decision.

Schema work goes through sqlite-utils; the hot path uses prepared statements (``SQL`` below),
since sqlite-utils' row helpers introspect the table on every call. Several processes may
share one file: every write runs under ``BEGIN IMMEDIATE`` and re-reads the debit's revision,
so no update is lost; contention that outlasts the busy timeout raises :class:`StoreBusy`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Final

import sqlite_utils

from ..errors import StoreBusy, StoreError
from ..spec import Spec
from .queries import Queries
from .sql import CACHE_SIZE, SQLStore, utc_text

__all__ = ["SCHEMA_VERSION", "SQL", "SQLiteStore", "utc_text"]

SCHEMA_VERSION: Final = 5
APPLICATION: Final = "statemachine"


class SQL(Queries):
    """SQLite speaks the shared statements of ``sql.py`` as they are written."""


PAGE_CACHE_KIB: Final = 64 * 1024


class SQLiteStore(SQLStore):
    """A store in one SQLite file. ``synchronous`` is SQLite's pragma: FULL by default;
    ``create=False`` refuses a file that does not exist instead of creating it."""

    SQL = SQL

    def __init__(
        self,
        path: str | Path,
        spec: Spec | None = None,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        cache_size: int = CACHE_SIZE,
        create: bool = True,
    ) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"{self.path}: no such database (nothing was created)")
        self.spec = spec or Spec.default()
        self.busy_timeout = busy_timeout
        self.name = str(path)
        self._setup_cache(cache_size)
        self._unit = False  # inside transaction()
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
            # SQLite's default page cache (2 MB) is outgrown by the indexes of a long replay:
            # lookups of debits and events then read pages again and again.
            self.conn.execute(f"PRAGMA cache_size=-{PAGE_CACHE_KIB}")
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
    def transaction(self) -> Iterator[None]:
        """Writes inside commit together: one fsync for many batches (replay uses it)."""
        if self._unit:
            raise StoreError(f"{self.path}: a transaction is already open")
        with self._write() as conn, self._stage(conn):
            self._unit = True
            try:
                yield
            finally:
                self._unit = False

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        if self._unit and self._undoing:  # the write path inside transaction(): it stages
            try:  # its rows and puts back what it changed: the database has nothing to undo
                yield conn
            except BaseException as exc:
                self._cache.clear()  # records the failed decisions changed in place
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc) from None
                raise
            return
        if self._unit:  # inside transaction(): a savepoint, so a failed write undoes only itself
            self._settle(conn)  # what the unit staged, for a statement that must see it
            with self._savepoint(conn):
                yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
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

    @contextmanager
    def _savepoint(self, conn: sqlite3.Connection) -> Iterator[None]:
        conn.execute("SAVEPOINT write")
        try:
            yield
        except BaseException as exc:
            conn.execute("ROLLBACK TO write")
            conn.execute("RELEASE write")
            self._cache.clear()
            self._break(f"{self.path}: a write inside the unit of work failed ({exc})")
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc) from None
            raise
        conn.execute("RELEASE write")

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

    def _read(self) -> nullcontext[sqlite3.Connection]:
        self._settle(self.conn)  # inside a unit of work, what it staged, for this statement
        return nullcontext(self.conn)

    def _many(self, conn: sqlite3.Connection, query: str, rows: Sequence[Sequence[Any]]) -> None:
        conn.executemany(query, rows)

    def _select_in(
        self, conn: sqlite3.Connection, query: str, ids: list[str], params: Sequence[Any] = ()
    ) -> list[Any]:
        return conn.execute(query.format(", ".join("?" * len(ids))), [*params, *ids]).fetchall()

    def close(self) -> None:
        self.conn.close()


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


def _schema_2(db: sqlite_utils.Database) -> None:
    # Notices became a sequence per debit (no cap on corrections): the unique key goes.
    db.execute("DROP INDEX notices_one_per_kind")
    db.execute("CREATE INDEX notices_by_debit ON notices (debit_id, attempt, kind)")


def _schema_3(db: sqlite_utils.Database) -> None:
    # N7: the token of the dispatcher holding a claim, beside claimed_until.
    db.table("notices").add_column("claimed_by", str)


def _schema_4(db: sqlite_utils.Database) -> None:
    # N8, receipts: the channels a notice fell back from (a JSON list), the end of its wait
    # for a receipt, and every receipt as received with its verdict. Additive only.
    db.execute("ALTER TABLE notices ADD COLUMN tried TEXT")
    db.execute("ALTER TABLE notices ADD COLUMN receipt_by TEXT")
    db.execute(
        "CREATE INDEX notices_awaiting_receipt ON notices (receipt_by) WHERE status = 'sent'"
    )
    db.execute(
        "CREATE TABLE receipts (seq INTEGER PRIMARY KEY AUTOINCREMENT, notice_id TEXT,"
        " channel TEXT, status TEXT, occurred_at TEXT, ref TEXT, verdict TEXT NOT NULL,"
        " reason TEXT NOT NULL, raw TEXT, origin TEXT)"
    )
    db.execute("CREATE INDEX receipts_by_send ON receipts (notice_id, channel)")


def _schema_5(db: sqlite_utils.Database) -> None:
    # The inquiry of stuck debits: each debit's schedule, and every inquiry as recorded.
    db.execute(
        "CREATE TABLE inquiry_schedule (debit_id TEXT PRIMARY KEY, attempt INTEGER NOT NULL,"
        " rounds INTEGER NOT NULL, next_at TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE inquiries (seq INTEGER PRIMARY KEY AUTOINCREMENT, debit_id TEXT NOT NULL,"
        " attempt INTEGER NOT NULL, asked_at TEXT NOT NULL, answer TEXT, verdict TEXT,"
        " error TEXT, next_at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX inquiries_by_debit ON inquiries (debit_id, seq)")


# MIGRATIONS[n] takes schema n to n + 1. Append; never edit a released one.
MIGRATIONS: Final[list[Callable[[sqlite_utils.Database], None]]] = [
    _schema_1,
    _schema_2,
    _schema_3,
    _schema_4,
    _schema_5,
]
