"""Importers: payment formats read into DESIGN's events.

Each format is a module of this package with one function,
``read(paths, options, tally) -> Iterator[Record]``, that reads every file given (a format may
join files: a return to its debit, a status report to its instruction) and yields events in
DESIGN's JSON form, each with the place it came from; it counts what it read and what it
skipped, and why, in the :class:`ImportTally`. A file that is truncated, foreign or
broken raises :class:`ImportFailed` naming the file and the line or element; callers write
nothing until a whole import has been read (:func:`write_jsonl`).

>>> sorted(FORMATS)
['gocardless', 'iso20022', 'nacha', 'xes']
"""

from __future__ import annotations

import importlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, tzinfo
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from ..errors import StateMachineError

# (origin, event): origin is "file:line" or "file:element path"; event is DESIGN's JSON object.
Record = tuple[str, dict[str, Any]]


class ImportFailed(StateMachineError, ValueError):
    """A file that cannot be imported: names the file, the line or element, and the problem.

    >>> str(ImportFailed("return.ach", "line 3", "expected a 94-character record, got 80"))
    'return.ach: line 3: expected a 94-character record, got 80'
    """

    def __init__(self, path: str | Path, where: str | None, problem: str) -> None:
        self.path, self.where, self.problem = str(path), where, problem
        place = f"{self.path}: {where}" if where else self.path
        super().__init__(f"{place}: {problem}")


class UnknownFormat(StateMachineError, ValueError):
    """A format name the importers do not know: names the known formats.

    >>> str(UnknownFormat("csv"))
    "format: expected one of gocardless, iso20022, nacha, xes, got 'csv'"
    """

    def __init__(self, format: str) -> None:
        self.format = format
        super().__init__(f"format: expected one of {', '.join(sorted(FORMATS))}, got {format!r}")


@attrs.frozen
class ImportOptions:
    """Choices a format may need; every field has a default that suits the common case."""

    # A mapping file (xes: activity -> event type); None means the format's bundled default.
    mapping: Path | None = None
    # The zone of times written without an offset (NACHA dates, some bank files).
    timezone: tzinfo = UTC


@attrs.define
class ImportTally:
    """What an import read and what it skipped, and why, and how many events it gave; the
    format's reader fills it in as it reads, so it is complete once the records are.

    >>> tally = ImportTally()
    >>> tally.unit = ("webhook event", "webhook events")
    >>> tally.read += 3
    >>> tally.skip("of a resource type other than payments", "mandates")
    >>> tally.skip("of a resource type other than payments", "payouts")
    >>> tally.describe()
    'read 3 webhook events, skipped 2: 2 of a resource type other than payments (mandates, payouts)'
    """

    # What a format counts (webhook events, entries, XES events ...): singular and plural.
    unit: tuple[str, str] = ("record", "records")
    read: int = 0
    # Events yielded by :func:`read` so far: all of them once the records are.
    events: int = 0
    skipped: Counter[str] = attrs.Factory(Counter)
    # Reason -> the values that gave it (an action, an activity, a transaction code), counted.
    examples: dict[str, Counter[str]] = attrs.Factory(dict)

    def skip(self, reason: str, example: str | None = None) -> None:
        """Count one record skipped for ``reason``, with the value that made it so."""
        self.skipped[reason] += 1
        if example is not None:
            self.examples.setdefault(reason, Counter())[example] += 1

    def describe(self) -> str:
        """``read N units, skipped M: count reason (examples); ...``, most frequent first."""
        head = f"read {self.read} {self.unit[self.read != 1]}"
        if not self.skipped:
            return f"{head}, skipped none"
        parts = []
        for reason, count in self.skipped.most_common():
            seen = self.examples.get(reason)
            if seen:
                shown = [str(value) for value, _ in seen.most_common(3)]
                more = ", ..." if len(seen) > 3 else ""
                reason = f"{reason} ({', '.join(shown)}{more})"
            parts.append(f"{count} {reason}")
        return f"{head}, skipped {self.skipped.total()}: {'; '.join(parts)}"


Reader = Callable[[Sequence[Path], ImportOptions, ImportTally], Iterator[Record]]

FORMATS: dict[str, str] = {
    "gocardless": "GoCardless webhook bodies (JSON), payment events",
    "nacha": "NACHA ACH files: debit entries and returns (addenda 99)",
    "iso20022": "ISO 20022 pain.008, pain.002 and camt.054 (XML)",
    "xes": "XES event logs (.xes, .xes.gz) with a mapping file",
}


def reader(format: str) -> Reader:
    """The ``read`` function of a format, by name; :class:`UnknownFormat` for another name."""
    if format not in FORMATS:
        raise UnknownFormat(format)
    module = importlib.import_module(f"{__name__}.{format}")
    read: Reader = module.read
    return read


def read(
    format: str,
    paths: Iterable[str | Path],
    options: ImportOptions | None = None,
    tally: ImportTally | None = None,
) -> Iterator[Record]:
    """Read files of one format as events; raises :class:`ImportFailed` on bad input, and
    :class:`UnknownFormat` for a format not in :data:`FORMATS`, before any file is opened.

    ``tally``, when given, counts what was read and skipped, and the events, once the records
    are.
    """
    format_reader = reader(format)
    files = [Path(p) for p in paths]
    for path in files:
        if not path.is_file():
            raise ImportFailed(path, None, "no such file")
    tally = tally or ImportTally()
    return _counted(format_reader(files, options or ImportOptions(), tally), tally)


def _counted(records: Iterator[Record], tally: ImportTally) -> Iterator[Record]:
    for record in records:
        tally.events += 1
        yield record


@contextmanager
def staged(
    format: str,
    paths: Iterable[str | Path],
    options: ImportOptions | None = None,
    tally: ImportTally | None = None,
) -> Iterator[Iterator[tuple[str, bytes, dict[str, Any]]]]:
    """Read a whole import into a temporary file, then stream it back as replay records
    ``(origin, raw, event)``: a bad file stops the import before anything is replayed, and
    memory stays small whatever the import's size. ``tally`` is complete on entry: an
    import without events has ``tally.events == 0`` before anything is replayed."""
    with tempfile.TemporaryFile() as spool:
        for origin, event in read(format, paths, options, tally):
            spool.write(orjson.dumps([origin, event]) + b"\n")
        spool.seek(0)

        def records() -> Iterator[tuple[str, bytes, dict[str, Any]]]:
            for line in spool:
                origin, event = orjson.loads(line)
                yield origin, orjson.dumps(event), event

        yield records()


def write_jsonl(records: Iterable[Record], out: str | Path | IO[bytes]) -> int:
    """Write records as JSONL, all or nothing: a file appears only once every record was read.

    Returns the number of events written. ``out`` may be an open binary stream (stdout), which
    is then written only after the whole import has been read.
    """
    if not isinstance(out, (str, Path)):
        lines = [orjson.dumps(event) + b"\n" for _, event in records]
        out.writelines(lines)
        return len(lines)
    target = Path(out)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    count = 0
    try:
        with os.fdopen(fd, "wb") as stream:
            for _, event in records:
                stream.write(orjson.dumps(event) + b"\n")
                count += 1
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise
    return count
