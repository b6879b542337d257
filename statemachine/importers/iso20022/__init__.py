"""ISO 20022 direct-debit messages read as DESIGN's events: pain.008, pain.002 and camt.054.

Elements are read by local name, whatever the namespace, so the versions in use read alike
(pain.008.001.02 and the Swiss .ch.03, pain.002.001.03, camt.054.001.02 and .04, ...). Each
file is one message, recognised by its message element, and the files of an import are read
in the order pain.008, pain.002, camt.054 whatever the order they are given in: an instruction
becomes ``created``, a status report ``submitted``, ``succeeded`` or ``failed``, and a bank
notification ``succeeded``, ``failed`` or ``reversed``, joined into one debit per transaction
by ``MsgId/PmtInfId/EndToEndId``. The mapping is in ``docs/importers/iso20022.md``.

One module per message family (:mod:`.pain008`, :mod:`.pain002`, :mod:`.camt054`); a message
read from its file and its values in ``_message``, the joins between messages in ``_joins``.

>>> from pathlib import Path
>>> from tempfile import TemporaryDirectory
>>> document = '''<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.008.001.02">
... <CstmrDrctDbtInitn><GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-03-01T09:00:00</CreDtTm></GrpHdr>
... <PmtInf><PmtInfId>P1</PmtInfId><DrctDbtTxInf><PmtId><EndToEndId>loan-42</EndToEndId></PmtId>
... <InstdAmt Ccy="EUR">356.00</InstdAmt></DrctDbtTxInf></PmtInf></CstmrDrctDbtInitn></Document>'''
>>> with TemporaryDirectory() as folder:
...     path = Path(folder, "pain008.xml")
...     _ = path.write_text(document)
...     [(event["debit_id"], event["type"], event["amount"], event["occurred_at"])
...      for _, event in read([path], ImportOptions(), ImportTally())]
[('M1/P1/loan-42', 'created', 35600, '2026-03-01T09:00:00+00:00')]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from ...events import FAILED, REVERSED, SUCCEEDED
from .. import ImportOptions, ImportTally, Record
from ._joins import NOT_PROVIDED, Known
from ._message import (
    CAMT054,
    EXPECTED,
    EXPONENTS,
    FOREIGN,
    MESSAGES,
    ORDER,
    PAIN002,
    PAIN008,
    PREFIX,
    SOURCES,
    Draft,
    load,
)
from .camt054 import BOOKED, DIRECT_DEBITS, INFORMATION, RETURNS, notified
from .pain002 import PARTIAL, STATUSES, reported, statuses
from .pain008 import created, instructions

__all__ = [
    "BOOKED",
    "CAMT054",
    "DIRECT_DEBITS",
    "EXPECTED",
    "EXPONENTS",
    "FOREIGN",
    "INFORMATION",
    "MESSAGES",
    "NOT_PROVIDED",
    "ORDER",
    "PAIN002",
    "PAIN008",
    "PARTIAL",
    "PREFIX",
    "RETURNS",
    "SOURCES",
    "STATUSES",
    "read",
]


def read(paths: Sequence[Path], options: ImportOptions, tally: ImportTally) -> Iterator[Record]:
    """Yield the events of every message, pain.008 first, then pain.002, then camt.054.

    Every file is read before the first event is yielded: joins need the instructions, and a
    bad file fails the import before anything is written.
    """
    tally.unit = ("transaction or status", "transactions and statuses")
    messages = [load(path, options.timezone) for path in paths]
    messages.sort(key=lambda message: ORDER.index(message.kind))  # stable: file order within
    known = Known()
    for message in messages:
        if message.kind == PAIN008:
            for _, _, refs, debit_id in instructions(message):
                known.add(refs, debit_id, instruction=True)
        elif message.kind == PAIN002:
            for refs in reported(message):
                reported_id = known.debit_id(refs)
                if reported_id is not None:
                    known.add(refs, reported_id, instruction=False)
    drafts: list[Draft] = []
    for message in messages:
        if message.kind == PAIN008:
            drafts.extend(created(message, tally))
        elif message.kind == PAIN002:
            drafts.extend(statuses(message, known, tally))
        else:
            drafts.extend(notified(message, known, options.timezone, tally))
    collected: dict[str, datetime] = {}
    for draft in drafts:
        if draft.event["type"] == SUCCEEDED:
            debit_id, at = draft.event["debit_id"], draft.at
            collected[debit_id] = min(at, collected.get(debit_id, at))
    for draft in drafts:
        event = draft.event
        if draft.returned:
            # Money collected and then returned is a reversal; returned uncollected, a failure.
            booked = collected.get(event["debit_id"])
            late = booked is not None and booked <= draft.at
            event = {**event, "type": REVERSED if late else FAILED}
        yield draft.origin, event
