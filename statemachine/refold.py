"""An incremental fold: a debit's facts kept in canonical order with the fold after each one,
so an event that loses or retries costs what it changes, not the debit's whole history.

A new event is placed by bisection and folded from the position before it. The fold of the
facts after it is recomputed only until it meets the fold they had before: from there on
nothing differs. An event that changes nothing (most losers) costs one step; a retry, which
sorts after its attempt's events, costs the steps after it.

>>> from datetime import UTC, datetime
>>> from statemachine import Event, Spec
>>> spec = Spec.default()
>>> facts = OrderedFacts(spec)
>>> for kind in ("succeeded", "submitted"):
...     facts.add(facts.place(Event(event_id=kind, debit_id="d-1", type=kind,
...         occurred_at=datetime(2026, 3, 5, tzinfo=UTC))))
>>> facts.fold().state
'succeeded'
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import NamedTuple

from .events import Event
from .precedence import Fold, Run, finish, order_key, start, step
from .spec import Spec

__all__ = ["OrderedFacts", "Placed"]


class Placed(NamedTuple):
    """An event placed among the facts but not yet added: the fold with it, and the runs
    that change from its position on."""

    event: Event
    key: tuple[object, ...]
    position: int
    runs: list[Run]  # the fold after the event, then after each later fact that changed
    fold: Fold


class OrderedFacts:
    """A debit's accepted events in canonical order, each with the fold up to it."""

    __slots__ = ("_key", "_keys", "_runs", "events", "spec")

    def __init__(self, spec: Spec, events: Iterable[Event] = ()) -> None:
        self.spec = spec
        self._key = order_key(spec)
        self.events: list[Event] = []
        self._keys: list[tuple[object, ...]] = []
        self._runs: list[Run] = []
        for event in events:
            self.add(self.place(event))

    def __len__(self) -> int:
        return len(self.events)

    def fold(self) -> Fold:
        """The fold of every fact, as ``precedence.fold`` gives it."""
        return finish(self._runs[-1] if self._runs else start(self.spec), self.spec)

    def place(self, event: Event) -> Placed:
        """Where ``event`` goes and the fold with it; nothing changes until :meth:`add`."""
        spec, runs = self.spec, self._runs
        key = self._key(event)
        position = bisect_right(self._keys, key)  # after equal keys: as a stable sort would
        run = step(runs[position - 1] if position else start(spec), event, spec)
        changed = [run]
        for index in range(position, len(runs)):
            # The fact now after ``run`` had ``runs[index - 1]`` before it: once they agree,
            # every later run is as it was.
            before = runs[index - 1] if index else start(spec)
            if run is before or run == before:
                break
            run = step(run, self.events[index], spec)
            changed.append(run)
        else:
            return Placed(event, key, position, changed, finish(run, spec))
        return Placed(event, key, position, changed, finish(runs[-1], spec))

    def add(self, placed: Placed) -> None:
        """Add the event :meth:`place` placed, with the runs it changed."""
        position, changed = placed.position, placed.runs
        self.events.insert(position, placed.event)
        self._keys.insert(position, placed.key)
        self._runs.insert(position, changed[0])
        self._runs[position + 1 : position + len(changed)] = changed[1:]
