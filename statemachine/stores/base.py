"""The store interface, split by who needs it. The engine decides; a store reads, and writes
each decision atomically.

An adapter implements :class:`Store` (the write path and the reads the engine needs),
:class:`Outbox` (dispatch claims), :class:`Receipts` (delivery receipts, N8) and
:class:`Inquiries` (the inquiry of stuck debits). :class:`Reports` (what operations and the replay summary ask)
comes for free from :class:`DerivedReports`, which answers it from the two; an SQL store
overrides it with queries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Protocol

import attrs

from ..decide import Decide, Decision
from ..events import Event
from ..inquiry import Inquiry
from ..notices import last_told, matches, was_told
from ..receipts import RANK, Judge, Receipt, ReceiptResult, ReceiptStatus, StoredReceipt
from ..records import DebitRecord, Notice, Result, StoredEvent
from .timeline import DerivedTimeline

__all__ = [
    "Decide",
    "Decision",
    "DerivedReports",
    "Inquiries",
    "Item",
    "Outbox",
    "Receipts",
    "Reports",
    "Store",
    "StoreAdapter",
    "StoreCounts",
]

Item = tuple[Event, str | None, str | None, datetime | None]  # (event, raw, origin, now)
Stop = Callable[[Result], bool]


@attrs.frozen
class StoreCounts:
    """Counts a store keeps for ``engine.metrics()``."""

    verdicts: dict[str, int]
    states: dict[str, int]
    notices: dict[str, int]
    needs_review: int
    sources: dict[str, int]  # accepted events by source name


class Store(Protocol):
    """The write path and the reads the engine needs.

    ``execute`` runs ``decide(event, record, prior, None)`` with the debit's record (None if
    new) and the accepted event already stored under the same event_id (None if none), then
    writes the arrival, the record and the notice together. ``decide`` may change the record
    it is given. For a new event_id on a stored debit a store may ask ``decide.advance`` first:
    it decides an event in order as ``decide`` would, or returns None and changes nothing.
    """

    def execute(
        self, event: Event, decide: Decide, raw: str | None, origin: str | None
    ) -> Result: ...

    def execute_many(
        self, items: Iterable[Item], decide: Decide, stop: Stop | None = None
    ) -> list[Result]:
        """``execute`` for each (event, raw, origin, now), in one transaction where it can.

        With ``stop``, the batch ends after the first result for which it is true: the items
        after it are neither decided nor written.
        """
        ...

    def reject(
        self,
        raw: str,
        reason: str,
        debit_id: str | None,
        event_id: str | None,
        origin: str | None,
    ) -> Result:
        """Store input that is not an event at all, with verdict ``invalid`` and its raw text."""
        ...

    def debit(self, debit_id: str) -> DebitRecord | None: ...

    def debits(self, debit_ids: Iterable[str], *, events: bool = True) -> dict[str, DebitRecord]:
        """``debit`` for several at once; ids not stored are left out. ``events=False`` may
        leave out the debits' events (``facts``): what the N3 re-check needs is the state,
        the attempt and the notices."""
        ...

    def debit_ids(self) -> Iterable[str]: ...

    def history(self, debit_id: str | None) -> list[StoredEvent]:
        """Arrivals for the debit in arrival order; ``None``: invalid input that named no debit."""
        ...

    def notices(self, debit_id: str | None = None) -> list[Notice]: ...

    def transaction(self) -> AbstractContextManager[None]:
        """A unit of work: writes inside it commit together at its end, or not at all.

        Reads inside see its writes. A store without such units writes each call on its own.
        """
        ...

    def close(self) -> None: ...


class Outbox(Protocol):
    """What dispatch needs: due notices claimed for a lease under a dispatcher's token, the
    claim renewed before each send, and their new status recorded where the claim holds (N7)."""

    def claim_due(
        self, now: datetime, lease: timedelta, limit: int | None = None, *, token: str
    ) -> list[Notice]:
        """Due notices, claimed under ``token`` for ``lease``: other dispatchers skip them
        until it runs out, and may then claim them under theirs."""
        ...

    def renew_claim(self, notice_id: str, token: str, now: datetime, lease: timedelta) -> bool:
        """Whether ``token`` still holds the queued notice's claim at ``now``, in one atomic
        step that then extends it to ``now + lease``. False: another dispatcher took it over,
        the lease ran out, or the notice is no longer queued; do not send it."""
        ...

    def renew_claims(
        self, notice_ids: Sequence[str], token: str, now: datetime, lease: timedelta
    ) -> set[str]:
        """``renew_claim`` for many notices in one write: the ids whose claim ``token``
        still held, now extended."""
        ...

    def holds_claim(self, notice_id: str, token: str) -> bool:
        """Whether ``token`` holds the notice's claim now: a read, the check right before a
        send whose claim was renewed with others just before."""
        ...

    def save_notices(self, notices: Iterable[Notice], *, token: str | None = None) -> None:
        """Record dispatched notices' new status, in one transaction. With ``token``, each is
        written only where that claim still holds (one taken over is left to its new holder),
        and the write releases it."""
        ...

    def queued(self, since: datetime, until: datetime) -> list[tuple[str, str, datetime]]:
        """``(debit_id, notice_id, due_at)`` of queued notices due in [since, until], by due time."""
        ...

    def next_due(self, after: datetime) -> datetime | None:
        """The earliest due time later than ``after`` among queued notices, or None."""
        ...


class Receipts(Protocol):
    """Delivery receipts (N8): each one stored with its verdict, and the notice it moves."""

    def receive(self, receipt: Receipt, judge: Judge, now: datetime) -> ReceiptResult:
        """Judge a well-formed receipt against its notice and what applied receipts said of
        the same send, then store it and the changed notice in one transaction."""
        ...

    def reject_receipt(self, receipt: Receipt, reason: str) -> ReceiptResult:
        """Store input that is not a usable receipt, verdict ``rejected``, with its raw text."""
        ...

    def receipts(self, notice_id: str | None = None) -> list[StoredReceipt]:
        """Stored receipts (of one notice, or all), in arrival order."""
        ...

    def awaiting_receipt(self, now: datetime) -> list[Notice]:
        """Sent notices whose wait for a receipt ended by ``now``, earliest first."""
        ...

    def next_receipt_by(self) -> datetime | None:
        """The earliest end of a wait for a receipt, or None when no notice waits."""
        ...


class Inquiries(Protocol):
    """The inquiry of stuck debits: each debit's schedule, and every inquiry as recorded."""

    def inquiries_due(
        self, state: str, quiet_before: datetime, now: datetime, limit: int | None = None
    ) -> list[tuple[str, int, int]]:
        """``(debit_id, attempt, inquiries so far)`` of debits in ``state`` whose latest
        accepted event occurred before ``quiet_before`` and whose next inquiry (for their
        current attempt; none yet: due) is due by ``now``, earliest due first."""
        ...

    def record_inquiry(self, inquiry: Inquiry, rounds: int) -> None:
        """Store the inquiry, and make its ``next_at`` the debit's next one, its ``rounds``
        (inquiries of that attempt, this one included) the count to back off from."""
        ...

    def inquiries(self, debit_id: str | None = None) -> list[Inquiry]:
        """The debit's inquiries (every debit's without ``debit_id``), oldest first."""
        ...

    def last_inquiries(self, debit_ids: Iterable[str]) -> dict[str, Inquiry]:
        """The latest inquiry of each of ``debit_ids`` that was ever asked about."""
        ...

    def inquiry_counts(self) -> dict[str, int]:
        """``{"asked": ..., "answered": ..., "errors": ...}`` over every inquiry."""
        ...


class Reports(Protocol):
    """Aggregates for operations and the replay summary; see :class:`DerivedReports`."""

    def counts(self) -> StoreCounts: ...

    def stuck(self, state: str, before: datetime) -> list[tuple[str, datetime]]:
        """Debits in ``state`` whose latest accepted event occurred before ``before``, oldest
        first, with that time."""
        ...

    def notice_tally(self) -> list[tuple[str, str, str, int]]:
        """``(kind, status, UTC day due, count)`` over every notice."""
        ...

    def review_ids(self) -> list[str]:
        """Debits flagged ``needs_review``, in id order."""
        ...

    def outcomes(self, debit_ids: list[str]) -> dict[str, tuple[str, int]]:
        """``debit_id -> (state, attempt)`` for those of ``debit_ids`` that exist."""
        ...

    def told(self, outcome: str, states: Iterable[str]) -> list[str]:
        """Debits now in one of ``states`` whose current attempt was sent a notice stating
        ``outcome``, in id order."""
        ...

    def last_origin(self, prefix: str) -> str | None:
        """The origin of the latest stored arrival whose origin starts with ``prefix``: where
        an interrupted replay of a file got to."""
        ...

    def misinformed_count(self, states: Iterable[str]) -> int:
        """Debits in one of ``states`` whose customer's last notice no longer states the
        outcome (N6): it names another state or attempt, or a newer notice has replaced it."""
        ...

    def deliveries(self) -> dict[str, dict[str, int]]:
        """``channel -> {delivered, undelivered, expired} -> sends``: each send (a notice on a
        channel) counted once, by the best its applied receipts said (N8)."""
        ...

    def outcome_tally(
        self, states: Iterable[str], width: timedelta, since: datetime | None = None
    ) -> list[tuple[datetime, str, int]]:
        """``(bucket, state, debits)``, by bucket then state: the debits now in one of
        ``states``, each counted in the bucket (:func:`~statemachine.stores.timeline.bucket_start`) of the latest
        ``occurred_at`` among its accepted events, if that is at or after ``since``. Over every
        bucket, the counts are ``counts().states``'."""
        ...

    def delivery_tally(
        self, width: timedelta, since: datetime | None = None
    ) -> list[tuple[str, datetime, str, int]]:
        """``(channel, bucket, outcome, sends)``, sorted: each send counted as
        :meth:`deliveries` counts it, in the bucket of its latest applied receipt's time."""
        ...

    def conflicts(self, limit: int) -> list[StoredEvent]:
        """The latest ``limit`` arrivals whose verdict is ``conflict``, newest first."""
        ...

    def waiting(self, limit: int) -> list[Notice]:
        """The first ``limit`` queued notices by due time (then notice id)."""
        ...


class StoreAdapter(Store, Outbox, Receipts, Inquiries, Reports, Protocol):
    """Everything the engine, dispatch and operations use: what an adapter provides."""


class DerivedReports(DerivedTimeline):
    """:class:`Reports` answered from :class:`Store`'s reads, debit by debit: correct for any
    store, and fast enough where the debits are in memory."""

    def debit_ids(self) -> Iterable[str]:
        raise NotImplementedError

    def debits(self, debit_ids: Iterable[str], *, events: bool = True) -> dict[str, DebitRecord]:
        raise NotImplementedError

    def history(self, debit_id: str | None) -> list[StoredEvent]:
        raise NotImplementedError

    def receipts(self, notice_id: str | None = None) -> list[StoredReceipt]:
        raise NotImplementedError

    def last_origin(self, prefix: str) -> str | None:
        arrivals = [*self.history(None)]
        for debit_id in self.debit_ids():
            arrivals.extend(self.history(debit_id))
        found = [a for a in arrivals if a.origin is not None and a.origin.startswith(prefix)]
        return max(found, key=lambda a: a.seq).origin if found else None

    def _records(self) -> Iterable[DebitRecord]:
        return self.debits(self.debit_ids()).values()

    def counts(self) -> StoreCounts:
        states: Counter[str] = Counter()
        notices: Counter[str] = Counter()
        sources: Counter[str] = Counter()
        review = 0
        for record in self._records():
            states[record.state] += 1
            sources.update(event.source for event in record.facts)
            review += record.needs_review
            notices.update(str(notice.status) for notice in record.notices.values())
        verdicts = self._verdicts()
        return StoreCounts(verdicts, dict(states), dict(notices), review, dict(sources))

    def _verdicts(self) -> dict[str, int]:
        """Arrivals by verdict: those that named no debit, and each debit's."""
        verdicts: Counter[str] = Counter(str(h.verdict) for h in self.history(None))
        for debit_id in self.debit_ids():
            verdicts.update(str(h.verdict) for h in self.history(debit_id))
        return dict(verdicts)

    def stuck(self, state: str, before: datetime) -> list[tuple[str, datetime]]:
        found = []
        for record in self._records():
            if record.state == state and record.facts:
                last = max(event.occurred_at for event in record.facts)
                if last < before:
                    found.append((record.debit_id, last))
        return sorted(found, key=lambda item: (item[1], item[0]))

    def notice_tally(self) -> list[tuple[str, str, str, int]]:
        tally: Counter[tuple[str, str, str]] = Counter(
            (n.kind, n.status.value, n.due_at.astimezone(UTC).date().isoformat())
            for record in self._records()
            for n in record.notices.values()
        )
        return [(kind, status, day, count) for (kind, status, day), count in tally.items()]

    def review_ids(self) -> list[str]:
        return sorted(record.debit_id for record in self._records() if record.needs_review)

    def outcomes(self, debit_ids: list[str]) -> dict[str, tuple[str, int]]:
        return {d: (r.state, r.attempt) for d, r in self.debits(debit_ids).items()}

    def misinformed_count(self, states: Iterable[str]) -> int:
        wanted = set(states)
        count = 0
        for record in self._records():
            told = last_told(record.notices.values())
            if told is not None and record.state in wanted and not matches(told, record):
                count += 1
        return count

    def deliveries(self) -> dict[str, dict[str, int]]:
        sends: dict[tuple[str, str], str] = {}
        for stored in self.receipts():
            if stored.verdict != "applied":
                continue
            receipt = stored.receipt
            key = (receipt.notice_id or "", receipt.channel or "")
            said = ReceiptStatus(str(receipt.status))
            if key not in sends or RANK[said] > RANK[ReceiptStatus(sends[key])]:
                sends[key] = said.value
        found: dict[str, Counter[str]] = {}
        for (_, channel), outcome in sends.items():
            found.setdefault(channel, Counter())[outcome] += 1
        return {channel: dict(counts) for channel, counts in found.items()}

    def told(self, outcome: str, states: Iterable[str]) -> list[str]:
        wanted = set(states)
        return sorted(
            record.debit_id
            for record in self._records()
            if record.state in wanted
            and any(
                was_told(n) and n.outcome == outcome and n.attempt == record.attempt
                for n in record.notices.values()
            )
        )
