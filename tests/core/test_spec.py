"""The machine as data: loaded once, validated with errors that say the fix, one shared Machine."""

from __future__ import annotations

import copy
import tomllib
from datetime import timedelta
from typing import Any

import pytest
import transitions
from conftest import EngineFactory
from support import T0, ev

from statemachine import Engine, ManualClock, RecordingSender, Spec, SpecError
from statemachine.spec import bundled_path

RAW: dict[str, Any] = tomllib.loads(bundled_path("debit.toml").read_text())


def changed(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(RAW)
    data.update(changes)
    return data


def test_default_spec_matches_design() -> None:
    spec = Spec.default()
    assert spec.states == ("pending", "submitted", "succeeded", "failed", "reversed")
    assert spec.initial == "pending"
    assert dict(spec.authorities) == {"operator": 4, "settlement": 3, "gateway": 2, "internal": 1}
    assert spec.settle_window.total_seconds() == 900
    kinds = {e.kind for e in spec.transitions}
    assert kinds == {"step", "skip-ahead", "correction", "corroboration", "retry"}


def test_default_spec_is_loaded_once() -> None:
    assert Spec.default() is Spec.default()


def test_one_shared_machine_for_every_debit(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    original = transitions.Machine.__init__

    def counting(self: transitions.Machine, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(transitions.Machine, "__init__", counting)
    engine = Engine.in_memory()
    for number in range(200):
        engine.apply(ev("submitted", 0, debit_id=f"d-{number}"))
        engine.apply(ev("succeeded", 1, debit_id=f"d-{number}"))
    assert built == []
    assert len(Spec.default().machine.models) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (changed(states=[]), "`states` must be a non-empty list"),
        (changed(states=["pending", "pending"]), "`states` lists a state twice"),
        (changed(initial="new"), "`initial` is 'new', which is not one of the states"),
        (changed(outcomes=["paid"]), "outcome 'paid' is not a state"),
        (changed(settle_window_seconds=-1), "`settle_window_seconds` must be a number >= 0"),
        (
            changed(authorities={"gateway": "high"}),
            "authority of source 'gateway' must be an integer",
        ),
        (
            changed(unknown_source="bank"),
            "`unknown_source` 'bank' must name one of the authorities",
        ),
        (changed(colour="blue"), "unknown key 'colour'"),
        (
            changed(states=[*RAW["states"], "disputed"]),
            "state 'disputed' is unreachable from 'pending'; add a transition into it or remove it",
        ),
        (
            changed(
                transitions=[
                    {"trigger": "paid", "source": "pending", "dest": "succeeded", "kind": "step"}
                ]
            ),
            "transition #1: trigger 'paid' is not an event type",
        ),
        (
            changed(
                transitions=[
                    {"trigger": "failed", "source": "limbo", "dest": "failed", "kind": "step"}
                ]
            ),
            "transition #1: unknown state 'limbo'; declare it in `states`",
        ),
        (
            changed(
                transitions=[
                    {"trigger": "failed", "source": "pending", "dest": "failed", "kind": "magic"}
                ]
            ),
            "transition #1: kind 'magic' is not one of",
        ),
        (
            changed(
                transitions=[
                    {
                        "trigger": "failed",
                        "source": "pending",
                        "dest": "failed",
                        "kind": "step",
                        "guard": "maybe",
                    }
                ]
            ),
            "transition #1: guard 'maybe' is not one of",
        ),
        (
            changed(
                transitions=[
                    {"trigger": "retried", "source": "failed", "dest": "pending", "kind": "retry"}
                ]
            ),
            "a `retried` transition needs guard = 'next_attempt'",
        ),
        (
            changed(transitions=[*RAW["transitions"], RAW["transitions"][0]]),
            "two transitions for trigger 'submitted' from 'pending'",
        ),
    ],
)
def test_bad_specs_are_refused_with_the_problem_named(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=r"^<dict>: ") as caught:
        Spec.from_dict(data)
    assert message in str(caught.value)


def test_a_missing_or_broken_file_is_named(tmp_path: Any) -> None:
    with pytest.raises(SpecError, match="no such spec file"):
        Spec.load(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("states = [")
    with pytest.raises(SpecError, match=r"broken\.toml: not valid TOML"):
        Spec.load(broken)


def test_a_changed_spec_changes_the_rules() -> None:
    data = changed(authorities={"operator": 4, "settlement": 3, "gateway": 2, "internal": 5})
    engine = Engine.in_memory(spec=Spec.from_dict(data))
    engine.apply(ev("succeeded", 0, source="gateway"))
    assert engine.apply(ev("failed", 1, source="internal")).state == "failed"


def test_without_correction_edges_the_first_outcome_sticks() -> None:
    edges = [e for e in RAW["transitions"] if e["kind"] != "correction"]
    engine = Engine.in_memory(spec=Spec.from_dict(changed(transitions=edges)))
    engine.apply(ev("failed", 0, source="internal"))
    assert engine.apply(ev("succeeded", 1, source="settlement")).state == "failed"


def test_diagram_is_drawn_from_the_same_data() -> None:
    text = Spec.default().diagram()
    assert "stateDiagram-v2" in text
    for edge in Spec.default().transitions:
        assert f"{edge.source} --> {edge.dest}: {edge.trigger}" in text
    assert "failed --> pending: retried [next_attempt]" in text


RENAMED = {
    "submitted": "sent_to_bank",
    "succeeded": "paid",
    "failed": "unpaid",
    "reversed": "returned",
}


def renamed_spec() -> Spec:
    """The bundled spec with every state but the initial one called something else."""
    data = copy.deepcopy(RAW)
    data["states"] = [RENAMED.get(s, s) for s in data["states"]]
    data["outcomes"] = [RENAMED[s] for s in data["outcomes"]]
    for edge in data["transitions"]:
        sources = [edge["source"]] if isinstance(edge["source"], str) else edge["source"]
        edge["source"] = [RENAMED.get(s, s) for s in sources]
        edge["dest"] = RENAMED.get(edge["dest"], edge["dest"])
    return Spec.from_dict(data)


def test_the_spec_names_the_states_and_no_code_spells_them(make_engine: EngineFactory) -> None:
    spec = renamed_spec()
    assert (spec.in_flight, spec.failed, spec.collected) == (
        "sent_to_bank", "unpaid", frozenset({"paid", "returned"})
    )  # fmt: skip
    clock = ManualClock(T0)
    engine = make_engine(spec=spec, clock=clock)
    engine.apply(ev("submitted", 0, debit_id="slow"))
    engine.apply(ev("failed", 0, debit_id="lost"))
    engine.apply(ev("succeeded", 0, debit_id="won"))
    engine.apply(ev("reversed", 1, debit_id="won"))
    # Stuck debits are found in the spec's in-flight state, whatever it is called.
    assert [d for d, _ in engine.stuck(timedelta(days=3), T0 + timedelta(days=4))] == ["slow"]
    metrics = engine.metrics(now=T0)
    assert metrics.debits_by_state == {"sent_to_bank": 1, "unpaid": 1, "returned": 1}
    assert metrics.success_rate == 0  # neither returned nor unpaid counts as paid
    # The failure notice waits the settle window (N2); the reversal goes at once.
    sms = RecordingSender("sms")
    engine.dispatch_due([sms])
    assert [(n.debit_id, n.outcome) for n in sms.sent] == [("won", "returned")]
    clock.advance_to(T0 + spec.settle_window)
    engine.dispatch_due([sms])
    assert [(n.debit_id, n.outcome) for n in sms.sent][1:] == [("lost", "unpaid")]
    assert engine.verify() == []


def test_one_event_type_leading_to_two_states_is_refused() -> None:
    edges = [*RAW["transitions"]]
    edges.append({"trigger": "failed", "source": "reversed", "dest": "pending", "kind": "step"})
    with pytest.raises(SpecError, match="trigger 'failed' leads to both 'failed' and 'pending'"):
        Spec.from_dict(changed(transitions=edges))
