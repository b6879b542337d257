"""Small builders shared by the tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from statemachine import Debit, Engine, Event, ManualClock
from statemachine.importers import Record
from statemachine.replay import Replay

T = TypeVar("T")
T0 = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
_counter = 0


def ev(
    type: str,
    minutes: float = 0,
    source: str = "gateway",
    attempt: int = 1,
    debit_id: str = "d-1",
    event_id: str | None = None,
    **extra: Any,
) -> Event:
    """An event ``minutes`` after T0; event_ids are unique unless given."""
    global _counter
    _counter += 1
    if type == "created":
        extra.setdefault("amount", 356000)
    return Event(
        event_id=event_id or f"e{_counter}",
        debit_id=debit_id,
        type=type,
        occurred_at=T0 + timedelta(minutes=minutes),
        attempt=attempt,
        source=source,
        **extra,
    )


def debit_of(engine: Engine, debit_id: str) -> Debit:
    """The debit, which the test expects to exist."""
    debit = engine.get(debit_id)
    assert debit is not None, f"{debit_id}: no such debit"
    return debit


def clocked_engine(**kwargs: Any) -> tuple[Engine, ManualClock]:
    clock = ManualClock(T0)
    return Engine.in_memory(clock=clock, **kwargs), clock


# How long a test waits for a sign of life from a child process before failing: generous, as
# only a child that never gives the sign should fail a test, however loaded the machine.
DEADLINE = 300.0


class Child:
    """A Python child process whose stdout lines are read as they come: a test waits for the
    line it needs (a signal from the child), never for a fixed time."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, stdin: bool = False) -> None:
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, *args],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE if stdin else None,
            text=True,
            env=env,
        )
        self.lines: list[str] = []  # every line read so far
        self._incoming: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._incoming.put(line.rstrip("\n"))
        self._incoming.put(None)

    def wait_for(self, signal: Callable[[str], bool], deadline: float = DEADLINE) -> str:
        """Read lines until one is the ``signal``; fail if the child ends or falls silent first."""
        end = time.monotonic() + deadline
        while True:
            try:
                line = self._incoming.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"{self.args}: no signal within {deadline:.0f} s")
            if line is None:
                code = self.process.wait()
                pytest.fail(f"{self.args}: ended (exit code {code}) without the signal")
            self.lines.append(line)
            if signal(line):
                return line

    def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.close()

    def kill(self) -> list[str]:
        """SIGKILL the child; every line it printed."""
        self.process.kill()
        return self._drain()

    def finish(self) -> list[str]:
        """Wait for the child to exit successfully; every line it printed."""
        lines = self._drain()
        assert self.process.returncode == 0, (self.args, self.process.returncode)
        return lines

    def _drain(self) -> list[str]:
        self.process.wait(timeout=DEADLINE)
        self._reader.join(timeout=DEADLINE)
        while (line := self._incoming.get_nowait()) is not None:
            self.lines.append(line)
        return self.lines


def race_dispatchers(
    target: str, folder: Path, debits: int = 150, processes: int = 3
) -> Counter[str]:
    """Queue a success notice for each of ``debits`` debits on ``target``, run ``processes``
    `statemachine dispatch` processes at once, and count how often each notice was sent."""
    with Engine.open(target) as engine:
        engine.apply_many([ev("succeeded", 0, debit_id=f"d-{n}") for n in range(debits)])
    log = folder / "sent.log"
    env = {**os.environ, "NOTICE_LOG": str(log), "PYTHONPATH": str(Path(__file__).parent)}
    command = ["-m", "statemachine", "dispatch", "--db", target, "--sender", "file_sender:make"]
    workers = [Child(*command, env=env, stdin=True) for _ in range(processes)]
    # Each says "ready" once started, then waits: all of them claim and send at once.
    for worker in workers:
        worker.wait_for(lambda line: line == "ready")
    for worker in workers:
        worker.tell("go")
    for worker in workers:
        worker.finish()
    return Counter(log.read_text().split())


def replayed(records: list[Record]) -> Replay:
    """Imported events replayed in memory on event time, every settle window flushed."""
    replay = Replay(Engine.in_memory(clock=ManualClock()))
    for origin, event in records:
        replay.ingest(orjson.dumps(event), origin, parsed=event)
    replay.finish()
    return replay


def interrupt_after(count: int) -> Callable[[Iterable[Any]], Iterator[Any]]:
    """A replay progress wrapper that stops the replay (as Ctrl-C would) as it asks for line
    ``count + 1``."""

    def wrap(records: Iterable[Any]) -> Iterator[Any]:
        for number, record in enumerate(records):
            if number == count:
                raise KeyboardInterrupt
            yield record

    return wrap


# Pages in a real browser --------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium package to render the page"
)


def chromium(
    url: str, folder: Path, *, screenshot: Path | None = None, size: str = "900,1400"
) -> str:
    """Open ``url`` in headless Chromium and return the DOM it built (``--dump-dom``); with
    ``screenshot``, take a PNG of the window instead and return ''."""
    assert CHROMIUM is not None
    what = [f"--screenshot={screenshot}", f"--window-size={size}"] if screenshot else ["--dump-dom"]
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={folder / 'chromium-profile'}", *what, url],
        check=True, capture_output=True, text=True, timeout=DEADLINE,
    )  # fmt: skip
    return "" if screenshot else done.stdout


def png_pixels(data: bytes) -> Counter[tuple[int, int, int]]:
    """How many pixels of each RGB colour an 8-bit, non-interlaced RGB or RGBA PNG holds."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    chunks, at = [], 8
    while at < len(data):
        (length,), kind = struct.unpack(">I", data[at : at + 4]), data[at + 4 : at + 8]
        chunks.append((kind, data[at + 8 : at + 8 + length]))
        at += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, interlace) == (8, 0), "an unusual PNG: not 8 bits, or interlaced"
    assert colour in (2, 6), f"an unusual PNG: colour type {colour}, not RGB or RGBA"
    step = 4 if colour == 6 else 3
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride, above, found = width * step, bytearray(width * step), Counter[tuple[int, int, int]]()
    for row in range(height):
        start = row * (stride + 1)
        method, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride) if method else ():
            left = line[i - step] if i >= step else 0
            up, corner = above[i], above[i - step] if i >= step else 0
            if method == 1:
                line[i] = (line[i] + left) & 0xFF
            elif method == 2:
                line[i] = (line[i] + up) & 0xFF
            elif method == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            else:  # Paeth
                guess = left + up - corner
                near = min((abs(guess - left), 0, left), (abs(guess - up), 1, up),
                           (abs(guess - corner), 2, corner))[2]  # fmt: skip
                line[i] = (line[i] + near) & 0xFF
        found.update(zip(line[0::step], line[1::step], line[2::step], strict=True))
        above = line
    return found


class ThreadWriter:
    """A stand-in for the service's writer as the page uses it: ``await read(fn)`` runs
    ``fn(engine)`` on a worker thread, one call at a time, and returns its result."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()

    async def read(self, fn: Callable[[Engine], T]) -> T:
        return await asyncio.to_thread(self._run, fn)

    def _run(self, fn: Callable[[Engine], T]) -> T:
        with self._lock:
            return fn(self.engine)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on a free port of 127.0.0.1; yields its base URL.

    The socket is bound and listening before the server starts, so a request made at once
    waits in the backlog until the server accepts it: nothing to wait for."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=DEADLINE)
        sock.close()


# A debit id that is markup, an entity, a path and a query at once.
HOSTILE = '<script>alert("x")</script>&amp;\'/../?q=1#top'


class Page(HTMLParser):
    """What a page holds that the tests read: figures (``<data>``), links, and tags."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.links: list[tuple[str, str]] = []
        self.tags: set[str] = set()
        self._href: str | None = None
        self._text = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.add(tag)
        if tag == "data":
            self.figures[found["id"] or ""] = found["value"] or ""
        if tag == "a":
            self._href, self._text = found["href"], ""

    def handle_data(self, data: str) -> None:
        self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, self._text))
            self._href = None
