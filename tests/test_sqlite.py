"""The SQLite store: durability under SIGKILL, several processes on one file, bad files."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlite_worker import book
from support import ev

from statemachine import Engine, Event, StoreBusy, StoreError
from statemachine.precedence import fold
from statemachine.stores.sqlite import SCHEMA_VERSION, SQLiteStore

WORKER = Path(__file__).with_name("sqlite_worker.py")
LOANS, SEED = 1500, 11  # about 5,000 events: a few seconds of durable applies
SHARED_LOANS = 200


def check_consistent(path: Path) -> Engine:
    """No half-written event, no notice without its change, state equals a rebuild (P6)."""
    engine = Engine.open(path)
    conn = sqlite3.connect(path)
    facts = Counter(d for (d,) in conn.execute("SELECT debit_id FROM events WHERE accepted = 1"))
    for debit_id, version, state, attempt in conn.execute(
        "SELECT debit_id, version, state, attempt FROM debits"
    ):
        assert version == facts[debit_id], debit_id
        if state in engine.spec.outcomes:
            kinds = {
                k
                for (k,) in conn.execute(
                    "SELECT kind FROM notices WHERE debit_id = ? AND attempt = ?",
                    (debit_id, attempt),
                )
            }
            assert kinds & {state, "correction"}, (debit_id, state, kinds)
    orphans = conn.execute(
        "SELECT count(*) FROM notices WHERE debit_id NOT IN (SELECT debit_id FROM debits)"
    )
    assert orphans.fetchone()[0] == 0
    assert engine.verify() == []
    conn.close()
    return engine


def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "debits.sqlite"
    events = book(LOANS, SEED)
    rng = random.Random(5)
    kills = []
    for _ in range(8):
        child = subprocess.Popen([sys.executable, str(WORKER), str(path), str(LOANS), str(SEED)],
                                 stdout=subprocess.PIPE, text=True)  # fmt: skip
        time.sleep(rng.uniform(0.3, 1.5))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate()
        acknowledged = [int(line) for line in out.split()]
        kills.append(len(acknowledged))
        engine = check_consistent(path)
        conn = sqlite3.connect(path)
        stored = {eid for (eid,) in conn.execute("SELECT event_id FROM events")}
        conn.close()
        missing = [events[i].event_id for i in acknowledged if events[i].event_id not in stored]
        assert missing == []
        engine.close()
    assert any(0 < k < len(events) for k in kills), kills  # some kills landed mid-run
    # Every rerun went through the log from the start: what was stored came back as duplicates.
    done = subprocess.run([sys.executable, str(WORKER), str(path), str(LOANS), str(SEED)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert len(done.stdout.split()) == len(events)
    engine = check_consistent(path)
    reference = Engine.in_memory()
    for event in events:
        reference.apply(event)
    for debit_id in reference.store.debit_ids():
        assert engine.get(debit_id) == reference.get(debit_id)


def test_processes_sharing_one_file_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    Engine.open(path).close()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                str(path),
                str(SHARED_LOANS),
                str(SEED),
                "--shuffle",
                str(n),
            ],
            stdout=subprocess.DEVNULL,
        )
        for n in range(4)
    ]
    assert [w.wait(timeout=300) for w in workers] == [0, 0, 0, 0]
    engine = check_consistent(path)
    events = book(SHARED_LOANS, SEED)
    by_debit: dict[str, list[Event]] = {}
    for event in {e.event_id: e for e in events}.values():
        by_debit.setdefault(event.debit_id, []).append(event)
    for debit_id, facts in by_debit.items():
        debit = engine.get(debit_id)
        folded = fold(facts, engine.spec)
        assert debit is not None
        assert (debit.state, debit.attempt, debit.needs_review, debit.version) == (
            folded.state,
            folded.attempt,
            folded.needs_review,
            len(facts),
        )
    conn = sqlite3.connect(path)
    accepted = Counter(e for (e,) in conn.execute("SELECT event_id FROM events WHERE accepted = 1"))
    assert set(accepted.values()) == {1}
    assert len(accepted) == len({e.event_id for e in events})
    keys = Counter(conn.execute("SELECT debit_id, attempt, kind FROM notices").fetchall())
    assert set(keys.values()) == {1}
    conn.close()


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


def test_a_foreign_database_is_refused_without_writes(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    with pytest.raises(
        StoreError, match="an SQLite database of another application \\(tables: customers\\)"
    ):
        Engine.open(path)
    tables = [
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    assert tables == ["customers"]
    conn.close()


def test_a_locked_file_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    blocker.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreBusy):
        Engine.open(path, busy_timeout=0.2)
    blocker.execute("ROLLBACK")


def test_schema_is_versioned_and_newer_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "debits.sqlite"
    store = SQLiteStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE statemachine_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(
        StoreError, match="schema version 99 is newer than this package's 1; upgrade"
    ):
        SQLiteStore(path)


def test_tables_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "debits.sqlite"
    store = SQLiteStore(path)
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
