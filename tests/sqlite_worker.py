"""A worker process for the crash and concurrency tests: applies a synthetic book to a file.

    python sqlite_worker.py DB LOANS SEED [--shuffle N]

Prints the index of every event after ``apply`` returned, that is after it committed.
"""

from __future__ import annotations

import random
import sys

from statemachine import Engine, Event
from statemachine.synthetic import car_loan_book


def book(loans: int, seed: int) -> list[Event]:
    records = car_loan_book(loans, seed=seed, legacy_notices=False)
    return [Event.from_dict(r) for r in records]


def main() -> None:
    path, loans, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    events = book(loans, seed)
    if len(sys.argv) > 5 and sys.argv[4] == "--shuffle":
        random.Random(int(sys.argv[5])).shuffle(events)
        events += random.Random(int(sys.argv[5]) + 1).sample(events, len(events) // 5)
    with Engine.open(path, busy_timeout=30) as engine:
        for index, event in enumerate(events):
            engine.apply(event)
            print(index, flush=True)


if __name__ == "__main__":
    main()
