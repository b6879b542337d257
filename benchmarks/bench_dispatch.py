"""Dispatch throughput (N9): due notices sent through senders of a fixed latency at several
concurrencies, each against its ideal, and an instant sender against a raw floor, in one run.

    python benchmarks/bench_dispatch.py [--notices 20000] [--seconds 4]
    STATEMACHINE_PG_DSN=postgresql://postgres@127.0.0.1:5432/test python benchmarks/bench_dispatch.py --postgres

SQLite (WAL, synchronous=FULL): a database of ``--notices`` due success notices. The floor is
raw sqlite3 marking the same rows sent in batches of 500 (one transaction each). A sender that
sleeps a fixed latency L at concurrency C ideally sends min(C / L, floor) notices a second; each
run sends about ``--seconds`` worth of that (all of them once the ideal allows) and reports
notices/s and the ratio to its ideal. PostgreSQL: 1 and 4 dispatcher processes (SKIP LOCKED
claims) share the database, each at concurrency 64 (instant, 20 ms and 200 ms senders), against
raw psycopg doing the batches.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from statemachine import Engine, Event, ManualClock, Notice

T0 = datetime(2026, 3, 5, 2, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=1)
DSN = os.environ.get("STATEMACHINE_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


class Sleepy:
    """A provider that takes ``latency`` seconds to accept a notice."""

    def __init__(self, latency: float) -> None:
        self.name = "sms"
        self.latency = latency

    def send(self, notice: Notice) -> None:
        if self.latency:
            time.sleep(self.latency)


def successes(count: int) -> list[Event]:
    return [
        Event(f"gw-{n}", f"loan-{n:06d}/2026-03", "succeeded", T0, source="gateway")
        for n in range(count)
    ]


def build(target: str, count: int) -> None:
    events = successes(count)
    with Engine.open(target, clock=ManualClock(T0)) as engine:
        for first in range(0, count, 2_000):  # a lock per debit: PostgreSQL's table is finite
            engine.apply_many(events[first : first + 2_000])


# -- SQLite --------------------------------------------------------------------------------


def raw_floor(path: Path) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    start = time.perf_counter()
    ids = [
        row[0]
        for row in conn.execute(
            "SELECT notice_id FROM notices WHERE status = 'queued' AND due_at <= ? ORDER BY due_at",
            (LATER.isoformat(),),
        )
    ]
    at = LATER.isoformat()
    for first in range(0, len(ids), 500):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "UPDATE notices SET status = 'sent', sent_at = ?, channel = 'sms',"
            " deliveries = deliveries + 1 WHERE notice_id = ? AND status = 'queued'",
            [(at, notice_id) for notice_id in ids[first : first + 500]],
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(ids) / elapsed


def engine_run(path: Path, latency: float, concurrency: int, limit: int) -> tuple[int, float]:
    with Engine.open(path, clock=ManualClock(LATER), synchronous="FULL") as engine:
        start = time.perf_counter()
        sent = engine.dispatch_due([Sleepy(latency)], limit=limit, concurrency=concurrency)
        elapsed = time.perf_counter() - start
    assert all(n.status == "sent" for n in sent), "every notice is sent"
    return len(sent), elapsed


def sqlite_table(count: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "template.sqlite"
        build(str(template), count)

        def fresh() -> Path:
            path = Path(folder) / f"run-{uuid.uuid4().hex[:8]}.sqlite"
            shutil.copy(template, path)
            return path

        floor = raw_floor(fresh())
        print(f"SQLite, {count:,} due notices; floor: raw sqlite3, batches of 500: {floor:,.0f}/s")
        print(
            f"{'sender':>14} {'concurrency':>11} {'notices':>8} {'sent/s':>9} {'ideal/s':>9} {'ratio':>6}"
        )
        for latency in (0.0, 0.02, 0.2):
            for concurrency in (1, 16, 64, 256):
                if latency == 0.0 and concurrency in (16,):
                    continue
                ideal = floor if latency == 0 else min(concurrency / latency, floor)
                limit = min(count, max(50, int(ideal * seconds)))
                sent, elapsed = engine_run(fresh(), latency, concurrency, limit)
                rate = sent / elapsed
                label = "instant" if latency == 0 else f"{latency * 1000:.0f} ms"
                print(
                    f"{label:>14} {concurrency:11} {sent:8,} {rate:9,.0f} {ideal:9,.0f} {rate / ideal:6.2f}"
                )


# -- PostgreSQL ----------------------------------------------------------------------------


def pg_worker(target: str, latency: float, concurrency: int) -> None:
    with Engine.open(target, clock=ManualClock(LATER), pool_size=2) as engine:
        while engine.dispatch_due([Sleepy(latency)], limit=2_000, concurrency=concurrency):
            pass


def pg_raw(target: str) -> float:
    import psycopg

    dsn, schema = target.split("?schema=")
    with psycopg.connect(dsn) as conn:
        conn.execute(f"SET search_path TO {schema}")
        start = time.perf_counter()
        ids = [row[0] for row in conn.execute(
            "SELECT notice_id FROM notices WHERE status = 'queued' AND due_at <= %s", (LATER,))]  # fmt: skip
        conn.commit()
        for first in range(0, len(ids), 500):
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    "UPDATE notices SET status = 'sent', sent_at = %s, channel = 'sms',"
                    " deliveries = deliveries + 1 WHERE notice_id = %s AND status = 'queued'",
                    [(LATER, notice_id) for notice_id in ids[first : first + 500]],
                )
        return len(ids) / (time.perf_counter() - start)


def pg_table(count: int) -> None:
    def schema() -> str:
        target = f"{DSN}?schema=bench_{uuid.uuid4().hex[:10]}"
        build(target, count)
        return target

    made = []
    try:
        target = schema()
        made.append(target)
        floor = pg_raw(target)
        print(
            f"\nPostgreSQL, {count:,} due notices; floor: raw psycopg, batches of 500: {floor:,.0f}/s"
        )
        print(
            f"{'sender':>14} {'processes':>9} {'concurrency':>11} {'sent/s':>9} {'ideal/s':>9} {'ratio':>6}"
        )
        for latency in (0.0, 0.02, 0.2):
            for processes in (1, 4):
                target = schema()
                made.append(target)
                start = time.perf_counter()
                workers = [
                    multiprocessing.Process(target=pg_worker, args=(target, latency, 64))
                    for _ in range(processes)
                ]
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                rate = count / (time.perf_counter() - start)
                ideal = floor if latency == 0 else min(processes * 64 / latency, floor)
                label = "instant" if latency == 0 else f"{latency * 1000:.0f} ms"
                print(
                    f"{label:>14} {processes:9} {64:11} {rate:9,.0f} {ideal:9,.0f} {rate / ideal:6.2f}"
                )
    finally:
        for target in made:
            Engine.open(target).store.drop()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--notices", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=4.0, help="about how long each run sends")
    parser.add_argument("--postgres", action="store_true", help="also the PostgreSQL table")
    args = parser.parse_args()
    sqlite_table(args.notices, args.seconds)
    if args.postgres:
        pg_table(args.notices)


if __name__ == "__main__":
    main()
