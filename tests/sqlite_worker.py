"""A worker process for the crash and concurrency tests: applies a synthetic book to a store.

    python sqlite_worker.py TARGET LOANS SEED [--shuffle N] [--batch SIZE [--hold-after N]]

TARGET is an SQLite path or a PostgreSQL DSN. Prints the index of every event once it is
committed: after ``apply`` returned, or with ``--batch``, after ``apply_many`` of its batch.
With ``--hold-after N`` it commits N batches, applies the next in a transaction left open,
prints ``holding FIRST LAST`` (its events' indices) and waits there to be killed.
"""

from __future__ import annotations

import random
import signal
import sys
from typing import Any

from statemachine import Engine, Event
from statemachine.synthetic import car_loan_book


def book(loans: int, seed: int) -> list[Event]:
    records = car_loan_book(loans, seed=seed, legacy_notices=False)
    return [Event.from_dict(r) for r in records]


def main() -> None:
    path, loans, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    events = book(loans, seed)
    options = dict(zip(sys.argv[4::2], sys.argv[5::2], strict=True))
    if "--shuffle" in options:
        seed = int(options["--shuffle"])
        random.Random(seed).shuffle(events)
        events += random.Random(seed + 1).sample(events, len(events) // 5)
    store_options: dict[str, Any] = {} if path.startswith("postgresql://") else {"busy_timeout": 30}
    with Engine.open(path, **store_options) as engine:
        size = int(options.get("--batch", 0))
        hold = int(options.get("--hold-after", -1))
        if size:
            for number, start in enumerate(range(0, len(events), size)):
                batch = events[start : start + size]
                if number == hold:
                    with engine.transaction():
                        engine.apply_many(batch)
                        print(f"holding {start} {start + len(batch) - 1}", flush=True)
                        signal.pause()  # killed here, the batch written and not committed
                engine.apply_many(batch)
                print(start + len(batch) - 1, flush=True)
            return
        for index, event in enumerate(events):
            engine.apply(event)
            print(index, flush=True)


if __name__ == "__main__":
    main()
