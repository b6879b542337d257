"""The SQLite store's own cases: busy and locked files, files that are not SQLite, its tables
and pragmas. What it shares with PostgreSQL (processes on one file, SIGKILL, foreign and newer
databases) is in test_stores.py."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from support import ev

from statemachine import Engine, StoreBusy, StoreError
from statemachine.stores.sqlite import SCHEMA_VERSION, SQLiteStore


def test_persistent_contention_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    engine = Engine.open(path, busy_timeout=0.2)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreBusy, match=r"another writer held the database for more than 0\.2 s"):
        engine.apply(ev("submitted", 0))
    blocker.execute("ROLLBACK")
    assert engine.apply(ev("submitted", 0)).verdict == "applied"


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match=r"notes\.sqlite: not a usable SQLite database"):
        Engine.open(path)
    assert path.read_text().startswith("these are my notes")


def test_a_corrupt_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "debits.sqlite"
    with Engine.open(path) as engine:
        engine.apply(ev("submitted", 0))
    data = bytearray(path.read_bytes())
    data[0:16] = b"garbage garbage!"
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="not a usable SQLite database"):
        Engine.open(path)


def test_a_locked_file_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    blocker.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreBusy):
        Engine.open(path, busy_timeout=0.2)
    blocker.execute("ROLLBACK")


def test_tables_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "debits.sqlite"
    store = SQLiteStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    columns = {t: {row[1] for row in store.conn.execute(f"PRAGMA table_info({t})")}
               for t in ("debits", "events", "notices")}  # fmt: skip
    assert {"debit_id", "state", "attempt", "version", "needs_review", "review_reason"} <= columns[
        "debits"
    ]
    assert {
        "event_id",
        "debit_id",
        "type",
        "attempt",
        "occurred_at",
        "source",
        "verdict",
        "reason",
        "raw",
    } <= columns["events"]
    assert {
        "notice_id",
        "debit_id",
        "attempt",
        "kind",
        "status",
        "due_at",
        "sent_at",
        "channel",
    } <= columns["notices"]
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
    assert (
        SQLiteStore(path, synchronous="NORMAL").conn.execute("PRAGMA synchronous").fetchone()[0]
        == 1
    )
