"""What every durable store does, written once and run for SQLite and PostgreSQL: workers in
other processes racing on the same debits, a worker killed at any point or mid-batch,
dispatchers racing on the same notices, foreign and newer databases refused, replays that end
as they would in memory. Store-specific tests (SQLite pragmas and locks, PostgreSQL DSNs) stay
in test_sqlite.py and test_postgres.py."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import DURABLE, Target, undo_schema_3, undo_schema_4
from sqlite_worker import book
from support import Child, race_dispatchers

from statemachine import Engine, Event, ManualClock, StoreError
from statemachine.precedence import fold
from statemachine.spec import bundled_path
from statemachine.stores.sqlite import SCHEMA_VERSION

pytestmark = pytest.mark.parametrize("store_kind", DURABLE, indirect=True)
WORKER = str(Path(__file__).resolve().parents[1] / "sqlite_worker.py")
EXAMPLE = bundled_path("examples", "car-loans-month.jsonl")
# A few seconds of durable applies, one event at a time; PostgreSQL commits several times
# slower than SQLite here (a round trip and a server fsync per event).
KILLED_LOANS = {"sqlite": 1500, "postgres": 300}
SHARED_LOANS = {"sqlite": 200, "postgres": 150}


def check_consistent(target: Target) -> None:
    """No half-written event, no notice without its change, state equals a rebuild (P6)."""
    facts = Counter(d for (d,) in target.query("SELECT debit_id FROM events WHERE accepted = 1"))
    notices: dict[tuple[str, int], set[str]] = {}
    for debit_id, attempt, kind in target.query("SELECT debit_id, attempt, kind FROM notices"):
        notices.setdefault((debit_id, attempt), set()).add(kind)
    with Engine.open(target.url) as engine:
        rows = target.query("SELECT debit_id, version, state, attempt FROM debits")
        for debit_id, version, state, attempt in rows:
            assert version == facts[debit_id], debit_id
            if state in engine.spec.outcomes:
                kinds = notices.get((debit_id, attempt), set())
                assert kinds & {state, "correction"}, (debit_id, state, kinds)
        assert engine.verify() == []
    orphans = target.query(
        "SELECT count(*) FROM notices WHERE debit_id NOT IN (SELECT debit_id FROM debits)"
    )
    assert orphans == [(0,)]


def stored_event_ids(target: Target) -> set[str]:
    return {event_id for (event_id,) in target.query("SELECT event_id FROM events")}


@pytest.mark.slow
def test_a_worker_killed_at_random_points_loses_nothing_acknowledged(target: Target) -> None:
    loans, seed = KILLED_LOANS[target.kind], 11
    events = book(loans, seed)
    rng = random.Random(5)
    kills = []
    for _ in range(8):
        child = Child(WORKER, target.url, str(loans), str(seed))
        # Kill once it has acknowledged a random number of events: anywhere in its run,
        # mid-commit included, whatever the machine's speed.
        after = rng.randrange(len(events) // 4)
        child.wait_for(str(after).__eq__)  # it prints 0, 1, 2, ... as each commits
        acknowledged = [int(line) for line in child.kill()]
        kills.append(len(acknowledged))
        check_consistent(target)
        stored = stored_event_ids(target)
        assert [events[i].event_id for i in acknowledged if events[i].event_id not in stored] == []
    assert any(0 < k < len(events) for k in kills), kills  # some kills landed mid-run
    # Every rerun went through the log from the start: what was stored came back as duplicates.
    done = Child(WORKER, target.url, str(loans), str(seed)).finish()
    assert len(done) == len(events)
    check_consistent(target)
    reference = Engine.in_memory()
    for event in events:
        reference.apply(event)
    with Engine.open(target.url) as engine:
        for debit_id in reference.store.debit_ids():
            assert engine.get(debit_id) == reference.get(debit_id)


def test_a_worker_killed_mid_batch_loses_nothing(target: Target) -> None:
    loans, seed, size = 600, 5, 50
    events = book(loans, seed)
    Engine.open(target.url).close()
    child = Child(WORKER, target.url, str(loans), str(seed), "--batch", str(size),
                  "--hold-after", "3")  # fmt: skip
    holding = child.wait_for(lambda line: line.startswith("holding "))
    first, last = map(int, holding.split()[1:])
    committed = [int(line) for line in child.kill() if not line.startswith("holding")]
    assert (committed, first, last) == ([49, 99, 149], 150, 199)
    # The three committed batches are there whole; nothing of the batch being written is.
    assert stored_event_ids(target) == {e.event_id for e in events[:first]}
    check_consistent(target)
    Child(WORKER, target.url, str(loans), str(seed), "--batch", str(size)).finish()
    check_consistent(target)
    with Engine.open(target.url) as engine:
        assert sum(engine.metrics().debits_by_state.values()) == len({e.debit_id for e in events})


@pytest.mark.slow
@pytest.mark.parametrize("batch", [[], ["--batch", "9"]], ids=["per-event", "batched"])
def test_four_workers_on_the_same_debits_lose_nothing_and_apply_nothing_twice(
    target: Target, batch: list[str]
) -> None:
    loans, seed = SHARED_LOANS[target.kind], 3
    Engine.open(target.url).close()
    workers = [
        Child(WORKER, target.url, str(loans), str(seed), "--shuffle", str(n), *batch)
        for n in range(4)
    ]
    for worker in workers:
        worker.finish()
    check_consistent(target)
    events = {e.event_id: e for e in book(loans, seed)}
    by_debit: dict[str, list[Event]] = {}
    for event in events.values():
        by_debit.setdefault(event.debit_id, []).append(event)
    with Engine.open(target.url) as engine:
        for debit_id, facts in by_debit.items():
            debit, folded = engine.get(debit_id), fold(facts, engine.spec)
            assert debit is not None
            assert (debit.state, debit.attempt, debit.needs_review, debit.version) == (
                folded.state,
                folded.attempt,
                folded.needs_review,
                len(facts),
            )
    accepted = Counter(e for (e,) in target.query("SELECT event_id FROM events WHERE accepted = 1"))
    assert set(accepted) == set(events)
    assert set(accepted.values()) == {1}
    keys = Counter(target.query("SELECT debit_id, attempt, kind FROM notices"))
    assert set(keys.values()) == {1}
    # The same final states as one process applying the stream in order.
    single = Engine.in_memory()
    for event in book(loans, seed):
        single.apply(event)
    with Engine.open(target.url) as engine:
        for debit_id in by_debit:
            assert engine.get(debit_id) == single.get(debit_id)


def test_dispatchers_in_several_processes_never_send_twice(target: Target, tmp_path: Path) -> None:
    sent = race_dispatchers(target.url, tmp_path)  # claims with a lease (SKIP LOCKED on PG)
    assert len(sent) == 150
    assert set(sent.values()) == {1}
    with Engine.open(target.url) as engine:
        assert engine.metrics().notices_by_status == {"sent": 150}


def test_a_foreign_database_is_refused_without_writes(target: Target) -> None:
    target.plant_foreign_table()
    with pytest.raises(StoreError, match=r"another application \(tables: customers\)"):
        Engine.open(target.url)
    assert target.tables() == {"customers"}


def test_schema_is_versioned_and_newer_ones_are_refused(target: Target) -> None:
    Engine.open(target.url).close()
    version = "SELECT value FROM statemachine_meta WHERE key = 'schema_version'"
    assert target.query(version) == [(str(SCHEMA_VERSION),)]
    target.execute("UPDATE statemachine_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(
        StoreError, match=f"schema version 99 is newer than this package's {SCHEMA_VERSION}; up"
    ):
        Engine.open(target.url)
    assert target.query(version) == [("99",)]


def test_a_version_1_database_is_migrated_to_notices_without_a_cap(target: Target) -> None:
    """Version 1 kept one notice per (debit, attempt, kind); opening it lifts that key, so a
    second correction can be stored (N6)."""
    from support import T0, ev

    from statemachine import RecordingSender

    Engine.open(target.url).close()
    undo_schema_3(target)
    target.execute("DROP INDEX notices_by_debit")
    if target.kind == "sqlite":
        target.execute(
            "CREATE UNIQUE INDEX notices_one_per_kind ON notices (debit_id, attempt, kind)"
        )
    else:
        target.execute(
            "ALTER TABLE notices ADD CONSTRAINT notices_debit_id_attempt_kind_key"
            " UNIQUE (debit_id, attempt, kind)"
        )
    target.execute("UPDATE statemachine_meta SET value = '1' WHERE key = 'schema_version'")
    clock = ManualClock(T0)
    sms = RecordingSender("sms")
    with Engine.open(target.url, clock=clock) as engine:
        for number, (kind, source) in enumerate(
            [("succeeded", "gateway"), ("failed", "settlement"), ("succeeded", "operator")]
        ):
            engine.apply(ev(kind, number, source=source))
            clock.advance_to(clock.now + timedelta(hours=1))
            engine.dispatch_due([sms])
        assert engine.misinformed() == []
    version = "SELECT value FROM statemachine_meta WHERE key = 'schema_version'"
    assert target.query(version) == [(str(SCHEMA_VERSION),)]
    assert [n.kind for n in sms.sent] == ["succeeded", "correction", "correction"]


def test_replay_into_a_store_prints_what_a_replay_in_memory_prints(target: Target) -> None:
    from click.testing import CliRunner

    from statemachine.cli import main

    stored = CliRunner().invoke(main, ["replay", str(EXAMPLE), "--db", target.url])
    assert stored.exit_code == 0, stored.output
    assert stored.output == CliRunner().invoke(main, ["replay", str(EXAMPLE)]).output


def test_a_batched_replay_into_a_store_matches_one_in_memory(target: Target) -> None:
    from statemachine.replay import BatchedReplay, replay_logs

    with Engine.open(target.url, clock=ManualClock()) as engine:
        summary = replay_logs(BatchedReplay(engine, batch_size=300), [EXAMPLE])
        assert engine.verify() == []
        stored = {d: engine.get(d) for d in engine.store.debit_ids()}
        notices = sorted((n.notice_id, str(n.status), n.sent_at) for n in engine.notices())
    clean = Engine.in_memory(clock=ManualClock())
    expected = replay_logs(BatchedReplay(clean, batch_size=300), [EXAMPLE])
    assert stored == {d: clean.get(d) for d in clean.store.debit_ids()}
    assert notices == sorted((n.notice_id, str(n.status), n.sent_at) for n in clean.notices())
    assert summary.to_dict() == expected.to_dict()


def test_a_version_3_database_is_migrated_to_receipts(target: Target) -> None:
    """Schema 4 only adds (a table, two columns): a version 3 database opens, migrates and
    takes receipts."""
    from support import T0, ev

    from statemachine import RecordingSender

    Engine.open(target.url).close()
    undo_schema_4(target)
    with Engine.open(target.url, clock=ManualClock(T0)) as engine:
        engine.apply(ev("succeeded", 0))
        engine.dispatch_due([RecordingSender("sms")])
    version = "SELECT value FROM statemachine_meta WHERE key = 'schema_version'"
    assert target.query(version) == [(str(SCHEMA_VERSION),)]
    with Engine.open(target.url, clock=ManualClock(T0)) as engine:
        result = engine.record_receipt("d-1#1:succeeded", "sms", "delivered", T0)
        assert result.verdict == "applied"
        assert engine.metrics().delivery_rate == 1.0
