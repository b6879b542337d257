"""What every importer shares: one way to build an event, one way to read a time.

>>> from datetime import timedelta, timezone
>>> from statemachine.events import FIELDS
>>> event = event_record(event_id="x:1", debit_id="d", type="submitted",
...                      occurred_at=aware_time("2026-03-05T10:00", timezone(timedelta(hours=8))),
...                      source="gateway")
>>> list(event) == list(FIELDS), event["occurred_at"], event["attempt"], event["data"]
(True, '2026-03-05T10:00:00+08:00', 1, {})
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any


def event_record(
    *,
    event_id: str,
    debit_id: str,
    type: str,
    occurred_at: datetime,
    source: str,
    attempt: int = 1,
    amount: int | None = None,
    currency: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event in the event format's JSON form, its ten fields always in :data:`statemachine.events.FIELDS` order.

    ``occurred_at`` must be aware (see :func:`aware_time`); it is written in ISO 8601.
    """
    return {
        "event_id": event_id,
        "debit_id": debit_id,
        "type": type,
        "attempt": attempt,
        "occurred_at": occurred_at.isoformat(),
        "source": source,
        "amount": amount,
        "currency": currency,
        "reason": reason,
        "data": {} if data is None else data,
    }


def aware_time(
    value: datetime | str, zone: tzinfo, example: str = "2026-03-05T10:00:00"
) -> datetime:
    """A time with a UTC offset: one written without an offset is read in ``zone``
    (``--timezone``, :attr:`ImportOptions.timezone`), one with an offset is kept as written.

    Text is read as ISO 8601; text that is not raises ``ValueError`` saying what was expected
    (with ``example``) and what was received, for the importer to name the file and place.

    >>> from datetime import UTC
    >>> aware_time("2019-07-24T18:04:27.512Z", UTC).isoformat()
    '2019-07-24T18:04:27.512000+00:00'
    >>> aware_time("soon", UTC)
    Traceback (most recent call last):
    ValueError: expected an ISO 8601 time such as 2026-03-05T10:00:00, got 'soon'
    """
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"expected an ISO 8601 time such as {example}, got {value!r}"
            ) from None
    return value if value.utcoffset() is not None else value.replace(tzinfo=zone)
