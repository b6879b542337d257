"""A synthetic car-loan book with the field's problems in it, for examples and benchmarks.

Each loan's monthly debit is raised, submitted and collected or refused; on top of that come
middleware timeouts reported as failures, callbacks delivered twice or late, retries, bank
returns weeks later, and the legacy notifier's ``notice_sent`` records (it sent whatever it
was handed, in arrival order). Records come out in arrival order, as a log would hold them.
Each ``created`` event names its customer in ``data.customer`` (zh-CN, Asia/Shanghai).

>>> records = list(car_loan_book(3, seed=1))
>>> {"created", "submitted", "notice_sent"} <= {r["type"] for r in records}
True
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

MONTH_START = datetime(2026, 3, 1, tzinfo=UTC)


def car_loan_book(
    loans: int,
    seed: int = 2026,
    month: datetime = MONTH_START,
    legacy_notices: bool = True,
    first: int = 0,
) -> Iterator[dict[str, Any]]:
    """Yield event records (DESIGN's JSON form) in arrival order for ``loans`` monthly debits,
    numbered from ``first`` (books with distinct numbers have distinct event_ids)."""
    rng = random.Random(seed)
    arrivals: list[tuple[datetime, int, dict[str, Any]]] = []
    for number in range(first, first + loans):
        for arrival, record in _debit(rng, number, month):
            arrivals.append((arrival, len(arrivals), record))
            if legacy_notices and record["type"] in ("succeeded", "failed", "reversed"):
                notice = {
                    "type": "notice_sent",
                    "debit_id": record["debit_id"],
                    "notice": record["type"],
                    "attempt": record["attempt"],
                    "occurred_at": arrival.isoformat(),
                }
                arrivals.append((arrival + timedelta(seconds=1), len(arrivals), notice))
    arrivals.sort(key=lambda item: (item[0], item[1]))
    for _, _, record in arrivals:
        yield record


def disordered(
    records: Iterable[dict[str, Any]], window: int = 32, redelivered: float = 0.05, seed: int = 7
) -> Iterator[dict[str, Any]]:
    """``records`` as a log of racing callbacks: each run of ``window`` arrivals shuffled, and a
    ``redelivered`` share of them delivered once more, up to a window later.

    >>> shuffled = list(disordered(car_loan_book(20, seed=1), window=8, seed=3))
    >>> len(shuffled) > len(list(car_loan_book(20, seed=1)))
    True
    """
    rng = random.Random(seed)
    pending: list[tuple[int, dict[str, Any]]] = []  # redeliveries: (arrivals until due, record)
    chunk: list[dict[str, Any]] = []
    for record in [*records, None]:
        if record is not None:
            chunk.append(record)
            if rng.random() < redelivered:
                pending.append((rng.randrange(1, window * 2), dict(record)))
        if len(chunk) == window or (record is None and chunk):
            rng.shuffle(chunk)
            for item in chunk:
                yield item
                pending = [(wait - 1, again) for wait, again in pending]
                for again in [again for wait, again in pending if wait <= 0]:
                    yield again
                pending = [(wait, again) for wait, again in pending if wait > 0]
            chunk = []
    for _, again in pending:
        yield again


def _debit(
    rng: random.Random, number: int, month: datetime
) -> list[tuple[datetime, dict[str, Any]]]:
    debit_id = f"loan-{number:05d}/{month:%Y-%m}"
    due = month + timedelta(days=rng.randrange(28), hours=8)
    events: list[tuple[datetime, dict[str, Any]]] = []
    counter = 0

    def emit(
        kind: str, at: datetime, source: str, attempt: int = 1, delay: float = 5, **extra: Any
    ) -> None:
        nonlocal counter
        counter += 1
        record = {
            "event_id": f"{source[:3]}-{number:05d}-{counter}",
            "debit_id": debit_id,
            "type": kind,
            "attempt": attempt,
            "occurred_at": at.isoformat(),
            "source": source,
            **extra,
        }
        events.append((at + timedelta(seconds=rng.expovariate(1 / delay)), record))

    amount = rng.randrange(150_000, 600_000, 100)
    # Who to tell, as a lender's loan system would hand it over (N10); the numbers are not
    # real mobile numbers (no Chinese mobile number starts 100).
    customer = {
        "locale": "zh-CN",
        "time_zone": "Asia/Shanghai",
        "loan_ref": f"loan-{number:05d}",
        "contact": {"sms": f"+86100{number:08d}"},
    }
    emit("created", due - timedelta(hours=1), "internal", amount=amount, currency="CNY",
         data={"customer": customer})  # fmt: skip
    attempt, at = 1, due
    while True:
        emit("submitted", at, "gateway", attempt)
        slow = rng.random() < 0.1  # the bank takes hours to answer
        outcome_at = at + timedelta(
            minutes=rng.randrange(30, 300) if slow else rng.randrange(1, 10)
        )
        collected = rng.random() < 0.86
        if rng.random() < 0.1:  # the middleware times out and calls it a failure
            timeout_at = rng.choice([at, outcome_at]) + timedelta(seconds=rng.randrange(30, 120))
            emit("failed", timeout_at, "internal", attempt, reason="TIMEOUT")
        if collected:
            late = 3600 * 2 if rng.random() < 0.1 else 5  # a callback held up for hours
            emit("succeeded", outcome_at, "gateway", attempt, delay=late)
            if rng.random() < 0.03:  # the bank returns it weeks later
                emit(
                    "reversed",
                    outcome_at + timedelta(days=rng.randrange(10, 40)),
                    "settlement",
                    attempt,
                    reason=rng.choice(["MD06", "R07", "R10"]),
                )
            break
        emit("failed", outcome_at, "gateway", attempt, reason=rng.choice(["AM04", "AC01", "MS03"]))
        if rng.random() < 0.15:  # the bank statement shows it collected after all
            statement_at = outcome_at + timedelta(days=rng.randrange(1, 6))
            emit("succeeded", statement_at, "settlement", attempt, delay=60)
            if statement_at < outcome_at + timedelta(days=3):
                break  # in time to stop the retry
        if attempt == 2 or rng.random() < 0.4:
            break
        attempt += 1
        at = outcome_at + timedelta(days=3)
        emit("retried", at - timedelta(minutes=1), "internal", attempt)
    if rng.random() < 0.1:  # a webhook delivered twice
        arrival, record = rng.choice(events)
        events.append((arrival + timedelta(seconds=rng.randrange(1, 600)), dict(record)))
    return events
