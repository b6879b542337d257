"""`statemachine inquire`: a real inquirer module (tests/gateway_inquirer.py answering from a
file), once through click's runner and in a loop as a real process stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import DURABLE, Target
from support import Child, debit_of, ev

from statemachine import Engine
from statemachine.cli import main

INQUIRER = "gateway_inquirer:make"


def book(url: str, *debit_ids: str) -> None:
    """Debits submitted in March 2026: long quiet by any clock that runs these tests."""
    with Engine.open(url) as engine:
        for debit_id in debit_ids:
            engine.apply(ev("submitted", 0, debit_id=debit_id))


def answers_file(folder: Path, answers: dict[str, Any]) -> str:
    """What the gateway of tests/gateway_inquirer.py answers, as its file."""
    path = folder / "answers.json"
    path.write_text(json.dumps(answers), encoding="utf-8")
    return str(path)


def answering(monkeypatch: pytest.MonkeyPatch, folder: Path, answers: dict[str, Any]) -> None:
    monkeypatch.setenv("GATEWAY_ANSWERS", answers_file(folder, answers))


def inquire(*args: str) -> Result:
    return CliRunner().invoke(main, ["inquire", *args])


def test_inquire_applies_answers_and_records_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "march.sqlite")
    book(db, "paid", "quiet", "down")
    answering(monkeypatch, tmp_path, {"paid": {"type": "succeeded"}, "down": "unreachable"})
    result = inquire("--db", db, "--inquirer", INQUIRER)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == "round 1: asked 3, answered 1, errors 1"
    assert any(line.startswith("paid #1: succeeded (applied); next ") for line in lines)
    assert any(line.startswith("quiet #1: no news; next ") for line in lines)
    down = "down #1: error: ConnectionError: gateway unreachable asking about down; next "
    assert any(line.startswith(down) for line in lines)
    with Engine.open(db) as engine:
        states = {d: debit_of(engine, d).state for d in ("paid", "quiet", "down")}
        assert states == {"paid": "succeeded", "quiet": "submitted", "down": "submitted"}
    again = inquire("--db", db, "--inquirer", INQUIRER)  # recorded: not asked again at once
    assert again.output.splitlines() == ["round 1: asked 0, answered 0, errors 0"]
    stats = CliRunner().invoke(main, ["stats", "--db", db, "--stuck-after", "1d"])
    assert "inquiries           asked 3, answered 1, errors 1" in stats.output.splitlines()
    assert "; last inquiry " in stats.output
    assert ": no news)" in stats.output
    prometheus = CliRunner().invoke(main, ["stats", "--db", db, "--prometheus"]).output
    assert "statemachine_inquiry_errors 1.0" in prometheus.splitlines()


def test_inquire_refuses_a_database_that_does_not_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answering(monkeypatch, tmp_path, {})
    missing = tmp_path / "mistyped.sqlite"
    result = inquire("--db", str(missing), "--inquirer", INQUIRER)
    assert result.exit_code == 1
    assert "no such database (nothing was created)" in result.output
    assert not missing.exists()


@pytest.mark.parametrize(
    ("inquirer", "message"),
    [
        ("no_such_module:make", "cannot load 'no_such_module:make' (No module named"),
        ("gateway_inquirer", "cannot load 'gateway_inquirer' (no :FACTORY after the module)"),
        ("gateway_inquirer:nope", "cannot load 'gateway_inquirer:nope' (module"),
        ("gateway_inquirer:not_a_function", "returned a str; expected a function that takes"),
    ],
)
def test_an_inquirer_that_does_not_load_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inquirer: str, message: str
) -> None:
    db = str(tmp_path / "march.sqlite")
    book(db, "d-1")
    answering(monkeypatch, tmp_path, {})
    result = inquire("--db", db, "--inquirer", inquirer)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--inquirer'" in result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_schedule_is_checked_and_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "march.sqlite")
    book(db, "d-1")
    answering(monkeypatch, tmp_path, {})
    bad = inquire("--db", db, "--inquirer", INQUIRER, "--schedule", "5m,soon")
    assert bad.exit_code == 2
    assert "'soon' is not a duration such as 90s, 15m, 12h or 3d" in bad.output
    result = inquire("--db", db, "--inquirer", INQUIRER, "--schedule", "1m,2d")
    assert result.exit_code == 0, result.output
    with Engine.open(db) as engine:
        (inquiry,) = engine.inquiries("d-1")
    assert (inquiry.next_at - inquiry.asked_at).days == 2


@pytest.mark.parametrize("store_kind", DURABLE, indirect=True)
def test_the_loop_runs_until_sigterm(target: Target, tmp_path: Path) -> None:
    book(target.url, "paid", "quiet")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]),
           "GATEWAY_ANSWERS": answers_file(tmp_path, {"paid": {"type": "succeeded"}})}  # fmt: skip
    child = Child("-m", "statemachine", "inquire", "--db", target.url, "--inquirer", INQUIRER,
                  "--loop", "0.01", env=env)  # fmt: skip
    child.wait_for(lambda line: line == "round 1: asked 2, answered 1, errors 0")
    # Later rounds find nothing due: each debit waits 15 minutes for its next inquiry.
    child.wait_for(lambda line: line == "round 2: asked 0, answered 0, errors 0")
    child.process.send_signal(signal.SIGTERM)
    lines = child.finish()  # exit code 0: the loop ended, not the process killed
    assert lines[-1].startswith("round ")
    assert lines[-1].endswith(": asked 0, answered 0, errors 0")
    with Engine.open(target.url) as engine:
        assert debit_of(engine, "paid").state == "succeeded"
        assert debit_of(engine, "quiet").state == "submitted"
        assert [len(engine.inquiries(d)) for d in ("paid", "quiet")] == [1, 1]
