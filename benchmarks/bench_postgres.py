"""PostgreSQL throughput with 1, 2 and 4 worker processes, against raw psycopg doing the same
writes, as ratios measured in one run.

    STATEMACHINE_PG_DSN=postgresql://postgres@127.0.0.1:5432/test python bench_postgres.py

Debits are partitioned among the workers by debit_id, as a deployment would; each event is
one transaction (the engine's apply, or a raw BEGIN / INSERT event / UPSERT debit / UPSERT
notice / COMMIT).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
import uuid
import zlib

import psycopg
from bench_core import in_order
from bench_store import rows

from statemachine import Engine, Event
from statemachine.stores.postgres import SQL

DSN = os.environ.get("STATEMACHINE_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def share(events: list[Event], worker: int, workers: int) -> list[Event]:
    return [e for e in events if zlib.crc32(e.debit_id.encode()) % workers == worker]


def engine_worker(target: str, events: list[Event]) -> None:
    with Engine.open(target, pool_size=1) as engine:
        for event in events:
            engine.apply(event)


def raw_worker(target: str, events: list[Event]) -> None:
    dsn, schema = target.split("?schema=")
    event_rows, debit_rows, notice_rows = rows(events)
    with psycopg.connect(dsn) as conn:
        conn.execute(f"SET search_path TO {schema}")
        conn.commit()
        for event_row, debit_row, notice_row in zip(
            event_rows, debit_rows, notice_rows, strict=True
        ):
            with conn.transaction():
                conn.execute(
                    SQL.insert_event, (*event_row[:4], events[0].occurred_at, *event_row[5:])
                )
                conn.execute(SQL.upsert_debit, (*debit_row[:4], bool(debit_row[4]), *debit_row[5:]))
                if notice_row is not None:
                    conn.execute(SQL.upsert_notice, (*notice_row[:6], events[0].occurred_at,
                                                     events[0].occurred_at, *notice_row[8:],
                                                     None, None))  # fmt: skip


def timed(run: object, events: list[Event], workers: int) -> float:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    target = f"{DSN}?schema={schema}"
    Engine.open(target).close()
    processes = [
        multiprocessing.Process(target=run, args=(target, share(events, n, workers)))  # type: ignore[arg-type]
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
    parser.add_argument("--debits", type=int, default=1_000)
    args = parser.parse_args()
    events = in_order(args.debits)
    print(f"{'workers':>7} {'raw psycopg ev/s':>17} {'engine ev/s':>12} {'x raw':>6}")
    for workers in (1, 2, 4):
        floor = timed(raw_worker, events, workers)
        rate = timed(engine_worker, events, workers)
        print(f"{workers:>7} {floor:17,.0f} {rate:12,.0f} {rate / floor:6.2f}")


if __name__ == "__main__":
    main()
