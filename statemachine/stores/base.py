"""The store interface. The engine decides; a store reads, and writes each decision atomically."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from ..debits import DebitRecord, Result, StoredEvent
from ..events import Event
from ..notices import Notice

# What the engine decided about one arrival, for the store to write in one transaction:
# (result, the debit record to write or None when untouched, whether the event joins the
# debit's facts, the notice planned with the change or None). A plain tuple: apply is hot.
Decision = tuple[Result, DebitRecord | None, bool, Notice | None]


# decide(event, record, prior, now): ``now`` is the time the engine plans notices at, or
# None for its clock's.
Decide = Callable[[Event, DebitRecord | None, Event | None, datetime | None], Decision]
Item = tuple[Event, str | None, str | None, datetime | None]  # (event, raw, origin, now)


@attrs.frozen
class StoreCounts:
    """Counts a store keeps for ``engine.metrics()``."""

    verdicts: dict[str, int]
    states: dict[str, int]
    notices: dict[str, int]
    needs_review: int
    sources: dict[str, int]  # accepted events by source name


class Store(Protocol):
    """Everything the engine needs from persistence.

    ``execute`` runs ``decide(event, record, prior, None)`` with the debit's record (None if new) and the
    accepted event already stored under the same event_id (None if none), then writes the
    arrival, the record and the notice together. ``decide`` may change the record it is given.
    """

    def execute(
        self, event: Event, decide: Decide, raw: str | None, origin: str | None
    ) -> Result: ...

    def execute_many(self, items: Iterable[Item], decide: Decide) -> list[Result]:
        """``execute`` for each (event, raw, origin, now), in one transaction where it can."""
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

    def debits(self, debit_ids: Iterable[str]) -> dict[str, DebitRecord]:
        """``debit`` for several at once; ids not stored are left out."""
        ...

    def debit_ids(self) -> Iterable[str]: ...

    def history(self, debit_id: str | None) -> list[StoredEvent]:
        """Arrivals for the debit in arrival order; ``None``: invalid input that named no debit."""
        ...

    def notices(self, debit_id: str | None = None) -> list[Notice]: ...

    def due_notices(self, now: datetime) -> list[Notice]:
        """Queued notices whose due time has come, earliest first."""
        ...

    def queued(self, since: datetime, until: datetime) -> list[tuple[str, str, datetime]]:
        """``(debit_id, notice_id, due_at)`` of queued notices due in [since, until], by due time."""
        ...

    def next_due(self, after: datetime) -> datetime | None:
        """The earliest due time later than ``after`` among queued notices, or None."""
        ...

    def claim_due(self, now: datetime, lease: timedelta, limit: int | None = None) -> list[Notice]:
        """Due notices, claimed for ``lease``: other dispatchers skip them until it runs out."""
        ...

    def save_notice(self, notice: Notice) -> None:
        """Record a dispatched notice's new status; this releases its claim."""
        ...

    def save_notices(self, notices: Iterable[Notice]) -> None:
        """``save_notice`` for several, in one transaction where the store has them."""
        ...

    def stuck(self, before: datetime) -> list[tuple[str, datetime]]:
        """Debits in ``submitted`` whose latest event occurred before ``before``, oldest first."""
        ...

    def counts(self) -> StoreCounts: ...

    def transaction(self) -> AbstractContextManager[None]:
        """A unit of work: writes inside it commit together at its end, or not at all.

        Reads inside see its writes. A store without such units writes each call on its own.
        """
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

    def close(self) -> None: ...
