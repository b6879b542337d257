"""The outbox's rules (N1-N6): which notice a change of outcome plans, and whether a due
notice still states the debit's outcome.

A notice is planned in the same write as the state change it announces (N1), waits a settle
window if it announces a failure (N2), and is re-checked against the debit when it is due (N3).
Sending is ``dispatch.py``'s job; the notice itself is a record (``records.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from .events import REVERSED, SUCCEEDED
from .records import CORRECTION, DebitRecord, Notice, NoticeStatus
from .spec import Spec

_new_notice = tuple.__new__  # Notice(...) without the NamedTuple constructor: planning is hot
_QUEUED: Final = NoticeStatus.QUEUED  # an enum's member costs a lookup through its class


def notice_id(debit_id: str, attempt: int, kind: str, nth: int = 1) -> str:
    """The id of the ``nth`` notice of ``kind`` about ``attempt`` of a debit: stable, so a
    replay and its rerun name the same notices, and the senders' idempotency key (N4)."""
    base = f"{debit_id}#{attempt}:{kind}"
    return base if nth == 1 else f"{base}:{nth}"


def plan(
    record: DebitRecord, outcome: str, attempt: int, spec: Spec, now: datetime
) -> Notice | None:
    """The notice (new or re-queued) that moving ``record`` to ``outcome`` on ``attempt`` calls
    for, if any (N1). Changes nothing: the caller keeps it in ``record.notices`` and writes it
    in the same transaction as the state change.

    Notices are a sequence per debit with no cap (N4, N6): each settled change away from what
    the customer was told last plans one more. A notice not yet sent is re-queued rather than
    doubled, so an outcome replaced inside the settle window is never announced (N2).
    """
    if outcome not in spec.outcomes:
        return None
    due = now + spec.settle_window if outcome == spec.failed else now
    if not record.notices:  # the usual case: the first outcome of the debit
        return _new_notice(Notice, (notice_id(record.debit_id, attempt, outcome), record.debit_id,
                           attempt, outcome, outcome, due, now, _QUEUED, None, None,
                           0, None, None, record.version + 1, (), None))  # fmt: skip
    told = last_told(record.notices.values())
    if told is not None and (told.attempt, told.outcome) == (attempt, outcome):
        return None
    kind = outcome
    if (told is not None and _contradicts(told, attempt, outcome, spec)) or any(
        was_told(n) for n in _of(record, attempt, outcome)
    ):
        # What the customer heard last is wrong now, or they heard this outcome before and
        # something else since: only a correction can tell them.
        kind = CORRECTION
    same = _of(record, attempt, kind)
    # Only a notice no channel ever took may be re-planned: one sent keeps what it said.
    unsent = next((n for n in same if n.sent_at is None), None)
    if unsent is not None:
        return unsent._replace(
            outcome=outcome,
            due_at=due,
            status=NoticeStatus.QUEUED,
            status_reason=None,
            version=record.version + 1,
        )
    return Notice(
        notice_id(record.debit_id, attempt, kind, len(same) + 1),
        record.debit_id,
        attempt,
        kind,
        outcome,
        due,
        now,
        version=record.version + 1,
    )


def _of(record: DebitRecord, attempt: int, kind: str) -> list[Notice]:
    return [n for n in record.notices.values() if n.attempt == attempt and n.kind == kind]


# A channel took these and no receipt said they failed to arrive: the customer heard them.
TOLD: Final = frozenset({NoticeStatus.SENT, NoticeStatus.DELIVERED})
# Notices that speak for the debit: waiting to go out, or heard (N3).
SPEAKING: Final = frozenset({NoticeStatus.QUEUED, *TOLD})


def was_told(notice: Notice) -> bool:
    """Whether the customer heard the notice: sent (no receipt says otherwise) or delivered.

    An undelivered notice, or one falling back to its next channel, was not heard.
    """
    return notice.status in TOLD and notice.sent_at is not None


def last_told(notices: Iterable[Notice]) -> Notice | None:
    """The notice the customer received last: what they believe now."""
    told = [n for n in notices if n.status in TOLD and n.sent_at is not None]
    return max(told, key=lambda n: (n.sent_at, n.version)) if told else None


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
        if other.status in SPEAKING
    )
