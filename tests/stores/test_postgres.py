"""The PostgreSQL store's own cases: DSNs and schema names. Runs where STATEMACHINE_PG_DSN is
set; what it shares with SQLite (processes racing, killed workers, foreign schemas) is in
test_stores.py."""

from __future__ import annotations

import os
import threading

import pytest
from conftest import pg_engine
from support import DEADLINE, ev

from statemachine import Engine, Spec, StoreError

DSN = os.environ.get("STATEMACHINE_PG_DSN")
pytestmark = pytest.mark.skipif(
    not DSN, reason="set STATEMACHINE_PG_DSN to run the PostgreSQL tests"
)


def test_bad_targets_are_clear_errors() -> None:
    with pytest.raises(StoreError, match="cannot open"):
        Engine.open("postgresql://postgres@127.0.0.1:1/test", timeout=1)
    with pytest.raises(ValueError, match="schema must be a lower-case SQL identifier"):
        Engine.open(f"{DSN}?schema=Robert'); DROP TABLE students;--")


def test_stores_in_two_schemas_do_not_wait_on_each_others_debits() -> None:
    from statemachine.stores.postgres import PostgresStore

    first, second = pg_engine(Spec.default()), pg_engine(Spec.default())
    try:
        with first.transaction():
            first.apply(ev("submitted", debit_id="loan-1"))  # holds loan-1's lock till the end
            other = threading.Thread(
                target=second.apply, args=(ev("submitted", debit_id="loan-1"),), daemon=True
            )
            other.start()
            other.join(DEADLINE)  # returns as soon as the apply does; the deadline only fails
            assert not other.is_alive(), "an apply in another schema waited for this one's lock"
        assert second.get("loan-1") is not None
    finally:
        for engine in (first, second):
            assert isinstance(engine.store, PostgresStore)
            engine.store.drop()
            engine.close()
