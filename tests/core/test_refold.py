"""The incremental fold is the fold: after each arrival, in any order and under any spec, the
facts kept in canonical order fold to what folding them all from scratch gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from statemachine import Event, Spec
from statemachine.precedence import canonical_order, fold
from statemachine.refold import OrderedFacts
from statemachine.strategies import specs
from statemachine.testing import events


@given(st.data(), events(), specs(base=Spec.default()))
def test_placing_each_arrival_folds_as_folding_them_all(
    data: st.DataObject, facts: list[Event], spec: Spec
) -> None:
    arrivals = data.draw(st.permutations(facts))
    ordered = OrderedFacts(spec)
    for count, event in enumerate(arrivals, 1):
        placed = ordered.place(event)
        assert placed.fold == fold(arrivals[:count], spec)
        assert len(ordered) == count - 1  # placing changes nothing
        ordered.add(placed)
        assert ordered.events == canonical_order(arrivals[:count], spec)
        assert ordered.fold() == fold(arrivals[:count], spec)
