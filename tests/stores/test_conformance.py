"""One suite, every store: P1-P6 and N1-N6 hold whatever the store, and writes are all or nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import DURABLE, EngineFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import T0, debit_of, ev

from statemachine import Engine, Event, ManualClock, Notice, RecordingSender, Spec, Verdict
from statemachine.precedence import fold
from statemachine.scenarios import Scenario, bundled_scenarios
from statemachine.testing import BASE_TIME, deliveries, events

SCENARIOS = bundled_scenarios()
FIXTURE = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_golden_scenario(make_engine: EngineFactory, path: Path) -> None:
    assert Scenario.load(path).run(make_engine=lambda spec, clock: make_engine(spec, clock)) == []


@FIXTURE
@given(data=st.data(), facts=events(max_size=8))
def test_p5_p6_convergence_and_rebuild(
    make_engine: EngineFactory, data: st.DataObject, facts: list[Event]
) -> None:
    finals = set()
    for label in ("first", "second"):
        # Closed at the end of each example, not of the test: a PostgreSQL engine holds pool
        # connections, and the fixture lives through all of hypothesis' examples.
        with make_engine(clock=ManualClock(BASE_TIME)) as engine:
            for event in data.draw(deliveries(facts), label=label):
                engine.apply(event)
            assert engine.verify() == []
            debit = engine.get("loan-42/2026-03")
        finals.add(debit and (debit.state, debit.attempt, debit.needs_review, debit.version))
    assert len(finals) == 1
    if facts:
        folded = fold(facts, engine.spec)
        assert finals == {(folded.state, folded.attempt, folded.needs_review, len(facts))}


@FIXTURE
@given(data=st.data(), facts=events(max_size=8))
def test_p1_and_one_verdict_per_arrival(
    make_engine: EngineFactory, data: st.DataObject, facts: list[Event]
) -> None:
    with make_engine() as engine:  # closed after each example, as above
        stream = data.draw(deliveries(facts))
        for event in stream:
            engine.apply(event)
        before = engine.get("loan-42/2026-03")
        assert all(engine.apply(e).verdict is Verdict.DUPLICATE for e in facts)
        assert engine.get("loan-42/2026-03") == before
        history = engine.history("loan-42/2026-03")
    assert len(history) == len(stream) + len(facts)
    assert Counter(h.verdict for h in history)[Verdict.DUPLICATE] == len(stream) - len(facts) + len(
        facts
    )


@FIXTURE
@given(data=st.data(), facts=events(max_size=8))
def test_the_store_counts_misinformed_customers_as_the_engine_lists_them(
    make_engine: EngineFactory, data: st.DataObject, facts: list[Event]
) -> None:
    clock = ManualClock(BASE_TIME)
    with make_engine(clock=clock) as engine:
        sms = RecordingSender("sms")
        for event in data.draw(deliveries(facts)):
            engine.apply(event)
            if data.draw(st.booleans(), label="dispatch now"):
                clock.advance_to(clock.now + timedelta(minutes=data.draw(st.integers(0, 30))))
                engine.dispatch_due([sms])
            assert engine.metrics(now=clock.now).misinformed == len(engine.misinformed())


@st.composite
def flip_flops(draw: st.DrawFn) -> list[Event]:
    """One attempt's outcome reported again and again, each report newer than the last and so
    winning in turn (P3): the outcome keeps changing after its correction went out."""
    outcomes = st.sampled_from(["succeeded", "failed", "reversed", "reinstated"])
    kinds = ["created", "submitted", *draw(st.lists(outcomes, min_size=2, max_size=6))]
    return [
        Event(f"flip-{number}", "loan-42/2026-03", kind, BASE_TIME + timedelta(minutes=20 * number),
              source="gateway", amount=100 if kind == "created" else None)
        for number, kind in enumerate(kinds)
    ]  # fmt: skip


@FIXTURE
@given(data=st.data(), stream=st.one_of(events(max_size=10).flatmap(deliveries), flip_flops()))
def test_n3_n4_n6_the_last_word_is_the_outcome_in_any_order(
    make_engine: EngineFactory, data: st.DataObject, stream: list[Event]
) -> None:
    """Any events, any arrival order, dispatch at any moments, a channel that refuses at times:
    after the final dispatch past the settle window no customer is misinformed, no failure
    notice went out while the debit was succeeded, and no notice id twice on one channel."""
    clock = ManualClock(BASE_TIME)
    window = timedelta(minutes=data.draw(st.sampled_from([0, 15]), label="settle window"))
    with make_engine(spec=Spec.default().evolve(settle_window=window), clock=clock) as engine:
        seen: list[tuple[str, Notice, str | None]] = []  # (channel, notice, state at the send)

        def witness(channel: str) -> Callable[[Notice], None]:
            def look(notice: Notice) -> None:
                debit = engine.get(notice.debit_id)
                seen.append((channel, notice, debit.state if debit else None))

            return look

        refusals = data.draw(st.integers(0, 3), label="sms refusals")
        senders = [
            RecordingSender("sms", fail=refusals, on_send=witness("sms")),
            RecordingSender("push", on_send=witness("push")),
        ]
        for event in stream:
            engine.apply(event)
            if data.draw(st.booleans(), label="dispatch now"):
                wait = data.draw(st.sampled_from([0, 1, 16, 60]), label="minutes")
                clock.advance_to(clock.now + timedelta(minutes=wait))
                engine.dispatch_due(senders)
        clock.advance_to(clock.now + timedelta(days=1))
        engine.dispatch_due(senders)
        assert engine.misinformed() == []
        sent = [(channel, n.notice_id) for channel, n, _ in seen]
        assert len(sent) == len(set(sent)), sent
        for _, notice, state in seen:
            assert not (notice.outcome == "failed" and state == "succeeded"), notice
            assert state == notice.outcome, (notice, state)


def test_history_keeps_raw_text_origin_and_reason(make_engine: EngineFactory) -> None:
    engine = make_engine()
    raw = ev("succeeded", 0).to_json()
    engine.ingest(raw, origin="log:1")
    engine.ingest("not json", origin="log:2")
    (stored,) = engine.history("d-1")
    assert (stored.raw, stored.origin, stored.verdict, stored.reason) == (
        raw,
        "log:1",
        "applied",
        "new debit, succeeded",
    )
    assert stored.event is not None
    assert stored.event.type == "succeeded"
    (bad,) = engine.rejected()
    assert (bad.raw, bad.origin, bad.verdict) == ("not json", "log:2", "invalid")


def test_writes_are_all_or_nothing(
    make_engine: EngineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(clock=ManualClock(T0))
    engine.apply(ev("submitted", 0))
    failing = ev("succeeded", 1)

    def boom(*args: object) -> None:
        raise RuntimeError("planner crashed")

    monkeypatch.setattr("statemachine.decide.plan", boom)
    with pytest.raises(RuntimeError, match="planner crashed"):
        engine.apply(failing)
    monkeypatch.undo()
    debit = engine.get("d-1")
    assert debit is not None
    assert (debit.state, debit.version) in {("submitted", 1)}
    assert [h.event_id for h in engine.history("d-1")] == [engine.history("d-1")[0].event_id]
    assert engine.notices() == []
    assert engine.apply(failing).verdict is Verdict.APPLIED  # not a duplicate: it was never stored


# The in-memory store applies a batch event by event.
@pytest.mark.parametrize("store_kind", DURABLE, indirect=True)
def test_batches_are_all_or_nothing(
    make_engine: EngineFactory, store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine()
    calls = []

    def flaky(*args: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("planner crashed")

    monkeypatch.setattr("statemachine.decide.plan", flaky)
    with pytest.raises(RuntimeError):
        engine.apply_many([ev("succeeded", 0, debit_id="a"), ev("succeeded", 0, debit_id="b")])
    assert engine.get("a") is None
    assert engine.get("b") is None


def test_notices_n1_to_n3(make_engine: EngineFactory) -> None:
    clock = ManualClock(T0)
    engine = make_engine(clock=clock)
    sms = RecordingSender("sms")
    engine.apply(ev("failed", 0, source="gateway"))
    (queued,) = engine.notices()
    assert (queued.kind, queued.status, queued.due_at) == (
        "failed",
        "queued",
        T0 + timedelta(minutes=15),
    )
    engine.apply(ev("succeeded", 1, source="settlement"))
    clock.advance_to(T0 + timedelta(minutes=20))
    handled = {n.kind: n for n in engine.dispatch_due([sms])}
    assert handled["failed"].status == "cancelled"
    assert handled["succeeded"].status == "sent"
    assert [n.kind for n in sms.sent] == ["succeeded"]
    statuses = {n.kind: (n.status, n.channel) for n in engine.notices()}
    assert statuses == {"failed": ("cancelled", None), "succeeded": ("sent", "sms")}
    engine.apply(ev("failed", 2, source="operator"))
    clock.advance_to(T0 + timedelta(hours=1))
    (correction,) = engine.dispatch_due([sms])
    assert (correction.kind, correction.outcome, correction.status) == (
        "correction",
        "failed",
        "sent",
    )


def test_metrics(make_engine: EngineFactory) -> None:
    engine = make_engine()
    engine.apply(ev("succeeded", 0, debit_id="a"))
    engine.apply(ev("failed", 1, debit_id="a", source="internal"))
    engine.apply(ev("submitted", 0, debit_id="b", source="mystery"))
    metrics = engine.metrics()
    assert metrics.events_by_verdict == {"applied": 2, "conflict": 1}
    assert metrics.debits_by_state == {"succeeded": 1, "submitted": 1}
    assert metrics.unknown_sources == {"mystery": 1}


def test_a_new_engine_on_the_same_store_sees_the_same_debits(
    make_engine: EngineFactory, store_kind: str
) -> None:
    engine = make_engine()
    engine.apply(ev("failed", 0))
    other = Engine(engine.store, spec=engine.spec)
    assert other.apply(ev("retried", 1, attempt=2)).state == "pending"
    assert debit_of(engine, "d-1").attempt == 2


def test_an_unknown_debit_has_nothing(make_engine: EngineFactory) -> None:
    engine = make_engine()
    assert engine.get("nope") is None
    assert engine.history("nope") == []
    assert engine.notices("nope") == []


# The in-memory store has no SQL to fail.
@pytest.mark.parametrize("store_kind", DURABLE, indirect=True)
def test_a_failing_write_rolls_back_the_whole_transaction(
    make_engine: EngineFactory, store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from statemachine import StoreError

    engine = make_engine()
    engine.apply(ev("submitted", 0))
    # The event and debit rows are written first; the notice's write then fails.
    mark = "?" if store_kind == "sqlite" else "%s"
    broken = f"INSERT INTO no_such_table VALUES ({', '.join([mark] * 16)})"
    monkeypatch.setattr(engine.store.SQL, "upsert_notice", broken)  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match="no_such_table"):
        engine.apply(ev("succeeded", 1, event_id="late"))
    monkeypatch.undo()
    assert [h.event_id for h in engine.history("d-1")] == [engine.history("d-1")[0].event_id]
    debit = engine.get("d-1")
    assert debit is not None
    assert (debit.state, debit.version) == ("submitted", 1)
    assert engine.notices() == []
    assert engine.apply(ev("succeeded", 1, event_id="late")).verdict is Verdict.APPLIED


def test_raw_input_is_kept_as_received_whatever_its_format(make_engine: EngineFactory) -> None:
    engine = make_engine()
    line = "627121042882001234567890     0000035600LOAN-42        ALICE CUSTOMER          0121042880000001"
    event = ev("submitted", 0)
    engine.apply(event, raw=line, origin="march.ach:3")
    assert engine.apply(event, raw=line).verdict is Verdict.DUPLICATE
    assert engine.apply(ev("succeeded", 1)).state == "succeeded"
    first = engine.history("d-1")[0]
    assert (first.raw, first.origin, first.event) == (line, "march.ach:3", event)


def test_a_transaction_commits_its_writes_together_or_not_at_all(
    make_engine: EngineFactory, store_kind: str
) -> None:
    engine = make_engine()
    with engine.transaction():
        engine.apply(ev("submitted", 0, debit_id="a"))
        assert engine.get("a") is not None  # reads inside see the writes

    def stopped_midway() -> None:
        with engine.transaction():
            engine.apply(ev("submitted", 0, debit_id="b"))
            engine.apply(ev("failed", 1, debit_id="a"))
            raise RuntimeError("the replay was stopped")

    with pytest.raises(RuntimeError):
        stopped_midway()
    if store_kind == "memory":
        return  # its writes are immediate: nothing to roll back
    assert engine.get("b") is None
    debit = engine.get("a")
    assert debit is not None
    assert debit.state == "submitted"
    assert engine.notices() == []
    assert engine.apply(ev("failed", 1, debit_id="a")).verdict is Verdict.APPLIED


# The in-memory store has no SQL to fail.
@pytest.mark.parametrize("store_kind", DURABLE, indirect=True)
def test_a_failed_write_inside_a_transaction_undoes_only_itself(
    make_engine: EngineFactory, store_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from statemachine import StoreError

    engine = make_engine()
    # A statement of the write path that runs before the rows are written: PostgreSQL writes
    # the event's row at once; SQLite stages the unit's rows, and asks only whether the event
    # was stored before (the debit is the unit's own).
    if store_kind == "sqlite":
        statement, failing = "priors", "SELECT * FROM no_such_table WHERE event_id IN ({})"
    else:
        statement = "insert_event"
        failing = f"INSERT INTO no_such_table VALUES ({', '.join(['%s'] * 12)})"
    with engine.transaction():
        engine.apply(ev("submitted", 0, debit_id="a"))
        # The debit's row may wait for the end of the unit: the failed write's decision must
        # not reach it either.
        monkeypatch.setattr(engine.store.SQL, statement, failing)  # type: ignore[attr-defined]
        with pytest.raises(StoreError, match="no_such_table"):
            engine.apply(ev("succeeded", 1, debit_id="a", event_id="late"))
        monkeypatch.undo()
        engine.apply(ev("submitted", 2, debit_id="b"))
    assert [h.event_id for h in engine.history("a")] == [engine.history("a")[0].event_id]
    assert {d: debit_of(engine, d).state for d in "ab"} == {"a": "submitted", "b": "submitted"}


def test_report_aggregates(make_engine: EngineFactory) -> None:
    clock = ManualClock(T0)
    engine = make_engine(clock=clock)
    engine.apply(ev("failed", 0, debit_id="a"))
    engine.apply(ev("succeeded", 0, debit_id="b"))
    clock.advance_to(T0 + timedelta(hours=1))
    engine.dispatch_due([RecordingSender()])  # a: failed sent; b: succeeded sent
    engine.apply(ev("succeeded", 30, debit_id="a", source="settlement"))  # a is corrected
    engine.apply(ev("succeeded", 0, debit_id="c", attempt=2))  # parked: no attempt 2 yet
    tally = {(kind, status): (day, n) for kind, status, day, n in engine.store.notice_tally()}
    assert tally[("failed", "sent")] == ("2026-03-05", 1)
    assert tally[("succeeded", "sent")] == ("2026-03-05", 1)
    assert tally[("correction", "queued")] == ("2026-03-05", 1)
    assert engine.store.told("failed", ["succeeded", "reversed"]) == ["a"]
    assert engine.store.told("failed", ["failed"]) == []
    assert engine.store.outcomes(["a", "b", "zz"]) == {"a": ("succeeded", 1), "b": ("succeeded", 1)}
    assert engine.store.review_ids() == []


def test_queued_notices_by_due_time(make_engine: EngineFactory) -> None:
    clock = ManualClock(T0)
    engine = make_engine(clock=clock)
    engine.apply(ev("failed", 0, debit_id="a"))  # due after the settle window
    engine.apply(ev("succeeded", 0, debit_id="b"))  # due at once
    window = engine.spec.settle_window
    assert [n for _, n, _ in engine.store.queued(T0, T0 + window)] == [
        "b#1:succeeded",
        "a#1:failed",
    ]
    assert engine.store.queued(T0 + timedelta(seconds=1), T0 + window - timedelta(seconds=1)) == []
    assert engine.store.next_due(T0) == T0 + window
    assert engine.store.next_due(T0 + window) is None
    engine.dispatch_due([RecordingSender()], now=T0 + window)
    assert engine.store.queued(T0, T0 + window) == []
