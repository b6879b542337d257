"""In-memory store: for tests and pure embedding. Nothing survives the process.

Its reports are derived from its records (:class:`~statemachine.stores.base.DerivedReports`).
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timedelta
from typing import Final

from ..decide import Decide
from ..events import Event
from ..inquiry import Inquiry
from ..precedence import Verdict
from ..receipts import (
    Judge,
    Receipt,
    ReceiptResult,
    ReceiptVerdict,
    StoredReceipt,
    best,
)
from ..records import DebitRecord, Notice, NoticeStatus, Result, StoredEvent
from .base import DerivedReports, Item, Stop

# One arrival as kept here: (seq, event, verdict's value, reason, raw, origin, debit_id,
# event_id). ``event`` is True for an accepted event, which ``_accepted`` holds under its id,
# and None for input that could not be parsed: the entry then holds only atoms, which the
# cyclic garbage collector stops tracking, rather than one more reference to scan per event.
_Entry = tuple[int, Event | bool | None, str, str, str | None, str | None, str | None, str | None]
_APPLIED: Final = Verdict.APPLIED._value_


class MemoryStore(DerivedReports):
    """Keeps live records in dicts; ``execute`` is all-or-nothing because decide mutates last."""

    def __init__(self) -> None:
        self._debits: dict[str, DebitRecord] = {}
        self._accepted: dict[str, Event] = {}
        self._arrivals: list[_Entry] = []  # every arrival, in arrival order
        # Where each debit's arrivals are in ``_arrivals``, brought up to date when a history is
        # read: writing an arrival is one append. (None: input that named no debit.)
        self._positions: dict[str | None, list[int]] = {}
        self._indexed = 0  # the arrivals ``_positions`` covers
        self._indexing = threading.Lock()  # readers on several threads index once
        self._due: list[tuple[datetime, str, str]] = []  # (due_at, notice_id, debit_id) heap
        # notice_id -> (the claiming dispatcher's token, end of its lease, debit_id)
        self._claims: dict[str, tuple[str, datetime, str]] = {}
        self._seq = 0
        self._receipts: list[StoredReceipt] = []
        self._sends: dict[tuple[str, str], list[str]] = {}  # (notice, channel) -> applied
        self._waits: list[tuple[datetime, str, str]] = []  # (receipt_by, notice_id, debit_id)
        self._inquiries: list[Inquiry] = []
        self._schedule: dict[str, tuple[int, int, datetime]] = {}  # id -> attempt, rounds, next

    # -- the write path --------------------------------------------------------------------

    def execute(
        self,
        event: Event,
        decide: Decide,
        raw: str | None,
        origin: str | None,
        now: datetime | None = None,
    ) -> Result:
        debit_id, event_id = event.debit_id, event.event_id
        record = self._debits.get(debit_id)
        accepted = self._accepted
        # An event in order on a known debit takes decide's fast path: no decision to unpack.
        result = (
            decide.advance(event, record, now)
            if record is not None and event_id not in accepted
            else None
        )
        if result is not None:
            accepted[event_id] = event
            kept: Event | bool = True
            verdict = _APPLIED
            notice = result.notice
        else:
            result, record, taken, notice = decide(event, record, accepted.get(event_id), now)
            if taken:
                accepted[event_id] = event
                self._debits[debit_id] = record  # type: ignore[assignment]
            kept = True if taken else event
            verdict = result.verdict._value_
        seq = self._seq = self._seq + 1
        self._arrivals.append((seq, kept, verdict, result.reason, raw, origin, debit_id, event_id))
        if notice is not None:
            heapq.heappush(self._due, (notice.due_at, notice.notice_id, debit_id))
        return result

    def execute_many(
        self, items: Iterable[Item], decide: Decide, stop: Stop | None = None
    ) -> list[Result]:
        # ``execute`` item by item, written out with its lookups held in locals: a batch is the
        # hot loop of imports and replays.
        debits, accepted, arrivals, due = self._debits, self._accepted, self._arrivals, self._due
        advance, push, results = decide.advance, heapq.heappush, []
        for event, raw, origin, now in items:
            debit_id, event_id = event.debit_id, event.event_id
            record = debits.get(debit_id)
            result = (
                advance(event, record, now)
                if record is not None and event_id not in accepted
                else None
            )
            if result is not None:
                accepted[event_id] = event
                kept: Event | bool = True
                verdict = _APPLIED
                notice = result.notice
            else:
                result, record, taken, notice = decide(event, record, accepted.get(event_id), now)
                if taken:
                    accepted[event_id] = event
                    debits[debit_id] = record  # type: ignore[assignment]
                kept = True if taken else event
                verdict = result.verdict._value_
            seq = self._seq = self._seq + 1
            arrivals.append((seq, kept, verdict, result.reason, raw, origin, debit_id, event_id))
            if notice is not None:
                push(due, (notice.due_at, notice.notice_id, debit_id))
            results.append(result)
            if stop is not None and stop(result):
                break
        return results

    def reject(
        self,
        raw: str,
        reason: str,
        debit_id: str | None,
        event_id: str | None,
        origin: str | None,
    ) -> Result:
        self._seq += 1
        entry = (self._seq, None, Verdict.INVALID._value_, reason, raw, origin, debit_id, event_id)
        self._arrivals.append(entry)
        record = self._debits.get(debit_id) if debit_id is not None else None
        return Result.invalid(reason, event_id, debit_id, record)

    def transaction(self) -> AbstractContextManager[None]:
        return nullcontext()  # every write is already whole and immediate

    def close(self) -> None:
        pass

    # -- reads -----------------------------------------------------------------------------

    def debit(self, debit_id: str) -> DebitRecord | None:
        return self._debits.get(debit_id)

    def debits(self, debit_ids: Iterable[str], *, events: bool = True) -> dict[str, DebitRecord]:
        return {d: self._debits[d] for d in debit_ids if d in self._debits}

    def debit_ids(self) -> Iterable[str]:
        return list(self._debits)

    def history(self, debit_id: str | None) -> list[StoredEvent]:
        arrivals, accepted = self._arrivals, self._accepted
        return [_stored(arrivals[i], accepted) for i in self._index().get(debit_id, ())]

    def _index(self) -> dict[str | None, list[int]]:
        """Each debit's arrivals, by their positions in ``_arrivals``, up to date."""
        with self._indexing:
            positions, arrivals, end = self._positions, self._arrivals, len(self._arrivals)
            for position in range(self._indexed, end):
                debit_id = arrivals[position][6]
                found = positions.get(debit_id)
                if found is None:
                    positions[debit_id] = [position]
                else:
                    found.append(position)
            self._indexed = end
        return positions

    def notices(self, debit_id: str | None = None) -> list[Notice]:
        if debit_id is None:
            records: Iterable[DebitRecord] = self._debits.values()
        else:
            records = [self._debits[debit_id]] if debit_id in self._debits else []
        return sorted(
            (n for record in records for n in record.notices.values()),
            key=lambda n: (n.created_at, n.notice_id),
        )

    def _verdicts(self) -> dict[str, int]:
        # Arrivals naming a debit that never came to be count too: read from the arrivals.
        return dict(Counter(entry[2] for entry in self._arrivals))

    def last_origin(self, prefix: str) -> str | None:
        found = [
            entry[5]
            for entry in self._arrivals
            if entry[5] is not None and entry[5].startswith(prefix)
        ]
        return found[-1] if found else None  # the arrivals are in seq order

    # -- inquiries -------------------------------------------------------------------------

    def inquiries_due(
        self, state: str, quiet_before: datetime, now: datetime, limit: int | None = None
    ) -> list[tuple[str, int, int]]:
        due = []
        for record in self._debits.values():
            if record.state != state or not record.facts:
                continue
            latest = max(event.occurred_at for event in record.facts)
            attempt, rounds, next_at = self._schedule.get(record.debit_id, (0, 0, latest))
            if attempt != record.attempt:  # a new attempt starts its own schedule
                rounds, next_at = 0, latest
            if latest < quiet_before and next_at <= now:
                due.append((next_at, record.debit_id, record.attempt, rounds))
        due.sort(key=lambda item: (item[0], item[1]))
        return [(debit_id, attempt, rounds) for _, debit_id, attempt, rounds in due[:limit]]

    def record_inquiry(self, inquiry: Inquiry, rounds: int) -> None:
        self._inquiries.append(inquiry)
        self._schedule[inquiry.debit_id] = (inquiry.attempt, rounds, inquiry.next_at)

    def inquiries(self, debit_id: str | None = None) -> list[Inquiry]:
        return [i for i in self._inquiries if debit_id is None or i.debit_id == debit_id]

    def last_inquiries(self, debit_ids: Iterable[str]) -> dict[str, Inquiry]:
        wanted = set(debit_ids)
        return {i.debit_id: i for i in self._inquiries if i.debit_id in wanted}

    def inquiry_counts(self) -> dict[str, int]:
        answered = sum(i.answer is not None for i in self._inquiries)
        errors = sum(i.error is not None for i in self._inquiries)
        return {"asked": len(self._inquiries), "answered": answered, "errors": errors}

    # -- the outbox ------------------------------------------------------------------------

    def claim_due(
        self, now: datetime, lease: timedelta, limit: int | None = None, *, token: str
    ) -> list[Notice]:
        due = self._due_at(now)
        claimed = due if limit is None else due[:limit]
        for notice in claimed:
            self._claims[notice.notice_id] = (token, now + lease, notice.debit_id)
            heapq.heappush(self._due, (now + lease, notice.notice_id, notice.debit_id))
        for notice in due[len(claimed) :]:
            heapq.heappush(self._due, (notice.due_at, notice.notice_id, notice.debit_id))
        return claimed

    def _due_at(self, now: datetime) -> list[Notice]:
        due = set()
        while self._due and self._due[0][0] <= now:
            _, _, debit_id = heapq.heappop(self._due)
            for notice in self._debits[debit_id].notices.values():
                # The heap keeps outdated entries (rescheduled notices, expired leases): check.
                claim = self._claims.get(notice.notice_id)
                if (
                    notice.status is NoticeStatus.QUEUED
                    and notice.due_at <= now
                    and (claim is None or claim[1] <= now)
                ):
                    due.add(notice)
        return sorted(due, key=lambda n: (n.due_at, n.debit_id, n.version))

    def renew_claim(self, notice_id: str, token: str, now: datetime, lease: timedelta) -> bool:
        claim = self._claims.get(notice_id)
        if claim is None or claim[0] != token or claim[1] <= now:
            return False
        notices = self._debits[claim[2]].notices.values()
        if not any(n.notice_id == notice_id and n.status is NoticeStatus.QUEUED for n in notices):
            return False
        self._claims[notice_id] = (token, now + lease, claim[2])
        # Due again when the renewed lease runs out, should this dispatcher die meanwhile.
        heapq.heappush(self._due, (now + lease, notice_id, claim[2]))
        return True

    def holds_claim(self, notice_id: str, token: str) -> bool:
        claim = self._claims.get(notice_id)
        return claim is not None and claim[0] == token

    def renew_claims(
        self, notice_ids: Sequence[str], token: str, now: datetime, lease: timedelta
    ) -> set[str]:
        return {n for n in notice_ids if self.renew_claim(n, token, now, lease)}

    def save_notices(self, notices: Iterable[Notice], *, token: str | None = None) -> None:
        for notice in notices:
            if token is not None:
                claim = self._claims.get(notice.notice_id)
                if claim is None or claim[0] != token:
                    continue  # taken over: the record is the new holder's to write
            self._claims.pop(notice.notice_id, None)
            self._put(notice)

    def _put(self, notice: Notice) -> None:
        self._debits[notice.debit_id].notices[notice.notice_id] = notice
        if notice.status is NoticeStatus.QUEUED:
            heapq.heappush(self._due, (notice.due_at, notice.notice_id, notice.debit_id))
        elif notice.status is NoticeStatus.SENT and notice.receipt_by is not None:
            heapq.heappush(self._waits, (notice.receipt_by, notice.notice_id, notice.debit_id))

    # -- receipts --------------------------------------------------------------------------

    def receive(self, receipt: Receipt, judge: Judge, now: datetime) -> ReceiptResult:
        notice = self._notice(receipt.notice_id)
        send = (receipt.notice_id or "", receipt.channel or "")
        verdict, reason, changed = judge(receipt, notice, best(self._sends.get(send, [])), now)
        self._keep(receipt, verdict, reason)
        if verdict is ReceiptVerdict.APPLIED:
            self._sends.setdefault(send, []).append(str(receipt.status))
        if changed is not None:
            self._put(changed)
        return ReceiptResult(verdict, reason, receipt, changed or notice)

    def reject_receipt(self, receipt: Receipt, reason: str) -> ReceiptResult:
        self._keep(receipt, ReceiptVerdict.REJECTED, reason)
        return ReceiptResult(ReceiptVerdict.REJECTED, reason, receipt)

    def _keep(self, receipt: Receipt, verdict: ReceiptVerdict, reason: str) -> None:
        self._seq += 1
        self._receipts.append(StoredReceipt(self._seq, receipt, verdict, reason))

    def _notice(self, notice_id: str | None) -> Notice | None:
        # A notice id begins with its debit's id (notices.notice_id): no index needed.
        record = self._debits.get((notice_id or "").rpartition("#")[0])
        return record.notices.get(notice_id or "") if record is not None else None

    def receipts(self, notice_id: str | None = None) -> list[StoredReceipt]:
        return [r for r in self._receipts if notice_id is None or r.receipt.notice_id == notice_id]

    def awaiting_receipt(self, now: datetime) -> list[Notice]:
        found, keep = [], []
        while self._waits and self._waits[0][0] <= now:
            entry = heapq.heappop(self._waits)
            notice = self._waiting(entry)
            if notice is not None:
                found.append(notice)
                keep.append(entry)  # until the caller changes it: then it is passed over
        for entry in keep:
            heapq.heappush(self._waits, entry)
        return found

    def next_receipt_by(self) -> datetime | None:
        while self._waits and self._waiting(self._waits[0]) is None:
            heapq.heappop(self._waits)
        return self._waits[0][0] if self._waits else None

    def _waiting(self, entry: tuple[datetime, str, str]) -> Notice | None:
        """The notice of a wait entry if it still waits then (the heap keeps old entries)."""
        until, notice_id, debit_id = entry
        notice = self._debits[debit_id].notices.get(notice_id)
        if notice is None or notice.status is not NoticeStatus.SENT or notice.receipt_by != until:
            return None
        return notice

    def queued(self, since: datetime, until: datetime) -> list[tuple[str, str, datetime]]:
        found = [
            (n.debit_id, n.notice_id, n.due_at)
            for record in self._debits.values()
            for n in record.notices.values()
            if n.status is NoticeStatus.QUEUED and since <= n.due_at <= until
        ]
        return sorted(found, key=lambda item: (item[2], item[1]))

    def next_due(self, after: datetime) -> datetime | None:
        return min(
            (
                n.due_at
                for record in self._debits.values()
                for n in record.notices.values()
                if n.status is NoticeStatus.QUEUED and n.due_at > after
            ),
            default=None,
        )


def _stored(entry: _Entry, accepted: dict[str, Event]) -> StoredEvent:
    seq, kept, value, reason, raw, origin, debit_id, event_id = entry
    verdict = Verdict(value)
    if kept is None:
        return StoredEvent(
            seq, event_id, debit_id, None, None, None, None, verdict, reason, raw, origin
        )
    event = accepted[event_id or ""] if kept is True or kept is False else kept
    return StoredEvent(
        seq,
        event.event_id,
        event.debit_id,
        event.type,
        event.attempt,
        event.occurred_at,
        event.source,
        verdict,
        reason,
        raw,
        origin,
        event,
    )
