"""Deciding one arrival: its verdict, the debit's new position and the notice it plans.

Pure: a :class:`Decider` reads the debit's record and the event already stored under the same
event_id, changes the record in place as the last thing it does, and returns a
:data:`Decision` for the store to write in one transaction. It touches no database.

>>> from statemachine import Event, Spec
>>> decide = Decider(Spec.default(), clock=lambda: None)
>>> event = Event.from_dict({"event_id": "gw-1", "debit_id": "d-1", "type": "submitted",
...     "occurred_at": "2026-03-05T10:00:00+00:00"})
>>> result, record, accepted, notice = decide(event, None, None)
>>> (result.verdict.value, record.state, accepted, notice)
('applied', 'submitted', True, None)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final, NamedTuple, Protocol

from .events import CREATED, FIELDS, OUTCOME_TYPES, REVERSED, SUCCEEDED, Event
from .notices import plan
from .precedence import LAST_WORD, Verdict, classify, fold, transition_text
from .records import DebitRecord, Notice, Result
from .refold import OrderedFacts
from .spec import STRONGER, Spec

# What was decided about one arrival, for the store to write in one transaction:
# (result, the debit record to write or None when untouched, whether the event joins the
# debit's facts, the notice planned with the change or None). A plain tuple: apply is hot.
Decision = tuple[Result, DebitRecord | None, bool, Notice | None]


class Decide(Protocol):
    """What a store decides arrivals with (a :class:`Decider`). ``now`` is the time to plan
    notices at, None for the clock's."""

    def __call__(
        self, event: Event, record: DebitRecord | None, prior: Event | None, now: datetime | None
    ) -> Decision:
        """Decide any arrival: ``prior`` is the accepted event stored under its event_id."""
        ...

    def advance(self, event: Event, record: DebitRecord, now: datetime | None) -> Result | None:
        """Decide a new event (no event stored under its id) that moves ``record`` one step in
        order, as ``__call__`` would, accepting it; None, the record untouched, for any other."""
        ...


_new_result = tuple.__new__  # Result(...) without the NamedTuple constructor: apply is hot
_STRENGTH_TYPES: Final = OUTCOME_TYPES | {REVERSED}
_COMPARED: Final = tuple(f for f in FIELDS if f != "event_id")
APPLIED: Final = Verdict.APPLIED


class _Step(NamedTuple):
    """A transition the fast path may take on its own, with what it needs precomputed."""

    dest: str
    unguarded: bool  # else guarded by `stronger`: free to take while the attempt has no outcome
    strength: bool  # the event claims the attempt's outcome
    outcome: bool  # the destination is customer-visible
    reason: str
    wins: int  # the strength's last part: 1 for a success (precedence.strength)


def _fast_steps(spec: Spec) -> dict[str, dict[str, _Step]]:
    """By state, then by event type: no key tuple to build per event."""
    steps: dict[str, dict[str, _Step]] = {state: {} for state in spec.states}
    for edge in spec.transitions:
        # Reversals and reinstatements contend with each other (P3b): always the full fold.
        if (
            edge.guard in (None, STRONGER)
            and edge.source != edge.dest
            and edge.trigger not in LAST_WORD
        ):
            steps.setdefault(edge.source, {})[edge.trigger] = _Step(
                edge.dest,
                edge.guard is None,
                edge.trigger in _STRENGTH_TYPES,
                edge.dest in spec.outcomes,
                transition_text(edge.source, edge.dest, spec),
                1 if edge.trigger == SUCCEEDED else 0,
            )
    return steps


class Decider:
    """Decides arrivals under one spec; the engine hands its ``__call__`` to the store."""

    def __init__(self, spec: Spec, clock: Callable[[], datetime]) -> None:
        self.spec = spec
        self.clock = clock
        self._authorities = spec.authorities
        self._unknown_level = spec.authority(spec.unknown_source)
        self._steps = _fast_steps(spec)
        self._created_reason = f"new debit, {spec.initial}"

    def __call__(
        self,
        event: Event,
        record: DebitRecord | None,
        prior: Event | None,
        now: datetime | None = None,
    ) -> Decision:
        """Decide one arrival. Pure but for changing ``record``, which the store then writes."""
        if prior is not None:
            return self._repeat(event, record, prior)
        if record is None:
            record = DebitRecord(event.debit_id, self.spec.initial)
            if event.type == CREATED and event.attempt == 1:
                record.facts.append(event)
                record.version = 1
                record.amount, record.currency = event.amount, event.currency
                return self._decision(event, record, APPLIED, self._created_reason)
            before = None
        else:
            result = self.advance(event, record, now)
            if result is not None:
                return result, record, True, result.notice
            before = record.position()
        placed = None
        if before is None:  # a new debit: nothing to keep in order yet
            after = fold([*record.facts, event], self.spec)
        else:
            placed = self._ordered(record).place(event)
            after = placed.fold
        verdict, reason = classify(event, before, after, self.spec)
        moved = (after.attempt, after.state) != (record.attempt, record.state)
        notice = (
            plan(record, after.state, after.attempt, self.spec, now or self.clock())
            if moved or before is None
            else None
        )
        # Nothing may fail past this point: the in-memory store's record is live.
        record.facts.append(event)
        if placed is not None and record.ordered is not None:
            record.ordered.add(placed)
        record.version += 1
        record.max_attempt = max(record.max_attempt, event.attempt)
        record.take(after)
        if notice is not None:
            record.notices[notice.notice_id] = notice
        return self._decision(event, record, verdict, reason, notice)

    def _ordered(self, record: DebitRecord) -> OrderedFacts:
        """The record's facts in canonical order, brought up to the facts it holds: those
        taken by the fast path since are placed now."""
        ordered, facts = record.ordered, record.facts
        if ordered is None or ordered.spec is not self.spec or len(ordered) > len(facts):
            ordered = record.ordered = OrderedFacts(self.spec, facts)
        for event in facts[len(ordered) :]:
            ordered.add(ordered.place(event))
        return ordered

    def advance(
        self, event: Event, record: DebitRecord, now: datetime | None = None
    ) -> Result | None:
        """The fast path: an event in order on the debit's attempt, with nothing parked, whose
        one step the fold would take as well. Accepts it and returns its result; None, the
        record untouched, when the event needs the whole fold. The store must have no event
        under its event_id."""
        steps = self._steps.get(record.state)
        step = steps.get(event.type) if steps is not None else None
        attempt, best = record.attempt, record.strength
        if (
            step is None
            or event.attempt != attempt
            or attempt != record.max_attempt
            or not (step.unguarded or best is None)  # `stronger` once the attempt has an outcome
        ):
            return None
        level = self._authorities.get(event.source)
        power = None
        if step.strength:  # precedence.strength, of a success or a failure: reversals fold
            power = (self._unknown_level if level is None else level, event.occurred_at, step.wins)
            if best is not None and not power > best:
                power = None  # the outcome standing is the stronger: it keeps its strength
        dest, version, notice = step.dest, record.version + 1, None
        if step.outcome:
            notice = plan(record, dest, attempt, self.spec, now or self.clock())
        # Nothing may fail past this point: the in-memory store's record is live.
        record.facts.append(event)
        record.version = version
        if power is not None:
            record.strength = power
        record.state = dest
        if notice is not None:
            record.notices[notice.notice_id] = notice
        reason = step.reason
        if level is None:
            reason += f"; unknown source {event.source!r} counted as {self.spec.unknown_source}"
        result: Result = _new_result(
            Result,
            (APPLIED, reason, event.event_id, event.debit_id, dest, attempt, version,
             record.needs_review, notice),
        )  # fmt: skip
        return result

    def _repeat(self, event: Event, record: DebitRecord | None, prior: Event) -> Decision:
        """P1: the same event_id again, with the same content (duplicate) or not (invalid)."""
        if prior == event:
            return self._decision(
                event,
                record,
                Verdict.DUPLICATE,
                "same event_id and content as a stored event",
                accepted=False,
            )
        differ = [f for f in _COMPARED if getattr(prior, f) != getattr(event, f)]
        return self._decision(
            event,
            record,
            Verdict.INVALID,
            f"event_id {event.event_id!r} reused with different content ({', '.join(differ)})",
            accepted=False,
        )

    def _decision(
        self,
        event: Event,
        record: DebitRecord | None,
        verdict: Verdict,
        reason: str,
        notice: Notice | None = None,
        accepted: bool = True,
    ) -> Decision:
        if event.source not in self._authorities:
            reason += f"; unknown source {event.source!r} counted as {self.spec.unknown_source}"
        if record is None:
            result = _new_result(
                Result,
                (verdict, reason, event.event_id, event.debit_id, None, None, None, False, notice),
            )
        else:
            result = _new_result(
                Result,
                (verdict, reason, event.event_id, event.debit_id, record.state, record.attempt,
                 record.version, record.needs_review, notice),
            )  # fmt: skip
        return result, record if accepted else None, accepted, notice
