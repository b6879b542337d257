"""The ``statemachine`` command (also ``python -m statemachine``): one module per family of
commands, sharing the options of ``options.py``."""

from __future__ import annotations

import click

from .book import show, stats, verify
from .inquire import inquire
from .notices import dispatch, receipts
from .replay import diff, import_, replay
from .serve import serve
from .specs import diagram, scenarios

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="statemachine")
def main() -> None:
    """Debit state-machine engine: apply payment events, derive customer notices from state.

    \b
    Example:
        statemachine replay specs/examples/car-loans-month.jsonl
    """


for command in (
    replay, import_, diff, show, stats, dispatch, receipts, inquire, verify, diagram, scenarios,
    serve,
):  # fmt: skip
    main.add_command(command)
