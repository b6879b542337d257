"""The engine: applies events to debits, keeps the outbox, dispatches notices.

>>> from datetime import UTC, datetime
>>> engine = Engine.in_memory()
>>> engine.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "loan-42/2026-03",
...     "type": "succeeded", "occurred_at": "2026-03-05T10:00:00+08:00"})).verdict
<Verdict.APPLIED: 'applied'>
>>> engine.get("loan-42/2026-03").state
'succeeded'
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import orjson

from .clock import Clock, utc_now
from .debits import Debit, DebitRecord, Result, StoredEvent
from .errors import InvalidEvent, StoreError
from .events import CREATED, OUTCOME_TYPES, REVERSED, Event
from .notices import (
    Notice,
    NoticeStatus,
    RetryPolicy,
    Sender,
    check_senders,
    last_told,
    matches,
    plan,
)
from .precedence import Fold, Verdict, classify, fold, strength, transition_text
from .spec import STRONGER, Spec
from .stores.base import Decision, Item, Store
from .stores.memory import MemoryStore

_new_result = tuple.__new__  # Result(...) without the NamedTuple constructor: apply is hot
_STRENGTH_TYPES = OUTCOME_TYPES | {REVERSED}
APPLIED = Verdict.APPLIED


class _Step(NamedTuple):
    """A transition the fast path may take on its own, with what it needs precomputed."""

    dest: str
    unguarded: bool  # else guarded by `stronger`: free to take while the attempt has no outcome
    strength: bool  # the event claims the attempt's outcome
    outcome: bool  # the destination is customer-visible
    reason: str


def _fast_steps(spec: Spec) -> dict[tuple[str, str], _Step]:
    return {
        (edge.source, edge.trigger): _Step(
            edge.dest,
            edge.guard is None,
            edge.trigger in _STRENGTH_TYPES,
            edge.dest in spec.outcomes,
            transition_text(edge.source, edge.dest),
        )
        for edge in spec.transitions
        if edge.guard in (None, STRONGER) and edge.source != edge.dest
    }


@attrs.frozen
class Metrics:
    """Counts for operations: ``engine.metrics()``."""

    events_by_verdict: dict[str, int]
    debits_by_state: dict[str, int]
    notices_by_status: dict[str, int]
    needs_review: int
    unknown_sources: dict[str, int]
    stuck: int = 0

    @property
    def events(self) -> int:
        return sum(self.events_by_verdict.values())

    @property
    def debits(self) -> int:
        return sum(self.debits_by_state.values())

    @property
    def conflicts(self) -> int:
        return self.events_by_verdict.get(Verdict.CONFLICT, 0)

    @property
    def success_rate(self) -> float | None:
        """Debits collected (succeeded) among debits with an outcome."""
        finished = sum(self.debits_by_state.get(s, 0) for s in ("succeeded", "failed", "reversed"))
        return self.debits_by_state.get("succeeded", 0) / finished if finished else None

    @property
    def delivery_rate(self) -> float | None:
        """Notices sent among notices whose delivery ended (sent or failed)."""
        sent = self.notices_by_status.get(NoticeStatus.SENT, 0)
        ended = sent + self.notices_by_status.get(NoticeStatus.FAILED, 0)
        return sent / ended if ended else None


class Engine:
    """Applies events to debits through a store; the debit's state is the single source of truth.

    Build one with :meth:`in_memory`, or hand it any :class:`~statemachine.stores.Store`.
    """

    def __init__(
        self,
        store: Store,
        spec: Spec | None = None,
        clock: Clock = utc_now,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.store = store
        self.spec = spec or Spec.default()
        self.clock = clock
        self.retry = retry or RetryPolicy()
        self._execute = store.execute
        self._authorities = self.spec.authorities
        self._steps = _fast_steps(self.spec)
        self._created_reason = f"new debit, {self.spec.initial}"

    @classmethod
    def in_memory(cls, spec: Spec | None = None, clock: Clock = utc_now) -> Engine:
        return cls(MemoryStore(), spec=spec, clock=clock)

    @classmethod
    def open(
        cls, target: str | Path, spec: Spec | None = None, clock: Clock = utc_now, **options: Any
    ) -> Engine:
        """An engine on the store ``target`` names: an SQLite file path, a ``postgresql://`` DSN
        (``?schema=NAME`` picks the schema), or ``:memory:``.

        ``options`` go to the store, for example ``synchronous="NORMAL"`` for SQLite.
        """
        spec = spec or Spec.default()
        if str(target) == ":memory:":
            return cls(MemoryStore(), spec=spec, clock=clock)
        if str(target).startswith(("postgresql://", "postgres://")):
            try:
                from .stores.postgres import PostgresStore
            except ImportError as exc:
                raise StoreError(
                    f"a PostgreSQL target needs psycopg: pip install 'statemachine[postgres]' ({exc})"
                ) from None
            return cls(PostgresStore(str(target), spec, **options), spec=spec, clock=clock)
        from .stores.sqlite import SQLiteStore

        return cls(SQLiteStore(target, spec, **options), spec=spec, clock=clock)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[None]:
        """A unit of work: what is applied and dispatched inside commits together at its end,
        or not at all. Within it, reads see its writes. The in-memory store writes at once.

        >>> engine = Engine.in_memory()
        >>> with engine.transaction():
        ...     engine.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "d-1",
        ...         "type": "submitted", "occurred_at": "2026-03-05T10:00:00+00:00"})).verdict
        <Verdict.APPLIED: 'applied'>
        """
        return self.store.transaction()

    # -- applying events -------------------------------------------------------------------

    def apply(self, event: Event, *, raw: str | None = None, origin: str | None = None) -> Result:
        """Apply one event; returns its verdict, the reason and where the debit now stands."""
        return self._execute(event, self._decide, raw, origin)

    def apply_many(self, events: Iterable[Event | Item]) -> list[Result]:
        """Apply a batch in order, in one transaction where the store has them. An item is an
        event, or (event, raw text, origin, now) where ``now`` is the time to plan notices at
        instead of the clock's. The cyclic garbage collector pauses for the batch: the engine
        makes no reference cycles, and scanning its records dominates otherwise."""
        items = [item if isinstance(item, tuple) else (item, None, None, None) for item in events]
        paused = gc.isenabled()
        gc.disable()
        try:
            return self.store.execute_many(items, self._decide)
        finally:
            if paused:
                gc.enable()

    def ingest(
        self,
        raw: str | bytes | Mapping[str, Any],
        origin: str | None = None,
        parsed: Mapping[str, Any] | None = None,
    ) -> Result:
        """Parse and apply one input; bad input is stored with verdict ``invalid`` and its raw text.

        ``origin`` says where it came from, for example ``"march.jsonl:17"``; ``parsed`` is the
        input already decoded into DESIGN's fields (a CSV row, say), ``raw`` then being the text.
        """
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not isinstance(text, str):
            text = orjson.dumps(text, default=str).decode()
        fields = parsed if parsed is not None else raw
        try:
            event = (
                Event.from_dict(fields) if isinstance(fields, Mapping) else Event.from_json(fields)
            )
        except InvalidEvent as exc:
            debit_id, event_id = _salvage_ids(fields)
            return self.store.reject(text, str(exc), debit_id, event_id, origin)
        return self.store.execute(event, self._decide, text, origin)

    def _decide(
        self,
        event: Event,
        record: DebitRecord | None,
        prior: Event | None,
        now: datetime | None = None,
    ) -> Decision:
        """Decide one arrival. Pure but for changing ``record``, which the store then writes."""
        if prior is not None:
            return self._repeat(event, record, prior)
        if record is None:
            record = DebitRecord(event.debit_id, self.spec.initial)
            if event.type == CREATED and event.attempt == 1:
                record.facts.append(event)
                record.version = 1
                record.amount, record.currency = event.amount, event.currency
                return self._decision(event, record, Verdict.APPLIED, self._created_reason)
            before = None
        else:
            # Fast path (in order, nothing parked): the one step the fold would take as well.
            step = self._steps.get((record.state, event.type))
            if (
                step is not None
                and event.attempt == record.attempt == record.max_attempt
                and (step[1] or record.strength is None)
            ):
                dest, _, strong, outcome, reason = step
                notice = (
                    plan(record, dest, record.attempt, self.spec, now or self.clock())
                    if outcome
                    else None
                )
                # Nothing may fail past this point: the in-memory store's record is live.
                record.facts.append(event)
                record.version += 1
                if strong:
                    power = strength(event, self.spec)
                    if record.strength is None or power > record.strength:
                        record.strength = power
                record.state = dest
                if notice is not None:
                    record.notices[(notice.attempt, notice.kind)] = notice
                if event.source in self._authorities:
                    result = _new_result(
                        Result,
                        (APPLIED, reason, event.event_id, event.debit_id, dest, record.attempt,
                         record.version, record.needs_review, notice),
                    )  # fmt: skip
                    return result, record, True, notice
                return self._decision(event, record, APPLIED, reason, notice)
            before = record.position()
        after = fold([*record.facts, event], self.spec)
        verdict, reason = classify(event, before, after)
        moved = (after.attempt, after.state) != (record.attempt, record.state)
        notice = (
            plan(record, after.state, after.attempt, self.spec, now or self.clock())
            if moved or before is None
            else None
        )
        # Nothing may fail past this point: the in-memory store's record is live.
        record.facts.append(event)
        record.version += 1
        record.max_attempt = max(record.max_attempt, event.attempt)
        record.take(after)
        if notice is not None:
            record.notices[(notice.attempt, notice.kind)] = notice
        return self._decision(event, record, verdict, reason, notice)

    def _repeat(self, event: Event, record: DebitRecord | None, prior: Event) -> Decision:
        """P1: the same event_id again, with the same content (duplicate) or not (invalid)."""
        if prior == event:
            return self._decision(
                event,
                record,
                Verdict.DUPLICATE,
                "same event_id and content as a stored event",
                accepted=False,
            )
        differ = [
            f
            for f in (
                "debit_id",
                "type",
                "attempt",
                "occurred_at",
                "source",
                "amount",
                "currency",
                "reason",
                "data",
            )
            if getattr(prior, f) != getattr(event, f)
        ]
        return self._decision(
            event,
            record,
            Verdict.INVALID,
            f"event_id {event.event_id!r} reused with different content ({', '.join(differ)})",
            accepted=False,
        )

    def _decision(
        self,
        event: Event,
        record: DebitRecord | None,
        verdict: Verdict,
        reason: str,
        notice: Notice | None = None,
        accepted: bool = True,
    ) -> Decision:
        if event.source not in self.spec.authorities:
            reason += f"; unknown source {event.source!r} counted as {self.spec.unknown_source}"
        if record is None:
            result = _new_result(
                Result,
                (verdict, reason, event.event_id, event.debit_id, None, None, None, False, notice),
            )
        else:
            result = _new_result(
                Result,
                (
                    verdict,
                    reason,
                    event.event_id,
                    event.debit_id,
                    record.state,
                    record.attempt,
                    record.version,
                    record.needs_review,
                    notice,
                ),
            )
        return result, record if accepted else None, accepted, notice

    # -- reading ---------------------------------------------------------------------------

    def get(self, debit_id: str) -> Debit | None:
        """The debit's current snapshot, or None if no event has named it."""
        record = self.store.debit(debit_id)
        return record.snapshot() if record is not None else None

    def history(self, debit_id: str) -> list[StoredEvent]:
        """Every arrival for the debit, in arrival order, each with its verdict and reason."""
        return self.store.history(debit_id)

    def rejected(self) -> list[StoredEvent]:
        """Invalid input that named no debit, with its raw text and origin."""
        return self.store.history(None)

    def notices(self, debit_id: str | None = None) -> list[Notice]:
        return self.store.notices(debit_id)

    def rebuild(self, debit_id: str) -> Fold:
        """The debit's position folded afresh from its stored events (P6)."""
        return fold(self._facts(debit_id), self.spec)

    def _facts(self, debit_id: str) -> list[Event]:
        return [
            stored.event
            for stored in self.store.history(debit_id)
            if stored.event is not None
            and stored.verdict not in (Verdict.DUPLICATE, Verdict.INVALID)
        ]

    def verify(self) -> list[str]:
        """P6 for every debit: the debits whose live state differs from a rebuild, described."""
        problems = []
        for debit_id in self.store.debit_ids():
            live = self.get(debit_id)
            facts = self._facts(debit_id)
            rebuilt = fold(facts, self.spec)
            assert live is not None
            if (live.state, live.attempt, live.needs_review, live.version) != (
                rebuilt.state,
                rebuilt.attempt,
                rebuilt.needs_review,
                len(facts),
            ):
                problems.append(
                    f"{debit_id}: live {live.state}@{live.attempt} review={live.needs_review} "
                    f"version {live.version}, rebuilt {rebuilt.state}@{rebuilt.attempt} "
                    f"review={rebuilt.needs_review} version {len(facts)}"
                )
        return problems

    def misinformed(self) -> list[tuple[str, Notice, Debit]]:
        """Debits whose customer's last notice no longer states the outcome, with that notice.

        Empty once every due notice is dispatched, except in one case N4 leaves to people: the
        outcome of an attempt changed again after its one correction was sent.
        """
        found = []
        for debit_id in self.store.debit_ids():
            record = self.store.debit(debit_id)
            assert record is not None
            told = last_told(record.notices.values())
            if (
                told is not None
                and not matches(told, record)
                and record.state in self.spec.outcomes
            ):
                found.append((debit_id, told, record.snapshot()))
        return found

    def metrics(
        self, stuck_after: timedelta = timedelta(days=3), now: datetime | None = None
    ) -> Metrics:
        """Counts for operations; ``stuck`` counts debits submitted longer than ``stuck_after``."""
        counts = self.store.counts()
        unknown = {s: n for s, n in counts.sources.items() if s not in self.spec.authorities}
        stuck = len(self.stuck(stuck_after, now))
        return Metrics(
            counts.verdicts, counts.states, counts.notices, counts.needs_review, unknown, stuck
        )

    def stuck(
        self, older_than: timedelta = timedelta(days=3), now: datetime | None = None
    ) -> list[tuple[str, datetime]]:
        """Debits in ``submitted`` with no news for ``older_than``: listed for inquiry, never
        failed automatically. Returns (debit_id, time of the latest event), oldest first."""
        now = self.clock() if now is None else now
        return self.store.stuck(now - older_than)

    def inquire(
        self,
        ask: Callable[[Debit], Event | None],
        older_than: timedelta = timedelta(days=3),
        now: datetime | None = None,
    ) -> list[Result]:
        """Ask about every stuck debit; ``ask`` turns the gateway's answer into an event (or None).

        >>> engine = Engine.in_memory()
        >>> engine.inquire(lambda debit: None)
        []
        """
        results = []
        for debit_id, _ in self.stuck(older_than, now):
            debit = self.get(debit_id)
            answer = ask(debit) if debit is not None else None
            if answer is not None:
                results.append(self.apply(answer, origin="inquiry"))
        return results

    # -- notices ---------------------------------------------------------------------------

    def dispatch_due(
        self,
        senders: Iterable[Sender],
        now: datetime | None = None,
        *,
        limit: int | None = None,
        lease: timedelta = timedelta(minutes=5),
    ) -> list[Notice]:
        """Send every notice due at ``now`` that still states the debit's outcome (N3).

        Senders are tried in order until one accepts (N4); a notice no longer true is cancelled
        as superseded. Each notice is claimed for ``lease`` first, so dispatchers in several
        processes do not send it twice; one that dies mid-send leaves it to be sent again once
        the lease runs out, under the same idempotency key. Returns the notices handled.
        """
        channels = check_senders(senders)
        now = self.clock() if now is None else now
        handled = []
        for notice in self.store.claim_due(now, lease, limit):
            settled = self._settle(notice, self.store.debit(notice.debit_id), channels, now)
            self.store.save_notice(settled)
            handled.append(settled)
        return handled

    def dispatch_notices(
        self, wanted: Iterable[tuple[str, str, datetime]], senders: Iterable[Sender]
    ) -> list[Notice]:
        """Dispatch these (debit_id, notice_id, at), each as at its time if it is still queued
        and due, and record them in one write: the replay's way to send exactly the notices
        its clock has passed (N5). Give them in time order."""
        channels = check_senders(senders)
        wanted = list(wanted)
        records = self.store.debits(debit_id for debit_id, _, _ in wanted)
        handled = []
        for debit_id, notice_id, now in wanted:
            record = records.get(debit_id)
            if record is None:
                continue
            notice = next((n for n in record.notices.values() if n.notice_id == notice_id), None)
            if notice is None or notice.status is not NoticeStatus.QUEUED or notice.due_at > now:
                continue
            settled = self._settle(notice, record, channels, now)
            record.notices[(notice.attempt, notice.kind)] = settled  # the next one sees it
            handled.append(settled)
        self.store.save_notices(handled)
        return handled

    def _settle(
        self,
        notice: Notice,
        record: DebitRecord | None,
        channels: tuple[Sender, ...],
        now: datetime,
    ) -> Notice:
        """Send a due notice if it still states the debit's outcome (N3), else cancel it."""
        if matches(notice, record):
            return self._deliver(notice, channels, now)
        where = f"{record.state} on attempt {record.attempt}" if record else "gone"
        return notice._replace(
            status=NoticeStatus.CANCELLED, status_reason=f"superseded: the debit is {where}"
        )

    def _deliver(self, notice: Notice, channels: tuple[Sender, ...], now: datetime) -> Notice:
        errors = []
        for sender in channels:
            try:
                sender.send(notice)
            except Exception as exc:  # any sender failure is recorded, and the next one tried
                errors.append(f"{sender.name}: {exc}")
                continue
            return notice._replace(
                status=NoticeStatus.SENT,
                sent_at=now,
                channel=sender.name,
                deliveries=notice.deliveries + 1,
                last_error="; ".join(errors) or None,
            )
        deliveries = notice.deliveries + 1
        if deliveries >= self.retry.max_deliveries:
            return notice._replace(
                status=NoticeStatus.FAILED,
                deliveries=deliveries,
                last_error="; ".join(errors),
                status_reason=f"gave up after {deliveries} deliveries",
            )
        return notice._replace(
            due_at=now + self.retry.delay(deliveries),
            deliveries=deliveries,
            last_error="; ".join(errors),
        )


def _salvage_ids(raw: object) -> tuple[str | None, str | None]:
    """The debit_id and event_id of unusable input, when they can be read, to file it under."""
    data: object = raw
    if isinstance(raw, str | bytes):
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None, None
    if not isinstance(data, Mapping):
        return None, None
    debit_id, event_id = data.get("debit_id"), data.get("event_id")
    return (
        debit_id if isinstance(debit_id, str) and debit_id else None,
        event_id if isinstance(event_id, str) and event_id else None,
    )
