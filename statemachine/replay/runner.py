"""Replay on event time (N5): the clock is the latest ``occurred_at`` seen and never runs back.

A notice is dispatched once the clock passes its due time, before the next event is applied;
at the end the clock moves past every settle window. So a replay reports exactly the notices
the engine would have sent. Replay sends through a counting sender unless told otherwise.

Two runners over one engine: :class:`Replay` applies event by event, :class:`BatchedReplay`
in transactions of many events that dispatch exactly as event by event would. Both take
events through ``feed``, refused input through ``refuse`` and delivery receipts (N8) through
``receipt``, each on its own time; with ``strict`` the first refused line (a reused event_id
included) is stored and stops the run.

A rerun after a crash resumes: the lines already stored only move the clock, since what
their advances dispatched was committed with them; so it ends as a run that went through.

>>> from statemachine import Engine, Event, ManualClock
>>> replay = Replay(Engine.in_memory(clock=ManualClock()))
>>> replay.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "d-1", "type": "failed",
...     "occurred_at": "2026-03-05T10:00:00+00:00"})).state
'failed'
>>> [n.kind for n in replay.finish()]
['failed']
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any, Final

from ..clock import DAWN, ManualClock
from ..decoding import decode_event
from ..dispatch import CountingSender, Sender
from ..engine import Engine
from ..errors import InvalidDefinition, InvalidEvent, StateMachineError
from ..events import CREATED, SUBMITTED, Event, Refusal, parse_input, parse_time
from ..precedence import Verdict
from ..receipts import ReceiptResult
from ..records import Notice, NoticeStatus, Result

NEVER: Final = datetime.max.replace(tzinfo=UTC)
DISPATCH_CHUNK: Final = 1000  # notices dispatched (and their debits read) at a time
LEGACY_NOTICE: Final = "notice_sent"
RECEIPT: Final = "receipt"  # a log line that is a provider's delivery receipt (N8)
RECENT: Final = 1000  # notices a replay keeps at hand in ``dispatched``


class ReplayStopped(StateMachineError):
    """``strict``: the first refused line stops the replay; it is stored, nothing after it."""

    def __init__(self, origin: str | None, reason: str) -> None:
        self.origin, self.reason = origin, reason
        super().__init__(f"{origin}: {reason}")


def _replay_clock(engine: Engine) -> ManualClock:
    if not isinstance(engine.clock, ManualClock):
        raise InvalidDefinition("a replay needs an engine built with clock=ManualClock()")
    return engine.clock


class _Run:
    """What both runners keep of a replay run: the engine and its clock, the channels, and
    what the summary reports of this run."""

    def __init__(
        self, engine: Engine, senders: Iterable[Sender] | None = None, *, strict: bool = False
    ) -> None:
        self.engine = engine
        self.clock = _replay_clock(engine)
        self.senders: tuple[Sender, ...] = tuple(senders) if senders else (CountingSender(),)
        self.strict = strict
        # The latest notices handled, and refused lines, for a look; a long replay keeps so many.
        self.dispatched: deque[Notice] = deque(maxlen=RECENT)
        self.invalid: deque[str] = deque(maxlen=RECENT)
        self.verdicts: Counter[str] = Counter()  # this run's arrivals by verdict
        self.receipt_verdicts: Counter[str] = Counter()  # this run's receipts by verdict
        self.resumed = 0  # lines an interrupted run had stored, skipped by this one

    def _record(
        self, fields: Mapping[str, Any], raw: str | None, origin: str | None
    ) -> ReceiptResult:
        result = self.engine.record_receipt(**fields, raw=raw, origin=origin)
        self.receipt_verdicts[result.verdict.value] += 1
        if result.verdict == "rejected":
            self.invalid.append(f"{origin}: {result.reason}")
        return result

    def _drain(self, dispatch: Callable[[], list[Notice]]) -> list[Notice]:
        """Move the clock past every due time and every wait for a receipt, dispatching each
        time, until nothing is left to wait for (each round may fall back a channel)."""
        handled: list[Notice] = []
        store = self.engine.store
        for _ in range(self.engine.retry.max_deliveries + len(self.senders) + 1):
            ends = [due for _, _, due in store.queued(DAWN, NEVER)]
            wait = store.next_receipt_by()
            if wait is not None:
                ends.append(wait)
            if not ends:
                break
            self.clock.advance_to(max(ends))
            handled.extend(dispatch())
        return handled


class Replay(_Run):
    """Feeds events to an engine whose clock is a :class:`ManualClock`, dispatching on the way."""

    def apply(self, event: Event, *, raw: str | None = None, origin: str | None = None) -> Result:
        """Move the clock to the event's time (dispatching what it passes), then apply it, in
        one unit of work: a rerun after a crash finds the event and that dispatch, or neither."""
        if event.occurred_at <= self.clock.now:
            return self._checked(self.engine.apply(event, raw=raw, origin=origin), origin)
        with self.engine.transaction():
            self.clock.advance_to(event.occurred_at)
            self.dispatch()
            result = self.engine.apply(event, raw=raw, origin=origin)
        return self._checked(result, origin)

    def ingest(
        self,
        raw: str | bytes | Mapping[str, Any],
        origin: str | None = None,
        parsed: Mapping[str, Any] | None = None,
    ) -> Result:
        """Parse and apply one input line; refused input is stored as ``invalid`` and does not
        move the clock. ``parsed`` is the line's JSON when the caller has already decoded it."""
        if parsed is None and isinstance(raw, str | bytes):
            outcome, text = parse_input(raw, decode_event(raw))  # the fast way in, if it can
        else:
            outcome, text = parse_input(raw, parsed)
        if isinstance(outcome, Refusal):
            return self.refuse(outcome, text, origin)
        return self.apply(outcome, raw=text, origin=origin)

    def feed(self, event: Event, raw: str | None = None, origin: str | None = None) -> None:
        """Apply one event on the replay clock."""
        self.apply(event, raw=raw, origin=origin)

    def skip(self, event: Event) -> None:
        """A line an interrupted run already stored: the clock moves to its time, and nothing
        is applied or dispatched again (what its advance dispatched was stored with it)."""
        self.resumed += 1
        self.clock.advance_to(event.occurred_at)

    def refuse(self, refusal: Refusal, raw: str, origin: str | None = None) -> Result:
        """Store input that is not an event, with verdict ``invalid``."""
        return self._checked(self.engine.refuse(refusal, raw, origin), origin)

    def dispatch(self) -> list[Notice]:
        """Dispatch the notices due at the replay clock."""
        handled = self.engine.dispatch_due(self.senders, now=self.clock.now)
        self.dispatched.extend(handled)
        return handled

    def receipt(
        self, fields: Mapping[str, Any], raw: str | None = None, origin: str | None = None
    ) -> ReceiptResult:
        """Move the clock to the receipt's time (dispatching what it passes), then record it,
        in one unit of work as :meth:`apply` does. ``fields`` are
        :meth:`Engine.record_receipt`'s (``receipts.receipt_fields``)."""
        at = _time_of(fields)
        if at is None or at <= self.clock.now:
            return self._record(fields, raw, origin)
        with self.engine.transaction():
            self.clock.advance_to(at)
            self.dispatch()
            return self._record(fields, raw, origin)

    def skip_receipt(self, fields: Mapping[str, Any]) -> None:
        """A receipt line an interrupted run already stored: only the clock moves (what its
        advance dispatched was stored with it)."""
        self.resumed += 1
        at = _time_of(fields)
        if at is not None:
            self.clock.advance_to(at)

    def finish(self) -> list[Notice]:
        """Move the clock past every pending due time (settle windows, retries) and every wait
        for a receipt, and dispatch, in one unit of work: the end time depends on what is
        queued, so a crash must leave all of it queued or none."""
        with self.engine.transaction():
            return self._drain(self.dispatch)

    def close(self, error: BaseException | None = None) -> None:
        """End the replay: every event is already committed on its own."""
        return None

    def _checked(self, result: Result, origin: str | None) -> Result:
        self.verdicts[result.verdict.value] += 1
        if result.verdict is Verdict.INVALID:
            self.invalid.append(f"{origin}: {result.reason}")
            if self.strict:
                raise ReplayStopped(origin, result.reason)
        return result


class BatchedReplay(_Run):
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
        self,
        engine: Engine,
        senders: Iterable[Sender] | None = None,
        batch_size: int = 1000,
        *,
        strict: bool = False,
    ) -> None:
        super().__init__(engine, senders, strict=strict)
        self.batch_size = batch_size
        self._batch: list[tuple[Event, str | None, str | None, datetime | None]] = []
        self._unit = ExitStack()  # the open unit of work, committed every batch_size events
        self._open = False
        self._uncommitted = 0
        self._advances: list[tuple[int, datetime]] = []  # (batch position, clock) per advance
        self._touched: dict[str, int] = {}  # debit -> advances seen at its last notice-able event
        # Queued notices wait in the store, not in memory: a clock advance asks the store for
        # those due since the last one, and only once it passes the earliest due time known.
        # The first advance asks for every queued notice, so it also finds those planned at
        # the last line an interrupted replay stored, which cross at that advance.
        self._seen = DAWN  # crossings up to this time are collected
        self._next: datetime | None = None  # earliest queued due time after it; None: ask
        self._crossed: dict[str, list[tuple[str, datetime]]] = {}  # debit -> (notice, when)
        self._crossed_ids: set[str] = set()
        # Waits for receipts end at clock advances: then every advance is written at once,
        # so a notice expires and falls back at the advance it would event by event.
        self._each_advance = bool(engine.spec.receipt_timeout)

    def feed(self, event: Event, raw: str | None = None, origin: str | None = None) -> None:
        """Queue one event; the batch is written when full or when N5 needs its state."""
        debit_id = event.debit_id
        self._advance(event)
        seen = self._touched.get(debit_id)
        if (
            debit_id in self._crossed
            or (seen is not None and seen < len(self._advances))
            or (self._each_advance and self._advances)
        ):
            self.flush()
        if event.type not in (CREATED, SUBMITTED):
            self._touched[debit_id] = len(self._advances)
        self._batch.append((event, raw, origin, self.clock.now))  # notices planned as at now
        if len(self._batch) + self._uncommitted >= self.batch_size:
            self.flush()
            self.commit()

    def skip(self, event: Event) -> None:
        """A line an interrupted run already stored: the clock moves to its time, and nothing
        is applied or dispatched again (its batch was committed with what it dispatched)."""
        self.resumed += 1
        self.clock.advance_to(event.occurred_at)

    def _advance(self, event: Event) -> None:
        self._advance_to(event.occurred_at)

    def skip_receipt(self, fields: Mapping[str, Any]) -> None:
        """A receipt line an interrupted run already stored: only the clock moves (its batch
        was committed with what it dispatched)."""
        self.resumed += 1
        at = _time_of(fields)
        if at is not None:
            self.clock.advance_to(at)

    def _advance_to(self, moment: datetime) -> None:
        if moment > self.clock.now:
            self.clock.advance_to(moment)
            self._advances.append((len(self._batch), self.clock.now))
            self._cross(self.clock.now)

    def receipt(
        self, fields: Mapping[str, Any], raw: str | None = None, origin: str | None = None
    ) -> ReceiptResult:
        """Record a receipt on its time, after the batch before it and the notices its clock
        advance crosses, as :class:`Replay` would."""
        self.flush()
        at = _time_of(fields)
        if at is not None:
            self._advance_to(at)
            self.flush()
        self._begin()
        result = self._record(fields, raw, origin)
        if result.applied and result.notice is not None:
            self._expect(result.notice.due_at)  # a fallback goes out at the next advance
        return result

    def refuse(self, refusal: Refusal, raw: str, origin: str | None = None) -> Result:
        """Store input that is not an event, with verdict ``invalid``, after the batch before it
        (arrivals stay in log order). Under ``strict`` that is committed and the replay stops."""
        self.flush()
        self._begin()
        result = self.engine.refuse(refusal, raw, origin)
        self.verdicts[result.verdict.value] += 1
        self.invalid.append(f"{origin}: {result.reason}")
        if self.strict:
            self.commit()
            raise ReplayStopped(origin, result.reason)
        return result

    def commit(self) -> None:
        """Commit what has been written since the last commit."""
        self._unit.close()
        self._open, self._uncommitted = False, 0

    def _begin(self) -> None:
        if not self._open:
            self._unit.enter_context(self.engine.transaction())
            self._open = True

    def close(self, error: BaseException | None = None) -> None:
        """End the replay: commit the open unit of work, or roll it back after ``error``."""
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
        if batch or self._crossed or self._each_advance:
            self._begin()
        self._uncommitted += len(batch)
        if batch:
            results = self.engine.apply_many(batch, stop=self._stop)
            counted = Counter(result.verdict for result in results)
            for verdict, count in counted.items():
                self.verdicts[verdict.value] += count
            if Verdict.INVALID in counted:
                for (_, _, origin, _), result in zip(batch, results, strict=False):
                    if result.verdict is Verdict.INVALID:
                        self.invalid.append(f"{origin}: {result.reason}")
            if self.strict and results and results[-1].verdict is Verdict.INVALID:
                self.commit()  # what came before the refused line, and the line itself
                raise ReplayStopped(batch[len(results) - 1][2], results[-1].reason)
            for position, result in enumerate(results):
                notice = result.notice
                if notice is None or notice.status is not NoticeStatus.QUEUED:
                    continue
                when = _first_advance(advances, position, notice.due_at)
                if when is None:  # due after the batch: the store holds it till a later advance
                    self._expect(notice.due_at)
                else:  # a re-planned notice comes twice; dispatch skips the version not due
                    self._crossed.setdefault(notice.debit_id, []).append((notice.notice_id, when))
        if self._each_advance:  # as dispatch_due: waits that ended fall back first
            now = self.clock.now
            for expired in self.engine.expire_receipts(now):
                notice = expired.notice
                if notice is not None and notice.status is NoticeStatus.QUEUED:
                    self._crossed.setdefault(notice.debit_id, []).append((notice.notice_id, now))
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
        """Write what is left, move the clock past every due time, dispatch, and commit."""
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
        if self.engine.store.next_receipt_by() is not None:
            self._begin()
            handled.extend(self._drain(self._dispatch_due))
        self.commit()
        return handled

    def _dispatch_due(self) -> list[Notice]:
        handled = self.engine.dispatch_due(self.senders, now=self.clock.now)
        self.dispatched.extend(handled)
        return handled

    def _stop(self, result: Result) -> bool:
        return self.strict and result.verdict is Verdict.INVALID

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


def _time_of(fields: Mapping[str, Any]) -> datetime | None:
    """A receipt's time, if it has a usable one (else it is rejected, and the clock stays)."""
    try:
        return parse_time(fields.get("at"), "occurred_at")
    except InvalidEvent:
        return None


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
