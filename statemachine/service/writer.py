"""One writer thread does all of the service's engine work, and commits requests by group.

Requests hand their events to the writer and wait. The writer takes everything queued at
once, applies it inside one ``engine.transaction()`` (one fsync on SQLite with
``synchronous=FULL``), and answers each request only after that commit: an acknowledged
event is never lost, and many clients share each commit. When fewer requests are queued
than the last group held, it waits up to 2 ms for the rest: the clients it has just answered
are posting again, and would otherwise each wait for a commit of their own.

Reads (pages, metrics, a debit) run on a reader thread of their own when the writer is given a
second engine on the same store, so that rendering a page never holds a commit back;
otherwise they go through the writer's thread, between commits. Each engine is only ever used
from one thread.

>>> import asyncio
>>> from statemachine import Engine
>>> async def main() -> str | None:
...     writer = Writer(Engine.in_memory())
...     writer.start()
...     try:
...         return await writer.read(lambda engine: engine.get("d-1"))
...     finally:
...         writer.stop()
>>> print(asyncio.run(main()))
None
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from typing import Any, Final, TypeVar

import attrs

from ..engine import Engine
from ..errors import StoreBusy, StoreError
from ..events import Event, Refusal
from ..records import Result
from .privacy import masked_text

T = TypeVar("T")
log = logging.getLogger("statemachine.service")

# (an event or the refusal of bad input, the raw text to store, its origin)
Entry = tuple[Event | Refusal, str, str]
# What a write request hands the writer: its entries, or a function that makes them from
# the store as it is at the group's commit (a webhook counting earlier resubmissions).
Entries = Sequence[Entry] | Callable[[Engine], Sequence[Entry]]
MAX_GROUP: Final = 1000  # requests in one commit at most
GATHER: Final = 0.002  # seconds a commit may wait for the requests it expects


@attrs.define
class _Job:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    entries: Entries | None = None  # a write
    read: Callable[[Engine], Any] | None = None  # or a read


class Writer:
    """The service's one thread on the engine; start it, ``await`` its :meth:`write` and
    :meth:`read`, and :meth:`stop` it (it finishes what is queued first). ``reader``, a second
    engine on the same store, answers :meth:`read` on a thread of its own."""

    def __init__(self, engine: Engine, reader: Engine | None = None) -> None:
        self.engine = engine
        self.reader = reader
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="statemachine-writer", daemon=True)
        self._reads = (
            ThreadPoolExecutor(1, thread_name_prefix="statemachine-reader") if reader else None
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish every queued request, then end the thread (and the reader's)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._reads is not None:
            self._reads.shutdown(wait=True)

    async def write(self, entries: Entries) -> list[Result]:
        """Store these entries (events applied, refusals stored ``invalid``) with the other
        requests of the group; returns one result per entry once the group has committed.
        Raises :class:`~statemachine.errors.StoreBusy` when the store stayed busy."""
        loop = asyncio.get_running_loop()
        job = _Job(loop, loop.create_future(), entries=entries)
        self._queue.put(job)
        results: list[Result] = await job.future
        return results

    async def read(self, fn: Callable[[Engine], T]) -> T:
        """``fn(engine)`` on the reader's engine and thread if there is one (it sees what has
        been committed), else on the writer thread between commits; returns what it returns."""
        if self._reads is not None and self.reader is not None:
            return await asyncio.get_running_loop().run_in_executor(self._reads, fn, self.reader)
        return await self.between_commits(fn)

    async def between_commits(self, fn: Callable[[Engine], T]) -> T:
        """``fn(engine)`` run on the writer thread, between commits; returns what it returns.
        ``/healthz`` asks this way: it answers only while the writer does."""
        loop = asyncio.get_running_loop()
        job = _Job(loop, loop.create_future(), read=fn)
        self._queue.put(job)
        value: T = await job.future
        return value

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        expected = 1  # requests in the last group: their clients are likely to post again
        running = True
        while running:
            first = self._queue.get()
            if first is None:
                break
            jobs, running = self._gather(first, expected)
            expected = len(jobs)
            answers: list[tuple[_Job, bool, Any]] = []
            writes = [job for job in jobs if job.entries is not None]
            if writes:
                answers.extend(self._commit(writes))
            for job in jobs:
                if job.read is not None:
                    answers.append(self._read(job))
            _answer(answers)

    def _gather(self, first: _Job, expected: int) -> tuple[list[_Job], bool]:
        """``first`` and what else is queued; while fewer than ``expected`` have come, wait up
        to :data:`GATHER` for the rest (the clients answered last time are posting again), so
        that they share this commit rather than each wait for the next. Returns the group,
        and False once the queue says to stop."""
        jobs = [first]
        deadline = None
        while len(jobs) < MAX_GROUP:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                if len(jobs) >= expected:
                    break
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + GATHER
                if now >= deadline:
                    break
                try:
                    job = self._queue.get(timeout=deadline - now)
                except queue.Empty:
                    break
            if job is None:
                return jobs, False
            jobs.append(job)
        return jobs, True

    def _read(self, job: _Job) -> tuple[_Job, bool, Any]:
        assert job.read is not None
        try:
            return job, True, job.read(self.engine)
        except Exception as exc:  # handed to the request, which answers for it
            return job, False, exc

    def _commit(self, jobs: list[_Job]) -> list[tuple[_Job, bool, Any]]:
        try:
            listed = [_entries(job, self.engine) for job in jobs]
            if all(isinstance(entry[0], Event) for entries in listed for entry in entries):
                results = self._apply(listed)  # apply_many is one transaction by itself
            else:
                with self.engine.transaction():
                    results = self._apply(listed)
        except StoreBusy as exc:
            return [(job, False, exc) for job in jobs]
        except Exception as exc:
            if len(jobs) == 1:
                log.error("a write failed: %s", masked_text(str(exc)))
                return [(jobs[0], False, exc)]
            # One request's failure must not fail the others: each commits alone then.
            return [answer for job in jobs for answer in self._commit([job])]
        return [(job, True, result) for job, result in zip(jobs, results, strict=True)]

    def _apply(self, listed: list[Sequence[Entry]]) -> list[list[Result]]:
        """Every job's events in one ``apply_many`` (one lock, one prefetch), then the
        refusals; the results put back in each job's order."""
        items = [
            (entry[0], entry[1], entry[2], None)
            for entries in listed
            for entry in entries
            if isinstance(entry[0], Event)
        ]
        applied = iter(self.engine.apply_many(items))
        results = []
        for entries in listed:
            out = []
            for outcome, raw, origin in entries:
                if isinstance(outcome, Event):
                    out.append(next(applied))
                else:
                    out.append(self.engine.refuse(outcome, raw, origin))
            results.append(out)
        return results


def _entries(job: _Job, engine: Engine) -> Sequence[Entry]:
    assert job.entries is not None
    return job.entries(engine) if callable(job.entries) else job.entries


def _answer(answers: list[tuple[_Job, bool, Any]]) -> None:
    """Hand the answers to their event loops, one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job, bool, Any]]] = {}
    for answer in answers:
        by_loop.setdefault(answer[0].loop, []).append(answer)
    for loop, listed in by_loop.items():
        with suppress(RuntimeError):  # the loop has closed: nobody waits for these answers
            loop.call_soon_threadsafe(_settle, listed)


def _settle(answers: list[tuple[_Job, bool, Any]]) -> None:
    for job, ok, value in answers:
        if job.future.done():  # the request was cancelled
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)


__all__ = ["Entries", "Entry", "StoreError", "Writer"]
