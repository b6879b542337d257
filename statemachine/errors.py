"""The package's own exceptions: every failure a caller can act on has a type here."""

from __future__ import annotations

import reprlib
from datetime import timedelta

# What a message shows of a received value: enough to recognise it, never the whole of a huge
# or deeply nested input (whose full repr could exhaust memory or recursion).
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 160
_SHOWN.maxlevel = 3


def shown(value: object) -> str:
    """A bounded repr of ``value`` for error messages.

    >>> shown("x" * 1000)[:10], len(shown("x" * 1000)) < 200
    ("'xxxxxxxxx", True)
    """
    try:
        return _SHOWN.repr(value)
    except (RecursionError, ValueError):
        return f"<{type(value).__name__}>"


class StateMachineError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidEvent(StateMachineError, ValueError):
    """An event that breaks the event format: names the field, what was expected and what came.

    >>> str(InvalidEvent("attempt", "an integer >= 1", 0))
    'attempt: expected an integer >= 1, got 0'
    """

    def __init__(self, field: str, expected: str, received: object) -> None:
        self.field = field
        self.expected = expected
        self.received = received
        super().__init__(f"{field}: expected {expected}, got {shown(received)}")


class SpecError(StateMachineError, ValueError):
    """A machine spec that cannot be used; the message says what is wrong and how to fix it."""


class TemplateError(SpecError):
    """A notice template file that cannot be used; the message names the file and the fix."""


class StoreError(StateMachineError):
    """A store failed in a way the caller cannot fix by retrying the same call."""


class StoreBusy(StoreError):
    """Another writer held the store for longer than the busy timeout: retry later."""


class DeliveryError(StateMachineError):
    """A sender could not deliver a notice; the dispatcher records it and retries later."""


class DeliveryRefused(DeliveryError):
    """The channel answered and will not take this notice (an HTTP 4xx): sending it there
    again will not help, the next channel should take it. ``status`` is the provider's code.

    >>> str(DeliveryRefused("http: 422 Unprocessable Entity", status=422))
    'http: 422 Unprocessable Entity'
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DeliveryDeferred(DeliveryError):
    """The channel could not take the notice now (overloaded, down, too slow, the connection
    lost): try it again later, not before ``retry_after`` when the provider said so.

    The provider may have taken a notice whose answer was lost; the resend carries the same
    idempotency key, so it is not delivered twice.

    >>> from datetime import timedelta
    >>> DeliveryDeferred("http: 429", status=429, retry_after=timedelta(seconds=30)).retry_after
    datetime.timedelta(seconds=30)
    """

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TooManyRequests(DeliveryDeferred):
    """The channel's provider asked to slow down ("429 Too Many Requests"): dispatch pauses
    that channel only, for ``retry_after`` when the provider said (else a second), and tries
    it again rather than the next channel.

    >>> TooManyRequests("sms: 429").status
    429
    """

    def __init__(
        self, message: str, *, status: int | None = 429, retry_after: timedelta | None = None
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)


class InvalidDefinition(StateMachineError, TypeError):
    """A component handed to the engine is unusable, for example a sender without a name."""
