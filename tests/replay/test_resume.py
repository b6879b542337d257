"""N5 across a crash: a replay interrupted at any point and run again ends with the debits and
the notices of one that ran through."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import T0, ev

from statemachine import Engine, ManualClock, Notice
from statemachine.dispatch import Sender
from statemachine.replay import BatchedReplay, Replay, replay_logs

# A success (10:05) replaced by an operator's failure that arrives later but happened earlier
# (10:01): the success notice, due at 10:05, is judged at the next advance (10:10), when the
# debit has failed, so it is cancelled and only the failure is announced.
FOUR_LINES = [
    {"event_id": "gw-d", "debit_id": "D", "type": "succeeded",
     "occurred_at": "2026-03-05T10:05:00+00:00", "source": "gateway"},
    {"event_id": "gw-a", "debit_id": "A", "type": "submitted",
     "occurred_at": "2026-03-05T10:00:00+00:00", "source": "gateway"},
    {"event_id": "op-d", "debit_id": "D", "type": "failed",
     "occurred_at": "2026-03-05T10:01:00+00:00", "source": "operator"},
    {"event_id": "gw-b", "debit_id": "B", "type": "submitted",
     "occurred_at": "2026-03-05T10:10:00+00:00", "source": "gateway"},
]  # fmt: skip


def runner(
    engine: Engine, batch_size: int, senders: list[Sender] | None = None
) -> Replay | BatchedReplay:
    if batch_size == 1:
        return Replay(engine, senders)
    return BatchedReplay(engine, senders, batch_size=batch_size)


def interrupt_after(count: int) -> Callable[[Iterable[Any]], Iterator[Any]]:
    """A progress wrapper that stops the replay as it asks for line ``count + 1``."""

    def wrap(records: Iterable[Any]) -> Iterator[Any]:
        for number, record in enumerate(records):
            if number == count:
                raise KeyboardInterrupt
            yield record

    return wrap


Outcome = dict[str, tuple[Any, ...]]


def outcome(engine: Engine) -> Outcome:
    """What a replay must end with whatever stopped it on the way: each debit's state, attempt,
    version and review flag, and each notice's status, channel, time sent, kind and outcome."""
    found: Outcome = {}
    for debit_id in engine.store.debit_ids():
        debit = engine.get(debit_id)
        assert debit is not None
        found[debit_id] = (debit.state, debit.attempt, debit.version, debit.needs_review)
    for n in engine.notices():
        found[n.notice_id] = (n.status.value, n.channel, n.sent_at, n.kind, n.outcome)
    return found


def differences(got: Outcome, want: Outcome) -> list[tuple[str, Any, Any]]:
    """(debit or notice id, what one run ended with, what the other did), where they differ."""
    return [(key, got.get(key), want.get(key)) for key in sorted(got.keys() | want.keys())
            if got.get(key) != want.get(key)]  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 2, 3])
@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_a_replay_stopped_after_a_commit_resumes_to_the_clean_notices(
    tmp_path: Path, batch_size: int, stop_after: int
) -> None:
    log = tmp_path / "four.jsonl"
    log.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in FOUR_LINES))
    with Engine.open(tmp_path / "clean.sqlite", clock=ManualClock()) as engine:
        replay_logs(runner(engine, batch_size), [log])
        clean = outcome(engine)
    assert clean["D#1:succeeded"][:3] == ("cancelled", None, None)
    assert clean["D#1:failed"][:3] == ("sent", "replay", datetime(2026, 3, 5, 10, 20, tzinfo=UTC))
    db = tmp_path / "resumed.sqlite"
    with (
        Engine.open(db, clock=ManualClock()) as engine,
        contextlib.suppress(KeyboardInterrupt),
    ):
        replay_logs(runner(engine, batch_size), [log], progress=interrupt_after(stop_after))
    with Engine.open(db, clock=ManualClock()) as engine:
        summary = replay_logs(runner(engine, batch_size), [log])
        assert summary.resumed == stop_after // batch_size * batch_size
        assert differences(outcome(engine), clean) == []


class Crash(BaseException):
    """The process dies: nothing after it runs, no handler for errors catches it."""


class DyingSender:
    """A channel whose process dies as it hands over the first notice."""

    name = "replay"

    def send(self, notice: Notice) -> None:
        raise Crash(notice.notice_id)


# Logs whose first send, the one the process dies in, is at a clock advance (D's success, at
# 10:05) or at the end, once the clock passes the settle window (D's failure, at 10:15).
DIES_IN = {
    "an advance": (
        [("succeeded", 0, "D"), ("succeeded", 5, "E"), ("submitted", 10, "B")],
        ("D#1:succeeded", 5),
    ),
    "finish": ([("submitted", 0, "E"), ("failed", 0, "D")], ("D#1:failed", 15)),
}


@pytest.mark.parametrize("batch_size", [1, 2])
@pytest.mark.parametrize("dies_in", sorted(DIES_IN))
def test_a_replay_that_dies_mid_dispatch_resumes_to_the_clean_notices(
    tmp_path: Path, batch_size: int, dies_in: str
) -> None:
    lines, (first_sent, minutes) = DIES_IN[dies_in]
    log = tmp_path / "dies.jsonl"
    log.write_bytes(b"".join(orjson.dumps(ev(kind, at, debit_id=debit_id).to_dict()) + b"\n"
                             for kind, at, debit_id in lines))  # fmt: skip
    with Engine.open(tmp_path / "clean.sqlite", clock=ManualClock()) as engine:
        replay_logs(runner(engine, batch_size), [log])
        clean = outcome(engine)
    assert clean[first_sent][:3] == ("sent", "replay", T0 + timedelta(minutes=minutes))
    db = tmp_path / "resumed.sqlite"
    with Engine.open(db, clock=ManualClock()) as engine:
        dying = runner(engine, batch_size, [DyingSender()])
        with pytest.raises(Crash):
            replay_logs(dying, [log])
    with Engine.open(db, clock=ManualClock()) as engine:
        replay_logs(runner(engine, batch_size), [log])
        assert differences(outcome(engine), clean) == []
