"""Hypothesis strategies for debit events: any valid events, true histories of one debit and
the disordered ways they reach an engine, and variations of the spec. ``statemachine.testing``
exports them beside the ready stateful test.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
from hypothesis import strategies as st

from .events import (
    CREATED,
    EVENT_TYPES,
    FAILED,
    REINSTATED,
    RETRIED,
    REVERSED,
    SUBMITTED,
    SUCCEEDED,
    Event,
)
from .spec import Spec

SOURCES = ("operator", "settlement", "gateway", "internal", "legacy-core")
BASE_TIME = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
# Few distinct instants, so equal occurred_at (P3's tie rules) come up often.
OFFSETS = (0, 1, 2, 30, 60 * 24, 60 * 24 * 21)
ZONES = (UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)))


# -- any events ----------------------------------------------------------------------------


@st.composite
def single_events(
    draw: st.DrawFn,
    debit_id: str = "loan-42/2026-03",
    max_attempt: int = 3,
    types: Sequence[str] = EVENT_TYPES,
    sources: Sequence[str] = SOURCES,
) -> Event:
    """One valid event for ``debit_id``; its event_id is drawn too, so sets need ``unique_by``."""
    kind = draw(st.sampled_from(types))
    low = 2 if kind == RETRIED else 1
    attempt = draw(st.integers(low, max(low, max_attempt)))
    moment = BASE_TIME + timedelta(minutes=draw(st.sampled_from(OFFSETS)))
    return Event(
        event_id=f"ev-{draw(st.integers(0, 10_000))}",
        debit_id=debit_id,
        type=kind,
        occurred_at=moment.astimezone(draw(st.sampled_from(ZONES))),
        attempt=attempt,
        source=draw(st.sampled_from(sources)),
        amount=draw(st.integers(0, 1_000_000)) if kind == CREATED else None,
        currency="CNY" if kind == CREATED else None,
    )


def events(
    debit_id: str = "loan-42/2026-03", max_size: int = 10, max_attempt: int = 3
) -> st.SearchStrategy[list[Event]]:
    """A set of distinct facts about one debit (unique event_ids), in no particular order."""
    return st.lists(
        single_events(debit_id, max_attempt),
        max_size=max_size,
        unique_by=lambda event: event.event_id,
    )


# -- true histories ------------------------------------------------------------------------


@attrs.frozen
class History:
    """What really happened to one debit, and where any complete delivery of it must end."""

    debit_id: str
    events: tuple[Event, ...]
    state: str
    attempt: int
    needs_review: bool
    # Attempts that were collected: noise may add timeouts and settlement files to them.
    collected: frozenset[int] = frozenset()
    failed: frozenset[int] = frozenset()


@st.composite
def histories(draw: st.DrawFn, debit_id: str | None = None, max_attempts: int = 3) -> History:
    """A consistent lifecycle: created, then attempts that are collected or fail, with retries,
    bank returns weeks later (some of them cancelled later still), and the lender retrying
    after a false failure."""
    debit = debit_id or f"loan-{draw(st.integers(0, 99_999)):05d}/2026-03"
    at = BASE_TIME + timedelta(minutes=draw(st.integers(0, 60 * 24 * 27)))
    facts: list[Event] = []

    def add(kind: str, when: datetime, source: str, attempt: int = 1, **extra: Any) -> None:
        facts.append(
            Event(
                event_id=f"{debit}#{len(facts) + 1}",
                debit_id=debit,
                type=kind,
                occurred_at=when,
                attempt=attempt,
                source=source,
                **extra,
            )
        )

    add(
        CREATED,
        at - timedelta(hours=1),
        "internal",
        amount=draw(st.integers(1, 10**7)),
        currency="CNY",
    )
    attempt, state, review = 1, SUCCEEDED, False
    collected: set[int] = set()
    failed: set[int] = set()
    while True:
        add(SUBMITTED, at, "gateway", attempt)
        outcome_at = at + timedelta(minutes=draw(st.integers(1, 600)))
        if draw(st.booleans()):  # collected
            collected.add(attempt)
            add(SUCCEEDED, outcome_at, "gateway", attempt)
            state = SUCCEEDED
            if draw(st.integers(0, 9)) == 0:  # the payer disputes it weeks later
                returned = outcome_at + timedelta(days=draw(st.integers(10, 40)))
                add(REVERSED, returned, "settlement", attempt, reason="MD06")
                state = REVERSED
                if draw(st.integers(0, 2)) == 0:  # and the dispute is cancelled (P3b)
                    add(REINSTATED, returned + timedelta(days=draw(st.integers(1, 20))),
                        "settlement", attempt, reason="chargeback_cancelled")  # fmt: skip
                    state = SUCCEEDED
            if attempt < max_attempts and draw(st.integers(0, 4)) == 0:
                # A middleware timeout said "failed" and the lender retried: double collection
                # risk once the next attempt reached the bank.
                add(FAILED, at + timedelta(seconds=30), "internal", attempt, reason="TIMEOUT")
                add(RETRIED, at + timedelta(minutes=1), "internal", attempt + 1)
                if draw(st.booleans()):
                    add(SUBMITTED, at + timedelta(minutes=2), "gateway", attempt + 1)
                    review = True
            break
        failed.add(attempt)
        add(FAILED, outcome_at, "gateway", attempt, reason=draw(st.sampled_from(["AM04", "AC01"])))
        state = FAILED
        if attempt == max_attempts or not draw(st.booleans()):
            break
        at = outcome_at + timedelta(days=draw(st.integers(1, 5)))
        add(RETRIED, at - timedelta(minutes=1), "internal", attempt + 1)
        attempt += 1
    return History(
        debit, tuple(facts), state, attempt, review, frozenset(collected), frozenset(failed)
    )


@st.composite
def deliveries(
    draw: st.DrawFn, source: History | Sequence[Event], max_duplicates: int = 4
) -> list[Event]:
    """An arrival stream: shuffled, some events twice, and for a history also internal timeout
    failures of collected attempts and late settlement files confirming outcomes."""
    facts = list(source.events) if isinstance(source, History) else list(source)
    if isinstance(source, History):
        facts += draw(_noise(source))
    stream = list(draw(st.permutations(facts)))
    if facts:
        for _ in range(draw(st.integers(0, max_duplicates))):
            copy = draw(st.sampled_from(facts))
            stream.insert(draw(st.integers(0, len(stream))), copy)
    return stream


@st.composite
def _noise(draw: st.DrawFn, history: History) -> list[Event]:
    extra = []
    for attempt in sorted(history.collected | history.failed):
        submitted = next(e for e in history.events if e.type == SUBMITTED and e.attempt == attempt)
        if attempt in history.collected and draw(st.booleans()):
            extra.append(
                attrs.evolve(submitted, event_id=f"{submitted.event_id}/timeout", type=FAILED,
                             source="internal", reason="TIMEOUT",
                             occurred_at=submitted.occurred_at + timedelta(seconds=45))
            )  # fmt: skip
        if draw(st.booleans()):
            outcome = SUCCEEDED if attempt in history.collected else FAILED
            extra.append(
                attrs.evolve(submitted, event_id=f"{submitted.event_id}/statement", type=outcome,
                             source="settlement",
                             occurred_at=submitted.occurred_at + timedelta(days=draw(st.integers(1, 20))))
            )  # fmt: skip
    return extra


@st.composite
def deliveries_of_events(draw: st.DrawFn, max_size: int = 10) -> list[Event]:
    """Any events (:func:`events`), delivered as :func:`deliveries` delivers them."""
    return draw(deliveries(draw(events(max_size=max_size))))


@st.composite
def specs(draw: st.DrawFn, base: Spec | None = None) -> Spec:
    """Variations of a spec: settle windows, and authorities reordered (ties included)."""
    spec = base or Spec.default()
    names = sorted(spec.authorities)
    levels = draw(st.lists(st.integers(1, 5), min_size=len(names), max_size=len(names)))
    return spec.evolve(
        settle_window=timedelta(seconds=draw(st.sampled_from([0, 60, 900, 3600, 86400]))),
        authorities=dict(zip(names, levels, strict=True)),
        unknown_source=draw(st.sampled_from(names)),
    )
