"""Customer notices derived from a debit's state (N1-N4): the outbox, its rules and senders.

A notice is planned in the same write as the state change it announces (N1), waits a settle
window if it announces a failure (N2), and is re-checked against the debit when it is due (N3).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol, runtime_checkable

import attrs

from .errors import DeliveryError, InvalidDefinition
from .events import FAILED, REVERSED, SUCCEEDED

if TYPE_CHECKING:
    from .debits import DebitRecord
    from .spec import Spec

CORRECTION: Final = "correction"
_new_notice = tuple.__new__  # Notice(...) without the NamedTuple constructor: planning is hot


class NoticeStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"


class Notice(NamedTuple):
    """One customer message about one debit attempt. Immutable: ``_replace`` makes a changed copy.

    ``kind`` is the outcome it announces, or ``correction`` when it replaces an outcome the
    customer was already told; ``outcome`` is always the outcome it states. There is at most one
    notice per (debit, attempt, kind), and ``notice_id`` is the senders' idempotency key.
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

    @property
    def idempotency_key(self) -> str:
        return self.notice_id

    def text(self) -> str:
        """A plain customer-facing sentence; real senders bring their own templates."""
        said = {
            SUCCEEDED: "was collected",
            FAILED: "could not be collected",
            REVERSED: "was returned by your bank",
        }.get(self.outcome, self.outcome)
        prefix = "Correction: your" if self.kind == CORRECTION else "Your"
        return f"{prefix} payment {self.debit_id} {said}."


def notice_id(debit_id: str, attempt: int, kind: str) -> str:
    return f"{debit_id}#{attempt}:{kind}"


def plan(
    record: DebitRecord, outcome: str, attempt: int, spec: Spec, now: datetime
) -> Notice | None:
    """The notice (new or re-queued) that moving ``record`` to ``outcome`` on ``attempt`` calls
    for, if any (N1). Changes nothing: the caller keeps it in ``record.notices`` and writes it
    in the same transaction as the state change.
    """
    if outcome not in spec.outcomes:
        return None
    if not record.notices:  # the usual case: the first outcome of the debit
        due = now + spec.settle_window if outcome == FAILED else now
        return _new_notice(Notice, (notice_id(record.debit_id, attempt, outcome), record.debit_id,
                           attempt, outcome, outcome, due, now, NoticeStatus.QUEUED, None, None,
                           0, None, None, record.version + 1))  # fmt: skip
    told = last_told(record.notices.values())
    if told is not None and (told.attempt, told.outcome) == (attempt, outcome):
        return None
    plain = record.notices.get((attempt, outcome))
    if (told is None or not _contradicts(told, attempt, outcome)) and (
        plain is None or plain.status is not NoticeStatus.SENT
    ):
        kind = outcome
    else:
        # What the customer heard last is wrong now, or the plain notice was used up by an
        # earlier visit to this outcome: only a correction can tell them.
        kind = CORRECTION
    due = now + spec.settle_window if outcome == FAILED else now
    existing = record.notices.get((attempt, kind))
    if existing is None:
        notice = Notice(
            notice_id(record.debit_id, attempt, kind),
            record.debit_id,
            attempt,
            kind,
            outcome,
            due,
            now,
            version=record.version + 1,
        )
    elif existing.status is NoticeStatus.SENT:
        return None  # never two notices for one (debit, attempt, kind) (N4)
    else:
        notice = existing._replace(
            outcome=outcome,
            due_at=due,
            status=NoticeStatus.QUEUED,
            status_reason=None,
            version=record.version + 1,
        )
    return notice


def last_told(notices: Iterable[Notice]) -> Notice | None:
    """The notice the customer received last: what they believe now."""
    sent = [n for n in notices if n.status is NoticeStatus.SENT and n.sent_at is not None]
    return max(sent, key=lambda n: (n.sent_at, n.version)) if sent else None


def _contradicts(told: Notice, attempt: int, outcome: str) -> bool:
    if attempt > told.attempt:
        return False  # news about a new attempt, not a correction
    return attempt < told.attempt or (told.outcome, outcome) != (SUCCEEDED, REVERSED)


def matches(notice: Notice, record: DebitRecord | None) -> bool:
    """N3: a notice may go out only while it states the debit's current outcome, and only if
    no later change planned a newer notice (which then speaks for the debit instead)."""
    if record is None or record.attempt != notice.attempt or record.state != notice.outcome:
        return False
    return all(
        other.version <= notice.version
        for other in record.notices.values()
        if other.status in (NoticeStatus.QUEUED, NoticeStatus.SENT)
    )


@runtime_checkable
class Sender(Protocol):
    """A channel (sms, push, e-mail ...). ``send`` returns on acceptance and raises on failure.

    Senders must treat ``notice.notice_id`` as an idempotency key: the engine delivers at least
    once, so the same notice can reach a sender again after a crash.
    """

    name: str

    def send(self, notice: Notice) -> None: ...


class RecordingSender:
    """A sender that records what it is handed; ``fail`` refuses the first N deliveries.

    >>> sender = RecordingSender("sms")
    >>> sender.name, sender.sent
    ('sms', [])
    """

    def __init__(
        self,
        name: str = "recording",
        fail: int = 0,
        on_send: Callable[[Notice], None] | None = None,
    ) -> None:
        self.name = name
        self.sent: list[Notice] = []
        self.refused: list[Notice] = []
        self._fail = fail
        self._on_send = on_send

    def send(self, notice: Notice) -> None:
        if self._fail > 0:
            self._fail -= 1
            self.refused.append(notice)
            raise DeliveryError(f"{self.name}: refused {notice.notice_id} (simulated outage)")
        if self._on_send is not None:
            self._on_send(notice)
        self.sent.append(notice)


class CountingSender:
    """A sender that accepts every notice and keeps only counts by kind: replay's default,
    whose memory does not grow with the log.

    >>> sender = CountingSender()
    >>> sender.name, sender.sent
    ('replay', Counter())
    """

    def __init__(self, name: str = "replay") -> None:
        self.name = name
        self.sent: Counter[str] = Counter()

    def send(self, notice: Notice) -> None:
        self.sent[notice.kind] += 1


def check_senders(senders: Iterable[Sender]) -> tuple[Sender, ...]:
    """Refuse unusable senders at once, saying how to fix them."""
    checked = tuple(senders)
    if not checked:
        raise InvalidDefinition("dispatch needs at least one sender, for example RecordingSender()")
    for sender in checked:
        name = getattr(sender, "name", None)
        if not isinstance(name, str) or not name:
            raise InvalidDefinition(
                f"sender {sender!r} has no name; give it a `name` attribute such as 'sms'"
            )
        if not callable(getattr(sender, "send", None)):
            raise InvalidDefinition(f"sender {name!r} has no send(notice) method")
    return checked


@attrs.frozen
class RetryPolicy:
    """Exponential backoff between failed deliveries, and when to give up (N4)."""

    first_delay: timedelta = timedelta(minutes=1)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=1)
    max_deliveries: int = 8

    def delay(self, deliveries: int) -> timedelta:
        return min(self.first_delay * self.factor ** max(deliveries - 1, 0), self.max_delay)
