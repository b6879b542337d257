"""Rows written once per unit of work. Inside ``transaction()`` a store that stages keeps the
rows the unit writes in memory, and writes them once: when the unit commits, or first thing
in a statement that must see them. A replay's unit of work changes a debit several times
(each batch N5 writes, each dispatch round) and a notice twice (planned, then sent): staged,
each is one row write instead, and the unit's event rows are one insert of many rows.

Event rows keep their order of arrival, which is their sequence: they are written first,
in the order they came, before anything written directly. The reads of the write path
(revisions, records, prior events, due notices) look at the staged rows first; every other
statement writes them out before it runs (:meth:`SQLStaging._settle`). An apply that fails
inside the unit puts back the staged records it changed and stages none of its rows; any
other write that fails there may have changed them already, and the unit can then only
roll back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from ..errors import StoreError
from ..events import Event
from ..records import DebitRecord, Notice, NoticeStatus
from .sql_hooks import Connection, SQLHooks


class Staged:
    """The rows one unit of work has changed and not yet written."""

    def __init__(self) -> None:
        self.records: dict[str, DebitRecord] = {}  # debit_id -> the live record, revision set
        self.notices: dict[str, Notice] = {}
        self.events: list[tuple[Any, ...]] = []  # event rows, in order of arrival
        self.accepted: dict[str, Event] = {}  # the staged rows' accepted events, by event_id
        self.broken: str | None = None  # why the unit can no longer commit

    def queued(
        self, stored: list[tuple[str, str, datetime]], since: datetime, until: datetime
    ) -> list[tuple[str, str, datetime]]:
        """``stored`` (the database's queued notices in [since, until]) as the unit has them."""
        found = [row for row in stored if row[1] not in self.notices]
        found.extend(
            (n.debit_id, n.notice_id, n.due_at)
            for n in self.notices.values()
            if n.status is NoticeStatus.QUEUED and since <= n.due_at <= until
        )
        return sorted(found, key=lambda row: (row[2], row[1]))

    def next_due(self, stored: datetime | None, after: datetime) -> datetime | None:
        """The earliest queued due time after ``after``, given the database's: never later
        than the truth, and earlier only where a notice the database still holds as queued
        was since handled in the unit."""
        times = [n.due_at for n in self.notices.values()
                 if n.status is NoticeStatus.QUEUED and n.due_at > after]  # fmt: skip
        if stored is not None:
            times.append(stored)
        return min(times, default=None)


class SQLStaging(SQLHooks):
    """Staging for an SQL store; a dialect calls :meth:`_stage` around its ``transaction()``
    and :meth:`_settle` before every statement."""

    _staged: Staged | None = None
    _overlaid = 0  # > 0 while a read or write of the write path runs: it sees the staged rows
    _undoing = 0  # > 0 while a write runs that puts staged records back itself if it fails

    def _debit_row(self, record: DebitRecord) -> tuple[Any, ...]:
        raise NotImplementedError

    def _notice_row(self, notice: Notice) -> tuple[Any, ...]:
        raise NotImplementedError

    def _many(self, conn: Connection, query: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _staged_record(self, debit_id: str) -> DebitRecord | None:
        """The unit of work's own record of the debit, if it holds one not yet written."""
        return self._staged.records.get(debit_id) if self._staged is not None else None

    @contextmanager
    def _stage(self, conn: Connection) -> Iterator[None]:
        """Stage the rows of the unit of work inside; written before it ends well."""
        self._staged = Staged()
        try:
            yield
            self._settle(conn, always=True)
        finally:
            self._staged = None

    @contextmanager
    def _overlay(self, *, undoing: bool = False) -> Iterator[Staged | None]:
        """A read or write that takes the staged rows into account itself; ``undoing``: one
        that puts back the staged records it changed, should it fail."""
        self._overlaid += 1
        self._undoing += undoing
        try:
            yield self._staged
        finally:
            self._overlaid -= 1
            self._undoing -= undoing

    def _settle(self, conn: Connection, *, always: bool = False) -> None:
        """Write the staged rows, unless a write path that sees them is running."""
        staged = self._staged
        if staged is None or (self._overlaid and not always):
            return
        if staged.broken is not None:
            raise StoreError(f"{staged.broken}; the unit of work is rolled back whole")
        try:
            if staged.events:
                self._many(conn, self.SQL.insert_event, staged.events)
                staged.events.clear()
                staged.accepted.clear()
            if staged.records:
                rows = [self._debit_row(r) for r in staged.records.values()]
                self._many(conn, self.SQL.save_debit, rows)
                staged.records.clear()
            if staged.notices:
                rows = [self._notice_row(n) for n in staged.notices.values()]
                self._many(conn, self.SQL.upsert_notice, rows)
                staged.notices.clear()
        except BaseException as exc:
            # Some rows may be written and others not: written again, they would be doubled.
            staged.broken = f"{self.name}: writing the rows the unit of work staged failed ({exc})"
            if isinstance(exc, Exception) and not isinstance(exc, StoreError):
                raise StoreError(f"{staged.broken}; the unit of work is rolled back whole") from exc
            raise

    def _break(self, why: str) -> None:
        """A write failed inside the unit: what is staged may be half changed, unless the
        write puts it back itself."""
        staged = self._staged
        if (
            staged is not None
            and not self._undoing
            and (staged.events or staged.records or staged.notices)
        ):
            staged.broken = why


def undo_copy(record: DebitRecord) -> DebitRecord:
    """``record`` as it stands, kept to put back should the write changing it fail."""
    copy = DebitRecord(record.debit_id, record.state)
    for name in DebitRecord.__slots__:
        setattr(copy, name, getattr(record, name))
    copy.facts, copy.notices = list(record.facts), dict(record.notices)
    copy.ordered = None  # rebuilt from the facts when next needed
    return copy
