"""Hypothesis strategies for testing an integration of the engine.

``events()`` draws any set of valid events for one debit (unique event_ids, ties in time and
authority included); ``deliveries(events)`` draws an arrival stream of them: any order, with
duplicates. Together they state P5: every delivery of one set converges on one state.

>>> from hypothesis import given
>>> @given(deliveries_of_events())
... def test_converges(stream): ...
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from .events import CREATED, EVENT_TYPES, RETRIED, Event

SOURCES = ("operator", "settlement", "gateway", "internal", "legacy-core")
BASE_TIME = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
# Few distinct instants, so equal occurred_at (P3's tie rules) come up often.
OFFSETS = (0, 1, 2, 30, 60 * 24, 60 * 24 * 21)
ZONES = (UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)))


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


@st.composite
def deliveries(draw: st.DrawFn, facts: Sequence[Event], max_duplicates: int = 4) -> list[Event]:
    """An arrival stream of ``facts``: shuffled, with some delivered more than once."""
    stream = list(draw(st.permutations(list(facts))))
    if facts:
        for _ in range(draw(st.integers(0, max_duplicates))):
            copy = draw(st.sampled_from(list(facts)))
            stream.insert(draw(st.integers(0, len(stream))), copy)
    return stream


@st.composite
def deliveries_of_events(draw: st.DrawFn, max_size: int = 10) -> list[Event]:
    return draw(deliveries(draw(events(max_size=max_size))))
