"""P1, P5, P6, one verdict per arrival, and N3 under any arrival order and dispatch times."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from statemachine import Engine, Event, ManualClock, Notice, RecordingSender, Spec, Verdict
from statemachine.precedence import fold
from statemachine.testing import BASE_TIME, deliveries, events

SPEC = Spec.default()


def final(engine: Engine, debit_id: str = "loan-42/2026-03") -> tuple[str, int, bool] | None:
    debit = engine.get(debit_id)
    return None if debit is None else (debit.state, debit.attempt, debit.needs_review)


def run(stream: list[Event]) -> Engine:
    engine = Engine.in_memory(clock=ManualClock(BASE_TIME))
    for event in stream:
        engine.apply(event)
    return engine


@given(st.data(), events())
def test_p5_every_arrival_order_converges(data: st.DataObject, facts: list[Event]) -> None:
    first = run(data.draw(deliveries(facts), label="first"))
    second = run(data.draw(deliveries(facts), label="second"))
    assert final(first) == final(second)
    if facts:
        folded = fold(facts, SPEC)
        assert final(first) == (folded.state, folded.attempt, folded.needs_review)


@given(st.data(), events(max_size=6))
def test_p5_interleaved_debits_do_not_interfere(data: st.DataObject, facts: list[Event]) -> None:
    other = [attrs.evolve(e, debit_id="other", event_id="o-" + e.event_id) for e in facts]
    mixed = data.draw(deliveries(facts + other))
    engine = run(mixed)
    alone = run(facts)
    assert final(engine) == final(alone)
    assert final(engine, "other") == final(alone)


@given(st.data(), events())
def test_p1_applying_twice_equals_applying_once(data: st.DataObject, facts: list[Event]) -> None:
    stream = data.draw(deliveries(facts, max_duplicates=0))
    engine = run(stream)
    before = engine.get("loan-42/2026-03")
    results = [engine.apply(event) for event in data.draw(st.permutations(stream))]
    assert all(r.verdict is Verdict.DUPLICATE for r in results)
    assert engine.get("loan-42/2026-03") == before  # version included: nothing moved


@given(st.data(), events())
def test_p6_rebuild_equals_live(data: st.DataObject, facts: list[Event]) -> None:
    engine = run(data.draw(deliveries(facts)))
    assert engine.verify() == []
    if facts:
        live = engine.get("loan-42/2026-03")
        rebuilt = engine.rebuild("loan-42/2026-03")
        assert live is not None
        assert (live.state, live.attempt, live.needs_review, live.review_reason) == (
            rebuilt.state,
            rebuilt.attempt,
            rebuilt.needs_review,
            rebuilt.review_reason,
        )


@given(st.data(), events())
def test_every_arrival_is_stored_with_exactly_one_verdict(
    data: st.DataObject, facts: list[Event]
) -> None:
    stream = data.draw(deliveries(facts))
    engine = run(stream)
    history = engine.history("loan-42/2026-03")
    assert [h.event_id for h in history] == [e.event_id for e in stream]
    assert all(isinstance(h.verdict, Verdict) and h.reason for h in history)
    verdicts = Counter(h.verdict for h in history)
    assert verdicts[Verdict.DUPLICATE] == len(stream) - len(facts)
    assert sum(verdicts.values()) == len(stream)
    assert engine.metrics().events_by_verdict == {str(k): v for k, v in verdicts.items()}
    if facts:
        debit = engine.get("loan-42/2026-03")
        assert debit is not None
        assert debit.version == len(facts)


@given(st.data(), events())
def test_version_only_grows(data: st.DataObject, facts: list[Event]) -> None:
    engine = Engine.in_memory()
    last = 0
    for event in data.draw(deliveries(facts)):
        result = engine.apply(event)
        assert result.version is not None
        assert result.version >= last
        last = result.version


@settings(max_examples=300)
@given(st.data(), events(max_size=8))
def test_n3_no_notice_contradicts_the_state_when_sent(
    data: st.DataObject, facts: list[Event]
) -> None:
    """Dispatch at random moments between arrivals: a sent notice always states the debit's outcome."""
    clock = ManualClock(BASE_TIME)
    window = data.draw(st.sampled_from([0, 60, 900]), label="settle window")
    engine = Engine.in_memory(
        spec=SPEC.evolve(settle_window=timedelta(seconds=window)), clock=clock
    )

    # What the debit was at each send, checked below: an assertion inside the sender would be
    # caught by the engine as a failed delivery and could never fail the test.
    seen: list[tuple[Notice, tuple[str, int] | None]] = []

    def witness(notice: Notice) -> None:
        debit = engine.get(notice.debit_id)
        seen.append((notice, None if debit is None else (debit.state, debit.attempt)))

    sender = RecordingSender("sms", on_send=witness)
    for event in data.draw(deliveries(facts)):
        engine.apply(event)
        if data.draw(st.booleans(), label="dispatch now"):
            clock.advance_to(clock.now + timedelta(minutes=data.draw(st.integers(0, 30))))
            engine.dispatch_due([sender])
    clock.advance_to(clock.now + timedelta(days=1))
    engine.dispatch_due([sender])
    assert [notice for notice, _ in seen] == sender.sent
    for notice, debit_was in seen:
        assert debit_was == (notice.outcome, notice.attempt), (notice, debit_was)
    ids = [n.notice_id for n in engine.notices()]
    assert len(ids) == len(set(ids))  # a notice id names one notice
    assert len(sender.sent) == len({n.notice_id for n in sender.sent})
    # Once every window has passed and due notices have gone out, the customer's last notice
    # states the outcome, however often it changed (N6: no cap on corrections).
    assert engine.misinformed() == []
