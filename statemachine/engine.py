"""The engine, the front door: opens a store, applies events, and hands the rest to the
rooms behind it (deciding in ``decide.py``, sending in ``dispatch.py``, queries in
``operations.py``).

>>> engine = Engine.in_memory()
>>> engine.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "loan-42/2026-03",
...     "type": "succeeded", "occurred_at": "2026-03-05T10:00:00+08:00"})).verdict
<Verdict.APPLIED: 'applied'>
>>> engine.get("loan-42/2026-03").state
'succeeded'
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from . import operations
from .clock import Clock, earlier, utc_now
from .decide import Decider
from .decoding import decode_event
from .dispatch import Dispatcher, RetryPolicy, Sender
from .errors import InvalidDefinition, StoreError
from .events import Event, Refusal, parse_input
from .inquiry import Ask, Inquiry, InquiryPolicy, inquire_due
from .messages import CustomerResolver, Message, Words
from .operations import Metrics
from .precedence import Fold, fold
from .receipts import Receipt, ReceiptResult, StoredReceipt, check_receipt, judge
from .records import Debit, Notice, Result, StoredEvent
from .spec import Spec
from .stores.base import Item, Stop, StoreAdapter
from .stores.memory import MemoryStore
from .templates import Templates


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused inside (if it ran): for the engine's long loops,
    which make no reference cycles (a test holds a replay to none) and would otherwise spend a
    tenth of their time scanning the records they keep. Reference counting frees as usual."""
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


class Engine:
    """Applies events to debits through a store; the debit's state is the single source of truth.

    Build one with :meth:`in_memory` or :meth:`open`, or hand it any store adapter
    (:class:`~statemachine.stores.base.StoreAdapter`). ``templates`` word the customers'
    messages (the bundled ones by default); ``customers`` resolves a debit id to its
    :class:`~statemachine.messages.Customer` where the ``created`` event does not say.
    """

    def __init__(
        self,
        store: StoreAdapter,
        spec: Spec | None = None,
        clock: Clock = utc_now,
        retry: RetryPolicy | None = None,
        *,
        templates: Templates | None = None,
        customers: CustomerResolver | None = None,
    ) -> None:
        self.store = store
        self.spec = spec or Spec.default()
        self.clock = clock
        self.decide = Decider(self.spec, clock)
        words = Words(templates, self.spec, customers)
        self.dispatcher = Dispatcher(
            store, retry or RetryPolicy(), self.spec.receipt_timeout, words=words
        )
        self._execute = store.execute
        self.inquiry = InquiryPolicy()  # when stuck debits are asked about: inquire_due

    @property
    def retry(self) -> RetryPolicy:
        """Backoff between failed deliveries, and when to give up."""
        return self.dispatcher.retry

    @retry.setter
    def retry(self, policy: RetryPolicy) -> None:
        self.dispatcher.retry = policy

    @classmethod
    def in_memory(
        cls,
        spec: Spec | None = None,
        clock: Clock = utc_now,
        retry: RetryPolicy | None = None,
        *,
        templates: Templates | None = None,
        customers: CustomerResolver | None = None,
    ) -> Engine:
        """An engine whose debits live in this process only: tests and pure embedding."""
        return cls(MemoryStore(), spec, clock, retry, templates=templates, customers=customers)

    @classmethod
    def open(
        cls,
        target: str | Path,
        spec: Spec | None = None,
        clock: Clock = utc_now,
        retry: RetryPolicy | None = None,
        *,
        templates: Templates | None = None,
        customers: CustomerResolver | None = None,
        **options: Any,
    ) -> Engine:
        """An engine on the store ``target`` names: an SQLite file path, a ``postgresql://`` DSN
        (``?schema=NAME`` picks the schema), or ``:memory:``.

        ``options`` go to the store, for example ``synchronous="NORMAL"`` for SQLite.
        """
        spec = spec or Spec.default()
        if str(target) == ":memory:":
            return cls(MemoryStore(), spec, clock, retry, templates=templates, customers=customers)
        if str(target).startswith(("postgresql://", "postgres://")):
            try:
                from .stores.postgres import PostgresStore
            except ImportError as exc:
                raise StoreError(
                    f"a PostgreSQL target needs psycopg: pip install 'statemachine[postgres]' ({exc})"
                ) from None
            store: StoreAdapter = PostgresStore(str(target), spec, **options)
        else:
            from .stores.sqlite import SQLiteStore

            store = SQLiteStore(target, spec, **options)
        return cls(store, spec, clock, retry, templates=templates, customers=customers)

    def close(self) -> None:
        """Close the store; the engine is unusable afterwards."""
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

    def apply(
        self,
        event: Event | Mapping[str, Any],
        *,
        raw: str | None = None,
        origin: str | None = None,
    ) -> Result:
        """Apply one event; returns its verdict, the reason and where the debit now stands.

        A mapping in DESIGN's JSON form is read with :meth:`Event.from_dict` first, which
        raises :class:`~statemachine.errors.InvalidEvent` naming a bad field; to store bad
        input as ``invalid`` instead, use :meth:`ingest`.
        """
        if type(event) is not Event:
            event = _as_event(event)
        return self._execute(event, self.decide, raw, origin)

    def apply_many(
        self, events: Iterable[Event | Item], *, stop: Stop | None = None
    ) -> list[Result]:
        """Apply a batch in order, in one transaction where the store has them. An item is an
        event, or (event, raw text, origin, now) where ``now`` is the time to plan notices at
        instead of the clock's. With ``stop``, the batch ends after the first result it is true
        for. The cyclic garbage collector pauses for the batch: the engine makes no reference
        cycles, and scanning its records dominates otherwise."""
        items = (item if isinstance(item, tuple) else (item, None, None, None) for item in events)
        with collector_paused():
            return self.store.execute_many(items, self.decide, stop)

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
        if parsed is None and isinstance(raw, str | bytes):
            outcome, text = parse_input(raw, decode_event(raw))  # the fast way in, if it can
        else:
            outcome, text = parse_input(raw, parsed)
        if isinstance(outcome, Refusal):
            return self.refuse(outcome, text, origin)
        return self._execute(outcome, self.decide, text, origin)

    def refuse(self, refusal: Refusal, raw: str, origin: str | None = None) -> Result:
        """Store input that :func:`~statemachine.events.parse_input` refused, verdict ``invalid``."""
        return self.store.reject(raw, refusal.reason, refusal.debit_id, refusal.event_id, origin)

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
        """The debit's notices (every notice without ``debit_id``), oldest first."""
        return self.store.notices(debit_id)

    def rebuild(self, debit_id: str) -> Fold:
        """The debit's position folded afresh from its stored events (P6)."""
        return fold(operations.facts(self.store, debit_id), self.spec)

    # -- notices (dispatch.py) -------------------------------------------------------------

    def dispatch_due(
        self,
        senders: Iterable[Sender],
        now: datetime | None = None,
        *,
        limit: int | None = None,
        lease: timedelta = timedelta(minutes=5),
        concurrency: int = 1,
        batch_size: int = 500,
    ) -> list[Notice]:
        """Send every notice due at ``now`` that still states the debit's outcome (N3).

        Senders are tried in order until one accepts (N4); a notice no longer true is cancelled
        as superseded. Each notice is claimed for ``lease`` under this dispatch's own token,
        and the claim is checked and extended right before the notice is sent (at the clock's
        time then, unless ``now`` is given): a claim another dispatcher took over once the
        lease ran out is passed by (N7). So dispatchers in several processes do not send a
        notice twice, except the one in flight when its lease ran out, or whose dispatcher
        died mid-send: it goes out again under the same idempotency key. Returns the notices
        handled.

        Up to ``concurrency`` notices are sent at once (N9): plain senders on threads (they
        must then be thread-safe), senders whose ``send`` is a coroutine on an event loop. A
        sender's ``rate`` attribute (messages per second) is honoured across them, and a
        ``TooManyRequests`` from a sender pauses that channel only. Results are recorded
        ``batch_size`` at a time.
        """
        clock = self.clock if now is None else None
        now = self.clock() if now is None else now
        return self.dispatcher.dispatch_due(
            senders,
            now,
            limit=limit,
            lease=lease,
            clock=clock,
            concurrency=concurrency,
            batch_size=batch_size,
        )

    def preview_due(
        self, now: datetime | None = None, limit: int | None = None
    ) -> list[tuple[Notice, bool]]:
        """The notices due at ``now``, each with whether dispatch would send it (True) or
        cancel it as superseded (False). Changes nothing.

        >>> engine = Engine.in_memory()
        >>> engine.preview_due()
        []
        """
        now = self.clock() if now is None else now
        return self.dispatcher.preview(now, limit)

    def message(self, notice: Notice) -> Message:
        """``notice`` rendered for its customer, as a sender with ``send_message`` gets it.

        >>> engine = Engine.in_memory()
        >>> _ = engine.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "d-1",
        ...     "type": "succeeded", "occurred_at": "2026-03-05T10:00:00+00:00"}))
        >>> engine.message(engine.notices()[0]).text
        'Your payment of the amount due for loan d-1 was collected on March 5, 2026. Thank you.'
        """
        return self.dispatcher.words.render(notice, self.store.debit(notice.debit_id))

    def dispatch_notices(
        self, wanted: Iterable[tuple[str, str, datetime]], senders: Iterable[Sender]
    ) -> list[Notice]:
        """Dispatch these (debit_id, notice_id, at), each as at its time if it is still queued
        and due, and record them in one write: the replay's way to send exactly the notices
        its clock has passed (N5). Give them in time order."""
        return self.dispatcher.dispatch_notices(wanted, senders)

    # -- receipts (receipts.py) ------------------------------------------------------------

    def record_receipt(
        self,
        notice_id: str,
        channel: str,
        status: str,
        at: datetime | str,
        ref: str | None = None,
        *,
        raw: str | None = None,
        origin: str | None = None,
    ) -> ReceiptResult:
        """Record a provider's delivery receipt for a notice sent on ``channel`` (N8).

        ``status`` is ``delivered`` or ``undelivered``; ``at`` when it happened (with a UTC
        offset). Idempotent, in any order: the verdict is ``applied``, ``duplicate``,
        ``stale`` or ``rejected`` with its reason, and every receipt is stored, a rejected one
        with its raw text. Never raises for bad input. An ``undelivered`` receipt makes the
        notice due again at once for the next channel, with the same notice id.

        >>> engine = Engine.in_memory()
        >>> result = engine.record_receipt("d-9#1:failed", "sms", "delivered", "2026-03-05T10:00Z")
        >>> result.verdict.value, result.reason
        ('rejected', "unknown notice id 'd-9#1:failed'")
        """
        receipt, problem = check_receipt(notice_id, channel, status, at, ref)
        receipt = attrs.evolve(receipt, raw=raw, origin=origin)
        if problem is not None:
            return self.store.reject_receipt(receipt, problem)
        return self.store.receive(receipt, judge, self.clock())

    def reject_receipt(self, reason: str, raw: str, origin: str | None = None) -> ReceiptResult:
        """Store input that is not a receipt at all, verdict ``rejected``, with its raw text."""
        return self.store.reject_receipt(Receipt(None, None, None, None, raw=raw, origin=origin),
                                         reason)  # fmt: skip

    def receipts(self, notice_id: str | None = None) -> list[StoredReceipt]:
        """Stored receipts with their verdicts (of one notice, or all), in arrival order."""
        return self.store.receipts(notice_id)

    def expire_receipts(self, now: datetime | None = None) -> list[ReceiptResult]:
        """Give up the waits for receipts that ended by ``now`` (``dispatch_due`` does this
        first): each notice counts as ``expired`` on its channel and is due again at once."""
        return self.dispatcher.expire(self.clock() if now is None else now)

    # -- operations (operations.py) --------------------------------------------------------

    def verify(self) -> list[str]:
        """P6 for every debit: the debits whose live state differs from a rebuild, described."""
        return operations.verify(self.store, self.spec)

    def misinformed(self) -> list[tuple[str, Notice, Debit]]:
        """Debits whose customer's last notice no longer states the outcome, with that notice.

        Empty once every due notice is dispatched, except in one case N4 leaves to people: the
        outcome of an attempt changed again after its one correction was sent.
        """
        return operations.misinformed(self.store, self.spec)

    def metrics(
        self, stuck_after: timedelta = timedelta(days=3), now: datetime | None = None
    ) -> Metrics:
        """Counts for operations; ``stuck`` counts debits submitted longer than ``stuck_after``."""
        return operations.metrics(self.store, self.spec, len(self.stuck(stuck_after, now)))

    def stuck(
        self, older_than: timedelta = timedelta(days=3), now: datetime | None = None
    ) -> list[tuple[str, datetime]]:
        """Debits in ``submitted`` with no news for ``older_than``: listed for inquiry, never
        failed automatically. Returns (debit_id, time of the latest event), oldest first."""
        now = self.clock() if now is None else now
        return operations.stuck(self.store, self.spec, earlier(now, older_than))

    def inquire_due(
        self, ask: Ask, now: datetime | None = None, *, limit: int | None = None
    ) -> list[Inquiry]:
        """Ask about each debit stuck in the submitted state whose next inquiry is due, on the
        backoff schedule of :attr:`inquiry` (per debit and attempt); returns the inquiries.

        ``ask`` gets the :class:`Debit` and returns the gateway's answer: an :class:`Event`,
        a mapping of its fields (the debit's id and attempt, ``occurred_at`` now, the policy's
        source and an event_id are filled in where missing) or None for no news. The answer
        is applied with origin ``inquiry`` and recorded with the inquiry in one transaction,
        so a restart does not ask again at once. An ``ask`` that raises is recorded as the
        inquiry's error and backs off; the engine never fails a debit by itself.

        >>> engine = Engine.in_memory()
        >>> engine.inquire_due(lambda debit: None)
        []
        """
        now = self.clock() if now is None else now
        return inquire_due(self, ask, now, self.inquiry, limit)

    def inquiries(self, debit_id: str) -> list[Inquiry]:
        """The debit's inquiries, oldest first."""
        return self.store.inquiries(debit_id)

    def last_inquiries(self, debit_ids: Iterable[str]) -> dict[str, Inquiry]:
        """The latest inquiry of each debit that was asked about, by debit id.

        >>> Engine.in_memory().last_inquiries(["loan-42/2026-03"])
        {}
        """
        return self.store.last_inquiries(debit_ids)


def _as_event(value: object) -> Event:
    if isinstance(value, Event):
        return value
    if isinstance(value, Mapping):
        return Event.from_dict(value)
    raise InvalidDefinition(
        f"apply takes an Event or a mapping in the event format, got {type(value).__name__}; "
        "use engine.ingest(...) for raw text or bytes"
    )
