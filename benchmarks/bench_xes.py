"""XES import throughput on the BPI Challenge 2012 log, against a raw iterparse floor, one run.

    python benchmarks/bench_xes.py [--log PATH]

The log (262,200 events in 13,087 traces, gzipped) comes from the real-data folder beside the
project (../shared/realdata, or $STATEMACHINE_REALDATA); without it the benchmark says so and
stops. Three contenders, each in a fresh process, read the same file:

- raw: ElementTree.iterparse of the file, counting ``<event>`` elements and clearing each
  trace, the least any streaming reader does;
- import: ``statemachine.importers.read("xes", ...)`` with the bundled mapping, every event
  it yields built into an ``Event``;
- import + replay: the same events fed through ``BatchedReplay`` (batches of 1,000) into a
  fresh SQLite file on the replay clock, then ``finish()``.

Rates count the log's events (what each contender reads), so the ratios compare equal work.
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import os
import resource
import sqlite3
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import orjson

from statemachine import Engine, Event, ManualClock
from statemachine.importers import read
from statemachine.replay import BatchedReplay

BPIC = Path("eventlogs_pm4py-core") / "bpic2012.xes.gz"
REALDATA = Path(
    os.environ.get("STATEMACHINE_REALDATA")
    or Path(__file__).resolve().parents[2] / "shared" / "realdata"
)


def raw_run(log: Path, db: Path, results: Queue[Any]) -> None:
    start = time.perf_counter()
    events = 0
    with gzip.open(log, "rb") as stream:
        for _, element in ET.iterparse(stream, ("end",)):
            tag = element.tag
            if tag.endswith("}event") or tag == "event":
                events += 1
                element.clear()
            elif tag.endswith("}trace") or tag == "trace":
                element.clear()
    results.put((time.perf_counter() - start, events, rss_mib()))


def import_run(log: Path, db: Path, results: Queue[Any]) -> None:
    start = time.perf_counter()
    count = 0
    for _, event in read("xes", [log]):
        Event.from_dict(event)
        count += 1
    results.put((time.perf_counter() - start, count, rss_mib()))


def replay_run(log: Path, db: Path, results: Queue[Any]) -> None:
    start = time.perf_counter()
    engine = Engine.open(db, clock=ManualClock())
    replay = BatchedReplay(engine, batch_size=1000)
    count = 0
    for origin, event in read("xes", [log]):
        replay.ingest(orjson.dumps(event), origin, parsed=event)
        count += 1
    replay.finish()
    engine.close()
    elapsed = time.perf_counter() - start
    with sqlite3.connect(db) as conn:
        states = dict(conn.execute("SELECT state, count(*) FROM debits GROUP BY state"))
    results.put((elapsed, count, rss_mib(), states))


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(run: Callable[[Path, Path, Queue[Any]], None], log: Path) -> tuple[Any, ...]:
    with tempfile.TemporaryDirectory() as folder:
        results: Queue[Any] = multiprocessing.Queue()
        db = Path(folder) / "x.sqlite"
        child = multiprocessing.Process(target=run, args=(log, db, results))
        child.start()
        outcome: tuple[Any, ...] = results.get()
        child.join()
        return outcome


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--log", type=Path, default=REALDATA / BPIC)
    args = parser.parse_args()
    if not args.log.is_file():
        print(f"skipped: {args.log} is absent (set STATEMACHINE_REALDATA to the real-data folder)")
        sys.exit(0)
    raw_s, events, raw_mib = measure(raw_run, args.log)
    import_s, yielded, import_mib = measure(import_run, args.log)
    replay_s, _, replay_mib, states = measure(replay_run, args.log)
    print(f"{args.log.name}: {events:,} log events, {yielded:,} debit events after mapping")
    print(f"{'contender':30} {'events/s':>10} {'x raw':>7} {'seconds':>8} {'peak RSS':>10}")
    for name, seconds, mib in (
        ("raw: iterparse + clear", raw_s, raw_mib),
        ("import (xes -> events)", import_s, import_mib),
        ("import + replay into SQLite", replay_s, replay_mib),
    ):
        rate = events / seconds
        print(f"{name:30} {rate:10,.0f} {raw_s / seconds:7.3f} {seconds:8.2f} {mib:7.0f} MiB")
    print(f"debits by state: {states}")


if __name__ == "__main__":
    main()
