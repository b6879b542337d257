"""PostgreSQL throughput with 1, 2 and 4 worker processes, against raw psycopg doing the same
writes, as ratios measured in one run.

    STATEMACHINE_PG_DSN=postgresql://postgres@127.0.0.1:5432/test python bench_postgres.py

Debits are partitioned among the workers by debit_id, as a deployment would. Per event, each
event is one transaction (the engine's apply, or a raw BEGIN / INSERT event / UPSERT debit /
UPSERT notice / COMMIT). Batched, each worker writes ``--batch`` events a transaction (the
engine's apply_many: one lock round, one lookup round, one write round; raw psycopg:
executemany of the same rows).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
import uuid
import zlib

import psycopg
from bench_core import in_order
from bench_store import rows

from statemachine import Engine, Event
from statemachine.stores.postgres import SQL

GOAL = 0.8  # of raw psycopg, batched, at 1 and 4 workers
DSN = os.environ.get("STATEMACHINE_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def share(events: list[Event], worker: int, workers: int) -> list[Event]:
    return [e for e in events if zlib.crc32(e.debit_id.encode()) % workers == worker]


def engine_worker(target: str, events: list[Event], batch: int) -> None:
    with Engine.open(target, pool_size=1) as engine:
        if batch == 1:
            for event in events:
                engine.apply(event)
        else:
            for start in range(0, len(events), batch):
                engine.apply_many(events[start : start + batch])


def raw_worker(target: str, events: list[Event], batch: int) -> None:
    dsn, schema = target.split("?schema=")
    event_rows, debit_rows, notice_rows = rows(events)
    at = events[0].occurred_at if events else None  # PostgreSQL takes times, not text
    prepared = [
        (
            (*event_row[:4], at, *event_row[5:]),
            (*debit_row[:4], bool(debit_row[4]), *debit_row[5:]),
            None if notice_row is None else (*notice_row[:6], at, at, *notice_row[8:]),
        )
        for event_row, debit_row, notice_row in zip(
            event_rows, debit_rows, notice_rows, strict=True
        )
    ]
    with psycopg.connect(dsn) as conn:
        conn.execute(f"SET search_path TO {schema}")
        conn.commit()
        for start in range(0, len(prepared), batch):
            chunk = prepared[start : start + batch]
            with conn.transaction(), conn.cursor() as cursor:
                if batch == 1:
                    ((event_row, debit_row, notice_row),) = chunk
                    cursor.execute(SQL.insert_event, event_row)
                    cursor.execute(SQL.upsert_debit, debit_row)
                    if notice_row is not None:
                        cursor.execute(SQL.upsert_notice, notice_row)
                    continue
                cursor.executemany(SQL.insert_event, [row[0] for row in chunk])
                cursor.executemany(SQL.upsert_debit, [row[1] for row in chunk])
                notices = [row[2] for row in chunk if row[2] is not None]
                if notices:
                    cursor.executemany(SQL.upsert_notice, notices)


def timed(run: object, events: list[Event], workers: int, batch: int) -> float:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    target = f"{DSN}?schema={schema}"
    Engine.open(target).close()
    processes = [
        multiprocessing.Process(target=run, args=(target, share(events, n, workers), batch))  # type: ignore[arg-type]
        for n in range(workers)
    ]
    start = time.perf_counter()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - start
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return len(events) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debits", type=int, default=20_000, help="Debits, batched.")
    parser.add_argument("--batch", type=int, default=100, help="Events a transaction, batched.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of each, the median.")
    parser.add_argument(
        "--per-event-debits", type=int, default=2_000, help="Debits, one event a transaction."
    )
    args = parser.parse_args()
    print(f"{'mode':>10} {'workers':>7} {'raw psycopg ev/s':>17} {'engine ev/s':>12} {'x raw':>6}")
    for batch, debits in ((args.batch, args.debits), (1, args.per_event_debits)):
        events = in_order(debits)
        mode = "per event" if batch == 1 else f"batch {batch}"
        for workers in (1, 2, 4):
            floors, rates = [], []
            for _ in range(args.rounds):
                floors.append(timed(raw_worker, events, workers, batch))
                rates.append(timed(engine_worker, events, workers, batch))
            ratio = statistics.median(r / f for r, f in zip(rates, floors, strict=True))
            goal = f"  (goal 0.8: {'met' if ratio >= GOAL else 'not met'})" if batch > 1 else ""
            print(f"{mode:>10} {workers:>7} {statistics.median(floors):17,.0f}"
                  f" {statistics.median(rates):12,.0f} {ratio:6.2f}{goal}")  # fmt: skip


if __name__ == "__main__":
    main()
