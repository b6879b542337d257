"""Replay throughput end to end, against a raw floor measured in the same run, and peak memory.

    python bench_replay.py [--loans N]

The log is a synthetic car-loan book (statemachine.synthetic) written as JSONL. The engine
reads, parses, applies and dispatches on the replay clock into SQLite in batches of 1,000
events. The raw floor json-parses the same lines and batch-inserts an event row, a debit row
and, for outcomes, a notice row per line with sqlite3's executemany, 1,000 lines a
transaction. Each runs in a fresh process; peak memory is that process's maximum RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sqlite3
import tempfile
import time
from pathlib import Path

import orjson

from statemachine import Engine, ManualClock
from statemachine.replay import BatchedReplay, replay_logs
from statemachine.stores.sqlite import SQL
from statemachine.synthetic import car_loan_book

OUTCOMES = {"succeeded", "failed", "reversed"}


def write_log(path: Path, loans: int) -> int:
    lines = 0
    with path.open("wb") as out:
        for record in car_loan_book(loans, seed=1):
            out.write(orjson.dumps(record) + b"\n")
            lines += 1
    return lines


def engine_run(log: Path, db: Path, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    start = time.perf_counter()
    engine = Engine.open(db, clock=ManualClock())
    replay_logs(BatchedReplay(engine, batch_size=1000), [log])
    engine.close()
    results.put((time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def raw_run(log: Path, db: Path, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    start = time.perf_counter()
    Engine.open(db).close()  # the same schema
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    events, debits, notices = [], [], []
    seen: set[str] = set()  # a repeated event_id is stored again, but not as accepted

    def flush() -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(SQL.insert_event, events)
        conn.executemany(SQL.upsert_debit, debits)
        conn.executemany(SQL.upsert_notice, notices)
        conn.execute("COMMIT")
        events.clear(), debits.clear(), notices.clear()

    with log.open("rb") as lines:
        for line in lines:
            r = orjson.loads(line)
            if r.get("type") == "notice_sent":
                continue
            at = r["occurred_at"]
            fresh = r["event_id"] not in seen
            seen.add(r["event_id"])
            events.append((r["event_id"], r["debit_id"], r["type"], r.get("attempt", 1), at, r["source"],
                           "applied", "", line.decode(), line.decode(), None, int(fresh)))  # fmt: skip
            debits.append(
                (r["debit_id"], r["type"], r.get("attempt", 1), 1, False, None, None, None)
            )
            if r["type"] in OUTCOMES:
                notices.append((f"{r['debit_id']}#{r.get('attempt', 1)}:{r['type']}", r["debit_id"],
                                r.get("attempt", 1), r["type"], r["type"], "queued", at, at, None, None,
                                0, None, None, 1))  # fmt: skip
            if len(events) >= 1000:
                flush()
    flush()
    conn.close()
    results.put((time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def measure(run: object, log: Path) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        child = multiprocessing.Process(target=run, args=(log, Path(folder) / "r.sqlite", results))  # type: ignore[arg-type]
        child.start()
        elapsed, rss_kib = results.get()
        child.join()
        return elapsed, rss_kib


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loans", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "book.jsonl"
        lines = write_log(log, args.loans)
        raw_s, raw_kib = measure(raw_run, log)
        ours_s, ours_kib = measure(engine_run, log)
    print(f"{lines:,} lines ({args.loans:,} loans)")
    print(f"{'contender':34} {'lines/s':>10} {'x floor':>8} {'peak RSS':>10}")
    print(
        f"{'raw: json-parse + executemany':34} {lines / raw_s:10,.0f} {1:8.3f} {raw_kib / 1024:8.0f} MB"
    )
    print(
        f"{'statemachine replay --batch 1000':34} {lines / ours_s:10,.0f} {raw_s / ours_s:8.3f} {ours_kib / 1024:8.0f} MB"
    )


if __name__ == "__main__":
    main()
