"""NACHA ACH files: outbound debit entries and their returns read as DESIGN's events.

A NACHA file is fixed-width text, one 94-character record a line: a file header (``1``),
batches (``5`` header, ``6`` entries each followed by their ``7`` addenda, ``8`` control), a
file control (``9``) and lines of ``9`` padding. A debit entry (transaction code 27 or 37)
becomes ``submitted`` for the debit named by its trace number; a return (an entry with an
addenda ``99``) becomes ``failed`` or ``reversed``, and a dishonored return ``reinstated`` (of
a reversal, P3b) or ``succeeded`` (of a failure), for the debit named by the original entry
trace number in that addenda. The mapping and its
reasons are in ``docs/importers/nacha.md``.

The records are read in :mod:`.records`; what their codes mean is in :mod:`.codes`.

>>> RETURN_TYPES["R01"], RETURN_TYPES["R07"], RETURN_TYPES["R68"]
('failed', 'reversed', 'succeeded')
>>> stage("R01"), stage("R68"), stage("R71")
('return', 'dishonored', 'contested')
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from .. import ImportOptions, ImportTally, Record
from .codes import (
    CONTESTED_CODES,
    DEBIT_ENTRIES,
    DISHONORED_CODES,
    FAILED_CODES,
    NO_MONEY,
    RETURN_ENTRIES,
    RETURN_TYPES,
    REVERSED_CODES,
    STAGE_DELAY,
    UNSUPPORTED_SEC,
    stage,
)
from .records import CURRENCY, PADDING, PREFIX, SOURCE, WIDTH, NachaFile

__all__ = [
    "CONTESTED_CODES",
    "CURRENCY",
    "DEBIT_ENTRIES",
    "DISHONORED_CODES",
    "FAILED_CODES",
    "NO_MONEY",
    "PADDING",
    "PREFIX",
    "RETURN_ENTRIES",
    "RETURN_TYPES",
    "REVERSED_CODES",
    "SOURCE",
    "STAGE_DELAY",
    "UNSUPPORTED_SEC",
    "WIDTH",
    "read",
    "stage",
]


def read(paths: Sequence[Path], options: ImportOptions, tally: ImportTally) -> Iterator[Record]:
    """Yield the events of every file in file order, each with its origin ``FILE:LINE``.

    Every file is read and checked (layout, counts, totals) before the first event is yielded.
    """
    tally.unit = ("entry", "entries")
    files = [NachaFile(path, options, tally) for path in paths]
    records = [record for file in files for record in file.events()]
    yield from records
