"""Core throughput, as ratios against a bare-dict transition loop measured in the same run.

    python benchmarks/bench_core.py [--debits N] [--repeat K]

Rows: the bare loop (the floor any engine pays more than), the engine's in-memory ``apply``
per event and ``apply_many`` per batch, on events in order and on a field mix (duplicates
and out-of-order arrivals), and what a user would otherwise pick: transitions with one
``Machine`` per debit, and python-statemachine (in a virtual environment of its own).
Numbers are best-of-K; machines are noisy, so read the ratios, not the absolute rates.

Then the cost of one event against a debit's history (goal 3: flat in its length): an
outcome that loses to a stronger one (a conflict), a retry the debit is not ready for (parked)
and a duplicate, on debits with 5, 50 and 500 events each, in CPU time per event (median of
K), and each as a ratio of its cost at 5.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from transitions import Machine

from statemachine import Engine, Event

HERE = Path(__file__).resolve().parent
T0 = datetime(2026, 3, 5, 10, tzinfo=UTC)
STATES = ["pending", "submitted", "succeeded", "failed", "reversed"]
TABLE = {
    ("pending", "created"): "pending",
    ("pending", "submitted"): "submitted",
    ("pending", "succeeded"): "succeeded",
    ("pending", "failed"): "failed",
    ("submitted", "succeeded"): "succeeded",
    ("submitted", "failed"): "failed",
    ("succeeded", "reversed"): "reversed",
}


def in_order(debits: int) -> list[Event]:
    events = []
    for number in range(debits):
        debit = f"loan-{number:06d}/2026-03"
        outcome = "failed" if number % 10 == 0 else "succeeded"
        events.append(
            Event(
                event_id=f"c-{number}",
                debit_id=debit,
                type="created",
                occurred_at=T0,
                amount=356000,
                source="internal",
            )
        )
        events.append(
            Event(
                event_id=f"s-{number}",
                debit_id=debit,
                type="submitted",
                occurred_at=T0 + timedelta(minutes=1),
            )
        )
        events.append(
            Event(
                event_id=f"o-{number}",
                debit_id=debit,
                type=outcome,
                occurred_at=T0 + timedelta(minutes=5),
            )
        )
    return events


def field_mix(debits: int, seed: int = 7) -> list[Event]:
    """In order, but 5% of debits get their last two events swapped and 5% of events repeated."""
    rng = random.Random(seed)
    events = in_order(debits)
    for start in range(0, len(events), 3):
        if rng.random() < 0.05:
            events[start + 1], events[start + 2] = events[start + 2], events[start + 1]
    for index in sorted(rng.sample(range(len(events)), len(events) // 20), reverse=True):
        events.insert(index + 1, events[index])
    return events


def bare_loop(events: list[Event]) -> dict[str, str]:
    state: dict[str, str] = {}
    for event in events:
        current = state.get(event.debit_id, "pending")
        state[event.debit_id] = TABLE.get((current, event.type), current)
    return state


def engine_apply(events: list[Event]) -> Engine:
    engine = Engine.in_memory()
    apply = engine.apply
    for event in events:
        apply(event)
    return engine


def engine_apply_many(events: list[Event]) -> Engine:
    engine = Engine.in_memory()
    engine.apply_many(events)
    return engine


class _Model:
    state: str


def transitions_per_debit(events: list[Event]) -> tuple[float, float]:
    """(microseconds to build one Machine, triggers per second once built)."""
    debits = sorted({e.debit_id for e in events})
    models = {debit: _Model() for debit in debits}
    start = time.perf_counter()
    for model in models.values():
        machine = Machine(model=model, states=STATES, initial="pending", auto_transitions=False,
                          ignore_invalid_triggers=True)  # fmt: skip
        for (source, trigger), dest in TABLE.items():
            machine.add_transition(trigger, source, dest)
    build = time.perf_counter() - start
    start = time.perf_counter()
    for event in events:
        models[event.debit_id].trigger(event.type)  # type: ignore[attr-defined]
    run = time.perf_counter() - start
    return build / len(debits) * 1e6, len(events) / run


def python_statemachine(debits: int) -> dict[str, float] | str:
    env = HERE / ".venv-psm"
    python = env / "bin" / "python"
    try:
        if not python.exists():
            venv.create(env, with_pip=True)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "python-statemachine>=2.3"],
                           check=True, capture_output=True)  # fmt: skip
        done = subprocess.run([str(python), str(HERE / "psm_debit.py"), str(debits)],
                              check=True, capture_output=True, text=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"skipped ({exc})"
    result: dict[str, float] = json.loads(done.stdout)
    return result


HISTORIES = (5, 50, 500)


def one_debit(number: int, size: int) -> list[Event]:
    """A debit collected on a settlement report, then ``size - 3`` weaker reports agreeing."""
    debit, at = f"long-{number}", T0 + timedelta(minutes=1)
    events = [
        Event(event_id=f"c-{number}", debit_id=debit, type="created", occurred_at=T0,
              amount=1000, source="internal"),
        Event(event_id=f"s-{number}", debit_id=debit, type="submitted", occurred_at=at),
        Event(event_id=f"w-{number}", debit_id=debit, type="succeeded", occurred_at=at,
              source="settlement"),
    ]  # fmt: skip
    events += [
        Event(event_id=f"g-{number}-{n}", debit_id=debit, type="succeeded",
              occurred_at=at + timedelta(seconds=n))
        for n in range(size - 3)
    ]  # fmt: skip
    return events


def history_costs(debits: int, repeat: int) -> dict[str, dict[int, float]]:
    """CPU microseconds per event by kind of arrival and history length (median of repeat)."""
    kinds = {
        # A gateway failure mid-history: loses to the settlement's success (a conflict).
        "losing outcome": lambda n, size: Event(
            event_id=f"f-{n}", debit_id=f"long-{n}", type="failed",
            occurred_at=T0 + timedelta(seconds=size // 2)),
        # Attempt 2 while attempt 1 stands collected: parked.
        "retry": lambda n, size: Event(
            event_id=f"r-{n}", debit_id=f"long-{n}", type="retried", attempt=2,
            occurred_at=T0 + timedelta(days=3), source="internal"),
        "duplicate": lambda n, size: Event(
            event_id=f"c-{n}", debit_id=f"long-{n}", type="created", occurred_at=T0,
            amount=1000, source="internal"),
    }  # fmt: skip
    costs: dict[str, dict[int, list[float]]] = {k: {s: [] for s in HISTORIES} for k in kinds}
    for size in HISTORIES:
        for _ in range(repeat):
            engine = Engine.in_memory()
            for number in range(debits):
                engine.apply_many(one_debit(number, size))
            for kind, make in kinds.items():
                arrivals = [make(number, size) for number in range(debits)]
                gc.collect()
                start = time.process_time()
                for event in arrivals:
                    engine.apply(event)
                costs[kind][size].append((time.process_time() - start) / debits * 1e6)
    return {k: {s: statistics.median(v) for s, v in by.items()} for k, by in costs.items()}


def best(run: Callable[[list[Event]], object], events: list[Event], repeat: int) -> float:
    """Best events/s over ``repeat`` runs, collecting garbage between runs. What a run built
    is kept, as a user keeps an engine, and what it leaves the collector (the young objects
    of a batch that paused it) is collected inside the timing: else the next allocation would
    pay for it, after the clock stopped."""
    rates = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        kept = run(events)
        gc.collect(0)
        rates.append(len(events) / (time.perf_counter() - start))
        del kept
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--debits", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--history-debits", type=int, default=200,
                        help="Debits per history length in the history costs.")  # fmt: skip
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.debits} debits, best of {args.repeat}")
    print(f"{'workload':10} {'contender':34} {'events/s':>12} {'x bare loop':>12}")
    for name, events in (
        ("in order", in_order(args.debits)),
        ("field mix", field_mix(args.debits)),
    ):
        floor = best(bare_loop, events, args.repeat)
        rows = [
            ("bare-dict transition loop", floor),
            ("Engine.apply (in memory)", best(engine_apply, events, args.repeat)),
            ("Engine.apply_many (in memory)", best(engine_apply_many, events, args.repeat)),
        ]
        for label, rate in rows:
            print(f"{name:10} {label:34} {rate:12,.0f} {rate / floor:12.3f}")
    events = in_order(min(args.debits, 20_000))
    build_us, rate = transitions_per_debit(events)
    print(f"{'in order':10} {'transitions, one Machine per debit':34} {rate:12,.0f} {rate / best(bare_loop, events, args.repeat):12.3f}"
          f"   build {build_us:.0f} us per debit")  # fmt: skip
    print("\n" + f"{'one debit with':22}" + "".join(f"{f'{s} events':>12}" for s in HISTORIES)
          + f"{'500 / 5':>10}   (CPU us per event, median of {args.repeat})")  # fmt: skip
    for kind, by in history_costs(args.history_debits, args.repeat).items():
        print(f"{kind:22}" + "".join(f"{by[s]:12.1f}" for s in HISTORIES)
              + f"{by[HISTORIES[-1]] / by[HISTORIES[0]]:10.2f}")  # fmt: skip
    psm = python_statemachine(min(args.debits, 5_000))
    if isinstance(psm, str):
        print(f"{'in order':10} {'python-statemachine':34} {psm}")
    else:
        print(f"{'in order':10} {'python-statemachine ' + str(psm['version']):34} {psm['events_per_s']:12,.0f}"
              f" {psm['events_per_s'] / floor:12.3f}   build {psm['build_us']:.0f} us per debit")  # fmt: skip


if __name__ == "__main__":
    main()
