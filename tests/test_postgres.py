"""The PostgreSQL store with real processes: workers racing on the same debits, dispatchers
racing on the same notices, a worker killed mid-batch. Runs where STATEMACHINE_PG_DSN is set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlite_worker import book
from support import race_dispatchers

from statemachine import Engine, StoreError
from statemachine.precedence import fold

DSN = os.environ.get("STATEMACHINE_PG_DSN")
pytestmark = pytest.mark.skipif(
    not DSN, reason="set STATEMACHINE_PG_DSN to run the PostgreSQL tests"
)
TESTS = Path(__file__).resolve().parent
WORKER = TESTS / "sqlite_worker.py"


@pytest.fixture
def target() -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{DSN}?schema={schema}"
    with psycopg.connect(str(DSN), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def worker(
    target: str, loans: int, seed: int, *options: str, **kwargs: object
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), target, str(loans), str(seed), *options],
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )  # type: ignore[call-overload]


def test_four_workers_on_the_same_debits_lose_nothing_and_apply_nothing_twice(target: str) -> None:
    Engine.open(target).close()
    loans, seed = 150, 3
    workers = [worker(target, loans, seed, "--shuffle", str(n)) for n in range(4)]
    assert [w.wait(timeout=300) for w in workers] == [0, 0, 0, 0]
    events = {e.event_id: e for e in book(loans, seed)}
    by_debit: dict[str, list] = {}
    for event in events.values():
        by_debit.setdefault(event.debit_id, []).append(event)
    with Engine.open(target) as engine, psycopg.connect(str(DSN)) as conn:
        schema = target.rsplit("=", 1)[1]
        conn.execute(f"SET search_path TO {schema}")
        for debit_id, facts in by_debit.items():
            debit, folded = engine.get(debit_id), fold(facts, engine.spec)
            assert debit is not None
            assert (debit.state, debit.attempt, debit.needs_review, debit.version) == (
                folded.state,
                folded.attempt,
                folded.needs_review,
                len(facts),
            )
        accepted = Counter(
            e for (e,) in conn.execute("SELECT event_id FROM events WHERE accepted = 1")
        )
        assert set(accepted) == set(events)
        assert set(accepted.values()) == {1}
        keys = Counter(conn.execute("SELECT debit_id, attempt, kind FROM notices").fetchall())
        assert set(keys.values()) == {1}
        assert engine.verify() == []
    # The same final states as one process applying the stream in order.
    single = Engine.in_memory()
    for event in book(loans, seed):
        single.apply(event)
    with Engine.open(target) as engine:
        for debit_id in by_debit:
            assert engine.get(debit_id) == single.get(debit_id)


def test_a_worker_killed_mid_batch_loses_nothing(target: str) -> None:
    Engine.open(target).close()
    loans, seed = 600, 5
    events = book(loans, seed)
    child = worker(target, loans, seed, "--batch", "50")
    assert child.stdout is not None
    # Killed once it says its first batch is committed: mid-run, whatever the machine's load.
    first = child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    out, _ = child.communicate()
    committed = [int(line) for line in (first + out).split()]
    assert committed, "the worker ended without committing a batch"
    assert committed[-1] < len(events) - 1, "the worker finished before the kill"
    with Engine.open(target) as engine:
        stored = {h.event_id for d in engine.store.debit_ids() for h in engine.history(d)}
        assert {events[i].event_id for i in range(committed[-1] + 1)} <= stored
        assert engine.verify() == []
    rerun = worker(target, loans, seed, "--batch", "50")
    assert rerun.wait(timeout=300) == 0
    with Engine.open(target) as engine:
        assert engine.verify() == []
        assert sum(engine.metrics().debits_by_state.values()) == len({e.debit_id for e in events})


def test_dispatchers_in_several_processes_never_send_twice(target: str, tmp_path: Path) -> None:
    sent = race_dispatchers(target, tmp_path)  # FOR UPDATE SKIP LOCKED, with a lease
    assert len(sent) == 150
    assert set(sent.values()) == {1}


def test_replay_into_postgresql(target: str) -> None:
    from click.testing import CliRunner

    from statemachine.cli import main
    from statemachine.spec import bundled_path

    example = str(bundled_path("examples", "car-loans-month.jsonl"))
    on_pg = CliRunner().invoke(main, ["replay", example, "--db", target])
    assert on_pg.exit_code == 0, on_pg.output
    assert on_pg.output == CliRunner().invoke(main, ["replay", example]).output


def test_bad_targets_are_clear_errors() -> None:
    with pytest.raises(StoreError, match="cannot open"):
        Engine.open("postgresql://postgres@127.0.0.1:1/test", timeout=1)
    with pytest.raises(ValueError, match="schema must be a lower-case SQL identifier"):
        Engine.open(f"{DSN}?schema=Robert'); DROP TABLE students;--")


def test_a_foreign_schema_is_refused(target: str) -> None:
    schema = target.rsplit("=", 1)[1]
    with psycopg.connect(str(DSN), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.customers (id int)")
    with pytest.raises(StoreError, match="belongs to another application"):
        Engine.open(target)


def test_a_batched_replay_into_postgresql_matches_one_in_memory(target: str) -> None:
    from statemachine import ManualClock
    from statemachine.replay import BatchedReplay, replay_logs
    from statemachine.spec import bundled_path

    example = [bundled_path("examples", "car-loans-month.jsonl")]
    with Engine.open(target, clock=ManualClock()) as engine:
        summary = replay_logs(BatchedReplay(engine, batch_size=300), example)
        assert engine.verify() == []
        stored = {d: engine.get(d) for d in engine.store.debit_ids()}
        notices = sorted((n.notice_id, str(n.status), n.sent_at) for n in engine.notices())
    clean = Engine.in_memory(clock=ManualClock())
    expected = replay_logs(BatchedReplay(clean, batch_size=300), example)
    assert stored == {d: clean.get(d) for d in clean.store.debit_ids()}
    assert notices == sorted((n.notice_id, str(n.status), n.sent_at) for n in clean.notices())
    assert summary.to_dict() == expected.to_dict()
