"""A real HTTP provider on 127.0.0.1 for channel tests: it answers each request as planned and
records what it received. Nothing is mocked: the sender's own client talks to it over TCP."""

from __future__ import annotations

import socket
import struct
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal, NamedTuple

# What the provider does with one request: answer (status, headers), or one of
# "hang" (no answer until the test ends), "close" (close the socket without answering),
# "reset" (abort the connection with a TCP reset).
Answer = tuple[int, dict[str, str]] | Literal["hang", "close", "reset"]
ACCEPTED: Answer = (200, {})


class Received(NamedTuple):
    """One request as the provider saw it; header names in lower case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int  # the client's end of the connection: equal ports, one pooled connection


class Provider:
    """Answers each path's planned answers in order, then accepts every request (200).

    Plans are per path, so that a request which reaches the provider late (one its client
    already gave up on) cannot take an answer planned for another path's requests.
    """

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._plans: dict[str, deque[Answer]] = {}
        self._lock = threading.Lock()
        # Set when the test ends: a "hang" holds its request until then, never for a set time.
        self.release = threading.Event()
        self._server = _Server(self)
        self.port = self._server.server_address[1]

    def url(self, path: str = "/notices") -> str:
        """The URL of ``path`` on this provider."""
        return f"http://127.0.0.1:{self.port}{path}"

    def plan(self, *answers: Answer | int, path: str = "/notices") -> None:
        """Answer the next requests to ``path`` (its query aside) so; a bare number is that
        status with no headers."""
        with self._lock:
            plan = self._plans.setdefault(path, deque())
            plan.extend((a, {}) if isinstance(a, int) else a for a in answers)

    def next_answer(self, request: Received) -> Answer:
        with self._lock:
            self.received.append(request)
            plan = self._plans.get(request.path.partition("?")[0])
            return plan.popleft() if plan else ACCEPTED

    @contextmanager
    def running(self) -> Iterator[Provider]:
        # A short poll, so that shutdown at teardown returns at once.
        thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release.set()
            self._server.shutdown()
            self._server.server_close()
            thread.join()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        super().__init__(("127.0.0.1", 0), _Handler)  # port 0: an ephemeral port of its own


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so a client's connection pool is visible
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Received(self.command, self.path, headers, body, self.client_address[1])
        answer = self.server.provider.next_answer(request)
        if answer == "hang":
            self.server.provider.release.wait()
        if answer == "reset":
            # Linger on, zero seconds: closing sends RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # before the server's own shutdown could send a FIN first
        if isinstance(answer, str):
            self.close_connection = True
            return
        status, extra = answer
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read ``Provider.received`` instead."""
