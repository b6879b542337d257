"""N9: dispatch sends up to ``concurrency`` notices at once, plain senders on threads and
coroutine senders on an event loop, honours each channel's rate across its workers, backs off
only the channel that said "too many requests", and records results in batches."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest
from conftest import EngineFactory
from hypothesis import given, settings
from hypothesis import strategies as st
from support import T0, ev

from statemachine import Engine, ManualClock, Message, Notice, RecordingSender, TooManyRequests
from statemachine.errors import InvalidDefinition
from statemachine.sending import RateLimiter

SIGNAL = 20.0  # seconds to wait for a signal that must come; only reached when the code is wrong


def due(engine: Engine, count: int) -> None:
    for number in range(count):
        engine.apply(ev("succeeded", 0, debit_id=f"d-{number}"))


class Gate:
    """A sender whose first ``width`` sends wait until ``width`` are in flight together: the
    dispatch reaches that width, or the wait runs out and the send fails."""

    def __init__(self, width: int, name: str = "sms") -> None:
        self.name = name
        self.width = width
        self.lock = threading.Condition()
        self.in_flight = 0
        self.most = 0
        self.opened = False
        self.sent: list[str] = []

    def send(self, notice: Notice) -> None:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            if self.in_flight >= self.width:
                self.opened = True
                self.lock.notify_all()
            try:
                if not self.lock.wait_for(lambda: self.opened, timeout=SIGNAL):
                    raise AssertionError(f"never {self.width} sends in flight at once")
                self.sent.append(notice.notice_id)
            finally:
                self.in_flight -= 1


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_n9_at_most_concurrency_sends_are_in_flight_and_that_many_are(
    make_engine: EngineFactory, concurrency: int
) -> None:
    engine = make_engine(clock=ManualClock(T0))
    due(engine, 3 * concurrency + 1)
    gate = Gate(concurrency)
    handled = engine.dispatch_due([gate], concurrency=concurrency)
    assert gate.most == concurrency
    assert sorted(gate.sent) == sorted(n.notice_id for n in handled)
    assert len(set(gate.sent)) == 3 * concurrency + 1
    assert {n.status for n in engine.notices()} == {"sent"}


class AsyncGate:
    """``Gate`` for a coroutine sender, on the dispatch's event loop."""

    def __init__(self, width: int) -> None:
        self.name = "push"
        self.width = width
        self.in_flight = 0
        self.most = 0
        self.sent: list[str] = []
        self.opened: asyncio.Event | None = None

    async def send(self, notice: Notice) -> None:
        if self.opened is None:
            self.opened = asyncio.Event()
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight >= self.width:
            self.opened.set()
        try:
            await asyncio.wait_for(self.opened.wait(), SIGNAL)
            self.sent.append(notice.notice_id)
        finally:
            self.in_flight -= 1


def test_n9_coroutine_senders_run_concurrently_on_an_event_loop() -> None:
    engine = Engine.in_memory(clock=ManualClock(T0))
    due(engine, 40)
    gate = AsyncGate(8)
    handled = engine.dispatch_due([gate], concurrency=8)
    assert gate.most == 8
    assert len(handled) == len(set(gate.sent)) == 40


def test_n9_a_plain_sender_behind_a_coroutine_one_takes_what_it_refuses() -> None:
    class Refusing:
        name = "push"

        async def send(self, notice: Notice) -> None:
            raise RuntimeError("no device token")

    engine = Engine.in_memory(clock=ManualClock(T0))
    due(engine, 10)
    sms = RecordingSender("sms")
    handled = engine.dispatch_due([Refusing(), sms], concurrency=4)
    assert {n.channel for n in handled} == {"sms"}
    assert all("push: no device token" in (n.last_error or "") for n in handled)
    assert len(sms.sent) == 10


@settings(max_examples=30, deadline=None)
@given(rate=st.integers(1, 50), count=st.integers(1, 60), workers=st.integers(1, 8))
def test_the_rate_limiter_hands_out_spaced_slots_whatever_the_thread(
    rate: int, count: int, workers: int
) -> None:
    limiter = RateLimiter({"sms": float(rate)}, clock=lambda: 0.0)  # time stands still
    slots: list[float] = []
    lock = threading.Lock()

    def book(times: int) -> None:
        for _ in range(times):
            wait = limiter.reserve("sms")
            with lock:
                slots.append(wait)

    threads = [threading.Thread(target=book, args=(count,)) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Every booking has a slot of its own, 1/rate after the one before: never more than
    # ``rate`` in any second.
    assert sorted(slots) == pytest.approx([i / rate for i in range(count * workers)])
    assert limiter.reserve("email") == 0.0  # a channel without a rate is not held


def test_n9_dispatch_holds_a_senders_rate_across_its_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    lock = threading.Lock()

    def no_sleep(seconds: float) -> None:  # the waits the limiter asked for, kept
        with lock:
            waits.append(seconds)

    monkeypatch.setattr("statemachine.sending._monotonic", lambda: 0.0)  # time stands still
    monkeypatch.setattr("statemachine.sending._sleep", no_sleep)
    sms = RecordingSender("sms")
    sms.rate = 5  # type: ignore[attr-defined]  # messages per second
    engine = Engine.in_memory(clock=ManualClock(T0))
    due(engine, 20)
    engine.dispatch_due([sms], concurrency=8)
    assert len(sms.sent) == 20
    assert sorted(waits) == pytest.approx([i / 5 for i in range(20)])


class Busy:
    """Says "too many requests" ``times`` times, then accepts."""

    def __init__(self, times: int, retry_after: timedelta | None = timedelta(0)) -> None:
        self.name = "sms"
        self.times = times
        self.retry_after = retry_after
        self.calls = 0
        self.sent: list[str] = []

    def send(self, notice: Notice) -> None:
        self.calls += 1
        if self.calls <= self.times:
            raise TooManyRequests("429 Too Many Requests", retry_after=self.retry_after)
        self.sent.append(notice.notice_id)


def test_n9_too_many_requests_backs_off_that_channel_not_onto_the_next() -> None:
    engine = Engine.in_memory(clock=ManualClock(T0))
    due(engine, 1)
    busy, push = Busy(times=2), RecordingSender("push")
    (notice,) = engine.dispatch_due([busy, push])
    assert (notice.status, notice.channel, busy.calls) == ("sent", "sms", 3)
    assert push.sent == []
    assert "429" in str(notice.last_error)


def test_n9_a_long_pause_hands_the_notice_to_the_next_channel() -> None:
    engine = Engine.in_memory(clock=ManualClock(T0))
    due(engine, 1)
    busy, push = Busy(times=1, retry_after=timedelta(minutes=5)), RecordingSender("push")
    (notice,) = engine.dispatch_due([busy, push])
    assert (notice.channel, busy.calls) == ("push", 1)


def test_n9_a_channel_that_stays_busy_hands_over_to_the_next() -> None:
    engine = Engine.in_memory(clock=ManualClock(T0))
    due(engine, 1)
    busy, push = Busy(times=10), RecordingSender("push")
    (notice,) = engine.dispatch_due([busy, push])
    assert (notice.status, notice.channel, busy.sent) == ("sent", "push", [])


def test_n9_results_are_recorded_in_batches(make_engine: EngineFactory) -> None:
    engine = make_engine(clock=ManualClock(T0))
    due(engine, 25)
    writes: list[int] = []
    save = engine.store.save_notices

    def counted(notices: Any, **kwargs: Any) -> None:
        notices = list(notices)
        writes.append(len(notices))
        save(notices, **kwargs)

    engine.store.save_notices = counted  # type: ignore[method-assign]
    engine.dispatch_due([RecordingSender("sms")], concurrency=4, batch_size=10)
    assert sum(writes) == 25
    assert len(writes) <= 25 // 10 + 2  # full batches, and what was left at the end
    assert {n.status for n in engine.notices()} == {"sent"}


def test_n9_concurrency_below_one_is_refused() -> None:
    engine = Engine.in_memory()
    with pytest.raises(InvalidDefinition, match="concurrency must be 1 or more, got 0"):
        engine.dispatch_due([RecordingSender()], concurrency=0)


def test_n9_concurrent_dispatch_still_re_checks_each_notice(make_engine: EngineFactory) -> None:
    """N3 holds at any concurrency: a notice whose debit moved on is cancelled, not sent."""
    clock = ManualClock(T0)
    engine = make_engine(clock=clock)
    due(engine, 10)
    for number in range(0, 10, 2):
        engine.apply(ev("failed", 1, source="operator", debit_id=f"d-{number}"))
    clock.advance_to(T0 + timedelta(minutes=1))
    sms = RecordingSender("sms")
    handled = engine.dispatch_due([sms], concurrency=4)
    sent = {n.debit_id for n in handled if n.status == "sent"}
    cancelled = {n.debit_id for n in handled if n.status == "cancelled"}
    assert sent == {f"d-{n}" for n in range(1, 10, 2)}
    assert cancelled == {f"d-{n}" for n in range(0, 10, 2)}
    assert {n.debit_id for n in sms.sent} == sent


def test_n9_n10_a_coroutine_sender_by_template_gets_the_rendered_message() -> None:
    class Provider:
        name = "sms"

        def __init__(self) -> None:
            self.messages: list[Message] = []

        def send(self, notice: Notice) -> None:
            raise AssertionError("a sender taking messages is handed messages")

        async def send_message(self, message: Message) -> None:
            self.messages.append(message)

    engine = Engine.in_memory(clock=ManualClock(T0))
    due(engine, 6)
    provider = Provider()
    handled = engine.dispatch_due([provider], concurrency=3)
    assert {n.status for n in handled} == {"sent"}
    assert sorted(m.notice_id for m in provider.messages) == sorted(n.notice_id for n in handled)
    assert all(m.text and m.channel == "sms" for m in provider.messages)
