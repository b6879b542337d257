"""The README's examples run, and the numbers it quotes are the ones the demo prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from statemachine.cli import main
from statemachine.spec import bundled_path

README = Path(__file__).resolve().parents[2] / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.DOTALL)
COMMAND_LINE = re.search(r"^## The command line\n(.*?)^## ", TEXT, flags=re.DOTALL | re.MULTILINE)
COMMANDS = sorted(main.commands)


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


def examples(help_text: str) -> list[list[str]]:
    """The command lines of a help text's ``Example:`` section, split as a shell would."""
    section = re.search(r"^  Example:\n((?:      .*\n?)+)", help_text, flags=re.MULTILINE)
    assert section is not None, help_text
    return [shlex.split(line) for line in section.group(1).splitlines()]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    lines = examples(result.output)
    assert any(line[:2] == ["statemachine", name] for line in lines), result.output
    for line in lines:
        assert line[0] == "statemachine", line
        command = main.commands[line[1]]  # a KeyError names a command that does not exist
        known = {opt for param in command.params if isinstance(param, click.Option)
                 for opt in param.opts}  # fmt: skip
        used = {word for word in line[2:] if word.startswith("-") and word != "-"}
        assert used <= known, (line, used - known)


def test_the_group_help_shows_an_example() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert [line[:2] for line in examples(result.output)] == [["statemachine", "replay"]]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_in_the_readme(name: str) -> None:
    assert COMMAND_LINE is not None, "README.md has no '## The command line' section"
    assert f"statemachine {name} " in COMMAND_LINE.group(1), name
