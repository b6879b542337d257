"""The outbox's rules (N1-N4): which notice a change of outcome plans, and whether a due
notice still states the debit's outcome.

A notice is planned in the same write as the state change it announces (N1), waits a settle
window if it announces a failure (N2), and is re-checked against the debit when it is due (N3).
Sending is ``dispatch.py``'s job; the notice itself is a record (``records.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .events import REVERSED, SUCCEEDED
from .records import CORRECTION, DebitRecord, Notice, NoticeStatus
from .spec import Spec

_new_notice = tuple.__new__  # Notice(...) without the NamedTuple constructor: planning is hot


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
        due = now + spec.settle_window if outcome == spec.failed else now
        return _new_notice(Notice, (notice_id(record.debit_id, attempt, outcome), record.debit_id,
                           attempt, outcome, outcome, due, now, NoticeStatus.QUEUED, None, None,
                           0, None, None, record.version + 1))  # fmt: skip
    told = last_told(record.notices.values())
    if told is not None and (told.attempt, told.outcome) == (attempt, outcome):
        return None
    plain = record.notices.get((attempt, outcome))
    if (told is None or not _contradicts(told, attempt, outcome, spec)) and (
        plain is None or plain.status is not NoticeStatus.SENT
    ):
        kind = outcome
    else:
        # What the customer heard last is wrong now, or the plain notice was used up by an
        # earlier visit to this outcome: only a correction can tell them.
        kind = CORRECTION
    due = now + spec.settle_window if outcome == spec.failed else now
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


def _contradicts(told: Notice, attempt: int, outcome: str, spec: Spec) -> bool:
    if attempt > told.attempt:
        return False  # news about a new attempt, not a correction
    # A reversal after a success is news, not a contradiction.
    news = (spec.state_after(SUCCEEDED), spec.state_after(REVERSED))
    return attempt < told.attempt or (told.outcome, outcome) != news


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
