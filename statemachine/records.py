"""The records the engine works with: the live debit record, its public snapshot, stored
events, results, and the customer notices a debit plans. Data only; the rules live in
``precedence.py``, ``decide.py`` and ``notices.py``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final, NamedTuple

import attrs

from .events import FAILED, REVERSED, SUCCEEDED, Event
from .precedence import Fold, Strength, Verdict
from .refold import OrderedFacts

CORRECTION: Final = "correction"
_new_tuple = tuple.__new__


class NoticeStatus(StrEnum):
    """Where a notice stands (N8): queued, sent (a channel accepted it), delivered or
    undelivered (as the provider's receipts said, on every channel tried), cancelled
    (superseded) or failed (no channel accepted it, and dispatch gave up)."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Notice(NamedTuple):
    """One customer message about one debit attempt. Immutable: ``_replace`` makes a changed copy.

    ``kind`` is the outcome it announces, or ``correction`` when it replaces an outcome the
    customer was already told; ``outcome`` is always the outcome it states. A debit's notices
    are a sequence with no cap (``notices.plan``); ``notice_id`` is unique and the senders'
    idempotency key. ``channel`` is the channel it was last sent on; ``tried`` the channels
    it fell back from (``receipts.py``).
    """

    notice_id: str
    debit_id: str
    attempt: int
    kind: str
    outcome: str
    due_at: datetime
    created_at: datetime
    status: NoticeStatus = NoticeStatus.QUEUED
    sent_at: datetime | None = None
    channel: str | None = None
    deliveries: int = 0
    last_error: str | None = None
    status_reason: str | None = None
    version: int = 0  # the debit's version whose change planned it: orders notices of one debit
    tried: tuple[str, ...] = ()  # channels that took it and did not deliver it (N8 fallback)
    receipt_by: datetime | None = None  # when waiting for the current channel's receipt ends

    def sent_on(
        self, channel: str, now: datetime, error: str | None, receipt_by: datetime | None
    ) -> Notice:
        """The notice as a channel took it, at ``now``: what ``_replace`` would make, built by
        hand because every dispatched notice passes here and ``_replace`` costs more."""
        n = self
        return _new_tuple(Notice, (n[0], n[1], n[2], n[3], n[4], n[5], n[6], NoticeStatus.SENT,
                          now, channel, n[10] + 1, error, n[12], n[13], n[14], receipt_by))  # fmt: skip

    @property
    def idempotency_key(self) -> str:
        """The key a channel must deduplicate deliveries by: the notice id."""
        return self.notice_id

    def text(self) -> str:
        """A plain English sentence naming the debit, for senders that take notices; the
        customer's own text, from the templates, is ``engine.message(notice)`` (N10)."""
        said = {
            SUCCEEDED: "was collected",
            FAILED: "could not be collected",
            REVERSED: "was returned by your bank",
        }.get(self.outcome, self.outcome)
        prefix = "Correction: your" if self.kind == CORRECTION else "Your"
        return f"{prefix} payment {self.debit_id} {said}."


@attrs.frozen
class Debit:
    """A snapshot of one debit, as ``engine.get(debit_id)`` returns it."""

    debit_id: str
    state: str
    attempt: int
    version: int
    needs_review: bool
    review_reason: str | None
    amount: int | None = None
    currency: str | None = None


@attrs.frozen
class StoredEvent:
    """One arrival as stored: the event (None if it could not be parsed), its verdict and raw text."""

    seq: int
    event_id: str | None
    debit_id: str | None
    type: str | None
    attempt: int | None
    occurred_at: datetime | None
    source: str | None
    verdict: Verdict
    reason: str
    raw: str | None
    origin: str | None = None
    event: Event | None = attrs.field(default=None, eq=False, repr=False)


class Result(NamedTuple):
    """What ``engine.apply`` returns: the verdict, why, and where the debit now stands."""

    verdict: Verdict
    reason: str
    event_id: str | None
    debit_id: str | None
    state: str | None
    attempt: int | None
    version: int | None
    needs_review: bool
    notice: Notice | None = None  # the notice this change planned (N1), written with it

    @property
    def applied(self) -> bool:
        """Whether the event changed the debit."""
        return self.verdict is Verdict.APPLIED

    @classmethod
    def invalid(
        cls, reason: str, event_id: str | None, debit_id: str | None, record: DebitRecord | None
    ) -> Result:
        """The result for input refused as invalid: the debit, if any, is as it was."""
        if record is None:
            return cls(Verdict.INVALID, reason, event_id, debit_id, None, None, None, False)
        return cls(Verdict.INVALID, reason, event_id, debit_id, record.state, record.attempt,
                   record.version, record.needs_review)  # fmt: skip


class DebitRecord:
    """The engine's working copy of one debit: its position and the facts it was folded from.

    A plain slotted class rather than attrs: it is created and changed on the hot path.
    """

    __slots__ = (
        "amount",
        "attempt",
        "currency",
        "debit_id",
        "facts",
        "max_attempt",
        "needs_review",
        "notices",
        "ordered",
        "review_reason",
        "revision",
        "state",
        "strength",
        "version",
    )

    def __init__(self, debit_id: str, state: str) -> None:
        self.debit_id = debit_id
        self.state = state
        self.attempt = 1
        self.version = 0
        self.needs_review = False
        self.review_reason: str | None = None
        self.strength: Strength | None = None
        self.max_attempt = 1
        self.amount: int | None = None
        self.currency: str | None = None
        self.facts: list[Event] = []
        self.notices: dict[str, Notice] = {}  # by notice_id, in planning order
        # The facts in canonical order with their folds, built when an event first needs
        # the whole fold (it lost, or came out of order): kept in step with ``facts`` after.
        self.ordered: OrderedFacts | None = None
        self.revision = 0  # the store's count of writes, to tell a cached copy is current

    def position(self) -> Fold:
        return Fold(
            self.state,
            self.attempt,
            self.needs_review,
            self.review_reason,
            self.strength,
            None,
            self.amount,
            self.currency,
        )

    def take(self, fold: Fold) -> None:
        self.state = fold.state
        self.attempt = fold.attempt
        self.needs_review = fold.needs_review
        self.review_reason = fold.review_reason
        self.strength = fold.strength
        self.amount = fold.amount
        self.currency = fold.currency

    def snapshot(self) -> Debit:
        return Debit(
            self.debit_id,
            self.state,
            self.attempt,
            self.version,
            self.needs_review,
            self.review_reason,
            self.amount,
            self.currency,
        )

    def __repr__(self) -> str:
        return f"DebitRecord({self.debit_id!r}, {self.state!r}, attempt={self.attempt})"
