"""Store factories: the conformance suite runs every store through the same tests."""

from __future__ import annotations

import itertools
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from statemachine import Engine, Spec
from statemachine.clock import Clock, utc_now
from statemachine.stores.memory import MemoryStore
from statemachine.stores.sqlite import SQLiteStore

pytest_plugins = ["pytester"]
EngineFactory = Callable[..., Engine]
STORES = ["memory", "sqlite", "postgres"]
PG_DSN = os.environ.get("STATEMACHINE_PG_DSN")
# Real files written by others (webhooks, return files, bank reports, event logs), kept beside
# the project and never copied into it; STATEMACHINE_REALDATA points elsewhere.


def _find_realdata() -> Path:
    """$STATEMACHINE_REALDATA, else the nearest ``shared/realdata`` beside the project or above."""
    if os.environ.get("STATEMACHINE_REALDATA"):
        return Path(os.environ["STATEMACHINE_REALDATA"])
    root = Path(__file__).resolve().parents[1]
    for folder in root.parents:
        if (folder / "shared" / "realdata").is_dir():
            return folder / "shared" / "realdata"
    return root.parent / "shared" / "realdata"


REALDATA = _find_realdata()


@pytest.fixture
def realdata() -> Path:
    """The folder of real files; tests that need it skip where it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} is absent (set STATEMACHINE_REALDATA)")
    return REALDATA


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and not PG_DSN:
        pytest.skip(
            "set STATEMACHINE_PG_DSN (e.g. postgresql://postgres@127.0.0.1:5432/test) to test PostgreSQL"
        )
    return str(request.param)


def pg_engine(spec: Spec, clock: Clock = utc_now) -> Engine:
    """An engine on a fresh schema of the test database; ``engine.store.drop()`` removes it."""
    from statemachine.stores.postgres import PostgresStore

    assert PG_DSN is not None
    store = PostgresStore(PG_DSN, spec, schema=f"t_{uuid.uuid4().hex[:12]}", pool_size=2)
    return Engine(store, spec=spec, clock=clock)


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
            elif store_kind == "postgres":
                engine = pg_engine(spec, clock)
            else:
                path = Path(folder) / f"debits-{next(numbers)}.sqlite"
                engine = Engine(SQLiteStore(path, spec, synchronous="OFF"), spec=spec, clock=clock)
            engines.append(engine)
            return engine

        yield make
        for engine in engines:
            drop = getattr(engine.store, "drop", None)
            if drop is not None:
                drop()
            engine.close()
