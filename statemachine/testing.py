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
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .clock import ManualClock
from .dispatch import RecordingSender, Sender
from .engine import Engine
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
from .precedence import POSITION, Verdict, fold
from .records import Debit, Notice
from .spec import Spec

SOURCES = ("operator", "settlement", "gateway", "internal", "legacy-core")
BASE_TIME = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
# Few distinct instants, so equal occurred_at (P3's tie rules) come up often.
OFFSETS = (0, 1, 2, 30, 60 * 24, 60 * 24 * 21)
ZONES = (UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)))

EngineFactory = Callable[[Spec, ManualClock], Engine]


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
        def one_notice_per_debit_attempt_and_kind(self) -> None:
            for debit_id in self.delivered:
                keys = Counter((n.attempt, n.kind) for n in self.engine.notices(debit_id))
                assert all(count == 1 for count in keys.values()), f"{debit_id}: {keys}"

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
