"""pytest entry point: point the harness at a store from the command line.

Installed with the package (entry point ``pytest11``). Options:

    pytest --statemachine-target memory          # the default
    pytest --statemachine-target sqlite          # a fresh SQLite file for every engine
    pytest --statemachine-target sqlite:PATH     # one shared SQLite file (runs keep apart by id)

(also the ``statemachine_target`` ini option, or ``STATEMACHINE_TARGET`` in the environment).
Fixtures: ``statemachine_engine_factory`` makes engines on the target, and
``statemachine_harness`` runs the stateful test against it::

    def test_my_store(statemachine_harness):
        statemachine_harness(max_examples=100)
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .clock import ManualClock
from .engine import Engine
from .spec import Spec
from .testing import EngineFactory, run_harness


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("statemachine", "debit state-machine harness")
    group.addoption(
        "--statemachine-target",
        default=None,
        help="store the harness runs against: memory, sqlite, or sqlite:PATH",
    )
    parser.addini("statemachine_target", "default for --statemachine-target", default="")


def target_of(config: pytest.Config) -> str:
    chosen = config.getoption("--statemachine-target") or config.getini("statemachine_target")
    return str(chosen or os.environ.get("STATEMACHINE_TARGET") or "memory")


@pytest.fixture
def statemachine_engine_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[EngineFactory]:
    """``factory(spec, clock)``: a new engine on the configured target."""
    target = target_of(request.config)
    numbers = itertools.count()
    opened: list[Engine] = []

    def make(spec: Spec, clock: ManualClock) -> Engine:
        if target == "memory":
            engine = Engine.in_memory(spec=spec, clock=clock)
        elif target == "sqlite":
            engine = Engine.open(tmp_path / f"harness-{next(numbers)}.sqlite", spec=spec, clock=clock,
                                 synchronous="OFF")  # fmt: skip
        elif target.startswith("sqlite:"):
            engine = Engine.open(target.removeprefix("sqlite:"), spec=spec, clock=clock)
        else:
            engine = Engine.open(target, spec=spec, clock=clock)
        opened.append(engine)
        return engine

    yield make
    for engine in opened:
        engine.close()  # closing twice is harmless: the harness's teardown closes it too


@pytest.fixture
def statemachine_harness(statemachine_engine_factory: EngineFactory) -> Callable[..., None]:
    """``harness(spec=None, senders=None, **hypothesis_settings)`` runs the stateful test."""

    def run(spec: Spec | None = None, senders: Any = None, **hypothesis_settings: Any) -> None:
        run_harness(statemachine_engine_factory, spec, senders, **hypothesis_settings)

    return run
