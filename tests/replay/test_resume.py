"""N5 across a crash: a replay interrupted at any point and run again ends with the debits and
the notices of one that ran through."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import DURABLE, PG_DSN, Target
from support import DEADLINE, T0, Child, ev, interrupt_after

from statemachine import Engine, ManualClock, Notice
from statemachine.dispatch import Sender
from statemachine.replay import BatchedReplay, Replay, replay_logs
from statemachine.replay.runner import LEGACY_NOTICE
from statemachine.synthetic import car_loan_book

try:
    from psycopg.errors import UndefinedTable
except ImportError:  # PostgreSQL is optional: then no child uses it

    class UndefinedTable(Exception):  # type: ignore[no-redef]
        """Stands in for psycopg's error where psycopg is not installed."""


# A success (10:05) replaced by an operator's failure that arrives later but happened earlier
# (10:01): the success notice, due at 10:05, is judged at the next advance (10:10), when the
# debit has failed, so it is cancelled and only the failure is announced.
FOUR_LINES = [
    {"event_id": "gw-d", "debit_id": "D", "type": "succeeded",
     "occurred_at": "2026-03-05T10:05:00+00:00", "source": "gateway"},
    {"event_id": "gw-a", "debit_id": "A", "type": "submitted",
     "occurred_at": "2026-03-05T10:00:00+00:00", "source": "gateway"},
    {"event_id": "op-d", "debit_id": "D", "type": "failed",
     "occurred_at": "2026-03-05T10:01:00+00:00", "source": "operator"},
    {"event_id": "gw-b", "debit_id": "B", "type": "submitted",
     "occurred_at": "2026-03-05T10:10:00+00:00", "source": "gateway"},
]  # fmt: skip


def runner(
    engine: Engine, batch_size: int, senders: list[Sender] | None = None
) -> Replay | BatchedReplay:
    if batch_size == 1:
        return Replay(engine, senders)
    return BatchedReplay(engine, senders, batch_size=batch_size)


Outcome = dict[str, tuple[Any, ...]]


def outcome(engine: Engine) -> Outcome:
    """What a replay must end with whatever stopped it on the way: each debit's state, attempt,
    version and review flag, and each notice's status, channel, time sent, kind and outcome."""
    found: Outcome = {}
    for debit_id in engine.store.debit_ids():
        debit = engine.get(debit_id)
        assert debit is not None
        found[debit_id] = (debit.state, debit.attempt, debit.version, debit.needs_review)
    for n in engine.notices():
        found[n.notice_id] = (n.status.value, n.channel, n.sent_at, n.kind, n.outcome)
    return found


def differences(got: Outcome, want: Outcome) -> list[tuple[str, Any, Any]]:
    """(debit or notice id, what one run ended with, what the other did), where they differ."""
    return [(key, got.get(key), want.get(key)) for key in sorted(got.keys() | want.keys())
            if got.get(key) != want.get(key)]  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 2, 3])
@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_a_replay_stopped_after_a_commit_resumes_to_the_clean_notices(
    tmp_path: Path, batch_size: int, stop_after: int
) -> None:
    log = tmp_path / "four.jsonl"
    log.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in FOUR_LINES))
    with Engine.open(tmp_path / "clean.sqlite", clock=ManualClock()) as engine:
        replay_logs(runner(engine, batch_size), [log])
        clean = outcome(engine)
    assert clean["D#1:succeeded"][:3] == ("cancelled", None, None)
    assert clean["D#1:failed"][:3] == ("sent", "replay", datetime(2026, 3, 5, 10, 20, tzinfo=UTC))
    db = tmp_path / "resumed.sqlite"
    with (
        Engine.open(db, clock=ManualClock()) as engine,
        contextlib.suppress(KeyboardInterrupt),
    ):
        replay_logs(runner(engine, batch_size), [log], progress=interrupt_after(stop_after))
    with Engine.open(db, clock=ManualClock()) as engine:
        summary = replay_logs(runner(engine, batch_size), [log])
        assert summary.resumed == stop_after // batch_size * batch_size
        assert differences(outcome(engine), clean) == []


# A receipt line (for a notice no debit has: rejected) moves the clock to 10:05, before
# D's success is planned at that time: a resume that skips them must not send it then.
RECEIPT_FIRST = [
    {"type": "receipt", "notice_id": "X#1", "channel": "replay", "status": "delivered",
     "occurred_at": "2026-03-05T10:05:00+00:00"},
    FOUR_LINES[1], FOUR_LINES[0], FOUR_LINES[2], FOUR_LINES[3],
]  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_receipt_line_already_stored_only_moves_the_clock(
    tmp_path: Path, batch_size: int
) -> None:
    log = tmp_path / "receipt.jsonl"
    log.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in RECEIPT_FIRST))
    with Engine.open(tmp_path / "clean.sqlite", clock=ManualClock()) as engine:
        replay_logs(runner(engine, batch_size), [log])
        clean = outcome(engine)
    assert clean["D#1:succeeded"][:3] == ("cancelled", None, None)
    db = tmp_path / "resumed.sqlite"
    with (
        Engine.open(db, clock=ManualClock()) as engine,
        contextlib.suppress(KeyboardInterrupt),
    ):
        replay_logs(runner(engine, batch_size), [log], progress=interrupt_after(3))
    with Engine.open(db, clock=ManualClock()) as engine:
        assert replay_logs(runner(engine, batch_size), [log]).resumed == 3
        assert differences(outcome(engine), clean) == []


class Crash(BaseException):
    """The process dies: nothing after it runs, no handler for errors catches it."""


class DyingSender:
    """A channel whose process dies as it hands over the first notice."""

    name = "replay"

    def send(self, notice: Notice) -> None:
        raise Crash(notice.notice_id)


# Logs whose first send, the one the process dies in, is at a clock advance (D's success, at
# 10:05) or at the end, once the clock passes the settle window (D's failure, at 10:15).
DIES_IN = {
    "an advance": (
        [("succeeded", 0, "D"), ("succeeded", 5, "E"), ("submitted", 10, "B")],
        ("D#1:succeeded", 5),
    ),
    "finish": ([("submitted", 0, "E"), ("failed", 0, "D")], ("D#1:failed", 15)),
}


@pytest.mark.parametrize("batch_size", [1, 2])
@pytest.mark.parametrize("dies_in", sorted(DIES_IN))
def test_a_replay_that_dies_mid_dispatch_resumes_to_the_clean_notices(
    tmp_path: Path, batch_size: int, dies_in: str
) -> None:
    lines, (first_sent, minutes) = DIES_IN[dies_in]
    log = tmp_path / "dies.jsonl"
    log.write_bytes(b"".join(orjson.dumps(ev(kind, at, debit_id=debit_id).to_dict()) + b"\n"
                             for kind, at, debit_id in lines))  # fmt: skip
    with Engine.open(tmp_path / "clean.sqlite", clock=ManualClock()) as engine:
        replay_logs(runner(engine, batch_size), [log])
        clean = outcome(engine)
    assert clean[first_sent][:3] == ("sent", "replay", T0 + timedelta(minutes=minutes))
    db = tmp_path / "resumed.sqlite"
    with Engine.open(db, clock=ManualClock()) as engine:
        dying = runner(engine, batch_size, [DyingSender()])
        with pytest.raises(Crash):
            replay_logs(dying, [log])
    with Engine.open(db, clock=ManualClock()) as engine:
        replay_logs(runner(engine, batch_size), [log])
        assert differences(outcome(engine), clean) == []


def disordered_log(path: Path, loans: int, seed: int) -> int:
    """Write a synthetic book whose lines arrive further out of order than the field's (a third
    of them pushed up to 40 lines later), with a few bad lines; returns how many lines are
    stored (all but the legacy notice records)."""
    rng = random.Random(seed)
    records: list[Any] = list(car_loan_book(loans, seed=seed))
    for index in range(len(records)):
        if rng.random() < 0.3:
            records.insert(min(len(records) - 1, index + rng.randrange(1, 40)), records.pop(index))
    lines = [orjson.dumps(record) for record in records]
    for _ in range(3):
        lines.insert(rng.randrange(len(lines)), b'{"event_id": "broken", "type": "failed"')
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return sum(1 for record in records if record["type"] != LEGACY_NOTICE) + 3


class Stored:
    """Counts the events a replay process has committed, on a read-only connection of its own
    (0 until the process has made its tables)."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._conn: Any = None

    def __call__(self) -> int:
        try:
            if self._conn is None:
                self._conn = self._connect()
            return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])
        except (sqlite3.OperationalError, UndefinedTable):
            self.close()  # no file or no tables yet: look again at the next poll
            return 0

    def _connect(self) -> Any:
        if self.target.schema is None:
            return sqlite3.connect(f"file:{self.target.url}?mode=ro", uri=True)
        import psycopg

        assert PG_DSN is not None
        conn = psycopg.connect(PG_DSN, autocommit=True)
        conn.execute(f"SET search_path TO {self.target.schema}")
        conn.execute("SET default_transaction_read_only = on")
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def kill_after_commit(child: Child, stored: Stored, threshold: int) -> bool:
    """SIGKILL the child once it has committed ``threshold`` events or more: anywhere after
    that commit, mid-batch or mid-dispatch included. False if it ended by itself first."""
    deadline = time.monotonic() + DEADLINE
    while stored() < threshold:
        if child.process.poll() is not None:
            child.finish()
            return False
        assert time.monotonic() < deadline, f"{child.args}: stored under {threshold} events"
        time.sleep(0.002)  # a poll of the store, not a wait for the child to get somewhere
    child.kill()
    return child.process.returncode == -signal.SIGKILL


KILLS = {"sqlite": 36, "postgres": 10}  # PostgreSQL commits slower: fewer kills, as short
CHAIN = 6  # kills of one database before it is replayed to the end
BATCHES = [1, 2, 7, 50, 300]


def fresh_target(kind: str, folder: Path, number: int) -> Target:
    if kind == "sqlite":
        return Target(kind, str(folder / f"chain-{number}.sqlite"))
    assert PG_DSN is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    return Target(kind, f"{PG_DSN}?schema={schema}", schema)


def kill_chain(
    target: Target, log: Path, rows: int, batch: int, rng: random.Random, temp: Path
) -> tuple[Outcome, list[int]]:
    """Replay ``log`` into ``target``, SIGKILLing the process up to CHAIN times at random
    commits and starting it again, then let it run through. Returns the store's outcome and
    the number of events stored when each kill was ordered. The processes' temporary files
    go to ``temp``."""
    stored = Stored(target)
    command = ["-m", "statemachine", "replay", str(log), "--db", target.url, "--batch", str(batch)]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(temp)}
    # Spread over the whole log; `rows` itself kills it once every line is stored (in finish).
    spread = sorted(rng.randint(1, rows) for _ in range(CHAIN - 1))
    chain: list[int] = []
    for planned in [*spread, rng.choice([rows, spread[-1]])]:
        done = stored()
        if done >= rows:
            break
        threshold = max(planned, done + 1)  # always after a commit of the process killed
        if not kill_after_commit(Child(*command, env=env), stored, threshold):
            break  # it ran through before the kill
        chain.append(threshold)
    stored.close()
    Child(*command, env=env).finish()
    with Engine.open(target.url, clock=ManualClock()) as engine:
        assert engine.verify() == []
        return outcome(engine), chain


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", DURABLE, indirect=True)
def test_replay_processes_killed_at_random_points_resume_to_the_clean_end(
    store_kind: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("STATEMACHINE_KILL_SEED", random.randrange(1_000_000)))
    print(f"STATEMACHINE_KILL_SEED={seed}")  # shown when the test fails: rerun with it set
    log = tmp_path / "disordered.jsonl"
    rows = disordered_log(log, 300, seed)
    with Engine.in_memory(clock=ManualClock()) as engine:
        replay_logs(Replay(engine), [log])
        clean = outcome(engine)
    batches = random.Random(seed).sample(BATCHES, len(BATCHES))
    kills, chains, started = 0, 0, time.monotonic()
    temp = tmp_path / "tmp"
    temp.mkdir()

    def run(number: int) -> tuple[int, Outcome, list[int]]:
        target = fresh_target(store_kind, tmp_path, number)
        batch = batches[number % len(batches)]
        try:
            rng = random.Random(f"{seed}/{number}")
            return batch, *kill_chain(target, log, rows, batch, rng, temp)
        finally:
            if target.schema is not None:
                target.execute(f"DROP SCHEMA IF EXISTS {target.schema} CASCADE")

    with ThreadPoolExecutor(2) as pool:  # two chains at once, a child per core
        while kills < KILLS[store_kind]:
            for batch, ended, chain in pool.map(run, [chains, chains + 1]):
                assert differences(ended, clean) == [], (
                    f"STATEMACHINE_KILL_SEED={seed} --batch {batch}: killed after {chain} events"
                )
                kills += len(chain)
            chains += 2
    assert list(temp.iterdir()) == []  # not even a killed replay leaves a temporary file
    print(f"{kills} kills in {chains} chains, {time.monotonic() - started:.1f} s")
