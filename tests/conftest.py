"""Store factories: the conformance suite runs every store through the same tests."""

from __future__ import annotations

import itertools
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from provider import Provider

from statemachine import Engine, Spec
from statemachine.clock import Clock, utc_now
from statemachine.stores.memory import MemoryStore
from statemachine.stores.sqlite import SQLiteStore

pytest_plugins = ["pytester"]

# No property test depends on timing: a busy machine must not fail an example for being slow.
# The profile in force (hypothesis picks "ci" under CI) is kept, with no deadline.
settings.register_profile(
    "untimed", settings.get_profile(settings.get_current_profile_name()), deadline=None
)
settings.load_profile("untimed")
EngineFactory = Callable[..., Engine]
STORES = ["memory", "sqlite", "postgres"]
DURABLE = ["sqlite", "postgres"]  # for parametrize("store_kind", DURABLE, indirect=True)
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


def pg_engine(spec: Spec, clock: Clock = utc_now, schema: str | None = None) -> Engine:
    """An engine on a fresh schema of the test database (or on ``schema``);
    ``engine.store.drop()`` removes it."""
    from statemachine.stores.postgres import PostgresStore

    assert PG_DSN is not None
    schema = schema or f"t_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(PG_DSN, spec, schema=schema, pool_size=2)
    return Engine(store, spec=spec, clock=clock)


def _reopen(engine: Engine, spec: Spec, clock: Clock) -> Engine:
    """Another engine on ``engine``'s database through a store of its own, as another process
    would open it; in memory, where no other process can, on the same store."""
    store = engine.store
    if isinstance(store, MemoryStore):
        return Engine(store, spec=spec, clock=clock)
    if isinstance(store, SQLiteStore):
        return Engine(SQLiteStore(store.path, spec, synchronous="OFF"), spec=spec, clock=clock)
    return pg_engine(spec, clock, schema=getattr(store, "schema", None))


@pytest.fixture
def make_engine(store_kind: str) -> Iterator[EngineFactory]:
    """``make_engine(spec=None, clock=None, sharing=None)``: a fresh engine on a fresh store of
    the kind, or, with ``sharing``, another engine on that engine's database."""
    with tempfile.TemporaryDirectory(prefix="statemachine-") as folder:
        numbers = itertools.count()
        engines: list[Engine] = []

        def make(
            spec: Spec | None = None, clock: Clock = utc_now, sharing: Engine | None = None
        ) -> Engine:
            spec = spec or Spec.default()
            if sharing is not None:
                engine = _reopen(sharing, spec, clock)
            elif store_kind == "memory":
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


class Target:
    """A durable store that any process opens by its ``url``: an SQLite file, or a PostgreSQL
    schema of its own; ``query`` and ``execute`` reach its tables without the engine."""

    def __init__(self, kind: str, url: str, schema: str | None = None) -> None:
        self.kind, self.url, self.schema = kind, url, schema

    def __repr__(self) -> str:
        return f"Target({self.kind}: {self.url})"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.schema is None:
            with closing(sqlite3.connect(self.url)) as conn, conn:
                return conn.execute(sql).fetchall()
        import psycopg

        assert PG_DSN is not None
        with psycopg.connect(PG_DSN, autocommit=True) as pg:
            pg.execute(f"SET search_path TO {self.schema}")
            cursor = pg.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def execute(self, sql: str) -> None:
        self.query(sql)

    def tables(self) -> set[str]:
        """The tables in the store's file or schema, whoever made them."""
        if self.schema is None:
            return {
                name
                for (name,) in self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        return {name for (name,) in self.query(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{self.schema}'"
        )}  # fmt: skip

    def plant_foreign_table(self) -> None:
        """Make the file or schema another application's, before the engine ever sees it."""
        if self.schema is not None:
            self.execute(f"CREATE SCHEMA {self.schema}")
        self.execute("CREATE TABLE customers (id integer PRIMARY KEY, name text)")


@pytest.fixture
def target(store_kind: str, tmp_path: Path) -> Iterator[Target]:
    """A fresh durable store of the kind, for tests with processes or raw SQL; the PostgreSQL
    schema is dropped afterwards. Parametrise ``store_kind`` with DURABLE to use it."""
    if store_kind == "sqlite":
        yield Target("sqlite", str(tmp_path / "debits.sqlite"))
        return
    assert store_kind == "postgres", f"{store_kind}: a store no other process can open"
    assert PG_DSN is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Target("postgres", f"{PG_DSN}?schema={schema}", schema)
    Target("postgres", PG_DSN, schema).execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def undo_schema_5(target: Target) -> None:
    """Take a fresh store back to schema 4: no inquiries of stuck debits."""
    target.execute("DROP TABLE inquiries")
    target.execute("DROP TABLE inquiry_schedule")
    target.execute("UPDATE statemachine_meta SET value = '4' WHERE key = 'schema_version'")


def undo_schema_4(target: Target) -> None:
    """Take a fresh store back to schema 3: no receipts, no fallback columns (N8)."""
    undo_schema_5(target)
    target.execute("DROP TABLE receipts")
    target.execute("DROP INDEX notices_awaiting_receipt")
    target.execute("ALTER TABLE notices DROP COLUMN tried")
    target.execute("ALTER TABLE notices DROP COLUMN receipt_by")
    target.execute("UPDATE statemachine_meta SET value = '3' WHERE key = 'schema_version'")


def undo_schema_3(target: Target) -> None:
    """Take a fresh store back to schema 2: no claim tokens (N7)."""
    undo_schema_4(target)
    target.execute("ALTER TABLE notices DROP COLUMN claimed_by")
    target.execute("UPDATE statemachine_meta SET value = '2' WHERE key = 'schema_version'")


@pytest.fixture
def provider() -> Iterator[Provider]:
    """A real HTTP provider on an ephemeral port of 127.0.0.1 that answers as a test plans
    (``provider.plan``) and records each request (``provider.received``)."""
    with Provider().running() as running:
        yield running
