"""python-statemachine, one instance per debit. Runs in a virtual environment of its own:
the package installs a top-level `statemachine` that would shadow this project."""

import json
import sys
import time

from statemachine import State, StateMachine


class Debit(StateMachine):
    pending = State(initial=True)
    submitted = State()
    succeeded = State()
    failed = State(final=True)
    reversed = State(final=True)
    submit = pending.to(submitted)
    succeed = submitted.to(succeeded) | pending.to(succeeded)
    fail = submitted.to(failed) | pending.to(failed)
    reverse = succeeded.to(reversed)


def main(debits):
    t = time.perf_counter()
    machines = [Debit() for _ in range(debits)]
    build = time.perf_counter() - t
    t = time.perf_counter()
    for number, machine in enumerate(machines):
        machine.send("submit")
        machine.send("fail" if number % 10 == 0 else "succeed")
    run = time.perf_counter() - t
    print(
        json.dumps(
            {
                "build_us": build / debits * 1e6,
                "events_per_s": 2 * debits / run,
                "version": __import__("importlib.metadata").metadata.version("python-statemachine"),
            }
        )
    )


main(int(sys.argv[1]))
