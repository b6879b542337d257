"""Every golden scenario in specs/scenarios/ produces exactly the results it records."""

from __future__ import annotations

from pathlib import Path

import pytest

from statemachine.scenarios import Scenario, bundled_scenarios

SCENARIOS = bundled_scenarios()


def test_the_required_scenarios_are_bundled() -> None:
    assert len(SCENARIOS) >= 13


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    assert Scenario.load(path).run() == []


def test_a_wrong_expectation_is_reported(tmp_path: Path) -> None:
    text = (
        (SCENARIOS[0])
        .read_text()
        .replace('state = "succeeded"\nattempt = 1', 'state = "failed"\nattempt = 1')
    )
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text)
    assert Scenario.load(wrong).run() == ["end: state expected 'failed', got 'succeeded'"]


def test_a_wrong_last_word_is_reported(tmp_path: Path) -> None:
    (source,) = [p for p in SCENARIOS if p.stem.startswith("21-")]
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(source.read_text().replace('told = "succeeded"', 'told = "failed"'))
    assert Scenario.load(wrong).run() == ["end: told expected 'failed', got 'succeeded'"]
