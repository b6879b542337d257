"""The ``statemachine`` command (also ``python -m statemachine``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .clock import ManualClock
from .engine import Engine
from .errors import SpecError
from .replay import Replay, replay_logs
from .scenarios import Scenario, bundled_scenarios
from .spec import Spec

F = TypeVar("F", bound=Callable[..., Any])


def spec_option(command: F) -> F:
    """``--spec FILE``: use another machine spec than the bundled specs/debit.toml."""
    return click.option(
        "--spec",
        "spec_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Machine spec (TOML) to use instead of the bundled specs/debit.toml.",
    )(command)


def _load_spec(path: Path | None) -> Spec:
    try:
        return Spec.load(path) if path else Spec.default()
    except SpecError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="statemachine")
def main() -> None:
    """Debit state-machine engine: apply payment events, derive customer notices from state.

    \b
    Example:
        statemachine replay specs/examples/car-loans-month.jsonl
    """


@main.command()
@click.argument("logs", nargs=-1, required=True)
@spec_option
def replay(logs: tuple[str, ...], spec_path: Path | None) -> None:
    """Replay JSONL event logs (.gz too, - for stdin) on event time and print a summary.

    Notices are dispatched on the replay clock (the latest occurred_at seen) through a
    recording sender: no customer is contacted. Bad lines are stored as invalid and counted.

    \b
    Example:
        statemachine replay specs/examples/car-loans-month.jsonl
    """
    engine = Engine.in_memory(spec=_load_spec(spec_path), clock=ManualClock())
    try:
        summary = replay_logs(Replay(engine), logs)
    except OSError as exc:
        raise click.ClickException(f"cannot read {exc.filename}: {exc.strerror}") from None
    click.echo(summary.render())


@main.command()
@spec_option
def diagram(spec_path: Path | None) -> None:
    """Print the debit machine as a Mermaid state diagram, drawn from the spec.

    \b
    Example:
        statemachine diagram > debit.mmd
    """
    click.echo(_load_spec(spec_path).diagram())


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@spec_option
def scenarios(paths: tuple[Path, ...], spec_path: Path | None) -> None:
    """Run golden scenarios (TOML) and report each; exit 1 if any fails.

    Without PATHS, runs the bundled specs/scenarios/. With --spec, checks a changed spec
    against them before it ships.

    \b
    Example:
        statemachine scenarios --spec my-debit.toml
    """
    spec = _load_spec(spec_path)
    files = [f for p in paths for f in (sorted(p.glob("*.toml")) if p.is_dir() else [p])]
    failed = 0
    for path in files or bundled_scenarios():
        problems = Scenario.load(path).run(spec)
        click.echo(f"{'FAIL' if problems else 'ok  '} {path.name}")
        for problem in problems:
            click.echo(f"     {problem}")
        failed += bool(problems)
    if failed:
        raise click.ClickException(f"{failed} scenario(s) failed")
