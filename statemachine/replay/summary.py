"""A replay run over logs and its summary: counts for the terminal, the JSON report and the
HTML page, drawn from the store's own aggregates so that nothing grows with the log."""

from __future__ import annotations

import gc
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import attrs

from ..engine import Engine, collector_paused
from ..events import FAILED, MAX_ATTEMPT, Event, Refusal, parse_input
from ..messages import Message
from ..receipts import delivery_rate, receipt_fields
from ..records import NoticeStatus
from .logs import read_records
from .runner import LEGACY_NOTICE, RECEIPT, BatchedReplay, Replay

# The collector is paused for a replay; every so many lines it collects the young objects.
YOUNG_EVERY: Final = 10_000


@attrs.define
class ReplaySummary:
    """What a replay did: counts for the terminal, and the debits worth a look."""

    lines: int = 0
    resumed: int = 0  # lines an interrupted run had stored, skipped by this one
    run_verdicts: Counter[str] = attrs.field(factory=Counter)  # this run's arrivals
    verdicts: Counter[str] = attrs.field(factory=Counter)  # the database's, this run included
    states: Counter[str] = attrs.field(factory=Counter)
    notices: Counter[tuple[str, str]] = attrs.field(factory=Counter)  # (kind, status)
    needs_review: list[str] = attrs.field(factory=list)
    unknown_sources: dict[str, int] = attrs.field(factory=dict)
    invalid: list[str] = attrs.field(factory=list)  # "origin: reason"
    legacy_failed_but_succeeded: list[str] = attrs.field(factory=list)
    engine_failed_but_succeeded: list[str] = attrs.field(factory=list)
    stuck: list[str] = attrs.field(factory=list)
    misinformed: int = 0  # customers whose last notice no longer states the outcome (N6)
    run_receipts: Counter[str] = attrs.field(factory=Counter)  # this run's receipts by verdict
    # channel -> {delivered, undelivered, expired} -> sends, from receipts (N8)
    deliveries: dict[str, dict[str, int]] = attrs.field(factory=dict)
    # Notices cancelled because the state had moved on, by the day they were due: each is a
    # message a notifier without the re-check would have sent.
    prevented: Counter[str] = attrs.field(factory=Counter)
    example: Message | None = None  # the last notice this run sent, as its customer read it

    def to_dict(self) -> dict[str, Any]:
        """The report ``--report FILE`` writes, as JSON."""
        return {
            "lines": self.lines,
            "resumed_lines": self.resumed,
            "this_run_events_by_verdict": dict(sorted(self.run_verdicts.items())),
            "events_by_verdict": dict(sorted(self.verdicts.items())),
            "conflicts": self.verdicts.get("conflict", 0),
            "debits_by_state": dict(sorted(self.states.items())),
            "notices": [
                {"kind": kind, "status": status, "count": count}
                for (kind, status), count in sorted(self.notices.items())
            ],
            "needs_review": self.needs_review,
            "stuck": self.stuck,
            "misinformed": self.misinformed,
            "this_run_receipts_by_verdict": dict(sorted(self.run_receipts.items())),
            "deliveries_by_channel": {
                c: dict(sorted(n.items())) for c, n in sorted(self.deliveries.items())
            },
            "delivery_rate": {
                "overall": self.delivery_rate(),
                **{c: delivery_rate(n) for c, n in sorted(self.deliveries.items())},
            },
            "unknown_sources": self.unknown_sources,
            "invalid": self.invalid,
            "superseded_notices_by_day": dict(sorted(self.prevented.items())),
            "failure_notices_for_collected_attempts": {
                "legacy": self.legacy_failed_but_succeeded,
                "engine": self.engine_failed_but_succeeded,
            },
            # No contact details: the report is shared, and they are personal data.
            "example_message": None
            if self.example is None
            else {
                "notice_id": self.example.notice_id,
                "locale": self.example.locale,
                "template_id": self.example.template_id,
                "params": dict(self.example.params),
                "text": self.example.text,
            },
        }

    def render(self) -> str:
        """The summary as the terminal shows it."""
        rows = [f"lines read          {self.lines}"]
        if self.resumed:
            rows.append(f"resumed             {self.resumed} lines already stored, skipped")
        rows.append("events by verdict   " + _pairs(self.run_verdicts) + " (this run)")
        if self.run_receipts:
            rows.append("receipts by verdict " + _pairs(self.run_receipts) + " (this run)")
        rows.append("database totals:")
        rows.append("events by verdict   " + _pairs(self.verdicts))
        rows.append("debits by state     " + _pairs(self.states))
        rows.append(
            "notices             "
            + _pairs(Counter({f"{kind} {status}": n for (kind, status), n in self.notices.items()}))
        )
        rows.append(
            f"needs review        {len(self.needs_review)} {' '.join(self.needs_review[:5])}"
        )
        rows.append(f"misinformed         {self.misinformed}")
        if self.deliveries:
            rows.append("delivery rate       " + self.delivery_text())
        if self.unknown_sources:
            rows.append("unknown sources     " + _pairs(Counter(self.unknown_sources)))
        # The legacy count is of this run's logs, judged by the outcomes the database holds.
        rows.append(
            "failure notices for attempts that were collected: "
            f"legacy {len(self.legacy_failed_but_succeeded)} (in these logs), "
            f"engine {len(self.engine_failed_but_succeeded)} "
            "(the engine corrects each one it sent)"
        )
        for line in self.invalid[:5]:
            rows.append(f"invalid             {line}")
        if self.example is not None:
            template = f", template {self.example.template_id}" if self.example.template_id else ""
            rows.append(
                f"last message sent   {self.example.notice_id} ({self.example.locale}{template})"
            )
            rows.append(f"                    {self.example.text}")
        return "\n".join(rows)

    def delivery_rate(self) -> float | None:
        """Delivered sends among sends with a receipt or an expired wait, every channel."""
        total: Counter[str] = Counter()
        for counts in self.deliveries.values():
            total.update(counts)
        return delivery_rate(dict(total))

    def delivery_text(self) -> str:
        """The delivery rate overall, then per channel with its counts."""
        parts = [f"{_percent(self.delivery_rate())} overall"]
        for channel, counts in sorted(self.deliveries.items()):
            delivered, ended = counts.get("delivered", 0), sum(counts.values())
            parts.append(f"{channel} {_percent(delivery_rate(counts))} ({delivered} of {ended})")
        return ", ".join(parts)


def replay_logs(
    replay: Replay | BatchedReplay,
    paths: Iterable[str | Path],
    *,
    strict: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> ReplaySummary:
    """Replay logs on event time and summarise; bad lines are stored and counted.

    ``strict`` raises :class:`ReplayStopped` at the first refused line instead (a reused
    event_id included), after storing it; ``progress`` wraps the stream of records (for
    example in a progress bar). A rerun after an interruption skips the lines of each file
    that the store already holds (by origin, ``file:line``), moving the clock through them as
    the first run did, so they are not stored again as duplicates.
    """
    return replay_records(
        replay, read_records(paths), strict=strict, progress=progress, resume=True
    )


def replay_records(
    replay: Replay | BatchedReplay,
    records: Iterable[tuple[str, bytes, Any]],
    *,
    strict: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
    resume: bool = False,
) -> ReplaySummary:
    """:func:`replay_logs` over ``(origin, raw, parsed)`` records from any reader (importers).

    With ``resume``, origins are ``file:line`` and the lines of a file up to the last one
    the store holds from it are skipped (see :func:`replay_logs`).
    """
    summary = ReplaySummary()
    if strict:
        replay.strict = True
    if progress is not None:
        records = progress(records)
    stored = _Resume(replay.engine) if resume else None
    with closing(_LegacyNotices()) as legacy, collector_paused():
        try:
            for origin, line, data in records:
                summary.lines += 1
                if not summary.lines % YOUNG_EVERY:
                    # The replay makes no cycles, but a sender may: the young ones are freed.
                    gc.collect(1)
                if isinstance(data, dict) and data.get("type") == LEGACY_NOTICE:
                    if data.get("notice") == FAILED:
                        legacy.add(str(data.get("debit_id")), data.get("attempt"))
                    continue
                if isinstance(data, dict) and data.get("type") == RECEIPT:
                    fields, _ = receipt_fields(data)  # a dict: its fields are judged on record
                    if stored is not None and stored.holds(origin):
                        replay.skip_receipt(fields)
                    else:
                        replay.receipt(fields, line.decode("utf-8", "backslashreplace"), origin)
                    continue
                outcome, text = parse_input(
                    line, data if isinstance(data, dict | Refusal | Event) else None
                )
                if stored is not None and stored.holds(origin):
                    if not isinstance(outcome, Refusal):
                        replay.skip(outcome)
                    else:
                        replay.resumed += 1
                elif isinstance(outcome, Refusal):
                    replay.refuse(outcome, text, origin)
                else:
                    replay.feed(outcome, text, origin)
            replay.finish()
        except BaseException as exc:
            replay.close(exc)  # committed batches stay; the open one rolls back
            raise
        summary.invalid = list(replay.invalid)
        summary.run_verdicts.update(replay.verdicts)
        summary.run_receipts.update(replay.receipt_verdicts)
        summary.resumed = replay.resumed
        _summarise(summary, replay.engine, replay.clock.now, legacy)
        last = next((n for n in reversed(replay.dispatched) if n.status == NoticeStatus.SENT), None)
        summary.example = replay.engine.message(last) if last is not None else None
    return summary


class _Resume:
    """Where an interrupted replay got to in each file: the last line the store holds."""

    def __init__(self, engine: Engine) -> None:
        self._store = engine.store
        self._file: str | None = None
        self._last = 0

    def holds(self, origin: str) -> bool:
        name = origin.rpartition(":")[0]
        if name != self._file:
            self._file = name
            last = None if name == "-" else self._store.last_origin(f"{name}:")
            self._last = _line_number(last) if last is not None else 0
        return self._last > 0 and _line_number(origin) <= self._last


def _line_number(origin: str) -> int:
    number = origin.rpartition(":")[2]
    return int(number) if number.isdigit() else 0


def _summarise(
    summary: ReplaySummary, engine: Engine, now: datetime, legacy: _LegacyNotices
) -> None:
    """Fill the summary from the store's own aggregates: nothing here grows with the log."""
    store = engine.store
    collected = engine.spec.collected
    summary.stuck = [debit_id for debit_id, _ in engine.stuck(timedelta(days=3), now)]
    metrics = engine.metrics(now=now)
    summary.verdicts.update(metrics.events_by_verdict)
    summary.states.update(metrics.debits_by_state)
    summary.unknown_sources = metrics.unknown_sources
    summary.misinformed = metrics.misinformed
    summary.deliveries = metrics.deliveries
    for kind, status, day, count in store.notice_tally():
        summary.notices[(kind, status)] += count
        if status == NoticeStatus.CANCELLED:
            summary.prevented[day] += count
    summary.needs_review = store.review_ids()
    # A failure notice was wrong if the attempt it named ended up collected.
    summary.engine_failed_but_succeeded = store.told(engine.spec.failed, collected)
    for chunk in legacy.chunks():
        outcomes = store.outcomes(sorted({debit_id for debit_id, _ in chunk}))
        for debit_id, attempt in chunk:
            state_attempt = outcomes.get(debit_id)
            if state_attempt is None or state_attempt[0] not in collected:
                continue
            if attempt is None or attempt == state_attempt[1]:
                summary.legacy_failed_but_succeeded.append(debit_id)
    summary.legacy_failed_but_succeeded = sorted(set(summary.legacy_failed_but_succeeded))


class _LegacyNotices:
    """The failure notices a legacy system sent, as (debit_id, attempt), kept in a temporary
    SQLite database rather than in memory: a long log may hold millions. SQLite's own
    temporary database (the empty name) spills to a file it unlinks at once, so not even a
    killed replay leaves one behind."""

    def __init__(self) -> None:
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        # attempt -1 stands for "no attempt named": it matches whatever attempt stands.
        self._db.execute(
            "CREATE TABLE told (debit_id TEXT, attempt INTEGER, PRIMARY KEY (debit_id, attempt))"
            " WITHOUT ROWID"
        )
        self._pending: list[tuple[str, int]] = []

    def add(self, debit_id: str, attempt: object) -> None:
        # Only an attempt number a debit can have counts as named (and fits an INTEGER column).
        named = attempt if type(attempt) is int and 1 <= attempt <= MAX_ATTEMPT else -1
        self._pending.append((debit_id, named))
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


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _pairs(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {count}" for key, count in sorted(counter.items())) or "none"
