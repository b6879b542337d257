"""A property-based test harness for integrations of the engine: strategies and a ready test.

Strategies (hypothesis):

- ``histories()``: what really happened to one debit — attempts, outcomes, retries, bank
  returns weeks later, middleware "failures" that made the lender retry a debit that had in
  fact been collected — with the state, attempt and review flag it must end in.
- ``deliveries(history)``: how such a history reaches the engine: any order, duplicates,
  internal timeout failures and late settlement files on top of the true facts.
- ``events()`` and ``single_events()``: any valid events, contradictions and ties included.
- ``specs()``: variations of the machine spec (authorities, settle window).

The ready test, ``stateful_test(...)``, is a hypothesis ``RuleBasedStateMachine`` that delivers
histories to *your* engine (your store, your spec, your senders), redelivers, lets time pass
and dispatches, checking after every step: convergence, idempotency, monotonic versions,
nothing lost, rebuild equals live, notice truth and review flags only where warranted.

>>> from statemachine import Engine
>>> Harness = stateful_test(lambda spec, clock: Engine.in_memory(spec=spec, clock=clock))
>>> Harness.TestCase.settings = settings(max_examples=5, stateful_step_count=10, database=None)
>>> Harness.TestCase("runTest").runTest()
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .clock import ManualClock
from .dispatch import RecordingSender, Sender
from .engine import Engine
from .events import (
    FAILED,
    Event,
)
from .precedence import POSITION, Verdict, fold
from .records import Debit, Notice
from .spec import Spec
from .strategies import (
    BASE_TIME,
    SOURCES,
    History,
    deliveries,
    deliveries_of_events,
    events,
    histories,
    single_events,
    specs,
)

__all__ = [
    "BASE_TIME",
    "SOURCES",
    "History",
    "deliveries",
    "deliveries_of_events",
    "events",
    "histories",
    "in_memory",
    "run_harness",
    "single_events",
    "specs",
    "stateful_test",
]

EngineFactory = Callable[[Spec, ManualClock], Engine]


# -- the ready stateful test ---------------------------------------------------------------


def in_memory(spec: Spec, clock: ManualClock) -> Engine:
    """The default engine factory: an in-memory engine on ``spec`` and ``clock``."""
    return Engine.in_memory(spec=spec, clock=clock)


def stateful_test(
    engine_factory: EngineFactory = in_memory,
    spec: Spec | None = None,
    senders: Callable[[], Iterable[Sender]] | None = None,
    debits: int = 3,
) -> type[RuleBasedStateMachine]:
    """A RuleBasedStateMachine that drives engines made by ``engine_factory(spec, clock)``.

    Use its ``TestCase`` in your suite::

        TestMyStore = stateful_test(lambda spec, clock: Engine(MyStore(), spec, clock)).TestCase

    Debit and event ids carry a fresh run id, so a shared, persistent store can be used as is.
    ``senders`` makes your senders for each run; each is watched as it is handed a notice.
    """
    the_spec = spec or Spec.default()

    class DebitHarness(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.spec = the_spec
            self.clock = ManualClock(BASE_TIME)
            self.engine = engine_factory(self.spec, self.clock)
            self.run = uuid.uuid4().hex[:8]
            self.histories: dict[str, History] = {}
            self.pending: list[Event] = []
            self.delivered: dict[str, dict[str, Event]] = {}
            self.arrivals: Counter[str] = Counter()
            self.versions: dict[str, int] = {}
            self.failed_since: dict[str, datetime] = {}
            self.senders = [
                _Witness(s, self) for s in (senders() if senders else [RecordingSender()])
            ]
            self.violations: list[str] = []  # notice truth, as the witnesses saw it

        @initialize(
            streams=st.lists(
                histories().flatmap(lambda h: st.tuples(st.just(h), deliveries(h))),
                min_size=1,
                max_size=debits,
            )
        )
        def load(self, streams: list[tuple[History, list[Event]]]) -> None:
            for number, (history, stream) in enumerate(streams):
                debit_id = f"{self.run}-{number}/{history.debit_id}"
                self.histories[debit_id] = attrs.evolve(history, debit_id=debit_id)
                self.pending += [_renamed(e, debit_id) for e in stream]

        @precondition(lambda self: bool(self.pending))
        @rule(pick=st.integers(0, 10**6))
        def deliver(self, pick: int) -> None:
            event = self.pending.pop(pick % len(self.pending))
            self._apply(event)

        @precondition(lambda self: any(self.delivered.values()))
        @rule(pick=st.integers(0, 10**6))
        def redeliver(self, pick: int) -> None:
            known = [e for d in sorted(self.delivered) for e in self.delivered[d].values()]
            event = known[pick % len(known)]
            before = self.engine.get(event.debit_id)
            result = self._apply(event)
            assert result.verdict is Verdict.DUPLICATE, (
                f"redelivered {event.event_id}: {result.verdict}"
            )
            assert self.engine.get(event.debit_id) == before, "a duplicate changed the debit"

        @rule(minutes=st.sampled_from([0, 1, 10, 16, 60, 60 * 24 * 3]))
        def wait(self, minutes: int) -> None:
            self.clock.advance_to(self.clock.now + timedelta(minutes=minutes))

        @rule()
        def dispatch(self) -> None:
            self.engine.dispatch_due(self.senders)

        @precondition(lambda self: not self.pending)
        @rule()
        def settle(self) -> None:
            """Everything has arrived: past every settle window, the customer's last notice
            states the outcome (N6), unless its correction is still being retried."""
            self.clock.advance_to(self.clock.now + timedelta(days=1))
            self.engine.dispatch_due(self.senders)
            for debit_id, told, debit in self.engine.misinformed():
                if debit_id in self.delivered:
                    trying = [
                        n
                        for n in self.engine.notices(debit_id)
                        if n.status in ("queued", "failed") and n.outcome == debit.state
                    ]
                    assert trying, (
                        f"{debit_id}: told {told.outcome} on attempt {told.attempt} by "
                        f"{told.notice_id}, but the debit settled {debit.state} on attempt "
                        f"{debit.attempt} and no correction is planned"
                    )

        def _apply(self, event: Event) -> Any:
            debit_id = event.debit_id
            fresh = event.event_id not in self.delivered.get(debit_id, {})
            result = self.engine.apply(event)
            self.arrivals[debit_id] += 1
            if fresh:
                self.delivered.setdefault(debit_id, {})[event.event_id] = event
            debit = self.engine.get(debit_id)
            if debit is not None and debit.state == FAILED:
                self.failed_since.setdefault(debit_id, self.clock.now)
            else:
                self.failed_since.pop(debit_id, None)
            return result

        @invariant()
        def debits_match_their_facts(self) -> None:
            for debit_id, facts in self.delivered.items():
                live = self.engine.get(debit_id)
                assert live is not None, f"{debit_id}: lost"
                # Convergence: the live state is the fold of the facts, whatever their order.
                folded = fold(facts.values(), self.spec)
                assert _position(live) == (folded.state, folded.attempt, folded.needs_review), (
                    f"{debit_id}: live {_position(live)} but its events fold to "
                    f"{(folded.state, folded.attempt, folded.needs_review)}"
                )
                # Monotonic version, and nothing lost or counted twice.
                assert live.version >= self.versions.get(debit_id, 0), f"{debit_id}: version fell"
                assert live.version == len(facts), (
                    f"{debit_id}: version {live.version}, {len(facts)} events"
                )
                self.versions[debit_id] = live.version
                history = self.engine.history(debit_id)
                assert len(history) == self.arrivals[debit_id], (
                    f"{debit_id}: arrivals not all stored"
                )
                assert set(facts) <= {h.event_id for h in history}
                # Rebuild equals live (P6).
                rebuilt = self.engine.rebuild(debit_id)
                assert (rebuilt.state, rebuilt.attempt, rebuilt.needs_review) == _position(live)
                # The review flag only where the history warrants it.
                ahead = any(
                    e.attempt > live.attempt and POSITION[e.type] >= 1 for e in facts.values()
                )
                assert live.needs_review == (ahead and live.state in self.spec.collected), (
                    f"{debit_id}: needs_review={live.needs_review} not warranted by its events"
                )
                # Once everything has arrived, the debit ends where its true history did.
                if not any(e.debit_id == debit_id for e in self.pending):
                    truth = self.histories[debit_id]
                    assert _position(live) == (truth.state, truth.attempt, truth.needs_review), (
                        f"{debit_id}: ended {_position(live)}, truly "
                        f"{(truth.state, truth.attempt, truth.needs_review)}"
                    )

        @invariant()
        def notices_told_the_truth(self) -> None:
            assert not self.violations, self.violations[0]

        @invariant()
        def no_notice_sent_twice_on_one_channel(self) -> None:
            for witness in self.senders:
                again = [i for i, n in Counter(witness.sent_ids).items() if n > 1]
                assert not again, f"{witness.name} was handed {again[0]} twice"

        def teardown(self) -> None:
            self.engine.close()

    DebitHarness.TestCase.settings = settings(
        max_examples=50, stateful_step_count=40, deadline=None
    )
    return DebitHarness


class _Witness:
    """Wraps a sender and checks notice truth at the moment of sending (N2, N3)."""

    def __init__(self, sender: Sender, harness: Any) -> None:
        self.sender = sender
        self.name = sender.name
        self.harness = harness
        self.sent_ids: list[str] = []  # what the channel accepted, in order

    def send(self, notice: Notice) -> None:
        # Violations are recorded, not raised: the engine treats a sender's exception as a
        # failed delivery and would retry it.
        debit = self.harness.engine.get(notice.debit_id)
        if debit is None or (debit.state, debit.attempt) != (notice.outcome, notice.attempt):
            where = f"{debit.state} on attempt {debit.attempt}" if debit else "unknown"
            self.harness.violations.append(
                f"{notice.notice_id} says {notice.outcome} on attempt {notice.attempt} "
                f"while the debit is {where}"
            )
        elif notice.outcome == FAILED:
            waited = self.harness.clock.now - self.harness.failed_since[notice.debit_id]
            if waited < self.harness.spec.settle_window:
                self.harness.violations.append(
                    f"{notice.notice_id}: a failure notice sent {waited} after the failure, "
                    f"inside the settle window of {self.harness.spec.settle_window}"
                )
        self.sender.send(notice)
        self.sent_ids.append(notice.notice_id)


def run_harness(
    engine_factory: EngineFactory = in_memory,
    spec: Spec | None = None,
    senders: Callable[[], Iterable[Sender]] | None = None,
    **hypothesis_settings: Any,
) -> None:
    """Run the stateful test once, for example from a plain pytest function."""
    from hypothesis.stateful import run_state_machine_as_test

    machine = stateful_test(engine_factory, spec, senders)
    chosen = settings(machine.TestCase.settings, **hypothesis_settings)
    run_state_machine_as_test(machine, settings=chosen)


def _renamed(event: Event, debit_id: str) -> Event:
    return attrs.evolve(event, debit_id=debit_id, event_id=f"{debit_id}:{event.event_id}")


def _position(debit: Debit) -> tuple[str, int, bool]:
    return debit.state, debit.attempt, debit.needs_review
