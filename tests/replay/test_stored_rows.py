"""A replay's stored rows, byte for byte: every column of every row of debits, events and
notices (raw text and origin included) is digested and compared with the digest the engine
gave before any change to how it writes them. A faster write path must store the same bytes."""

from __future__ import annotations

import gc
import hashlib
import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from statemachine import Engine, ManualClock
from statemachine.replay import BatchedReplay, Replay, replay_logs
from statemachine.spec import bundled_path
from statemachine.synthetic import car_loan_book, disordered

EXAMPLE = bundled_path("examples", "car-loans-month.jsonl")
# Each table in a stable order: arrivals by seq, debits and notices by their keys.
TABLES = {"debits": "debit_id", "events": "seq", "notices": "notice_id"}
# Lines no event can come from, placed among the disordered log's: refusals are stored too.
BROKEN = (
    b'{"event_id": "bad-1", "debit_id": "loan-00003/2026-03", "type": "paid",'
    b' "occurred_at": "2026-03-09T10:00:00+00:00"}',
    b'{"event_id": "bad-2", "debit_id": "loan-00004/2026-03", "type": "failed", "attempt": 0,'
    b' "occurred_at": "2026-03-09T10:00:00+00:00"}',
    b'{"event_id": "bad-3", "type": "failed"',
    b'{"event_id": "bad-4", "debit_id": "loan-00005/2026-03", "type": "failed",'
    b' "occurred_at": "2026-03-09T10:00:00"}',
    b'{"event_id": "bad-5", "debit_id": "loan-00006/2026-03", "type": "failed",'
    b' "occurred_at": "2026-03-09T10:00:00+00:00", "colour": "red"}',
)
# Digests of the rows as the engine stored them before its write path was made faster.
EXPECTED = {
    ("ordered", 1000): {
        "debits": "3eaaccf2b62f9eb735f9172069180ef2884f07568ffe35e62d8f11e07e8b1148",
        "events": "fe2f36ae88aa972c14163b86cc2ec4d68c2f2882bd6a75dbcf6ca1618b62405e",
        "notices": "f3bf0e0896deec18d05bd1a9b18761e9966a6621c915c59a8773c40a1c2e4c83",
    },
    ("ordered", 1): {
        "debits": "3158201e52434ae26a7ea7866c12256d6d3d0b7b46b7fa4e4eff387115694c9d",
        "events": "fe2f36ae88aa972c14163b86cc2ec4d68c2f2882bd6a75dbcf6ca1618b62405e",
        "notices": "f3bf0e0896deec18d05bd1a9b18761e9966a6621c915c59a8773c40a1c2e4c83",
    },
    ("disordered", 1000): {
        "debits": "377b85002cef0ca5e5d55a56dabafb4ba4510d8d53a5a0906e6c2f7b7479a1c7",
        "events": "be4fce39d18bced2cbe462f76d775ac51ad4dd4a80f5ec58dc69cf92e881c537",
        "notices": "654b7c0977e7a32690da80abe3b04cbdda175fd34609a0f6a802cb1546453edb",
    },
}


def disordered_log(path: Path) -> None:
    """300 loans' callbacks racing within windows of 32 arrivals, 5% redelivered, seed 11,
    with a broken line every 400."""
    lines = [orjson.dumps(r) for r in disordered(car_loan_book(300, seed=5), 32, 0.05, seed=11)]
    for number, broken in enumerate(BROKEN):
        lines.insert(400 * (number + 1), broken)
    path.write_bytes(b"\n".join(lines) + b"\n")


def digests(db: Path) -> dict[str, str]:
    """A sha256 per table over every column of every row, in the table's stable order."""
    conn = sqlite3.connect(db)
    try:
        return {
            table: _digest(conn.execute(f"SELECT * FROM {table} ORDER BY {key}"))
            for table, key in TABLES.items()
        }
    finally:
        conn.close()


def _digest(rows: Iterable[tuple[Any, ...]]) -> str:
    sha = hashlib.sha256()
    for row in rows:
        sha.update(repr(row).encode() + b"\n")
    return sha.hexdigest()


def replayed(folder: Path, log: str, batch: int, **options: Any) -> dict[str, str]:
    """The digests of a replay of ``log`` ("ordered" or "disordered") into a new database."""
    name = f"{log}.jsonl"
    if log == "ordered":
        shutil.copy(EXAMPLE, name)
    else:
        disordered_log(Path(name))
    engine = Engine.open(folder / "replay.sqlite", clock=ManualClock(), **options)
    try:
        runner = Replay(engine) if batch == 1 else BatchedReplay(engine, batch_size=batch)
        replay_logs(runner, [name])
    finally:
        engine.close()
    return digests(folder / "replay.sqlite")


@pytest.mark.parametrize(("log", "batch"), list(EXPECTED))
def test_a_replay_stores_the_same_rows(
    log: str, batch: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # origins name the log as given: relative, the same every run
    assert replayed(tmp_path, log, batch) == EXPECTED[(log, batch)]


# A cache of three debits reads nearly every debit back from the database; one of 100,000
# holds them all.
@pytest.mark.parametrize("cache_size", [3, 100_000])
def test_the_rows_are_the_same_however_many_debits_are_cached(
    cache_size: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    stored = replayed(tmp_path, "disordered", 1000, cache_size=cache_size)
    assert stored == EXPECTED[("disordered", 1000)]


def test_a_replay_makes_no_reference_cycles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The collector pauses for a replay (engine.collector_paused): what a replay drops must
    # go by reference counting alone, broken lines and refusals included.
    monkeypatch.chdir(tmp_path)
    disordered_log(tmp_path / "disordered.jsonl")
    shutil.copy(EXAMPLE, "ordered.jsonl")
    engine = Engine.open(tmp_path / "replay.sqlite", clock=ManualClock())
    gc.collect()
    try:
        replay_logs(BatchedReplay(engine, batch_size=50), ["ordered.jsonl", "disordered.jsonl"])
        assert gc.collect() == 0  # no garbage the collector alone could free
        replay_logs(Replay(engine), ["disordered.jsonl"])  # again: every line resumed
        assert gc.collect() == 0
    finally:
        engine.close()
    assert gc.isenabled()  # as it was before the replay
