"""Running the service: uvicorn on the app, one line ``serving on http://HOST:PORT`` once it
listens (the real port with ``port=0``), and a graceful stop on SIGTERM or SIGINT: it stops
accepting, finishes the requests in flight, commits what is queued, and exits 0."""

from __future__ import annotations

import signal
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette

try:  # an event loop that costs less CPU a request, where it is installed
    import uvloop  # noqa: F401

    LOOP = "uvloop"
except ImportError:  # pragma: no cover - platforms without uvloop
    LOOP = "asyncio"

GRACE = 30  # seconds in-flight requests have to finish after SIGTERM


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once it does."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"serving on http://{shown}:{port}", flush=True)


def serve(app: Starlette, host: str, port: int, *, log_level: str = "info", **config: Any) -> None:
    """Serve ``app`` until SIGTERM or SIGINT; returns once every request in flight is answered."""
    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            loop=LOOP,
            http="httptools",
            lifespan="on",
            access_log=False,  # a line per callback would cost more than the callback
            log_level=log_level,
            timeout_graceful_shutdown=GRACE,
            **config,
        )
    )
    # uvicorn raises the signal again once it has shut down gracefully; by then the service
    # has finished its work, so that second delivery is ignored and the process exits 0.
    for received in (signal.SIGTERM, signal.SIGINT):
        signal.signal(received, lambda *_: None)
    server.run()
