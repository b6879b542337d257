"""The inquiry of stuck debits on every store: the backoff schedule per debit and attempt,
inquiries recorded (a restart does not ask again at once), errors recorded and backed off,
answers applied as events with their verdicts, and never a failure the engine made up.

Time moves only through a ManualClock: no sleeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
from conftest import DURABLE, EngineFactory, Target, undo_schema_5
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import T0, debit_of, ev

from statemachine import Debit, Engine, Event, ManualClock, Verdict
from statemachine.inquiry import Inquiry, InquiryPolicy
from statemachine.operations import prometheus_text
from statemachine.stores.sqlite import SCHEMA_VERSION
from statemachine.testing import BASE_TIME, events

QUIET = T0 + timedelta(minutes=6)  # a debit submitted at T0 is first asked about now


def submitted(make_engine: EngineFactory, clock: ManualClock, *debit_ids: str) -> Engine:
    engine = make_engine(clock=clock)
    for debit_id in debit_ids or ("d-1",):
        engine.apply(ev("submitted", 0, debit_id=debit_id))
    return engine


def no_news(debit: Debit) -> None:
    return None


def test_a_debit_is_asked_on_its_backoff_schedule(make_engine: EngineFactory) -> None:
    clock = ManualClock(T0 + timedelta(minutes=5))
    engine = submitted(make_engine, clock)
    assert engine.inquire_due(no_news) == []  # quiet for 5 minutes, not more: not yet
    clock.advance_to(QUIET)
    waits = []
    for _ in range(7):
        (inquiry,) = engine.inquire_due(no_news)
        assert (inquiry.debit_id, inquiry.asked_at, inquiry.answer) == ("d-1", clock.now, None)
        waits.append(inquiry.next_at - inquiry.asked_at)
        clock.advance_to(inquiry.next_at - timedelta(seconds=1))
        assert engine.inquire_due(no_news) == []  # a second early
        clock.advance_to(inquiry.next_at)
    hour = timedelta(hours=1)
    assert waits == [hour / 4, hour, 4 * hour, 12 * hour, 12 * hour, 12 * hour, 12 * hour]
    assert len(engine.inquiries("d-1")) == 7
    assert debit_of(engine, "d-1").state == "submitted"  # never failed by the engine


def test_a_policy_sets_the_schedule(make_engine: EngineFactory) -> None:
    clock = ManualClock(T0 + timedelta(minutes=2))
    engine = submitted(make_engine, clock)
    engine.inquiry = InquiryPolicy(delays=(timedelta(minutes=1), timedelta(minutes=3)))
    (first,) = engine.inquire_due(no_news)
    clock.advance_to(first.next_at)
    (second,) = engine.inquire_due(no_news)
    assert [first.next_at - first.asked_at, second.next_at - second.asked_at] == [
        timedelta(minutes=3)
    ] * 2


def test_a_policy_refuses_a_schedule_that_is_not_one() -> None:
    with pytest.raises(ValueError, match=r"InquiryPolicy\.delays: expected one or more positive"):
        InquiryPolicy(delays=())
    with pytest.raises(ValueError, match="got '5m' at position 0"):
        InquiryPolicy(delays=("5m",))
    with pytest.raises(ValueError, match=r"got -1 day, 0:00:00 at position 1"):
        InquiryPolicy(delays=(timedelta(minutes=5), -timedelta(days=1)))


def test_a_restart_does_not_ask_again_at_once(make_engine: EngineFactory) -> None:
    clock = ManualClock(QUIET)
    engine = submitted(make_engine, clock, "d-1", "d-2")
    asked = engine.inquire_due(no_news)
    assert sorted(i.debit_id for i in asked) == ["d-1", "d-2"]
    restarted = make_engine(clock=clock, sharing=engine)  # another process, same database
    assert restarted.inquire_due(no_news) == []
    clock.advance_to(asked[0].next_at)
    assert sorted(i.debit_id for i in restarted.inquire_due(no_news)) == ["d-1", "d-2"]
    assert [len(restarted.inquiries(d)) for d in ("d-1", "d-2")] == [2, 2]


def test_an_ask_that_raises_is_recorded_and_backs_off(make_engine: EngineFactory) -> None:
    clock = ManualClock(QUIET)
    engine = submitted(make_engine, clock, "down", "up")

    def ask(debit: Debit) -> Mapping[str, Any] | None:
        if debit.debit_id == "down":
            raise TimeoutError("gateway did not answer in 10 s")
        return {"type": "succeeded", "event_id": "q-up"}

    done = {i.debit_id: i for i in engine.inquire_due(ask)}
    assert done["down"].error == "TimeoutError: gateway did not answer in 10 s"
    assert (done["down"].answer, done["down"].verdict) == (None, None)
    assert done["down"].next_at == QUIET + timedelta(minutes=15)
    up = done["up"]
    assert (up.answer, up.verdict, up.error) == ("succeeded", "applied", None)
    assert debit_of(engine, "down").state == "submitted"
    clock.advance_to(done["down"].next_at)
    (again,) = engine.inquire_due(ask)  # "up" is collected: asked no more
    assert (again.debit_id, again.next_at - again.asked_at) == ("down", timedelta(hours=1))
    metrics = engine.metrics()
    counts = (metrics.inquiries_asked, metrics.inquiries_answered, metrics.inquiry_errors)
    assert counts == (3, 1, 2)
    text = prometheus_text(metrics)
    assert "statemachine_inquiries_asked 3.0" in text
    assert "statemachine_inquiries_answered 1.0" in text
    assert "statemachine_inquiry_errors 2.0" in text


def test_answers_are_applied_as_events_of_the_inquiring_source(make_engine: EngineFactory) -> None:
    clock = ManualClock(QUIET)
    engine = submitted(make_engine, clock, "paid", "bounced", "bad", "other", "known")
    answers: dict[str, Event | Mapping[str, Any]] = {
        "paid": {"type": "succeeded"},
        "bounced": {"type": "failed", "reason": "AM04", "source": "settlement"},
        "bad": {"type": "collected"},
        "other": {"type": "succeeded", "debit_id": "paid"},
        "known": ev("submitted", 0, debit_id="known", event_id="q-known"),
    }
    done = {i.debit_id: i for i in engine.inquire_due(lambda debit: answers[debit.debit_id])}
    assert {d: (i.answer, i.verdict) for d, i in done.items()} == {
        "paid": ("succeeded", Verdict.APPLIED),
        "bounced": ("failed", Verdict.APPLIED),
        "bad": ("collected", Verdict.INVALID),  # stored with its raw text, as any bad input
        "other": (None, None),
        "known": ("submitted", Verdict.STALE),
    }
    assert done["other"].error == "the answer is about debit 'paid', not 'other'"
    (paid,) = [h for h in engine.history("paid") if h.origin == "inquiry"]
    assert (paid.type, paid.source, paid.occurred_at, paid.verdict) == (
        "succeeded", "gateway", QUIET, Verdict.APPLIED,
    )  # fmt: skip
    (bounced,) = [h for h in engine.history("bounced") if h.origin == "inquiry"]
    assert (bounced.source, bounced.event.reason if bounced.event else None) == (
        "settlement",
        "AM04",
    )
    assert [h.verdict for h in engine.history("bad") if h.origin == "inquiry"] == ["invalid"]
    states = {d: debit_of(engine, d).state for d in answers}
    assert states == {"paid": "succeeded", "bounced": "failed", "bad": "submitted",
                      "other": "submitted", "known": "submitted"}  # fmt: skip
    assert engine.verify() == []


def test_the_engine_never_fails_a_debit_that_hears_nothing(make_engine: EngineFactory) -> None:
    clock = ManualClock(QUIET)
    engine = submitted(make_engine, clock)
    for _ in range(40):  # weeks of asking
        (inquiry,) = engine.inquire_due(no_news)
        clock.advance_to(inquiry.next_at)
    assert debit_of(engine, "d-1").state == "submitted"
    assert [h.type for h in engine.history("d-1")] == ["submitted"]
    assert [d for d, _ in engine.stuck(timedelta(days=3))] == ["d-1"]


def test_a_new_attempt_starts_its_own_schedule(make_engine: EngineFactory) -> None:
    clock = ManualClock(QUIET)
    engine = submitted(make_engine, clock)
    for _ in range(3):
        (inquiry,) = engine.inquire_due(no_news)
        clock.advance_to(inquiry.next_at)
    late = (clock.now - T0).total_seconds() / 60
    engine.apply(ev("failed", late))
    engine.apply(ev("retried", late, attempt=2))
    engine.apply(ev("submitted", late, attempt=2))
    assert engine.inquire_due(no_news) == []  # quiet for no time yet
    clock.advance_to(clock.now + timedelta(minutes=6))
    (first,) = engine.inquire_due(no_news)
    assert (first.attempt, first.next_at - first.asked_at) == (2, timedelta(minutes=15))


def test_a_limit_asks_the_longest_waiting_first(make_engine: EngineFactory) -> None:
    clock = ManualClock(T0 + timedelta(hours=1))
    engine = make_engine(clock=clock)
    for minutes, debit_id in [(20, "c"), (0, "a"), (10, "b")]:
        engine.apply(ev("submitted", minutes, debit_id=debit_id))
    assert [i.debit_id for i in engine.inquire_due(no_news, limit=2)] == ["a", "b"]
    assert [i.debit_id for i in engine.inquire_due(no_news, limit=2)] == ["c"]


def test_last_inquiries_are_each_debits_latest(make_engine: EngineFactory) -> None:
    clock = ManualClock(QUIET)
    engine = submitted(make_engine, clock, "d-1", "d-2", "never")
    engine.inquire_due(no_news, limit=2)
    clock.advance_to(clock.now + timedelta(minutes=15))
    latest = {i.debit_id: i for i in engine.inquire_due(no_news) if i.debit_id != "never"}
    found = engine.last_inquiries(["d-1", "d-2", "unknown"])
    assert found == latest
    assert all(isinstance(i, Inquiry) and i.asked_at == clock.now for i in found.values())
    assert engine.last_inquiries([]) == {}


@pytest.mark.parametrize("store_kind", DURABLE, indirect=True)
def test_a_version_4_database_is_migrated_to_inquiries(target: Target) -> None:
    Engine.open(target.url).close()
    undo_schema_5(target)
    clock = ManualClock(QUIET)
    with Engine.open(target.url, clock=clock) as engine:
        engine.apply(ev("submitted", 0))
        (inquiry,) = engine.inquire_due(no_news)
        assert engine.inquiries("d-1") == [inquiry]
    version = "SELECT value FROM statemachine_meta WHERE key = 'schema_version'"
    assert target.query(version) == [(str(SCHEMA_VERSION),)]
    assert {"inquiries", "inquiry_schedule"} <= target.tables()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), facts=events(max_size=8))
def test_any_interleaving_of_answers_and_callbacks_converges(
    data: st.DataObject, facts: list[Event]
) -> None:
    """Some facts come as callbacks, the others as a gateway's answers to inquiries, in any
    interleaving: the debit ends as the callbacks plus the answers given, applied as events."""
    answering = data.draw(st.lists(st.booleans(), min_size=len(facts), max_size=len(facts)))
    callbacks = [e for e, answer in zip(facts, answering, strict=True) if not answer]
    answers = [e for e, answer in zip(facts, answering, strict=True) if answer]
    clock = ManualClock(BASE_TIME + timedelta(days=30))  # every fact is old news by then
    engine = Engine.in_memory(clock=clock)
    given_answers: list[Event] = []

    def ask(debit: Debit) -> Event | None:
        if not answers:
            return None
        given_answers.append(answers.pop(0))
        return given_answers[-1]

    steps = data.draw(st.permutations(["callback"] * len(callbacks) + ["round"] * len(facts)))
    pending = list(callbacks)
    for step in steps:
        if step == "callback":
            engine.apply(pending.pop(0))
        else:
            engine.inquire_due(ask)
            clock.advance_to(clock.now + timedelta(hours=13))  # the next inquiry is due
    plain = Engine.in_memory()
    for event in callbacks + given_answers:
        plain.apply(event)
    debit_id = "loan-42/2026-03"

    def position(debit: Debit | None) -> object:
        return debit and (debit.state, debit.attempt, debit.needs_review, debit.version)

    assert position(engine.get(debit_id)) == position(plain.get(debit_id))
    assert engine.verify() == []
    for inquiry in engine.inquiries(debit_id):
        assert inquiry.error is None
        assert (inquiry.answer is None) == (inquiry.verdict is None)
