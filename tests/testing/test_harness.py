"""The harness (statemachine.testing) passes a correct engine on every store, and catches
deliberately broken ones with a shrunk counterexample."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import EngineFactory
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from hypothesis.reporting import with_reporter

from statemachine import Engine, Event, ManualClock, Sender, Spec
from statemachine.decide import Decider
from statemachine.dispatch import check_senders
from statemachine.precedence import fold
from statemachine.records import DebitRecord
from statemachine.stores.base import Decision
from statemachine.testing import History, deliveries, histories, run_harness, specs, stateful_test

HUNT: dict[str, Any] = {
    "max_examples": 400,
    "stateful_step_count": 40,
    "database": None,
    "report_multiple_bugs": False,
    # One fixed search: each proof finds and shrinks the same case in the same few seconds on
    # every run, instead of anywhere from one second to a minute by the draw.
    "derandomize": True,
    # Generate and shrink; the explain phase (which steps could vary) reruns the shrunk case
    # hundreds of times, a minute or more per engine, and adds nothing these proofs assert.
    "phases": [Phase.generate, Phase.shrink],
}


@pytest.mark.slow
def test_the_harness_passes_the_engine_on_every_store(make_engine: EngineFactory) -> None:
    run_harness(lambda spec, clock: make_engine(spec, clock), max_examples=25, database=None)


TestInMemory = stateful_test().TestCase  # the ready TestCase, collected by pytest as is


@settings(max_examples=300)
@given(st.data(), histories())
def test_every_delivery_of_a_true_history_ends_where_it_truly_did(
    data: st.DataObject, history: History
) -> None:
    stream = data.draw(deliveries(history))
    folded = fold(stream, Spec.default())
    assert (folded.state, folded.attempt, folded.needs_review) == (
        history.state,
        history.attempt,
        history.needs_review,
    )


@given(specs())
def test_spec_variations_are_valid_specs(spec: Spec) -> None:
    assert (
        Spec.from_dict(
            {
                "states": list(spec.states),
                "initial": spec.initial,
                "outcomes": sorted(spec.outcomes),
                "settle_window_seconds": spec.settle_window.total_seconds(),
                "authorities": dict(spec.authorities),
                "unknown_source": spec.unknown_source,
                "transitions": [
                    {
                        "trigger": e.trigger,
                        "source": e.source,
                        "dest": e.dest,
                        "kind": e.kind,
                        **({"guard": e.guard} if e.guard else {}),
                    }
                    for e in spec.transitions
                ],
            }
        ).authorities
        == spec.authorities
    )


def test_the_harness_runs_under_a_spec_variation() -> None:
    spec = Spec.default().evolve(settle_window=timedelta(0))
    run_harness(spec=spec, max_examples=20, database=None)


# Deliberately broken engines ----------------------------------------------------------------


class LastWriteWins(Decider):
    """Ignores precedence: the latest report on the current attempt sets the state."""

    def __call__(
        self, event: Event, record: DebitRecord | None, prior: Event | None, now: Any = None
    ) -> Decision:
        result, changed, accepted, notice = super().__call__(event, record, prior, now)
        if (
            changed is not None
            and accepted
            and event.attempt == changed.attempt
            and event.type != "created"
        ):
            changed.state = event.type if event.type != "retried" else "pending"
        return result, changed, accepted, notice


class NoDeduplication(Decider):
    """Forgets every event_id it has seen."""

    def __call__(
        self, event: Event, record: DebitRecord | None, prior: Event | None, now: Any = None
    ) -> Decision:
        return super().__call__(event, record, None, now)


def deciding(decider: type[Decider]) -> Callable[[Spec, ManualClock], Engine]:
    """An in-memory engine that decides arrivals with ``decider``."""

    def make(spec: Spec, clock: ManualClock) -> Engine:
        engine = Engine.in_memory(spec=spec, clock=clock)
        engine.decide = decider(spec, clock)
        return engine

    return make


class BlindNotifier(Engine):
    """Sends whatever is due without asking what the debit's state is now."""

    def dispatch_due(self, senders: Any, now: datetime | None = None, **_: Any) -> list[Any]:
        channels: tuple[Sender, ...] = check_senders(senders)
        now = self.clock() if now is None else now
        handled = []
        for notice in self.store.claim_due(now, timedelta(minutes=5), token="blind"):
            delivered = self.dispatcher.deliver(notice, channels, now)
            self.store.save_notices([delivered], token="blind")
            handled.append(delivered)
        return handled


def no_settle_window(spec: Spec, clock: ManualClock) -> Engine:
    return Engine.in_memory(spec=spec.evolve(settle_window=timedelta(0)), clock=clock)


BROKEN = {
    "last write wins": deciding(LastWriteWins),
    "no deduplication": deciding(NoDeduplication),
    "no settle window": no_settle_window,
    "notifier that does not re-check state": lambda spec, clock: BlindNotifier.in_memory(
        spec=spec, clock=clock
    ),
}
EXPECTED = {
    "last write wins": ("but its events fold to",),
    "no deduplication": ("redelivered", "events"),
    "no settle window": ("inside the settle window",),
    "notifier that does not re-check state": ("while the debit is",),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BROKEN))
def test_the_harness_catches_a_broken_engine(name: str) -> None:
    reported: list[object] = []  # anything hypothesis would print: kept, not shown
    with with_reporter(reported.append), pytest.raises(AssertionError) as caught:
        run_harness(BROKEN[name], **HUNT)
    report = "\n".join([*map(str, reported), *getattr(caught.value, "__notes__", [])])
    assert any(phrase in str(caught.value) for phrase in EXPECTED[name]), (caught.value, report)
    # The shrunk counterexample, step by step, ready to paste into a test.
    assert "state = DebitHarness()" in report, report
    assert "state.load(streams=" in report, report
    # The listing ends at teardown (hypothesis's CI profile may add a reproduce_failure blob after).
    lines = [line.strip() for line in report.splitlines()]
    assert "state.teardown()" in lines, report
    listing = "\n".join(lines[: lines.index("state.teardown()")])
    steps = re.findall(r"^state\.(deliver|redeliver|wait|dispatch)\(", listing, flags=re.MULTILINE)
    # Shrunk: a few steps, not the 40 a run may take (a loaded machine may stop shrinking early).
    assert 1 <= len(steps) <= 12, report


# The pytest entry point ---------------------------------------------------------------------

USER_TEST = """
def test_my_integration(statemachine_harness):
    statemachine_harness(max_examples=10, database=None)
"""


@pytest.mark.slow
def test_the_pytest_plugin_points_the_harness_at_a_sqlite_file(
    pytester: pytest.Pytester, tmp_path: Any
) -> None:
    import sqlite3

    pytester.makepyfile(test_user=USER_TEST)
    shared = tmp_path / "theirs.sqlite"
    result = pytester.runpytest_subprocess(
        "--statemachine-target", f"sqlite:{shared}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    debits = sqlite3.connect(shared).execute("SELECT count(*) FROM debits").fetchone()[0]
    assert debits > 0  # the harness really ran against the user's file


def test_the_pytest_plugin_reads_the_target_from_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_user=USER_TEST
        + """
def test_target(statemachine_engine_factory):
    from statemachine import ManualClock, Spec
    engine = statemachine_engine_factory(Spec.default(), ManualClock())
    assert type(engine.store).__name__ == "SQLiteStore"
"""
    )
    monkeypatch.setenv("STATEMACHINE_TARGET", "sqlite")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)
