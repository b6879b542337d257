"""Store factories: the conformance suite runs every store through the same tests."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from statemachine import Engine, ManualClock, Spec
from statemachine.clock import Clock, utc_now
from statemachine.stores.memory import MemoryStore
from statemachine.stores.sqlite import SQLiteStore

pytest_plugins = ["pytester"]
EngineFactory = Callable[..., Engine]
STORES = ["memory", "sqlite"]


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_engine(store_kind: str) -> Iterator[EngineFactory]:
    """``make_engine(spec=None, clock=None)``: a fresh engine on a fresh store of the kind."""
    with tempfile.TemporaryDirectory(prefix="statemachine-") as folder:
        numbers = itertools.count()
        engines: list[Engine] = []

        def make(spec: Spec | None = None, clock: Clock = utc_now) -> Engine:
            spec = spec or Spec.default()
            if store_kind == "memory":
                engine = Engine(MemoryStore(), spec=spec, clock=clock)
            else:
                path = Path(folder) / f"debits-{next(numbers)}.sqlite"
                engine = Engine(SQLiteStore(path, spec, synchronous="OFF"), spec=spec, clock=clock)
            engines.append(engine)
            return engine

        yield make
        for engine in engines:
            engine.close()


def manual(start: object = None) -> ManualClock:
    return ManualClock() if start is None else ManualClock(start)  # type: ignore[arg-type]
