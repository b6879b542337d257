"""One debit's page, for a browser (``/debits/{debit_id}``): where it stands, who its customer
is (contacts masked), every event with its verdict and reason, its notices and their receipts.

>>> from statemachine import Engine, Event
>>> engine = Engine.in_memory()
>>> _ = engine.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "d-1",
...     "type": "succeeded", "occurred_at": "2026-03-05T10:00:00+00:00"}))
>>> '<span class="verdict-applied">applied</span>' in render_debit(engine, "d-1")
True
>>> render_debit(engine, "d-2") is None
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..messages import money
from .html import contacts, document, table, text, when

if TYPE_CHECKING:
    from ..engine import Engine


def render_debit(engine: Engine, debit_id: str) -> str | None:
    """The debit's history as a page; None when no event has named it."""
    record = engine.store.debit(debit_id)
    history = engine.history(debit_id)
    if record is None and not history:
        return None
    parts = [f"<h1>Debit {text(debit_id)}</h1>", '<p><a href="/">The operator\'s page</a></p>']
    if record is not None:
        customer = engine.dispatcher.words.customer(record, debit_id)
        review = f"yes: {record.review_reason}" if record.needs_review else "no"
        amount = None if record.amount is None else money(record.amount, record.currency, "en")
        parts.append(
            table(
                ("state", "attempt", "version", "needs review", "amount",
                 "loan", "locale", "contact"),
                [[text(record.state), text(record.attempt), text(record.version), text(review),
                  text(amount), text(customer.loan_ref), text(customer.locale),
                  contacts(customer)]],
            )
        )  # fmt: skip
    events = [
        [text(e.seq), text(e.event_id), text(e.type), text(e.attempt), when(e.occurred_at),
         text(e.source), f'<span class="verdict-{text(e.verdict)}">{text(e.verdict)}</span>',
         text(e.reason), text(e.origin)]
        for e in history
    ]  # fmt: skip
    parts.append(f"<h2>Events, in arrival order ({len(events)})</h2>")
    headers = ("arrival", "event", "type", "attempt", "occurred", "source", "verdict",
               "reason", "origin")  # fmt: skip
    parts.append(table(headers, events))
    notices = engine.notices(debit_id)
    rows = [
        [text(n.notice_id), text(n.kind), text(n.outcome), text(n.attempt), text(n.status),
         when(n.due_at), when(n.sent_at), text(n.channel), text(", ".join(n.tried) or None),
         text(n.status_reason or n.last_error)]
        for n in notices
    ]  # fmt: skip
    parts.append(f"<h2>Notices ({len(rows)})</h2>")
    parts.append(table(("notice", "kind", "outcome", "attempt", "status", "due", "sent",
                        "channel", "tried", "why"), rows))  # fmt: skip
    receipts = [
        [text(r.receipt.notice_id), text(r.receipt.channel), text(r.receipt.status),
         when(r.receipt.occurred_at), text(r.verdict), text(r.reason)]
        for n in notices
        for r in engine.receipts(n.notice_id)
    ]  # fmt: skip
    if receipts:
        parts.append(f"<h2>Delivery receipts ({len(receipts)})</h2>")
        parts.append(table(("notice", "channel", "status", "at", "verdict", "reason"), receipts))
    return document(f"Debit {debit_id}", "\n".join(parts))
