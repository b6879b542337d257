"""The inquiry of stuck debits: a debit left in the spec's submitted state is asked about on a
backoff schedule of its own, each inquiry is recorded, and an answer becomes an event.

Gateways say so themselves: the query API, not the callback, is the truth. So a debit that
hears nothing is asked, never failed by the engine; the answer goes through ``apply`` like any
callback (origin ``inquiry``), and a question that raised is recorded and asked again later.

>>> from datetime import UTC, datetime, timedelta
>>> from statemachine import Engine, Event, ManualClock
>>> clock = ManualClock(datetime(2026, 3, 5, 10, 0, tzinfo=UTC))
>>> engine = Engine.in_memory(clock=clock)
>>> _ = engine.apply(Event.from_dict({"event_id": "gw-1", "debit_id": "d-1",
...     "type": "submitted", "occurred_at": clock.now}))
>>> _ = clock.advance_to(clock.now + timedelta(minutes=6))
>>> (inquiry,) = engine.inquire_due(lambda debit: {"type": "succeeded"})
>>> inquiry.answer, inquiry.verdict, engine.get("d-1").state
('succeeded', <Verdict.APPLIED: 'applied'>, 'succeeded')
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

from .clock import earlier
from .errors import StoreError
from .events import Event
from .precedence import Verdict
from .records import Debit, Result

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Ask", "Inquiry", "InquiryPolicy", "inquire_due", "run_inquiries"]

ORIGIN: Final = "inquiry"
# What one inquiry may answer: an event, an event's fields (the debit's own filled in), or
# None for "no news yet".
Answer = Event | Mapping[str, Any] | None
Ask = Callable[[Debit], Answer]
DEFAULT_DELAYS: Final = (
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=4),
    timedelta(hours=12),
)


def _delays(value: object) -> tuple[timedelta, ...]:
    delays = tuple(value) if isinstance(value, list | tuple) else (value,)
    expected = "InquiryPolicy.delays: expected one or more positive timedeltas"
    if not delays:
        raise ValueError(f"{expected}, got none")
    for number, delay in enumerate(delays):
        if not isinstance(delay, timedelta) or delay <= timedelta(0):
            shown = str(delay) if isinstance(delay, timedelta) else repr(delay)
            raise ValueError(f"{expected}, got {shown} at position {number}")
    return delays


@attrs.frozen
class InquiryPolicy:
    """When to ask about a debit stuck in the submitted state, per debit and attempt.

    ``delays[0]`` is how long a submitted debit hears nothing before its first inquiry;
    ``delays[n]`` how long after its n-th inquiry the next one is due; the last delay then
    repeats. ``source`` is the source of an answer that names none: the gateway that was asked.

    >>> policy = InquiryPolicy()
    >>> [str(policy.after(n)) for n in range(7)]
    ['0:05:00', '0:15:00', '1:00:00', '4:00:00', '12:00:00', '12:00:00', '12:00:00']
    """

    delays: tuple[timedelta, ...] = attrs.field(default=DEFAULT_DELAYS, converter=_delays)
    source: str = "gateway"

    @property
    def first(self) -> timedelta:
        """Silence before a submitted debit is first asked about."""
        return self.delays[0]

    def after(self, rounds: int) -> timedelta:
        """The wait after a debit's ``rounds``-th inquiry (0: before the first)."""
        return self.delays[min(rounds, len(self.delays) - 1)]


@attrs.frozen
class Inquiry:
    """One question about one debit, as recorded.

    ``answer`` is the type of the event the inquirer answered with (None: no news, or an
    error), ``verdict`` what applying it gave, ``error`` what asking raised, ``next_at`` when
    the debit is due to be asked again if it is still submitted then.
    """

    debit_id: str
    asked_at: datetime
    answer: str | None
    verdict: Verdict | None
    error: str | None
    next_at: datetime
    attempt: int = 1

    @property
    def outcome(self) -> str:
        """A line for people: what came of the inquiry.

        >>> from statemachine.clock import DAWN
        >>> Inquiry("d-1", DAWN, None, None, "TimeoutError: gateway", DAWN).outcome
        'error: TimeoutError: gateway'
        """
        if self.error is not None:
            return f"error: {self.error}"
        if self.answer is None:
            return "no news"
        return f"{self.answer} ({self.verdict})"


def inquire_due(
    engine: Engine,
    ask: Ask,
    now: datetime,
    policy: InquiryPolicy,
    limit: int | None = None,
) -> list[Inquiry]:
    """Ask about every debit whose inquiry is due at ``now``; see ``Engine.inquire_due``."""
    store = engine.store
    due = store.inquiries_due(engine.spec.in_flight, earlier(now, policy.first), now, limit)
    records = store.debits([debit_id for debit_id, _, _ in due], events=False)
    done = []
    for debit_id, attempt, rounds in due:
        record = records.get(debit_id)
        if record is None or record.state != engine.spec.in_flight or record.attempt != attempt:
            continue  # moved since the query: nothing to ask
        debit = record.snapshot()
        answer: Answer = None
        error = None
        try:
            answer = ask(debit)
        except Exception as exc:  # a gateway down must not stop the round: record, back off
            error = f"{type(exc).__name__}: {exc}"[:1000]
        inquiry = Inquiry(debit_id, now, None, None, error, now + policy.after(rounds + 1), attempt)
        with engine.transaction():  # the answer and its record commit together
            if answer is not None:
                kind, result = _answer(engine, answer, debit, now, policy)
                inquiry = (
                    attrs.evolve(inquiry, error=result)
                    if isinstance(result, str)
                    else attrs.evolve(inquiry, answer=kind, verdict=result.verdict)
                )
            store.record_inquiry(inquiry, rounds + 1)
        done.append(inquiry)
    return done


def _answer(
    engine: Engine, answer: Event | Mapping[str, Any], debit: Debit, now: datetime,
    policy: InquiryPolicy,
) -> tuple[str | None, Result | str]:  # fmt: skip
    """The answer's type, and what applying it as an event of the debit gave (bad fields are
    stored as ``invalid``, as any input is) or why it was not applied."""
    if isinstance(answer, Event):
        if answer.debit_id != debit.debit_id:
            return None, f"the answer is about debit {answer.debit_id!r}, not {debit.debit_id!r}"
        return answer.type, engine.apply(answer, origin=ORIGIN)
    if not isinstance(answer, Mapping):
        expected = "expected an Event, a mapping of its fields or None"
        return None, f"the inquirer answered {type(answer).__name__}; {expected}"
    fields = {
        "event_id": f"{ORIGIN}:{debit.debit_id}#{debit.attempt}@{now.isoformat()}",
        "debit_id": debit.debit_id,
        "attempt": debit.attempt,
        "occurred_at": now.isoformat(),
        "source": policy.source,
        **answer,
    }
    if fields["debit_id"] != debit.debit_id:
        return None, f"the answer is about debit {fields['debit_id']!r}, not {debit.debit_id!r}"
    kind = fields.get("type")
    return (kind if isinstance(kind, str) else None), engine.ingest(fields, ORIGIN)


def run_inquiries(
    engine: Engine,
    ask: Ask,
    *,
    stop_event: threading.Event,
    every: float,
    limit: int | None = None,
    on_round: Callable[[list[Inquiry]], None] | None = None,
    on_error: Callable[[StoreError], None] | None = None,
) -> int:
    """Ask about due debits every ``every`` seconds until ``stop_event`` is set; each round's
    inquiries go to ``on_round``. Returns the number of rounds. A round in progress finishes
    before the loop stops; an ``ask`` that raises is recorded, it does not end the loop. With
    ``on_error``, a round the store refused (busy, unreachable) goes there and the loop goes
    on; without, the error ends it.

    >>> from statemachine import Engine
    >>> stop = threading.Event()
    >>> run_inquiries(Engine.in_memory(), lambda debit: None, stop_event=stop, every=0,
    ...               on_round=lambda done: stop.set())
    1
    """
    rounds = 0
    while not stop_event.is_set():
        try:
            done = engine.inquire_due(ask, limit=limit)
        except StoreError as exc:
            if on_error is None:
                raise
            on_error(exc)
        else:
            rounds += 1
            if on_round is not None:
                on_round(done)
        stop_event.wait(every)
    return rounds
