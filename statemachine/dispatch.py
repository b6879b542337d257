"""Dispatch: claim due notices under a token of this dispatch's own, renew the claim right
before each notice and pass by one another dispatcher took over (N7), re-check each against
its debit (N3), send it through the channels in order, retry failed deliveries with backoff,
and record what happened where the claim still holds.

>>> from datetime import UTC, datetime
>>> from statemachine import Engine, Event
>>> engine = Engine.in_memory()
>>> _ = engine.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "d-1",
...     "type": "succeeded", "occurred_at": "2026-03-05T10:00:00+00:00"}))
>>> sms = RecordingSender("sms")
>>> [(n.kind, n.status.value, n.channel) for n in engine.dispatch_due([sms])]
[('succeeded', 'sent', 'sms')]
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from .clock import DAWN as _DAWN
from .clock import Clock
from .errors import DeliveryError, InvalidDefinition
from .messages import Message, Words
from .notices import matches
from .records import DebitRecord, Notice, NoticeStatus

if TYPE_CHECKING:
    from .stores.base import StoreAdapter


@runtime_checkable
class Sender(Protocol):
    """A channel (sms, push, e-mail ...). ``send`` returns on acceptance and raises on failure.

    Senders must treat ``notice.notice_id`` as an idempotency key: the engine delivers at least
    once, so the same notice can reach a sender again after a crash. A sender that also has
    ``send_message(message)`` gets the notice rendered for its customer (a
    :class:`~statemachine.messages.Message`) through that method instead.
    """

    name: str

    def send(self, notice: Notice) -> None:
        """Deliver ``notice``; return once the channel accepted it, raise if it did not."""
        ...


class RecordingSender:
    """A sender that records what it is handed (notices in ``sent``, rendered messages in
    ``messages``); ``fail`` refuses the first N deliveries.

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
        self.messages: list[Message] = []
        self._fail = fail
        self._on_send = on_send

    def send(self, notice: Notice) -> None:
        """Record the notice, or refuse it while simulated failures remain."""
        if self._fail > 0:
            self._fail -= 1
            self.refused.append(notice)
            raise DeliveryError(f"{self.name}: refused {notice.notice_id} (simulated outage)")
        if self._on_send is not None:
            self._on_send(notice)
        self.sent.append(notice)

    def send_message(self, message: Message) -> None:
        """Record the message and its notice, or refuse it as :meth:`send` does."""
        assert message.notice is not None  # the dispatcher's messages carry their notice
        self.send(message.notice)
        self.messages.append(message)


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
        """Count the notice by kind; always accepts."""
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
        """How long to wait after ``deliveries`` failed deliveries."""
        return min(self.first_delay * self.factor ** max(deliveries - 1, 0), self.max_delay)


class Dispatcher:
    """Sends the due notices of one store. The engine builds one; ``engine.dispatch_due`` and
    the replay's ``engine.dispatch_notices`` call it."""

    def __init__(self, store: StoreAdapter, retry: RetryPolicy, words: Words | None = None) -> None:
        self.store = store
        self.retry = retry
        self.words = words or Words()  # renders a notice for senders that take messages

    def dispatch_due(
        self,
        senders: Iterable[Sender],
        now: datetime,
        *,
        limit: int | None = None,
        lease: timedelta = timedelta(minutes=5),
        clock: Clock | None = None,
    ) -> list[Notice]:
        """Claim the notices due at ``now`` for ``lease`` and settle each (send or cancel).

        Right before each notice its claim is renewed for ``lease`` from the time then (the
        ``clock``'s, else ``now``): a notice whose claim another dispatcher has taken over, or
        whose lease ran out, or that is no longer queued, is passed by and left out of the
        result (N7). A result is recorded only where the claim still holds.
        """
        channels = check_senders(senders)
        token = uuid.uuid4().hex  # this dispatch's claims, told apart from any other's
        handled = []
        for notice in self.store.claim_due(now, lease, limit, token=token):
            at = now if clock is None else clock()
            if not self.store.renew_claim(notice.notice_id, token, at, lease):
                continue
            settled = self.settle(notice, self.store.debit(notice.debit_id), channels, at)
            self.store.save_notices([settled], token=token)
            handled.append(settled)
        return handled

    def preview(self, now: datetime, limit: int | None = None) -> list[tuple[Notice, bool]]:
        """The notices due at ``now``, each with whether it would be sent (else cancelled as
        superseded). Claims, sends and writes nothing: a look at the outbox."""
        due = self.store.queued(_DAWN, now)[:limit]
        records = self.store.debits(debit_id for debit_id, _, _ in due)
        found = []
        for debit_id, notice_id, _ in due:
            record = records.get(debit_id)
            notice = next(
                (
                    n
                    for n in (record.notices.values() if record else ())
                    if n.notice_id == notice_id
                ),
                None,
            )
            if notice is not None:
                found.append((notice, matches(notice, record)))
        return found

    def dispatch_notices(
        self, wanted: Iterable[tuple[str, str, datetime]], senders: Iterable[Sender]
    ) -> list[Notice]:
        """Settle these (debit_id, notice_id, at), each as at its time if it is still queued
        and due, and record them in one write. Give them in time order."""
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
            settled = self.settle(notice, record, channels, now)
            record.notices[notice.notice_id] = settled  # the next one sees it
            handled.append(settled)
        self.store.save_notices(handled)
        return handled

    def settle(
        self,
        notice: Notice,
        record: DebitRecord | None,
        channels: tuple[Sender, ...],
        now: datetime,
    ) -> Notice:
        """Send a due notice if it still states the debit's outcome (N3), else cancel it."""
        if matches(notice, record):
            return self.deliver(notice, channels, now, record)
        where = f"{record.state} on attempt {record.attempt}" if record else "gone"
        return notice._replace(
            status=NoticeStatus.CANCELLED, status_reason=f"superseded: the debit is {where}"
        )

    def deliver(
        self,
        notice: Notice,
        channels: tuple[Sender, ...],
        now: datetime,
        record: DebitRecord | None = None,
    ) -> Notice:
        """Try the channels in order; the notice as it stands after the first that accepts,
        or rescheduled with backoff (or given up) when none does. ``record``, the debit's,
        is what a sender taking messages gets the notice rendered from."""
        errors = []
        for sender in channels:
            try:
                self.words.send(sender, notice, record)
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
