"""Precedence rules P2-P5: a debit's state is a fold of its accepted events in canonical order.

The canonical order is (attempt, position in the attempt, strength, event_id), so the result
depends on the *set* of events and never on the order they arrived in (P5). Each event is a
trigger on the spec's shared transition table; guards decide contested outcomes (P3) and
attempts (P4). The verdict of an arrival comes from comparing the fold before and after it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import datetime
from enum import StrEnum
from typing import Final, NamedTuple

from .clock import DAWN
from .events import (
    CREATED,
    FAILED,
    OUTCOME_TYPES,
    REINSTATED,
    RETRIED,
    REVERSED,
    SUBMITTED,
    SUCCEEDED,
    Event,
)
from .spec import STRONGER, Spec


class Verdict(StrEnum):
    """What the engine made of one arriving event; exactly one per event, stored with it."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    CONFLICT = "conflict"
    PARKED = "parked"
    INVALID = "invalid"


# P2: where each event type sits within its attempt. `retried(n)` opens attempt n, so it leads it.
POSITION: Final = {
    RETRIED: -1, CREATED: 0, SUBMITTED: 1, SUCCEEDED: 2, FAILED: 2, REVERSED: 3, REINSTATED: 3
}  # fmt: skip
# At an exact tie of authority and time these win: a success over a failure (P3), a
# reinstatement over the reversal it cancels (P3b).
WINS_TIES: Final = frozenset({SUCCEEDED, REINSTATED})
LAST_WORD: Final = frozenset({REVERSED, REINSTATED})  # what may follow an attempt's collection
CORRECTION_KIND: Final = "correction"
DOUBLE_COLLECTION_RISK: Final = "double_collection_risk"

# (authority, occurred_at, 1 for success): the larger report wins an attempt's outcome (P3).
Strength = tuple[int, datetime, int]


def strength(event: Event, spec: Spec) -> Strength:
    """How strongly ``event`` asserts its attempt's outcome.

    A reversal proves collection (a success) at its own authority but loses every time tie,
    so it overrides a failure only from a weaker source.
    """
    if event.type == REVERSED:
        return (spec.authority(event.source), DAWN, 1)
    return (spec.authority(event.source), event.occurred_at, 1 if event.type == SUCCEEDED else 0)


class Fold(NamedTuple):
    """A debit's position derived from its accepted events."""

    state: str
    attempt: int
    needs_review: bool
    review_reason: str | None
    strength: Strength | None
    winner: Event | None
    amount: int | None
    currency: str | None
    last_word: Event | None = None  # the reversal or reinstatement that stands (P3b)


def order_key(spec: Spec) -> Callable[[Event], tuple[int, int, int, datetime, bool, str]]:
    """The canonical order's sort key under ``spec``."""
    authority = spec.authority

    def key(e: Event) -> tuple[int, int, int, datetime, bool, str]:
        return (e.attempt, POSITION[e.type], authority(e.source), e.occurred_at,
                e.type in WINS_TIES, e.event_id)  # fmt: skip

    return key


def canonical_order(events: Iterable[Event], spec: Spec) -> list[Event]:
    return sorted(events, key=order_key(spec))


# The fold between two events: (state, attempt, best strength, its winner, amount, currency,
# last word, whether a report ran ahead of the debit's attempt). Steps that change nothing
# return the very tuple they were given, so a refold can tell cheaply that it has converged.
Run = tuple[str, int, Strength | None, Event | None, int | None, str | None, Event | None, bool]


def start(spec: Spec) -> Run:
    """The fold before any event."""
    return (spec.initial, 1, None, None, None, None, None, False)


def step(run: Run, event: Event, spec: Spec) -> Run:
    """One event through the spec's transitions, the next in canonical order after ``run``."""
    state, attempt, best, winner, amount, currency, last_word, ahead = run
    if event.type == CREATED and amount is None:
        amount, currency = event.amount, event.currency
        run = (state, attempt, best, winner, amount, currency, last_word, ahead)
    if event.attempt != attempt:
        if event.type == RETRIED and event.attempt == attempt + 1:
            edge = spec.edges.get((state, RETRIED))
            if edge is not None:
                return (edge.dest, event.attempt, None, None, amount, currency, None, ahead)
        if not ahead and event.attempt > attempt and POSITION[event.type] >= 1:
            return (state, attempt, best, winner, amount, currency, last_word, True)
        return run
    if event.type == RETRIED:
        return run  # this attempt is already open
    edge = spec.edges.get((state, event.type))
    if edge is None:
        return run
    if event.type in OUTCOME_TYPES or event.type == REVERSED:
        power = strength(event, spec)
        if edge.guard == STRONGER and best is not None and not power > best:
            return run
        if best is None or power > best:
            best, winner = power, event
    # Reversals and reinstatements of one attempt come in canonical order, weakest
    # first: each one applied outranks those before it (P3b).
    if event.type in LAST_WORD:
        last_word = event
    return (edge.dest, attempt, best, winner, amount, currency, last_word, ahead)


def finish(run: Run, spec: Spec) -> Fold:
    """The debit's position once every event is folded in."""
    state, attempt, best, winner, amount, currency, last_word, ahead = run
    # P4: a late success returned the debit to an attempt after a later one was submitted.
    review = ahead and state in spec.collected
    return Fold(state, attempt, review, DOUBLE_COLLECTION_RISK if review else None, best,
                winner, amount, currency, last_word)  # fmt: skip


def fold(events: Iterable[Event], spec: Spec) -> Fold:
    """Run the events through the spec's transitions in canonical order."""
    run = start(spec)
    for event in canonical_order(events, spec):
        run = step(run, event, spec)
    return finish(run, spec)


def classify(event: Event, before: Fold | None, after: Fold, spec: Spec) -> tuple[Verdict, str]:
    """The verdict and reason of ``event``, which moved the debit from ``before`` to ``after``."""
    if (
        event.attempt > after.attempt
        or (before is not None and _position(before) == _position(after))
        or (before is None and event.type == REINSTATED and after.last_word is None)
    ):
        # An event for an attempt the debit is not on is parked even when it raises the
        # review flag (P4): the flag is its only effect, and the reason says so.
        verdict, reason = _unchanged(event, after, spec)
        if after.needs_review and (before is None or not before.needs_review):
            reason += f"; needs review: {after.review_reason}"
        return verdict, reason
    return Verdict.APPLIED, describe(before, after, spec)


def describe(before: Fold | None, after: Fold, spec: Spec) -> str:
    if before is None:
        text = f"new debit, {after.state}"
        if after.attempt != 1:
            text += f" on attempt {after.attempt}"
    elif after.attempt > before.attempt:
        text = f"attempt {before.attempt} {before.state} → attempt {after.attempt} {after.state}"
    elif after.attempt < before.attempt:
        text = (
            f"late {after.state} of attempt {after.attempt}: "
            f"back from attempt {before.attempt} ({before.state})"
        )
    else:
        text = transition_text(before.state, after.state, spec)
    if after.needs_review and (before is None or not before.needs_review):
        text += f"; needs review: {after.review_reason}"
    return text


def transition_text(source: str, dest: str, spec: Spec) -> str:
    """``source → dest``, marked when the spec calls that move a correction."""
    text = f"{source} → {dest}"
    if any(
        e.kind == CORRECTION_KIND and (e.source, e.dest) == (source, dest) for e in spec.transitions
    ):
        text += " (correction)"
    return text


def _position(fold: Fold) -> tuple[str, int, bool]:
    return fold.state, fold.attempt, fold.needs_review


def _unchanged(event: Event, after: Fold, spec: Spec) -> tuple[Verdict, str]:
    attempt = event.attempt
    if event.type == RETRIED:
        if attempt <= after.attempt:
            return Verdict.STALE, f"attempt {attempt} is already open"
        if attempt == after.attempt + 1:
            return (
                Verdict.PARKED,
                f"waits for attempt {after.attempt} to fail (it is {after.state})",
            )
        return Verdict.PARKED, f"waits for attempt {attempt - 1} to open"
    if attempt > after.attempt:
        if after.state in spec.collected:
            return Verdict.PARKED, (
                f"attempt {attempt} is not open: attempt {after.attempt} is {after.state}"
            )
        return Verdict.PARKED, f"waits for attempt {attempt} to open (retried)"
    if attempt < after.attempt:
        return Verdict.STALE, f"attempt {attempt} is behind the debit's attempt {after.attempt}"
    if event.type in LAST_WORD:
        said = after.last_word
        if said is not None and said.type != event.type:
            return Verdict.CONFLICT, f"contradicts {said.type} from {_cite(said)}"
        if said is None and event.type == REINSTATED:
            return Verdict.PARKED, f"waits for a reversal of attempt {attempt} to cancel"
    winner = after.winner
    if event.type in OUTCOME_TYPES and winner is not None and event.type != _outcome_of(winner):
        return Verdict.CONFLICT, f"contradicts {_outcome_of(winner)} from {_cite(winner)}"
    if event.type == REVERSED and after.state == spec.failed and winner is not None:
        return Verdict.CONFLICT, f"reversal of a failed attempt (failed by {_cite(winner)})"
    if POSITION[event.type] < _state_positions(spec).get(after.state, 0):
        return Verdict.STALE, f"behind the debit's position ({after.state})"
    return Verdict.STALE, f"already {after.state} on attempt {attempt}: corroborates it"


@functools.cache
def _state_positions(spec: Spec) -> dict[str, int]:
    """Where each of the spec's states sits within an attempt: that of the event leading to it."""
    return {spec.state_after(t): p for t, p in sorted(POSITION.items(), key=lambda i: i[1])}


def _outcome_of(event: Event) -> str:
    return SUCCEEDED if event.type == REVERSED else event.type


def _cite(event: Event) -> str:
    return f"{event.source} ({event.event_id}, {event.occurred_at.isoformat()})"
