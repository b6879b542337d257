"""P2-P4 rule by rule, each with the verdict it must give and the reason it must state."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import debit_of, ev

from statemachine import Engine, Event, Spec, Verdict
from statemachine.testing import SOURCES

SPEC = Spec.default()


def apply_all(*events: Event) -> tuple[Engine, list[Verdict]]:
    engine = Engine.in_memory()
    return engine, [engine.apply(e).verdict for e in events]


# P2 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("late", "after"),
    [
        ("created", "submitted"),
        ("submitted", "succeeded"),
        ("submitted", "failed"),
        ("succeeded", "reversed"),
        ("created", "reversed"),
    ],
)
def test_p2_an_event_behind_the_position_is_stale(late: str, after: str) -> None:
    steps = (
        [ev("submitted", 1)] if after == "submitted" else [ev("submitted", 1), ev("succeeded", 2)]
    )
    if after == "failed":
        steps = [ev("submitted", 1), ev("failed", 2)]
    engine, _ = apply_all(*steps)
    if after == "reversed":
        engine.apply(ev("reversed", 3))
    result = engine.apply(ev(late, 0))
    assert result.verdict is Verdict.STALE
    assert "behind the debit's position" in result.reason


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_p2_an_outcome_while_pending_proves_submission(outcome: str) -> None:
    engine, verdicts = apply_all(ev("created", 0), ev(outcome, 5))
    assert verdicts == [Verdict.APPLIED, Verdict.APPLIED]
    assert engine.apply(ev("submitted", 1)).verdict is Verdict.STALE


@pytest.mark.parametrize("position", ["pending", "submitted"])
def test_p2_a_reversal_while_not_collected_proves_collection(position: str) -> None:
    engine = Engine.in_memory()
    if position == "submitted":
        engine.apply(ev("submitted", 0))
    result = engine.apply(ev("reversed", 30, source="settlement"))
    assert (result.verdict, result.state) == (Verdict.APPLIED, "reversed")
    assert engine.apply(ev("succeeded", 5)).verdict is Verdict.STALE


# P3 -----------------------------------------------------------------------------------------


AUTHORITY = {"operator": 4, "settlement": 3, "gateway": 2, "internal": 1}  # DESIGN's defaults


def _winner(a: Event, b: Event) -> str:
    """P3 as DESIGN words it: higher authority, then later occurred_at, then succeeded."""
    rank_a, rank_b = AUTHORITY.get(a.source, 2), AUTHORITY.get(b.source, 2)
    if rank_a != rank_b:
        return a.type if rank_a > rank_b else b.type
    if a.occurred_at != b.occurred_at:
        return a.type if a.occurred_at > b.occurred_at else b.type
    return "succeeded"


@given(
    st.sampled_from(SOURCES),
    st.sampled_from(SOURCES),
    st.sampled_from([0, 1, 60]),
    st.sampled_from([0, 1, 60]),
    st.permutations(["succeeded", "failed"]),
)
def test_p3_the_stronger_outcome_wins_in_either_order(
    source_a: str, source_b: str, at_a: int, at_b: int, kinds: list[str]
) -> None:
    a = ev(kinds[0], at_a, source=source_a)
    b = ev(kinds[1], at_b, source=source_b)
    expected = _winner(a, b)
    for first, second in ((a, b), (b, a)):
        engine = Engine.in_memory()
        engine.apply(first)
        result = engine.apply(second)
        assert result.state == expected
        # A losing report after the winner is a conflict; a winner after the loser corrects.
        assert result.verdict is (Verdict.APPLIED if second.type == expected else Verdict.CONFLICT)


def test_p3_authority_beats_time() -> None:
    engine, _ = apply_all(
        ev("succeeded", 0, source="settlement"), ev("failed", 60, source="gateway")
    )
    result = engine.history("d-1")[-1]
    assert result.verdict is Verdict.CONFLICT
    assert result.reason.startswith("contradicts succeeded from settlement")


def test_p3_at_equal_authority_the_later_report_wins() -> None:
    engine, verdicts = apply_all(ev("failed", 60), ev("succeeded", 0))
    assert verdicts == [Verdict.APPLIED, Verdict.CONFLICT]
    assert debit_of(engine, "d-1").state == "failed"


def test_p3_at_an_exact_tie_succeeded_wins() -> None:
    engine, verdicts = apply_all(ev("succeeded", 5), ev("failed", 5))
    assert verdicts == [Verdict.APPLIED, Verdict.CONFLICT]
    assert debit_of(engine, "d-1").state == "succeeded"


def test_p3_a_reversal_of_a_failed_attempt_is_a_conflict() -> None:
    engine, verdicts = apply_all(
        ev("failed", 0, source="settlement"), ev("reversed", 60, source="settlement")
    )
    assert verdicts == [Verdict.APPLIED, Verdict.CONFLICT]
    assert "reversal of a failed attempt" in engine.history("d-1")[-1].reason


def test_p3_a_stronger_reversal_overrides_a_weak_failure() -> None:
    engine, verdicts = apply_all(
        ev("failed", 0, source="internal"), ev("reversed", 60, source="settlement")
    )
    assert verdicts == [Verdict.APPLIED, Verdict.APPLIED]
    assert debit_of(engine, "d-1").state == "reversed"


def test_p3_unknown_sources_count_as_gateway_and_are_reported() -> None:
    engine, _ = apply_all(ev("succeeded", 0, source="gateway"))
    result = engine.apply(ev("failed", 60, source="core-banking"))
    assert result.state == "failed"  # gateway authority, later: wins
    assert "unknown source 'core-banking' counted as gateway" in result.reason
    assert engine.metrics().unknown_sources == {"core-banking": 1}


# P4 -----------------------------------------------------------------------------------------


def test_p4_retry_opens_the_next_attempt_after_failure() -> None:
    engine, verdicts = apply_all(ev("failed", 0), ev("retried", 60, attempt=2))
    assert verdicts == [Verdict.APPLIED, Verdict.APPLIED]
    debit = engine.get("d-1")
    assert debit is not None
    assert (debit.state, debit.attempt) == ("pending", 2)


def test_p4_retry_before_the_failure_is_parked_then_takes_effect() -> None:
    engine, verdicts = apply_all(ev("submitted", 0), ev("retried", 60, attempt=2), ev("failed", 30))
    assert verdicts == [Verdict.APPLIED, Verdict.PARKED, Verdict.APPLIED]
    assert debit_of(engine, "d-1").attempt == 2


def test_p4_retry_of_a_succeeded_attempt_stays_parked() -> None:
    engine, verdicts = apply_all(ev("succeeded", 0), ev("retried", 60, attempt=2))
    assert verdicts == [Verdict.APPLIED, Verdict.PARKED]
    assert "waits for attempt 1 to fail (it is succeeded)" in engine.history("d-1")[-1].reason


def test_p4_events_for_an_unopened_attempt_are_parked() -> None:
    _, verdicts = apply_all(ev("submitted", 0), ev("succeeded", 60, attempt=3))
    assert verdicts == [Verdict.APPLIED, Verdict.PARKED]


def test_p4_events_for_an_earlier_attempt_are_stale() -> None:
    engine, _ = apply_all(ev("failed", 0), ev("retried", 60, attempt=2))
    for late in (
        ev("submitted", 0),
        ev("failed", 1, source="settlement"),
        ev("succeeded", 2, source="internal"),
    ):
        result = engine.apply(late)
        assert result.verdict is Verdict.STALE, late
        assert result.attempt == 2


@pytest.mark.parametrize(
    ("attempt2", "review"),
    [([], False), (["submitted"], True), (["succeeded"], True), (["submitted", "failed"], True)],
)
def test_p4_late_success_returns_to_its_attempt(attempt2: list[str], review: bool) -> None:
    engine, _ = apply_all(
        ev("failed", 0),
        ev("retried", 60, attempt=2),
        *[ev(kind, 61 + i, attempt=2) for i, kind in enumerate(attempt2)],
    )
    result = engine.apply(ev("succeeded", 120, source="settlement"))
    assert result.verdict is Verdict.APPLIED
    assert "late succeeded of attempt 1" in result.reason
    debit = engine.get("d-1")
    assert debit is not None
    assert (debit.state, debit.attempt, debit.needs_review) == ("succeeded", 1, review)
    assert debit.review_reason == ("double_collection_risk" if review else None)


def test_p4_a_losing_late_success_is_stale() -> None:
    engine, _ = apply_all(ev("failed", 0, source="settlement"), ev("retried", 60, attempt=2))
    assert engine.apply(ev("succeeded", 120, source="gateway")).verdict is Verdict.STALE


# The fold itself ----------------------------------------------------------------------------


def test_the_design_example_orders_all_collide_into_one_state() -> None:
    facts = [
        ev("submitted", 0),
        ev("failed", 1, source="internal"),
        ev("succeeded", 2),
        ev("failed", 3, source="internal"),
        ev("reversed", 900, source="settlement"),
    ]
    states = {run_state(order) for order in itertools.permutations(facts)}
    assert states == {"reversed"}


def run_state(order: tuple[Event, ...]) -> str:
    engine = Engine.in_memory()
    for event in order:
        engine.apply(event)
    return debit_of(engine, "d-1").state


# P3b ----------------------------------------------------------------------------------------


def test_p3b_a_reinstatement_with_no_reversal_is_parked() -> None:
    _, verdicts = apply_all(ev("succeeded", 0), ev("reinstated", 5, source="settlement"))
    assert verdicts == ["applied", "parked"]
    engine = Engine.in_memory()
    result = engine.apply(ev("reinstated", 5))
    assert (result.verdict, result.reason) == (
        "parked", "waits for a reversal of attempt 1 to cancel"
    )  # fmt: skip


def test_p3b_a_stronger_reinstatement_returns_the_debit_to_succeeded() -> None:
    engine, verdicts = apply_all(
        ev("succeeded", 0), ev("reversed", 10, source="gateway"), ev("reinstated", 20)
    )
    assert verdicts == ["applied", "applied", "applied"]
    assert debit_of(engine, "d-1").state == "succeeded"
    assert engine.history("d-1")[-1].reason == "reversed → succeeded (correction)"


def test_p3b_a_weaker_reinstatement_is_a_conflict_and_the_reversal_stands() -> None:
    engine, verdicts = apply_all(
        ev("succeeded", 0), ev("reversed", 10, source="settlement"), ev("reinstated", 20)
    )
    assert verdicts == ["applied", "applied", "conflict"]
    assert debit_of(engine, "d-1").state == "reversed"
    assert engine.history("d-1")[-1].reason.startswith("contradicts reversed from settlement")


def test_p3b_a_reversal_weaker_than_a_standing_reinstatement_is_a_conflict() -> None:
    engine, verdicts = apply_all(
        ev("succeeded", 0),
        ev("reinstated", 30, source="settlement"),  # parked: nothing to cancel yet
        ev("reversed", 10, source="gateway"),  # the return it cancels, arriving late
    )
    assert verdicts == ["applied", "parked", "conflict"]
    assert debit_of(engine, "d-1").state == "succeeded"


def test_p3b_at_an_exact_tie_the_reinstatement_wins() -> None:
    engine, _ = apply_all(ev("succeeded", 0), ev("reinstated", 10), ev("reversed", 10))
    assert debit_of(engine, "d-1").state == "succeeded"


def test_p3b_a_second_stronger_reversal_after_a_reinstatement_stands() -> None:
    engine, verdicts = apply_all(
        ev("succeeded", 0), ev("reversed", 10), ev("reinstated", 20), ev("reversed", 30)
    )
    assert verdicts == ["applied", "applied", "applied", "applied"]
    assert debit_of(engine, "d-1").state == "reversed"


def test_p3b_every_order_of_reversals_and_reinstatements_converges() -> None:
    facts = [
        ev("submitted", 0), ev("succeeded", 1), ev("reversed", 10, source="gateway"),
        ev("reinstated", 20, source="gateway"), ev("reversed", 30, source="internal"),
        ev("reinstated", 5, source="settlement"),
    ]  # fmt: skip
    ends = set()
    for order in itertools.permutations(facts):
        engine = Engine.in_memory()
        for event in order:
            engine.apply(event)
        debit = debit_of(engine, "d-1")
        ends.add((debit.state, debit.attempt, debit.needs_review))
        assert engine.verify() == []
    # The settlement's reinstatement outranks every weaker reversal: the collection stands.
    assert ends == {("succeeded", 1, False)}
