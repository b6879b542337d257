"""Replay cost as the log and the database grow: on one long log in arrival order, the
replay's ratio to the raw floor over the first lines against its ratio over the second half.

    python bench_growth.py [--lines 2000000] [--first 200000] [--dir DIR]

Both the floor and the engine (as in ``bench_replay.py``) run through the whole log in a fresh
process each, noting their CPU time at line ``first``, at half the log and at its end. The
goal: the ratio over the second half (the second million of two) is at least 0.9 of the
ratio over the first ``first`` lines, i.e. the engine slows no more than the floor does as
its database grows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench_replay import engine_run, measure, raw_run, write_log

GOAL = 0.9


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--first", type=int, default=200_000)
    parser.add_argument("--dir", type=Path, default=None, help="Where the log and databases go.")
    args = parser.parse_args()
    half = args.lines // 2
    marks = (args.first, half, args.lines)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        log = Path(folder) / "long.jsonl"
        lines, loans = write_log(log, events=args.lines)
        floor = measure(raw_run, log, marks, Path(folder))
        engine = measure(engine_run, log, marks, Path(folder))
    print(f"{lines:,} lines ({loans:,} loans)")
    print(f"{'segment':>22} {'raw lines/s':>12} {'engine lines/s':>15} {'x floor':>8}")
    # laps: CPU seconds at line ``first``, at half the log and at its end
    segments = {
        f"first {args.first:,}": (args.first, floor[2][0], engine[2][0]),
        f"{half:,}-{args.lines:,}": (
            args.lines - half,
            floor[2][2] - floor[2][1],
            engine[2][2] - engine[2][1],
        ),
    }
    ratios = []
    for name, (count, raw, ours) in segments.items():
        ratios.append(raw / ours)
        print(f"{name:>22} {count / raw:12,.0f} {count / ours:15,.0f} {raw / ours:8.3f}")
    flat = ratios[1] / ratios[0]
    print(
        f"late ratio / early ratio: {flat:.2f} (goal >= {GOAL}: {'met' if flat >= GOAL else 'not met'})"
    )
    print(f"peak RSS: raw {floor[1] / 1024:.0f} MB, engine {engine[1] / 1024:.0f} MB")


if __name__ == "__main__":
    main()
