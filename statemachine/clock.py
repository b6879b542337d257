"""Clocks. The engine asks its clock for "now" when it plans and dispatches notices (N5)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
DAWN = datetime.min.replace(tzinfo=UTC)


def earlier(moment: datetime, span: timedelta) -> datetime:
    """``moment - span``, or the dawn of time where that would fall before it.

    >>> earlier(DAWN, timedelta(days=3)) == DAWN
    True
    """
    try:
        return moment - span
    except OverflowError:
        return DAWN


def utc_now() -> datetime:
    """The current time in UTC: the engine's default clock."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told and never backwards: tests and replay use event time.

    >>> clock = ManualClock(datetime(2026, 3, 5, tzinfo=UTC))
    >>> clock.advance_to(datetime(2026, 3, 4, tzinfo=UTC)).day  # earlier: ignored
    5
    """

    def __init__(self, start: datetime = DAWN) -> None:
        if start.utcoffset() is None:
            raise ValueError("ManualClock needs an aware datetime (with a UTC offset)")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance_to(self, moment: datetime) -> datetime:
        """Move to ``moment`` unless it is earlier than now; returns the new now."""
        if moment > self.now:
            self.now = moment
        return self.now
