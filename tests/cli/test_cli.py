"""The command line, through click's runner and once as a real process."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from support import ev

from statemachine.cli import main
from statemachine.spec import bundled_path

EXAMPLE = bundled_path("examples", "car-loans-month.jsonl")


def invoke(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.output


def test_replay_of_the_bundled_example_prints_a_summary() -> None:
    code, out = invoke("replay", str(EXAMPLE))
    assert code == 0, out
    assert "events by verdict   applied" in out
    counts = re.search(r"legacy (\d+) \(in these logs\), engine (\d+)", out)
    assert counts is not None, out
    legacy, engine = map(int, counts.groups())
    assert legacy > engine  # the engine tells fewer customers a falsehood than the legacy notifier


def test_replay_reports_bad_lines_with_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text(ev("failed", 0).to_json() + "\n\nnot json\n")
    code, out = invoke("replay", str(log))
    assert code == 0
    assert f"invalid             {log}:3: event: expected one JSON object" in out
    assert "lines read          2" in out


def test_replay_reads_gzip_and_stdin(tmp_path: Path) -> None:
    line = ev("succeeded", 0).to_json() + "\n"
    packed = tmp_path / "log.jsonl.gz"
    packed.write_bytes(gzip.compress(line.encode()))
    assert "succeeded 1" in invoke("replay", str(packed))[1]
    assert "succeeded 1" in invoke("replay", "-", input=line)[1]


def test_replay_of_a_missing_file_is_a_clear_error() -> None:
    code, out = invoke("replay", "no-such.jsonl")
    assert code == 1
    assert "Error: cannot read no-such.jsonl: no such file" in out


def test_diagram_prints_mermaid() -> None:
    code, out = invoke("diagram")
    assert code == 0
    assert "stateDiagram-v2" in out
    assert "submitted --> succeeded: succeeded [stronger]" in out


def test_scenarios_pass_on_the_bundled_spec() -> None:
    code, out = invoke("scenarios")
    assert code == 0, out
    assert out.count("ok  ") == len(list(bundled_path("scenarios").glob("*.toml")))


def test_scenarios_catch_a_changed_spec(tmp_path: Path) -> None:
    text = (
        bundled_path("debit.toml")
        .read_text()
        .replace("settle_window_seconds = 900", "settle_window_seconds = 0")
    )
    spec = tmp_path / "hasty.toml"
    spec.write_text(text)
    code, out = invoke("scenarios", "--spec", str(spec))
    assert code == 1
    assert "FAIL 02-failure-then-settlement-success-inside-window.toml" in out


def test_a_broken_spec_is_reported(tmp_path: Path) -> None:
    spec = tmp_path / "broken.toml"
    spec.write_text('states = ["pending"]\ninitial = "x"\n')
    code, out = invoke("diagram", "--spec", str(spec))
    assert code == 1
    assert "`initial` is 'x'" in out


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "statemachine", "--help"], capture_output=True, text=True, check=True
    )
    assert "Debit state-machine engine" in done.stdout
