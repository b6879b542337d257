"""Small builders shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from statemachine import Debit, Engine, Event, ManualClock
from statemachine.importers import Record
from statemachine.replay import Replay

T0 = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
_counter = 0


def ev(
    type: str,
    minutes: float = 0,
    source: str = "gateway",
    attempt: int = 1,
    debit_id: str = "d-1",
    event_id: str | None = None,
    **extra: Any,
) -> Event:
    """An event ``minutes`` after T0; event_ids are unique unless given."""
    global _counter
    _counter += 1
    if type == "created":
        extra.setdefault("amount", 356000)
    return Event(
        event_id=event_id or f"e{_counter}",
        debit_id=debit_id,
        type=type,
        occurred_at=T0 + timedelta(minutes=minutes),
        attempt=attempt,
        source=source,
        **extra,
    )


def debit_of(engine: Engine, debit_id: str) -> Debit:
    """The debit, which the test expects to exist."""
    debit = engine.get(debit_id)
    assert debit is not None, f"{debit_id}: no such debit"
    return debit


def clocked_engine(**kwargs: Any) -> tuple[Engine, ManualClock]:
    clock = ManualClock(T0)
    return Engine.in_memory(clock=clock, **kwargs), clock


def race_dispatchers(
    target: str, folder: Path, debits: int = 150, processes: int = 3
) -> Counter[str]:
    """Queue a success notice for each of ``debits`` debits on ``target``, run ``processes``
    `statemachine dispatch` processes at once, and count how often each notice was sent."""
    with Engine.open(target) as engine:
        engine.apply_many([ev("succeeded", 0, debit_id=f"d-{n}") for n in range(debits)])
    log = folder / "sent.log"
    env = {**os.environ, "NOTICE_LOG": str(log), "PYTHONPATH": str(Path(__file__).parent)}
    command = [sys.executable, "-m", "statemachine", "dispatch", "--db", target,
               "--sender", "file_sender:make"]  # fmt: skip
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL) for _ in range(processes)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0] * processes
    return Counter(log.read_text().split())


def replayed(records: list[Record]) -> Replay:
    """Imported events replayed in memory on event time, every settle window flushed."""
    replay = Replay(Engine.in_memory(clock=ManualClock()))
    for origin, event in records:
        replay.ingest(orjson.dumps(event), origin, parsed=event)
    replay.finish()
    return replay
