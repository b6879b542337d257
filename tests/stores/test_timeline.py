"""The operator page's queries on every store: outcomes and deliveries over time, the latest
conflicts, the notices waiting; each store answers as the derived answers do."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from conftest import EngineFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import T0, ev

from statemachine import Engine, ManualClock, RecordingSender, Spec
from statemachine.stores.timeline import bucket_start

HOUR, DAY = timedelta(hours=1), timedelta(days=1)
OUTCOMES = ("succeeded", "failed", "reversed")


def book(engine: Engine) -> None:
    """Debits settled at known times: a and b in T0's hour, c in the next, d on the next day."""
    engine.apply(ev("succeeded", 0, debit_id="a"))
    engine.apply(ev("submitted", -30, debit_id="b"))
    # A fraction of a second before the next hour is still this hour.
    engine.apply(ev("failed", 59 + 59.999999 / 60, debit_id="b"))
    engine.apply(ev("succeeded", 61, debit_id="c"))
    engine.apply(ev("succeeded", 60 * 24, debit_id="d"))
    engine.apply(ev("submitted", 5, debit_id="e"))  # not an outcome: left out


def test_outcomes_are_counted_by_the_bucket_of_each_debits_latest_news(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    book(engine)
    hour = T0.replace(minute=0)
    assert engine.store.outcome_tally(OUTCOMES, HOUR) == [
        (hour, "failed", 1),
        (hour, "succeeded", 1),
        (hour + HOUR, "succeeded", 1),
        (hour + DAY, "succeeded", 1),
    ]
    day = datetime(2026, 3, 5, tzinfo=UTC)
    assert engine.store.outcome_tally(OUTCOMES, DAY) == [
        (day, "failed", 1),
        (day, "succeeded", 2),
        (day + DAY, "succeeded", 1),
    ]
    assert engine.store.outcome_tally(["succeeded"], DAY, since=T0 + HOUR) == [
        (day, "succeeded", 1),
        (day + DAY, "succeeded", 1),
    ]
    assert engine.store.outcome_tally(OUTCOMES, DAY, since=T0 + 2 * DAY) == []


def test_a_corrected_debit_moves_to_the_bucket_of_its_correction(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    engine.apply(ev("failed", 0, debit_id="a"))
    engine.apply(ev("succeeded", 90, debit_id="a", source="settlement"))
    assert engine.store.outcome_tally(OUTCOMES, HOUR) == [(T0 + HOUR, "succeeded", 1)]


def test_a_bucket_is_whole_seconds() -> None:
    with pytest.raises(ValueError, match=r"whole seconds, at least 1; got 0:00:00\.500000"):
        bucket_start(T0, timedelta(milliseconds=500))


def sent(make_engine: EngineFactory, debits: int) -> tuple[Engine, list[str]]:
    """An engine whose debits d-0... each had a success notice sent on sms."""
    spec = Spec.default().evolve(receipt_timeout=timedelta(0))
    engine = make_engine(spec=spec, clock=ManualClock(T0))
    for number in range(debits):
        engine.apply(ev("succeeded", 0, debit_id=f"d-{number}"))
    notices = engine.dispatch_due([RecordingSender("sms")])
    return engine, sorted(n.notice_id for n in notices)


def test_deliveries_are_counted_once_per_send_by_its_latest_receipt(
    make_engine: EngineFactory,
) -> None:
    engine, (first, second, third) = sent(make_engine, 3)
    engine.record_receipt(first, "sms", "undelivered", T0 + timedelta(minutes=10))
    # A delivered receipt improves the send: it counts once, delivered, in its later hour.
    engine.record_receipt(first, "sms", "delivered", T0 + timedelta(minutes=70))
    engine.record_receipt(second, "sms", "undelivered", T0 + timedelta(minutes=20))
    engine.record_receipt(third, "sms", "delivered", T0 + timedelta(minutes=30))
    engine.record_receipt(third, "sms", "delivered", T0 + timedelta(minutes=31))  # duplicate
    engine.record_receipt(third, "push", "delivered", T0)  # never sent on push: rejected
    assert engine.store.delivery_tally(HOUR) == [
        ("sms", T0, "delivered", 1),
        ("sms", T0, "undelivered", 1),
        ("sms", T0 + HOUR, "delivered", 1),
    ]
    assert engine.store.delivery_tally(HOUR, since=T0 + timedelta(minutes=25)) == [
        ("sms", T0, "delivered", 1),
        ("sms", T0 + HOUR, "delivered", 1),
    ]
    summed: Counter[str] = Counter()
    for _, _, outcome, sends in engine.store.delivery_tally(DAY):
        summed[outcome] += sends
    assert {"sms": dict(summed)} == engine.store.deliveries()


def test_the_latest_conflicts_come_first(make_engine: EngineFactory) -> None:
    engine = make_engine()
    for debit_id in ("a", "b", "c"):
        engine.apply(ev("succeeded", 0, debit_id=debit_id, source="settlement"))
        engine.apply(ev("failed", 5, debit_id=debit_id, event_id=f"late-{debit_id}"))
    engine.apply(ev("succeeded", 9, debit_id="a"))  # applied: no conflict
    assert [c.event_id for c in engine.store.conflicts(2)] == ["late-c", "late-b"]
    (oldest,) = engine.store.conflicts(3)[2:]
    assert (oldest.debit_id, oldest.verdict, oldest.type) == ("a", "conflict", "failed")
    assert oldest.reason == engine.history("a")[1].reason
    assert make_engine().store.conflicts(5) == []


def test_the_notices_waiting_come_by_due_time(make_engine: EngineFactory) -> None:
    engine = make_engine(clock=ManualClock(T0))
    engine.apply(ev("failed", 0, debit_id="a"))  # due after the settle window
    engine.apply(ev("succeeded", 0, debit_id="c"))
    engine.apply(ev("succeeded", 0, debit_id="b"))
    assert [n.notice_id for n in engine.store.waiting(5)] == [
        "b#1:succeeded",
        "c#1:succeeded",
        "a#1:failed",
    ]
    assert [n.notice_id for n in engine.store.waiting(1)] == ["b#1:succeeded"]
    engine.dispatch_due([RecordingSender()], now=T0)
    assert [(n.notice_id, n.status) for n in engine.store.waiting(5)] == [("a#1:failed", "queued")]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    settled=st.lists(
        st.tuples(st.sampled_from(["succeeded", "failed", "submitted"]),
                  st.integers(-3000, 3000), st.integers(0, 4)),
        max_size=12,
    ),
    width=st.sampled_from([timedelta(minutes=7), HOUR, DAY]),
)  # fmt: skip
def test_the_store_tallies_outcomes_as_the_derived_answer_does(
    make_engine: EngineFactory, settled: list[tuple[str, int, int]], width: timedelta
) -> None:
    with make_engine() as engine:  # closed after each example: the fixture outlives them
        memory = Engine.in_memory()
        for kind, minutes, debit in settled:
            event = ev(kind, minutes, debit_id=f"d-{debit}")
            engine.apply(event)
            memory.apply(event)
        tally = engine.store.outcome_tally(OUTCOMES, width)
        assert tally == memory.store.outcome_tally(OUTCOMES, width)
        counted: Counter[str] = Counter()
        for _, state, debits in tally:
            counted[state] += debits
        states = engine.metrics().debits_by_state
        assert counted == {s: n for s, n in states.items() if s in OUTCOMES}
