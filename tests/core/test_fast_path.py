"""The fast path is the fold: whatever arrives, in whatever order, deciding in-order events by
their one step (``Decider.advance``, and the in-memory store's batch loop) stores exactly what
deciding every arrival through the full fold stores: results, records, history and notices."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from statemachine import Engine, Event, ManualClock, Spec
from statemachine.decide import Decider
from statemachine.records import DebitRecord, Result
from statemachine.strategies import deliveries, histories, specs
from statemachine.testing import BASE_TIME, events


class FoldOnly(Decider):
    """Decides every arrival through the full fold: the fast path never applies."""

    def advance(self, event: Event, record: DebitRecord, now: datetime | None = None) -> None:
        return None


def engine(spec: Spec, decider: type[Decider] = Decider) -> Engine:
    clock = ManualClock(BASE_TIME)
    engine = Engine.in_memory(spec, clock)
    engine.decide = decider(spec, clock)  # what the engine hands the store at each apply
    return engine


def stored(engine: Engine) -> dict[str, Any]:
    """Everything the store keeps, in a form that compares by value."""
    records = {}
    for debit_id in engine.store.debit_ids():
        record = engine.store.debit(debit_id)
        assert record is not None
        records[debit_id] = (
            record.state, record.attempt, record.version, record.needs_review,
            record.review_reason, record.strength, record.max_attempt, record.amount,
            record.currency, record.facts, record.notices,
        )  # fmt: skip
    history = {debit_id: [(h, h.event) for h in engine.history(debit_id)] for debit_id in records}
    return {
        "records": records,
        "history": history,
        "rejected": engine.rejected(),
        "notices": engine.notices(),
        "misinformed": engine.misinformed(),
        "due": engine.preview_due(BASE_TIME + timedelta(days=400)),
        "metrics": engine.metrics(),
    }


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    """Arrivals for two debits: any events delivered in any order, or a true history delivered
    in order (the fast path's home) or shuffled."""
    if draw(st.booleans()):
        facts = draw(events(max_size=8))
    else:
        history = draw(histories(debit_id="loan-42/2026-03"))
        facts = list(history.events)
        if draw(st.booleans()):
            return facts + [_other(e) for e in facts]
    return draw(deliveries(facts + [_other(e) for e in facts]))


def _other(event: Event) -> Event:
    return attrs.evolve(event, debit_id="other", event_id="o-" + event.event_id)


@given(streams(), specs(base=Spec.default()))
def test_the_fast_path_stores_what_the_fold_stores(stream: list[Event], spec: Spec) -> None:
    items = [(event, f"line {n}", f"feed:{n}", None) for n, event in enumerate(stream)]
    folded, stepped, batched = engine(spec, FoldOnly), engine(spec), engine(spec)
    by_fold = [folded.apply(e, raw=raw, origin=origin) for e, raw, origin, _ in items]
    by_step = [stepped.apply(e, raw=raw, origin=origin) for e, raw, origin, _ in items]
    by_batch = batched.apply_many(items)
    assert by_step == by_fold
    assert by_batch == by_fold
    assert all(type(result) is Result for result in by_step + by_batch)
    assert stored(stepped) == stored(folded)
    assert stored(batched) == stored(folded)
