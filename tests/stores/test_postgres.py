"""The PostgreSQL store's own cases: DSNs and schema names. Runs where STATEMACHINE_PG_DSN is
set; what it shares with SQLite (processes racing, killed workers, foreign schemas) is in
test_stores.py."""

from __future__ import annotations

import os

import pytest

from statemachine import Engine, StoreError

DSN = os.environ.get("STATEMACHINE_PG_DSN")
pytestmark = pytest.mark.skipif(
    not DSN, reason="set STATEMACHINE_PG_DSN to run the PostgreSQL tests"
)


def test_bad_targets_are_clear_errors() -> None:
    with pytest.raises(StoreError, match="cannot open"):
        Engine.open("postgresql://postgres@127.0.0.1:1/test", timeout=1)
    with pytest.raises(ValueError, match="schema must be a lower-case SQL identifier"):
        Engine.open(f"{DSN}?schema=Robert'); DROP TABLE students;--")
