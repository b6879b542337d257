"""Commands about the machine itself: ``diagram`` and ``scenarios``."""

from __future__ import annotations

from pathlib import Path

import click

from ..scenarios import Scenario, bundled_scenarios
from .options import (
    load_spec,
    spec_option,
)


@click.command()
@spec_option
def diagram(spec_path: Path | None) -> None:
    """Print the debit machine as a Mermaid state diagram, drawn from the spec.

    \b
    Example:
        statemachine diagram > debit.mmd
    """
    click.echo(load_spec(spec_path).diagram())


@click.command()
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
    spec = load_spec(spec_path)
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
