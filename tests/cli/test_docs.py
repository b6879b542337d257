"""The README's examples run, and the numbers it quotes are the ones the demo prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from statemachine.cli import main
from statemachine.spec import bundled_path

README = Path(__file__).resolve().parents[2] / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_python_block_runs(number: int) -> None:
    exec(compile(BLOCKS[number], f"README.md python block {number + 1}", "exec"), {})


def test_readme_quotes_the_demo_output() -> None:
    quoted = re.search(
        r"^failure notices for attempts that were collected: .*$", TEXT, flags=re.MULTILINE
    )
    assert quoted is not None
    out = (
        CliRunner()
        .invoke(main, ["replay", str(bundled_path("examples", "car-loans-month.jsonl"))])
        .output
    )
    assert quoted.group(0) in out.splitlines()


def test_readme_commands_exist_in_the_makefile() -> None:
    makefile = (README.parent / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", TEXT, flags=re.MULTILINE):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
