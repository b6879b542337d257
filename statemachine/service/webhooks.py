"""``POST /webhooks/gocardless``: a GoCardless webhook body, its signature checked, its payment
events mapped as the ``gocardless`` importer maps them.

GoCardless signs the raw body with the endpoint's secret: ``Webhook-Signature`` is the hex
HMAC-SHA256 digest. A body whose signature does not match is answered 498 (GoCardless'
"invalid token") and nothing is stored.

>>> signature(b"{}", "secret")[:16]
'77325902caca812d'
>>> signed(b"{}", "secret", signature(b"{}", "secret")), signed(b"{}", "secret", "00")
(True, False)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final

from ..engine import Engine
from ..events import RETRIED, Refusal, parse_input
from ..importers import ImportFailed
from ..importers.gocardless import PREFIX, read_webhook
from ..precedence import Verdict
from .writer import Entry

ORIGIN: Final = "POST /webhooks/gocardless"
INVALID_SIGNATURE: Final = 498


def signature(body: bytes, secret: str) -> str:
    """The ``Webhook-Signature`` GoCardless sends with ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes, secret: str, given: str | None) -> bool:
    """True when ``given`` is the body's signature (compared in constant time)."""
    if not given:
        return False
    return hmac.compare_digest(signature(body, secret).encode(), given.strip().encode())


def entries(body: bytes) -> Callable[[Engine], Sequence[Entry]]:
    """The body's events, made in the writer at the group's commit, where the store tells the
    payments' earlier resubmissions (their attempts). A body that is no webhook body is one
    refusal, stored ``invalid`` with its raw text."""

    def make(engine: Engine) -> Sequence[Entry]:
        text = body.decode("utf-8", "backslashreplace")
        try:
            records, _ = read_webhook(body, lambda payment: _retries(engine, payment), ORIGIN)
        except ImportFailed as exc:
            return [(Refusal(f"{exc.where}: {exc.problem}"), text, ORIGIN)]
        return [(*parse_input(record, record), origin) for origin, record in records]

    return make


def _retries(engine: Engine, payment: str) -> list[tuple[datetime, str]]:
    """The payment's resubmissions the store holds: (time, event id)."""
    return [
        (stored.occurred_at, stored.event_id)
        for stored in engine.history(payment)
        if stored.type == RETRIED
        and stored.occurred_at is not None
        and stored.event_id is not None
        and stored.event_id.startswith(PREFIX)
        and stored.verdict is not Verdict.INVALID
    ]
