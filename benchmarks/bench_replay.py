"""Replay throughput end to end, against a raw floor measured in the same run, and peak memory.

    python bench_replay.py [--loans N] [--repeat K]
    python bench_replay.py --events 10000000 --no-floor   # peak memory on a long log

Two logs of one synthetic car-loan book (statemachine.synthetic), written as JSONL: the book
in arrival order, and the same book disordered as callbacks race (each window of 32 arrivals
shuffled, 5% delivered again). The engine reads, parses, applies and dispatches on the
replay clock into SQLite in batches of 1,000 events. The raw floor json-parses the same lines
and batch-inserts an event row, a debit row and, for outcomes, a notice row per line with
sqlite3's executemany, 1,000 lines a transaction. Each runs in a fresh process, the floor and
the engine side by side K times; the ratio is of CPU times, the median of the K rounds' ratios.
Peak memory is the process's own high-water mark (VmHWM), not its parent's.
"""

from __future__ import annotations

import argparse
import heapq
import multiprocessing
import resource
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from statemachine import Engine, ManualClock
from statemachine.replay import BatchedReplay, replay_logs
from statemachine.stores.sqlite import SQL
from statemachine.synthetic import car_loan_book, disordered

OUTCOMES = {"succeeded", "failed", "reversed"}
T = TypeVar("T")
# Children start fresh: a forked child would carry the memory that wrote the log.
SPAWN = multiprocessing.get_context("spawn")


BOOK = 100_000  # loans a month in a long log: each month is generated, then written


def write_log(
    path: Path, loans: int = 0, events: int = 0, disorder: bool = False
) -> tuple[int, int]:
    """Write ``loans`` debits, or months of books until ``events`` lines; (lines, loans).
    With ``disorder``, callbacks race within windows of 32 arrivals and 5% come twice.

    Months are merged on time, as a lender's system logs them: a month's returns and late
    callbacks come weeks into the next month, between its own first events. (Written month
    after month instead, the log would go back five weeks at each month's start, and the
    replay clock, which never runs backwards, would stand still over them.)"""
    if loans:
        sizes = [BOOK] * (loans // BOOK) + ([loans % BOOK] if loans % BOOK else [])
    else:  # enough months for the lines: a book gives about 4.8 lines a loan
        sizes = [BOOK] * -(-events // int(BOOK * 4.5))
    books: list[tuple[str, Iterator[dict[str, Any]]]] = []
    for month, size in enumerate(sizes):
        start = datetime(2026 + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        book = car_loan_book(size, seed=month + 1, month=start, first=month * BOOK)
        books.append((start.isoformat(), disordered(book, 32, 0.05, seed=month + 1) if disorder else book))  # fmt: skip
    lines = 0
    with path.open("wb") as out:
        for record in in_time(books):
            out.write(orjson.dumps(record) + b"\n")
            lines += 1
            if events and lines >= events:
                break
    return lines, sum(sizes)


def in_time(books: list[tuple[str, Iterator[dict[str, Any]]]]) -> Iterator[dict[str, Any]]:
    """The records of months' books, each (its month's start, its records in arrival order),
    merged on ``occurred_at`` (UTC text, in order as text). A book is opened when the merge
    reaches its month: two months are in memory at a time."""
    Book = Iterator[dict[str, Any]]
    heap: list[tuple[str, int, dict[str, Any], Book]] = []
    count = 0

    def take(book: Book) -> None:
        nonlocal count
        record = next(book, None)
        if record is not None:
            count += 1  # ties keep arrival order
            heapq.heappush(heap, (record["occurred_at"], count, record, book))

    waiting = iter(books)
    following = next(waiting, None)
    while heap or following is not None:
        if following is not None and (not heap or heap[0][0] >= following[0]):
            take(following[1])
            following = next(waiting, None)
            continue
        _, _, record, book = heapq.heappop(heap)
        yield record
        take(book)


def peak_kib() -> int:
    """This process's peak resident memory in KiB. Not ``ru_maxrss``: a spawned child
    inherits its parent's (fork, then exec), which would count the memory that wrote the log."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: an upper bound


def lapped(
    records: Iterable[T], marks: Sequence[int], laps: list[float], start: float
) -> Iterator[T]:
    """``records`` as they are; the CPU time since ``start`` is noted at each of ``marks``
    (counts of records taken)."""
    pending = sorted(marks)
    for count, record in enumerate(records, 1):
        yield record
        while pending and count == pending[0]:
            laps.append(time.process_time() - start)
            pending.pop(0)


def engine_run(
    log: Path,
    db: Path,
    results: multiprocessing.Queue,  # type: ignore[type-arg]
    marks: Sequence[int] = (),
) -> None:
    start = time.process_time()
    laps: list[float] = []
    engine = Engine.open(db, clock=ManualClock())
    replay_logs(
        BatchedReplay(engine, batch_size=1000),
        [log],
        progress=lambda records: lapped(records, marks, laps, start),
    )
    engine.close()
    results.put((time.process_time() - start, peak_kib(), laps))


def raw_run(
    log: Path,
    db: Path,
    results: multiprocessing.Queue,  # type: ignore[type-arg]
    marks: Sequence[int] = (),
) -> None:
    start = time.process_time()
    laps: list[float] = []
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
        for line in lapped(lines, marks, laps, start):
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
                                0, None, None, 1, None, None))  # fmt: skip
            if len(events) >= 1000:
                flush()
    flush()
    conn.close()
    results.put((time.process_time() - start, peak_kib(), laps))


def measure(
    run: object, log: Path, marks: Sequence[int] = (), folder: Path | None = None
) -> tuple[float, int, list[float]]:
    """``run`` over ``log`` in a fresh process: (CPU seconds, peak RSS in KiB, CPU seconds
    at each of ``marks`` lines)."""
    with tempfile.TemporaryDirectory(dir=folder) as work:
        results: multiprocessing.Queue = SPAWN.Queue()  # type: ignore[type-arg]
        child = SPAWN.Process(target=run, args=(log, Path(work) / "r.sqlite", results, marks))  # type: ignore[arg-type]
        child.start()
        elapsed, rss_kib, laps = results.get()
        child.join()
        return elapsed, rss_kib, laps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loans", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=0, help="Lines instead of --loans.")
    parser.add_argument("--repeat", type=int, default=3, help="Rounds of floor and engine.")
    parser.add_argument("--no-floor", action="store_true", help="Measure the replay only.")
    parser.add_argument("--dir", type=Path, default=None, help="Where the logs and databases go.")
    args = parser.parse_args()
    # A long log (--events) is measured in order only: it is there for peak memory.
    kinds = [False] if args.events else [False, True]
    print(f"{'log':11} {'contender':34} {'lines/s':>10} {'x floor':>8} {'peak RSS':>10}")
    for disorder in kinds:
        with tempfile.TemporaryDirectory(dir=args.dir) as folder:
            log = Path(folder) / "book.jsonl"
            lines, loans = write_log(log, 0 if args.events else args.loans, args.events, disorder)
            floors, ours, ratios = [], [], []
            for _ in range(1 if args.no_floor else args.repeat):
                floor = (1.0, 0, []) if args.no_floor else measure(raw_run, log)
                engine = measure(engine_run, log)
                floors.append(floor)
                ours.append(engine)
                ratios.append(floor[0] / engine[0])
        name = "disordered" if disorder else "in order"
        print(f"{name:11} {lines:,} lines ({loans:,} loans)")
        if not args.no_floor:
            cpu = statistics.median(f[0] for f in floors)
            print(f"{name:11} {'raw: json-parse + executemany':34} {lines / cpu:10,.0f} {1:8.3f}"
                  f" {max(f[1] for f in floors) / 1024:8.0f} MB")  # fmt: skip
        cpu = statistics.median(o[0] for o in ours)
        ratio = "-" if args.no_floor else f"{statistics.median(ratios):.3f}"
        print(f"{name:11} {'statemachine replay --batch 1000':34} {lines / cpu:10,.0f} {ratio:>8}"
              f" {max(o[1] for o in ours) / 1024:8.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
