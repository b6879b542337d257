"""The writer's group commit: requests queued together share one commit, a request that fails
fails alone, and a busy store is reported to every request of the group."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from statemachine import Engine, Event
from statemachine.errors import StoreBusy
from statemachine.service.writer import Entry, Writer


def entry(event_id: str, debit_id: str = "d-1") -> Entry:
    event = Event.from_dict({"event_id": event_id, "debit_id": debit_id, "type": "submitted",
                             "occurred_at": "2026-03-05T10:00:00+00:00"})  # fmt: skip
    return (event, event.to_json(), "test")


def broken(engine: Engine) -> Sequence[Entry]:
    raise RuntimeError("this request cannot be read")


async def grouped(writer: Writer, requests: list[Any]) -> list[Any]:
    """The requests queued while the writer is held busy, so that they form one group."""
    started, release = threading.Event(), threading.Event()

    def hold(engine: Engine) -> None:
        started.set()
        release.wait()

    held = asyncio.ensure_future(writer.read(hold))
    await asyncio.to_thread(started.wait)  # the writer is inside the read
    tasks = [asyncio.ensure_future(writer.write(r)) for r in requests]
    await asyncio.sleep(0)  # each task runs up to its wait for the answer: all are queued
    release.set()
    await held
    # A bound, not a measure: a request the writer never answers fails the test, not hangs it.
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)


def test_a_failing_request_fails_alone_and_the_rest_of_its_group_commits(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "debits.sqlite")
    writer = Writer(engine)
    writer.start()
    try:
        answers = asyncio.run(
            grouped(writer, [[entry("gw-1")], broken, [entry("gw-2", "d-2"), entry("gw-1")]])
        )
    finally:
        writer.stop()
    first, failed, last = answers
    assert [r.verdict.value for r in first] == ["applied"]
    assert isinstance(failed, RuntimeError)
    assert [r.verdict.value for r in last] == ["applied", "duplicate"]
    assert [s.event_id for s in engine.history("d-1")] == ["gw-1", "gw-1"]
    engine.close()


def test_a_busy_store_answers_every_request_of_the_group(tmp_path: Path) -> None:
    path = tmp_path / "debits.sqlite"
    engine = Engine.open(path, busy_timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    writer = Writer(engine)
    writer.start()
    try:
        answers = asyncio.run(grouped(writer, [[entry("gw-1")], [entry("gw-2", "d-2")]]))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        writer.stop()
    assert all(isinstance(answer, StoreBusy) for answer in answers), answers
    assert engine.history("d-1") == []
    engine.close()


def test_stop_commits_what_is_queued_first(tmp_path: Path) -> None:
    engine = Engine.open(tmp_path / "debits.sqlite")
    writer = Writer(engine)
    writer.start()

    async def post_then_stop() -> list[Any]:
        task = asyncio.ensure_future(writer.write([entry("gw-1")]))
        await asyncio.sleep(0)
        await asyncio.to_thread(writer.stop)
        return list(await task)

    results = asyncio.run(post_then_stop())
    assert [r.verdict.value for r in results] == ["applied"]
    with pytest.raises(RuntimeError):
        writer.start()  # a stopped writer stays stopped
    engine.close()


def test_reads_on_a_reader_engine_are_answered_while_a_commit_is_held(tmp_path: Path) -> None:
    path = tmp_path / "debits.sqlite"
    engine, reader = Engine.open(path), Engine.open(path, create=False)
    writer = Writer(engine, reader)
    writer.start()
    started, release = threading.Event(), threading.Event()

    def held(engine: Engine) -> Sequence[Entry]:
        started.set()
        release.wait()
        return [entry("gw-2")]

    async def read_while_held() -> tuple[Any, list[Any], Any]:
        first = await writer.write([entry("gw-1")])
        writing = asyncio.ensure_future(writer.write(held))
        await asyncio.to_thread(started.wait)  # the writer is inside the second request
        # A bound, not a measure: a read that waited for the held writer would fail here.
        seen = await asyncio.wait_for(writer.read(lambda e: e.history("d-1")), 60)
        release.set()
        return first, seen, await writing

    try:
        first, seen, second = asyncio.run(read_while_held())
    finally:
        release.set()
        writer.stop()
    assert [r.verdict.value for r in first] == ["applied"]
    assert [s.event_id for s in seen] == ["gw-1"]  # what was committed, not what was held
    assert [r.verdict.value for r in second] == ["stale"]  # a second report of submission
    assert [s.event_id for s in reader.history("d-1")] == ["gw-1", "gw-2"]
    reader.close()
    engine.close()
