"""Inside a unit of work SQLite writes each debit's and notice's row once, at the end, with
the bytes the row would have had written change by change; a statement that must see the
staged rows (a report, a receipt, a plain read) gets them written first."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from support import T0, ev

from statemachine import Engine, ManualClock
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
        assert not any("INTO debits" in sql for sql in written)  # nothing written yet
    staged.store.conn.set_trace_callback(None)  # type: ignore[attr-defined]
    staged.close()
    assert sum("INTO debits" in sql for sql in written) == 1
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
