"""Request bodies to entries for the writer: one JSON event, a JSON array of events, or JSON
lines, each through :func:`statemachine.events.parse_input`, the one way in.

Bad input is not dropped: it becomes a refusal, stored with verdict ``invalid`` and its raw
text, and the request is answered 400 naming the place and the field.

>>> [(type(o).__name__, origin) for o, _, origin in entries(b'{"event_id": "gw-1"}')]
[('Refusal', 'POST /events line 1')]
>>> entries(b'[1, 2]')[1][0].reason
'event: expected a JSON object, got 2'
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import orjson

from ..events import Refusal, parse_input
from .writer import Entry

ORIGIN: Final = "POST /events"


class BodyTooLarge(Exception):
    """A request body over the service's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body: expected at most {limit} bytes")
        self.limit = limit


async def read_body(stream: AsyncIterator[bytes], content_length: str | None, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes before reading them when the
    client says its size, and as they stream in when it does not."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise BodyTooLarge(limit)
    parts, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)


def entries(body: bytes, origin: str = ORIGIN) -> list[Entry]:
    """The events of a body, each an :class:`~statemachine.events.Event` or a
    :class:`~statemachine.events.Refusal`, with its raw text and origin."""
    stripped = body.strip()
    if not stripped:
        return []
    if stripped[:1] in (b"{", b"["):
        try:
            whole = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            whole = None  # JSON lines, or broken: read line by line
        if isinstance(whole, dict):
            text = stripped.decode()
            return [(*parse_input(text, whole), f"{origin} line 1")]
        if isinstance(whole, list):
            return [_item(item, f"{origin} [{index}]") for index, item in enumerate(whole)]
    found = []
    for number, line in enumerate(body.splitlines(), 1):
        if line.strip():
            outcome, text = parse_input(line)
            found.append((outcome, text, f"{origin} line {number}"))
    return found


def _item(item: Any, origin: str) -> Entry:
    text = orjson.dumps(item).decode()
    if isinstance(item, dict):
        return (*parse_input(text, item), origin)
    return (*parse_input(text), origin)


def place(origin: str) -> str:
    """Where in the body an entry was: ``line 3``, ``[2]`` or ``events[0]``.

    >>> place("POST /events line 3"), place("POST /events [2]")
    ('line 3', '[2]')
    """
    return origin.split(" ", 2)[-1]


__all__ = ["BodyTooLarge", "Refusal", "entries", "place", "read_body"]
