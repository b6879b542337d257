"""Replay on event time (N5): the clock is the latest ``occurred_at`` seen and never runs back.

A notice is dispatched once the clock passes its due time, before the next event is applied;
at the end the clock moves past every settle window. So a replay reports exactly the notices
the engine would have sent. Replay sends through recording senders unless told otherwise.

>>> from statemachine import Engine, Event, ManualClock
>>> replay = Replay(Engine.in_memory(clock=ManualClock()))
>>> replay.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "d-1", "type": "failed",
...     "occurred_at": "2026-03-05T10:00:00+00:00"})).state
'failed'
>>> [n.kind for n in replay.finish()]
['failed']
"""

from __future__ import annotations

import csv
import gzip
import os
import sqlite3
import sys
import tempfile
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, closing, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import attrs
import orjson

from .clock import DAWN, ManualClock
from .debits import Result
from .engine import Engine
from .events import CREATED, FAILED, SUBMITTED, Event
from .notices import CountingSender, Notice, NoticeStatus, Sender
from .precedence import COLLECTED, Verdict


class Replay:
    """Feeds events to an engine whose clock is a :class:`ManualClock`, dispatching on the way."""

    def __init__(self, engine: Engine, senders: Iterable[Sender] | None = None) -> None:
        if not isinstance(engine.clock, ManualClock):
            raise TypeError("Replay needs an engine built with clock=ManualClock()")
        self.engine = engine
        self.clock: ManualClock = engine.clock
        self.senders: tuple[Sender, ...] = tuple(senders) if senders else (CountingSender(),)
        # The latest notices handled, for a look; a long replay keeps only so many.
        self.dispatched: deque[Notice] = deque(maxlen=RECENT)

    def apply(self, event: Event, *, raw: str | None = None, origin: str | None = None) -> Result:
        self._advance(event)
        return self.engine.apply(event, raw=raw, origin=origin)

    def ingest(self, raw: str | bytes, origin: str | None = None, parsed: Any = None) -> Result:
        """Parse and apply one input line; bad input is stored as ``invalid`` and replay goes on.

        ``parsed`` is the line's JSON when the caller has already decoded it.
        """
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            event = Event.from_dict(parsed) if parsed is not None else Event.from_json(raw)
        except ValueError:
            return self.engine.ingest(text, origin, parsed=parsed)
        return self.apply(event, raw=text, origin=origin)

    def dispatch(self) -> list[Notice]:
        handled = self.engine.dispatch_due(self.senders, now=self.clock.now)
        self.dispatched.extend(handled)
        return handled

    def finish(self) -> list[Notice]:
        """Move the clock past every pending due time (settle windows, retries) and dispatch."""
        handled: list[Notice] = []
        for _ in range(self.engine.retry.max_deliveries + 1):
            queued = self.engine.store.queued(DAWN, NEVER)
            if not queued:
                break
            self.clock.advance_to(max(due for _, _, due in queued))
            handled.extend(self.dispatch())
        return handled

    def close(self, error: BaseException | None = None) -> None:
        """End the replay's open unit of work: commit it, or roll it back after ``error``."""
        return None

    def _advance(self, event: Event) -> None:
        if event.occurred_at > self.clock.now:
            self.clock.advance_to(event.occurred_at)
            self.dispatch()


class BatchedReplay(Replay):
    """A replay that applies events in transactions of ``batch_size``, dispatching exactly as
    :class:`Replay` would (N5).

    A notice is sent at the first clock advance that reaches its due time, judged by its
    debit's state at that moment. A batch is written before any event of a debit that may have
    a notice crossing its due time inside the batch, so that the debit's state when the batch
    ends is its state at that moment; the crossing is then dispatched as at its time.

    Such writes happen inside one unit of work (:meth:`Engine.transaction`) that commits every
    ``batch_size`` events: N5 decides when state is written, not how often the disk syncs.
    Call :meth:`finish` at the end, or :meth:`close` with the error that stopped the replay.
    """

    def __init__(
        self, engine: Engine, senders: Iterable[Sender] | None = None, batch_size: int = 1000
    ) -> None:
        super().__init__(engine, senders)
        self.batch_size = batch_size
        self._batch: list[tuple[Event, str | None, str | None, datetime | None]] = []
        self._unit = ExitStack()  # the open unit of work, committed every batch_size events
        self._open = False
        self._uncommitted = 0
        self._advances: list[tuple[int, datetime]] = []  # (batch position, clock) per advance
        self._touched: dict[str, int] = {}  # debit -> advances seen at its last notice-able event
        # Queued notices wait in the store, not in memory: a clock advance asks the store for
        # those due since the last one, and only once it passes the earliest due time known.
        # The first advance also finds what an interrupted replay left queued.
        self._seen = self.clock.now  # crossings up to this time are collected
        self._next: datetime | None = None  # earliest queued due time after it; None: ask
        self._crossed: dict[str, list[tuple[str, datetime]]] = {}  # debit -> (notice, when)
        self._crossed_ids: set[str] = set()

    def apply(self, event: Event, *, raw: str | None = None, origin: str | None = None) -> Result:
        raise TypeError("a BatchedReplay takes events through feed(); Replay.apply is per event")

    def feed(self, event: Event, raw: str | None = None, origin: str | None = None) -> None:
        """Queue one event; the batch is written when full or when N5 needs its state."""
        debit_id = event.debit_id
        if event.occurred_at > self.clock.now:
            self.clock.advance_to(event.occurred_at)
            self._advances.append((len(self._batch), self.clock.now))
            self._cross(self.clock.now)
        seen = self._touched.get(debit_id)
        if debit_id in self._crossed or (seen is not None and seen < len(self._advances)):
            self.flush()
        if event.type not in (CREATED, SUBMITTED):
            self._touched[debit_id] = len(self._advances)
        self._batch.append((event, raw, origin, self.clock.now))  # notices planned as at now
        if len(self._batch) + self._uncommitted >= self.batch_size:
            self.flush()
            self.commit()

    def ingest(self, raw: str | bytes, origin: str | None = None, parsed: Any = None) -> Result:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            event = Event.from_dict(parsed) if parsed is not None else Event.from_json(raw)
        except ValueError:
            return self.engine.ingest(text, origin, parsed=parsed)
        self.feed(event, text, origin)
        return Result(Verdict.APPLIED, "queued in a batch", event.event_id, event.debit_id,
                      None, None, None, False)  # fmt: skip

    def commit(self) -> None:
        """Commit what has been written since the last commit."""
        self._unit.close()
        self._open, self._uncommitted = False, 0

    def _begin(self) -> None:
        if not self._open:
            self._unit.enter_context(self.engine.transaction())
            self._open = True

    def close(self, error: BaseException | None = None) -> None:
        if error is None:
            self.flush()
            self.commit()
        else:
            self._unit.__exit__(type(error), error, error.__traceback__)
            self._unit, self._open, self._uncommitted = ExitStack(), False, 0
        self._batch, self._advances, self._touched, self._crossed = [], [], {}, {}
        self._crossed_ids, self._next = set(), None

    def flush(self) -> None:
        """Write the batch, then dispatch what its clock advances crossed, in time order."""
        batch, advances = self._batch, self._advances
        self._batch, self._advances, self._touched = [], [], {}
        if batch or self._crossed:
            self._begin()
        self._uncommitted += len(batch)
        if batch:
            for position, result in enumerate(self.engine.apply_many(batch)):
                notice = result.notice
                if notice is None or notice.status is not NoticeStatus.QUEUED:
                    continue
                when = _first_advance(advances, position, notice.due_at)
                if when is None:  # due after the batch: the store holds it till a later advance
                    self._expect(notice.due_at)
                else:  # a re-planned notice comes twice; dispatch skips the version not due
                    self._crossed.setdefault(notice.debit_id, []).append((notice.notice_id, when))
        crossed, self._crossed, self._crossed_ids = self._crossed, {}, set()
        due = sorted(
            ((debit_id, notice_id, when) for debit_id, pairs in crossed.items()
             for notice_id, when in pairs),
            key=lambda item: item[2],
        )  # fmt: skip
        for start in range(0, len(due), DISPATCH_CHUNK):  # a big clock jump: debits in chunks
            handled = self.engine.dispatch_notices(
                due[start : start + DISPATCH_CHUNK], self.senders
            )
            self.dispatched.extend(handled)
            for notice in handled:
                if notice.status is NoticeStatus.QUEUED:  # a delivery to retry later
                    self._expect(notice.due_at)

    def finish(self) -> list[Notice]:
        self.flush()
        waiting = self.engine.store.queued(DAWN, NEVER)
        handled: list[Notice] = []
        if waiting:
            end = max(due for _, _, due in waiting)
            self.clock.advance_to(end)
            self._begin()
            for start in range(0, len(waiting), DISPATCH_CHUNK):
                chunk = waiting[start : start + DISPATCH_CHUNK]
                done = self.engine.dispatch_notices(
                    [(d, n, self.clock.now) for d, n, _ in chunk], self.senders
                )
                self.dispatched.extend(done)
                handled.extend(done)
        self.commit()
        return handled

    def _cross(self, now: datetime) -> None:
        """Collect the stored notices whose due time this advance reaches."""
        since, self._seen = self._seen, now
        if self._next is not None and now < self._next:
            return
        store = self.engine.store
        # Inclusive: a notice planned at the last advance and due at once crosses at this one.
        for debit_id, notice_id, _ in store.queued(since, now):
            if notice_id not in self._crossed_ids:
                self._crossed_ids.add(notice_id)
                self._crossed.setdefault(debit_id, []).append((notice_id, now))
        self._next = store.next_due(now) or NEVER

    def _expect(self, due: datetime) -> None:
        if self._next is not None and due < self._next:
            self._next = due


def _first_advance(
    advances: list[tuple[int, datetime]], position: int, due: datetime
) -> datetime | None:
    """The clock of the first advance after batch ``position`` that reaches ``due``, if any.

    Positions and clocks both grow along ``advances``, so two bisections find it.

    >>> from datetime import datetime, timezone
    >>> t = [datetime(2026, 3, 5, h, tzinfo=timezone.utc) for h in range(4)]
    >>> _first_advance([(0, t[1]), (3, t[2]), (5, t[3])], 3, t[1]) == t[3]
    True
    >>> _first_advance([(0, t[1]), (3, t[2])], 0, t[3]) is None
    True
    """
    start = max(
        bisect_right(advances, position, key=lambda a: a[0]),
        bisect_left(advances, due, key=lambda a: a[1]),
    )
    return advances[start][1] if start < len(advances) else None


NEVER = datetime.max.replace(tzinfo=UTC)
DISPATCH_CHUNK = 1000  # notices dispatched (and their debits read) at a time
LEGACY_NOTICE = "notice_sent"
RECENT = 1000  # notices a replay keeps at hand in ``dispatched``


@attrs.define
class ReplaySummary:
    """What a replay did: counts for the terminal, and the debits worth a look."""

    lines: int = 0
    verdicts: Counter[str] = attrs.field(factory=Counter)
    states: Counter[str] = attrs.field(factory=Counter)
    notices: Counter[tuple[str, str]] = attrs.field(factory=Counter)  # (kind, status)
    needs_review: list[str] = attrs.field(factory=list)
    unknown_sources: dict[str, int] = attrs.field(factory=dict)
    invalid: list[str] = attrs.field(factory=list)  # "origin: reason"
    legacy_failed_but_succeeded: list[str] = attrs.field(factory=list)
    engine_failed_but_succeeded: list[str] = attrs.field(factory=list)
    stuck: list[str] = attrs.field(factory=list)
    # Notices cancelled because the state had moved on, by the day they were due: each is a
    # message a notifier without the re-check would have sent.
    prevented: Counter[str] = attrs.field(factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        """The report ``--report FILE`` writes, as JSON."""
        return {
            "lines": self.lines,
            "events_by_verdict": dict(sorted(self.verdicts.items())),
            "conflicts": self.verdicts.get("conflict", 0),
            "debits_by_state": dict(sorted(self.states.items())),
            "notices": [
                {"kind": kind, "status": status, "count": count}
                for (kind, status), count in sorted(self.notices.items())
            ],
            "needs_review": self.needs_review,
            "stuck": self.stuck,
            "unknown_sources": self.unknown_sources,
            "invalid": self.invalid,
            "superseded_notices_by_day": dict(sorted(self.prevented.items())),
            "failure_notices_for_collected_attempts": {
                "legacy": self.legacy_failed_but_succeeded,
                "engine": self.engine_failed_but_succeeded,
            },
        }

    def render(self) -> str:
        rows = [f"lines read          {self.lines}"]
        rows.append("events by verdict   " + _pairs(self.verdicts))
        rows.append("debits by state     " + _pairs(self.states))
        rows.append(
            "notices             "
            + _pairs(Counter({f"{kind} {status}": n for (kind, status), n in self.notices.items()}))
        )
        rows.append(
            f"needs review        {len(self.needs_review)} {' '.join(self.needs_review[:5])}"
        )
        if self.unknown_sources:
            rows.append("unknown sources     " + _pairs(Counter(self.unknown_sources)))
        rows.append(
            "failure notices for attempts that were collected: "
            f"legacy {len(self.legacy_failed_but_succeeded)}, "
            f"engine {len(self.engine_failed_but_succeeded)} "
            "(the engine corrects each one it sent)"
        )
        for line in self.invalid[:5]:
            rows.append(f"invalid             {line}")
        return "\n".join(rows)


def read_log(paths: Iterable[str | Path]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(origin, line)`` for every non-blank line: files, ``.gz``, or ``-`` (stdin)."""
    for path in paths:
        name = str(path)
        with _open(name) as stream:
            for number, line in enumerate(stream, 1):
                if line.strip():
                    yield f"{name}:{number}", line.rstrip(b"\r\n")


def _open(name: str) -> AbstractContextManager[IO[bytes]]:
    if name == "-":
        return nullcontext(sys.stdin.buffer)
    if name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(name, "rb"))
    return open(name, "rb")


def read_records(paths: Iterable[str | Path]) -> Iterator[tuple[str, bytes, Any]]:
    """Yield ``(origin, raw line, parsed)`` from JSONL or CSV logs (``.csv``, ``.csv.gz``).

    ``parsed`` is the line's JSON value, or a CSV row as a dict with DESIGN's field names
    (empty cells left out, ``attempt`` and ``amount`` as integers, ``data`` as JSON); it is
    None when the line cannot be read at all. A CSV row is one line: no quoted line breaks.
    """
    for path in paths:
        name = str(path)
        lines = read_log([name])
        if not name.removesuffix(".gz").endswith(".csv"):
            for origin, line in lines:
                try:
                    yield origin, line, orjson.loads(line)
                except orjson.JSONDecodeError:
                    yield origin, line, None
            continue
        header: list[str] | None = None
        for origin, line in lines:
            text = line.decode("utf-8", "replace")
            cells = next(csv.reader([text]))
            if header is None:
                header = [cell.strip() for cell in cells]
                continue
            yield origin, line, _csv_row(header, cells)


def _csv_row(header: list[str], cells: list[str]) -> dict[str, Any] | None:
    if len(cells) != len(header):
        return None
    row: dict[str, Any] = {}
    for key, cell in zip(header, cells, strict=True):
        if cell == "":
            continue
        if key in ("attempt", "amount") and cell.lstrip("-").isdigit():
            row[key] = int(cell)
        elif key == "data":
            try:
                row[key] = orjson.loads(cell)
            except orjson.JSONDecodeError:
                row[key] = cell  # refused by the event's own check, which names the field
        else:
            row[key] = cell
    return row


class ReplayStopped(Exception):
    """``--strict``: the first bad line stops the replay."""

    def __init__(self, origin: str, reason: str) -> None:
        self.origin, self.reason = origin, reason
        super().__init__(f"{origin}: {reason}")


def replay_logs(
    replay: Replay,
    paths: Iterable[str | Path],
    *,
    strict: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> ReplaySummary:
    """Replay logs on event time and summarise; bad lines are stored and counted.

    ``strict`` raises :class:`ReplayStopped` at the first bad line instead; ``progress`` wraps
    the stream of records (for example in a progress bar).
    """
    return replay_records(replay, read_records(paths), strict=strict, progress=progress)


def replay_records(
    replay: Replay,
    records: Iterable[tuple[str, bytes, Any]],
    *,
    strict: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> ReplaySummary:
    """:func:`replay_logs` over ``(origin, raw, parsed)`` records from any reader (importers)."""
    summary = ReplaySummary()
    if progress is not None:
        records = progress(records)
    with closing(_LegacyNotices()) as legacy:
        try:
            for origin, line, data in records:
                summary.lines += 1
                if isinstance(data, dict) and data.get("type") == LEGACY_NOTICE:
                    if data.get("notice") == FAILED:
                        legacy.add(str(data.get("debit_id")), data.get("attempt"))
                    continue
                parsed = data if isinstance(data, dict) else None
                result = replay.ingest(line, origin, parsed=parsed)
                if result.verdict == "invalid":
                    if strict:
                        raise ReplayStopped(origin, result.reason)
                    summary.invalid.append(f"{origin}: {result.reason}")
            replay.finish()
        except BaseException as exc:
            replay.close(exc)  # committed batches stay; the open one rolls back
            raise
        _summarise(summary, replay.engine, replay.clock.now, legacy)
    return summary


def _summarise(
    summary: ReplaySummary, engine: Engine, now: datetime, legacy: _LegacyNotices
) -> None:
    """Fill the summary from the store's own aggregates: nothing here grows with the log."""
    store = engine.store
    summary.stuck = [debit_id for debit_id, _ in engine.stuck(timedelta(days=3), now)]
    metrics = engine.metrics(now=now)
    summary.verdicts.update(metrics.events_by_verdict)
    summary.states.update(metrics.debits_by_state)
    summary.unknown_sources = metrics.unknown_sources
    for kind, status, day, count in store.notice_tally():
        summary.notices[(kind, status)] += count
        if status == NoticeStatus.CANCELLED:
            summary.prevented[day] += count
    summary.needs_review = store.review_ids()
    # A failure notice was wrong if the attempt it named ended up collected.
    summary.engine_failed_but_succeeded = store.told(FAILED, COLLECTED)
    for chunk in legacy.chunks():
        outcomes = store.outcomes(sorted({debit_id for debit_id, _ in chunk}))
        for debit_id, attempt in chunk:
            state_attempt = outcomes.get(debit_id)
            if state_attempt is None or state_attempt[0] not in COLLECTED:
                continue
            if attempt is None or attempt == state_attempt[1]:
                summary.legacy_failed_but_succeeded.append(debit_id)
    summary.legacy_failed_but_succeeded = sorted(set(summary.legacy_failed_but_succeeded))


class _LegacyNotices:
    """The failure notices a legacy system sent, as (debit_id, attempt), kept in a temporary
    SQLite file rather than in memory: a long log may hold millions."""

    def __init__(self) -> None:
        fd, self._path = tempfile.mkstemp(prefix="statemachine-legacy-", suffix=".sqlite")
        os.close(fd)
        self._db = sqlite3.connect(self._path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        # attempt -1 stands for "no attempt named": it matches whatever attempt stands.
        self._db.execute(
            "CREATE TABLE told (debit_id TEXT, attempt INTEGER, PRIMARY KEY (debit_id, attempt))"
            " WITHOUT ROWID"
        )
        self._pending: list[tuple[str, int]] = []

    def add(self, debit_id: str, attempt: object) -> None:
        self._pending.append((debit_id, attempt if type(attempt) is int else -1))
        if len(self._pending) >= 10_000:
            self._write()

    def _write(self) -> None:
        self._db.executemany("INSERT OR IGNORE INTO told VALUES (?, ?)", self._pending)
        self._pending.clear()

    def chunks(self, size: int = 500) -> Iterator[list[tuple[str, int | None]]]:
        self._write()
        cursor = self._db.execute("SELECT debit_id, attempt FROM told ORDER BY debit_id")
        while rows := cursor.fetchmany(size):
            yield [(debit_id, None if attempt == -1 else attempt) for debit_id, attempt in rows]

    def close(self) -> None:
        self._db.close()
        os.unlink(self._path)


def _pairs(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(counter.items())) or "none"
