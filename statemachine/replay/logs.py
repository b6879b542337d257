"""Reading replay logs: JSONL and CSV files in the event format, gzipped or not, or stdin."""

from __future__ import annotations

import csv
import gzip
import os
import re
import sys
import zlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any, cast

import orjson

from ..decoding import decode_event
from ..errors import StateMachineError
from ..events import Refusal

# A CSV integer cell: ASCII digits, as many as a store could hold and then some. Anything else
# ("²", "--1", 5,000 digits: int() refuses them all) stays text, for the event's check to refuse.
_INTEGER = re.compile(r"-?[0-9]{1,40}\Z")


class LogUnreadable(StateMachineError):
    """A log that ends in the middle (a truncated or corrupt ``.gz``): names the file and the
    last line read whole."""


def read_log(paths: Iterable[str | Path]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(origin, line)`` for every non-blank line: files, ``.gz``, or ``-`` (stdin)."""
    for path in paths:
        name = str(path)
        # Origins are stored: a name that is not UTF-8 shows its odd bytes escaped (\\xff).
        label = os.fsencode(name).decode("utf-8", "backslashreplace")
        number = 0
        with _open(name) as stream:
            lines = iter(stream)
            while True:
                try:
                    line = next(lines)
                except StopIteration:
                    break
                except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
                    raise LogUnreadable(
                        f"{label}: truncated or corrupt after line {number} "
                        f"({exc or type(exc).__name__})"
                    ) from exc
                number += 1
                if line.strip():
                    yield f"{label}:{number}", line.rstrip(b"\r\n")


def _open(name: str) -> AbstractContextManager[IO[bytes]]:
    if name == "-":
        return nullcontext(sys.stdin.buffer)
    if name.endswith(".gz"):
        return cast(IO[bytes], gzip.open(name, "rb"))
    return open(name, "rb")


def read_records(paths: Iterable[str | Path]) -> Iterator[tuple[str, bytes, Any]]:
    """Yield ``(origin, raw line, parsed)`` from JSONL or CSV logs (``.csv``, ``.csv.gz``).

    ``parsed`` is the event a well-formed JSON line holds (``decoding.decode_event``), or
    the line's JSON value, or a CSV row as a dict with DESIGN's field names
    (empty cells left out, ``attempt`` and ``amount`` as integers, ``data`` as JSON), or the
    :class:`~statemachine.events.Refusal` of a CSV row that cannot be read; it is None when a
    JSON line cannot be parsed. A CSV row is one line: no quoted line breaks.
    """
    for path in paths:
        name = str(path)
        lines = read_log([name])
        if not name.removesuffix(".gz").endswith(".csv"):
            for origin, line in lines:
                event = decode_event(line)
                if event is not None:
                    yield origin, line, event
                    continue
                try:
                    yield origin, line, orjson.loads(line)
                except orjson.JSONDecodeError:
                    yield origin, line, None
            continue
        header: list[str] | None = None
        for origin, line in lines:
            cells = _csv_cells(line)
            if header is None:
                header = [cell.strip() for cell in cells] if isinstance(cells, list) else []
                continue
            yield origin, line, _csv_row(header, cells)


def _csv_cells(line: bytes) -> list[str] | Refusal:
    """A CSV line's cells, or why the csv module cannot read it (a carriage return in an
    unquoted cell, a cell past its size limit)."""
    try:
        return next(csv.reader([line.decode("utf-8", "replace")]))
    except csv.Error as exc:
        return Refusal(f"line: expected a CSV row, got one the csv module cannot read ({exc})")


def _csv_row(header: list[str], cells: list[str] | Refusal) -> dict[str, Any] | Refusal:
    if isinstance(cells, Refusal):
        return cells
    if len(cells) != len(header):
        return Refusal(
            f"line: expected {len(header)} CSV cells, as the header has, got {len(cells)}"
        )
    row: dict[str, Any] = {}
    for key, cell in zip(header, cells, strict=True):
        if cell == "":
            continue
        if key in ("attempt", "amount") and _INTEGER.match(cell):
            row[key] = int(cell)
        elif key == "data":
            try:
                row[key] = orjson.loads(cell)
            except orjson.JSONDecodeError:
                row[key] = cell  # refused by the event's own check, which names the field
        else:
            row[key] = cell
    return row
