"""Inside a unit of work SQLite writes each debit's and notice's row once, and its event rows
in one insert, at the end, with the bytes and in the order they would have had written
change by change; a statement that must see the staged rows (a report, a receipt, a plain
read) gets them written first."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from support import T0, ev

from statemachine import Engine, ManualClock, StoreError
from statemachine.dispatch import CountingSender

CHANGES = [("created", 0), ("submitted", 1), ("failed", 2), ("retried", 3), ("submitted", 4),
           ("succeeded", 5)]  # fmt: skip


def apply_and_dispatch(engine: Engine, clock: ManualClock) -> None:
    """A debit changed six times and its notices sent as due, each step a write of its own."""
    for number, (kind, minutes) in enumerate(CHANGES):
        attempt = 2 if number >= 3 else 1
        engine.apply(ev(kind, minutes, attempt=attempt, event_id=f"e{number}"))
        clock.advance_to(T0 + timedelta(minutes=minutes, seconds=30))
        due = engine.store.queued(T0, clock.now)  # as a replay asks: it sees staged rows
        engine.dispatch_notices([(d, n, clock.now) for d, n, _ in due], [CountingSender()])


def rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    try:
        return {
            "debits": conn.execute("SELECT * FROM debits").fetchall(),
            "events": conn.execute("SELECT * FROM events ORDER BY seq").fetchall(),
            "notices": conn.execute("SELECT * FROM notices ORDER BY notice_id").fetchall(),
        }
    finally:
        conn.close()


def test_a_unit_of_work_writes_each_row_once_with_the_bytes_of_every_write(
    tmp_path: Path,
) -> None:
    clock = ManualClock(T0)
    one_by_one = Engine.open(tmp_path / "each.sqlite", clock=clock)
    apply_and_dispatch(one_by_one, clock)
    one_by_one.close()

    clock = ManualClock(T0)
    staged = Engine.open(tmp_path / "unit.sqlite", clock=clock)
    written: list[str] = []
    staged.store.conn.set_trace_callback(written.append)  # type: ignore[attr-defined]
    with staged.transaction():
        apply_and_dispatch(staged, clock)
        assert not any("INTO debits" in sql or "INTO events" in sql for sql in written)
    staged.store.conn.set_trace_callback(None)  # type: ignore[attr-defined]
    staged.close()
    assert sum("INTO debits" in sql for sql in written) == 1
    assert sum("INTO events" in sql for sql in written) == len(CHANGES)  # executemany: a row each
    assert sum("INTO notices" in sql for sql in written) == len(
        rows(tmp_path / "unit.sqlite")["notices"]
    )
    assert rows(tmp_path / "unit.sqlite") == rows(tmp_path / "each.sqlite")


def test_statements_inside_a_unit_see_what_it_staged(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "debits.sqlite", clock=ManualClock(T0))
    with engine.transaction():
        engine.apply(ev("succeeded", 0, debit_id="d-1"))
        assert engine.store.queued(T0, T0) == [("d-1", "d-1#1:succeeded", T0)]
        assert engine.metrics().debits_by_state == {"succeeded": 1}  # written out first
        (notice,) = engine.notices("d-1")
        assert notice.status == "queued"
        engine.apply(ev("reversed", 1, debit_id="d-1", source="settlement"))
        assert engine.get("d-1").state == "reversed"  # type: ignore[union-attr]
        assert sorted(n.kind for n in engine.notices("d-1")) == ["reversed", "succeeded"]
    assert engine.metrics().debits_by_state == {"reversed": 1}
    assert engine.verify() == []
    engine.close()


def test_events_staged_in_a_unit_are_judged_and_kept_in_order_of_arrival(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "debits.sqlite", clock=ManualClock(T0))
    first = ev("submitted", 0, debit_id="d-1", event_id="e1")
    with engine.transaction():
        engine.apply_many([first, ev("failed", 1, debit_id="d-1", event_id="e2")])
        # Later batches of the unit see its staged events: a repeat, a reused id.
        again = engine.apply_many([first, ev("succeeded", 2, debit_id="d-2", event_id="e2")])
        assert [r.verdict for r in again] == ["duplicate", "invalid"]
        engine.ingest("{not json", origin="log:4")  # written at once: the staged rows first
        engine.apply(ev("submitted", 3, debit_id="d-2", event_id="e3"))
    conn = sqlite3.connect(tmp_path / "debits.sqlite")
    order = conn.execute("SELECT event_id, verdict, origin FROM events ORDER BY seq").fetchall()
    conn.close()
    assert order == [("e1", "applied", None), ("e2", "applied", None),
                     ("e1", "duplicate", None), ("e2", "invalid", None),
                     (None, "invalid", "log:4"), ("e3", "applied", None)]  # fmt: skip
    engine.close()


def test_a_unit_whose_staged_rows_fail_to_write_can_only_roll_back(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "debits.sqlite", clock=ManualClock(T0))
    first = ev("created", 0, event_id="x1")
    engine.apply(first)
    conn = engine.store.conn  # type: ignore[attr-defined]
    # The second staged row fails: the first is written by then, and must not be again.
    conn.execute("CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.event_id = 'b1'"
                 " BEGIN SELECT RAISE(ABORT, 'boom'); END")  # fmt: skip

    def unit() -> None:
        with engine.transaction():
            engine.apply_many([first, ev("created", 0, debit_id="d-2", event_id="b1")])
            with pytest.raises(StoreError, match="boom"):
                engine.history("d-1")  # a read writes the staged rows first
            conn.execute("DROP TRIGGER boom")  # the caller carries on: the unit may not

    with pytest.raises(StoreError, match="rolled back whole"):
        unit()
    stored = sqlite3.connect(tmp_path / "debits.sqlite")
    rows = stored.execute("SELECT event_id, verdict FROM events ORDER BY seq").fetchall()
    stored.close()
    assert rows == [("x1", "applied")]  # the unit rolled back whole: nothing doubled
    assert engine.get("d-2") is None
    engine.close()
