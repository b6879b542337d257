"""Who may call the service: a bearer token on every endpoint but ``/healthz`` and the
webhooks (which the provider's signature authenticates). Without a token the service may only
listen on loopback.

>>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
(True, True, False)
>>> exposure_problem("0.0.0.0", None)[:40]
'--host 0.0.0.0 is reachable from other m'
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send


def is_loopback(host: str) -> bool:
    """True for an address (or ``localhost``) only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, token: str | None) -> str | None:
    """Why the service must not start on ``host`` with ``token``, or None."""
    if token is None and not is_loopback(host):
        return (
            f"--host {host} is reachable from other machines: give a bearer token with "
            "--token or STATEMACHINE_TOKEN (or listen on 127.0.0.1)"
        )
    if token is not None and not token.strip():
        return "--token: expected a non-empty token, got an empty one"
    return None


class BearerAuth:
    """ASGI middleware: 401 unless ``Authorization: Bearer TOKEN``, except on ``open_paths``
    and when no token is set. The token is compared in constant time."""

    def __init__(self, app: ASGIApp, token: str | None, open_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token is not None else None
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        problem = "a bearer token is required" if not given else "the bearer token is not valid"
        body = orjson.dumps({"error": f"Authorization: {problem} (Authorization: Bearer TOKEN)"})
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="statemachine"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
