"""SQLite store throughput, as ratios against raw sqlite3 doing the same writes, in one run.

    python benchmarks/bench_store.py [--debits N] [--batch-debits N]

Durable: one transaction per event (WAL, synchronous=FULL) through ``Engine.apply``, against
a raw sqlite3 loop writing the same rows (the event, the debit, and the notice when the
event is an outcome) in one transaction each. Batched: ``Engine.apply_many`` against raw
``executemany`` of the same rows in one transaction.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_core import in_order

from statemachine import Engine, Event
from statemachine.stores.sqlite import SQL, utc_text

OUTCOMES = {"succeeded", "failed", "reversed"}
STATE_AFTER = {
    "created": "pending",
    "submitted": "submitted",
    "succeeded": "succeeded",
    "failed": "failed",
}


def rows(
    events: list[Event],
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The rows the engine writes for these in-order events: building them is part of the work."""
    event_rows, debit_rows, notice_rows = [], [], []
    versions: dict[str, int] = {}
    for event in events:
        version = versions[event.debit_id] = versions.get(event.debit_id, 0) + 1
        event_rows.append((event.event_id, event.debit_id, event.type, event.attempt, utc_text(event.occurred_at),
                           event.source, "applied", "reason", None, event.to_json(), None, 1))  # fmt: skip
        debit_rows.append(
            (event.debit_id, STATE_AFTER[event.type], 1, version, 0, None, None, None)
        )
        notice_rows.append(
            (f"{event.debit_id}#1:{event.type}", event.debit_id, 1, event.type, event.type, "queued",
             utc_text(event.occurred_at), utc_text(event.occurred_at), None, None, 0, None, None, version,
             None, None)
            if event.type in OUTCOMES else None
        )  # fmt: skip
    return event_rows, debit_rows, notice_rows


def raw_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def raw_durable(path: Path, events: list[Event]) -> None:
    conn = raw_connection(path, "FULL")
    prepared = rows(events)
    for event_row, debit_row, notice_row in zip(*prepared, strict=True):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(SQL.insert_event, event_row)
        conn.execute(SQL.upsert_debit, debit_row)
        if notice_row is not None:
            conn.execute(SQL.upsert_notice, notice_row)
        conn.execute("COMMIT")
    conn.close()


def raw_batched(path: Path, events: list[Event]) -> None:
    conn = raw_connection(path, "FULL")
    event_rows, debit_rows, notice_rows = rows(events)
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(SQL.insert_event, event_rows)
    conn.executemany(SQL.upsert_debit, debit_rows)
    conn.executemany(SQL.upsert_notice, [row for row in notice_rows if row is not None])
    conn.execute("COMMIT")
    conn.close()


def engine_durable(path: Path, events: list[Event]) -> None:
    with Engine.open(path, synchronous="FULL") as engine:
        apply = engine.apply
        for event in events:
            apply(event)


def engine_batched(path: Path, events: list[Event]) -> None:
    with Engine.open(path, synchronous="FULL") as engine:
        engine.apply_many(events)


def timed(run: Callable[[Path, list[Event]], None], events: list[Event], repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "bench.sqlite"
            Engine.open(path).close()
            start = time.perf_counter()
            run(path, events)
            best = max(best, len(events) / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debits", type=int, default=2_000, help="debits for the durable rows")
    parser.add_argument(
        "--batch-debits", type=int, default=50_000, help="debits for the batched rows"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'mode':8} {'contender':36} {'events/s':>10} {'x raw':>7}")
    for mode, debits, raw, ours in (("durable", args.debits, raw_durable, engine_durable),
                                     ("batched", args.batch_debits, raw_batched, engine_batched)):  # fmt: skip
        events = in_order(debits)
        floor = timed(raw, events, args.repeat)
        rate = timed(ours, events, args.repeat)
        print(f"{mode:8} {'raw sqlite3, same writes':36} {floor:10,.0f} {1:7.3f}")
        print(f"{mode:8} {'Engine on SQLiteStore':36} {rate:10,.0f} {rate / floor:7.3f}")


if __name__ == "__main__":
    main()
