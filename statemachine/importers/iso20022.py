"""ISO 20022 direct-debit messages read as DESIGN's events: pain.008, pain.002 and camt.054.

Elements are read by local name, whatever the namespace, so the versions in use read alike
(pain.008.001.02 and the Swiss .ch.03, pain.002.001.03, camt.054.001.02 and .04, ...). Each
file is one message, recognised by its message element, and the files of an import are read
in the order pain.008, pain.002, camt.054 whatever the order they are given in: an instruction
becomes ``created``, a status report ``submitted``, ``succeeded`` or ``failed``, and a bank
notification ``succeeded``, ``failed`` or ``reversed``, joined into one debit per transaction
by ``MsgId/PmtInfId/EndToEndId``. The mapping is in ``docs/importers/iso20022.md``.

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

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

import attrs

from ..events import CREATED, FAILED, REVERSED, SUBMITTED, SUCCEEDED
from . import ImportFailed, ImportOptions, ImportTally, Record, _xml
from ._common import aware_time, event_record

PREFIX: Final = "iso:"
PAIN008, PAIN002, CAMT054 = "pain.008", "pain.002", "camt.054"
# Message element -> message; files are read in this order so that joins find their instruction.
MESSAGES: Final[Mapping[str, str]] = {
    "CstmrDrctDbtInitn": PAIN008,
    "CstmrPmtStsRpt": PAIN002,
    "BkToCstmrDbtCdtNtfctn": CAMT054,
}
ORDER: Final = (PAIN008, PAIN002, CAMT054)
SOURCES: Final[Mapping[str, str]] = {PAIN008: "internal", PAIN002: "gateway", CAMT054: "settlement"}
# Other messages, named in the error when one is given.
FOREIGN: Final[Mapping[str, str]] = {
    "BkToCstmrStmt": "camt.053",
    "BkToCstmrAcctRpt": "camt.052",
    "CstmrCdtTrfInitn": "pain.001",
    "FIToFIPmtStsRpt": "pacs.002",
    "FIToFICstmrDrctDbt": "pacs.003",
    "FIToFICstmrCdtTrf": "pacs.008",
    "PmtRtr": "pacs.004",
}
# pain.002 status -> event type; PART defers to the transactions' own statuses.
STATUSES: Final[Mapping[str, str]] = {
    "RCVD": SUBMITTED,
    "PDNG": SUBMITTED,
    "ACCP": SUBMITTED,
    "ACTC": SUBMITTED,
    "ACSP": SUBMITTED,
    "ACWC": SUBMITTED,
    "ACWP": SUBMITTED,
    "ACFC": SUBMITTED,
    "ACSC": SUCCEEDED,
    "ACCC": SUCCEEDED,
    "RJCT": FAILED,
    "CANC": FAILED,
}
PARTIAL: Final = "PART"
BOOKED, INFORMATION = "BOOK", "INFO"
# Bank transaction code families of direct debits: issued (creditor side), received (debtor side).
DIRECT_DEBITS: Final = frozenset({"IDDT", "RDDT"})
# Sub-families that are a direct debit coming back: unpaid, reversal after return, cancellation.
RETURNS: Final = frozenset({"UPDD", "PRDD", "RCDD"})
NOT_PROVIDED: Final = "NOTPROVIDED"
# ISO 4217 minor-unit exponents that are not 2.
EXPONENTS: Final[Mapping[str, int]] = {
    code: exponent
    for exponent, codes in (
        (0, "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"),
        (3, "BHD IQD JOD KWD LYD OMR TND"),
        (4, "CLF UYW"),
    )
    for code in codes.split()
}
EXPECTED: Final = (
    "an ISO 20022 message: pain.008 (CstmrDrctDbtInitn), pain.002 (CstmrPmtStsRpt) "
    "or camt.054 (BkToCstmrDbtCdtNtfctn)"
)
_MESSAGE_NAME = re.compile(
    r"(?:pain|camt|pacs|acmt|remt)\.\d{3}(?:\.\d{3}\.\d{2})?(?:\.ch\.\d{2})?"
)


@attrs.frozen
class _Node:
    """An element with its path, so that every error names the element it is about."""

    element: ET.Element
    where: str
    file: Path

    def fail(self, problem: str, below: str = "") -> ImportFailed:
        return ImportFailed(self.file, f"{self.where}/{below}" if below else self.where, problem)

    def text(self, name: str) -> str | None:
        found = self.element.find(name)
        value = (found.text or "").strip() if found is not None else ""
        return value or None

    def need(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise self.fail(f"expected <{name.rsplit('/', 1)[-1]}> with a value, found none", name)
        return value

    def child(self, name: str) -> _Node | None:
        found = self.element.find(name)
        return None if found is None else _Node(found, f"{self.where}/{name}", self.file)

    def children(self, name: str) -> list[_Node]:
        return [
            _Node(element, f"{self.where}/{name}[{number}]", self.file)
            for number, element in enumerate(self.element.findall(name), 1)
        ]


@attrs.frozen
class _Message:
    kind: str
    node: _Node
    msg_id: str
    created_at: datetime

    def event_id(self, node: _Node, suffix: str = "") -> str:
        """The message's MsgId and the element's place in it: the same file, the same ids."""
        return f"{PREFIX}{self.msg_id}{node.where.removeprefix(self.node.where)}{suffix}"


@attrs.frozen
class _Refs:
    """The original instruction's references, as far as a message gives them."""

    msg_id: str | None
    pmt_inf_id: str | None
    end_to_end_id: str | None
    instr_id: str | None = None
    acct_svcr_ref: str | None = None

    def complete(self) -> bool:
        return bool(self.msg_id and self.pmt_inf_id and self.end_to_end_id)

    def own_id(self) -> str | None:
        """``MsgId/PmtInfId/EndToEndId``, a missing part left empty; None with no reference."""
        last = self.end_to_end_id or self.instr_id or self.acct_svcr_ref
        if not (self.msg_id or self.pmt_inf_id or last):
            return None
        return f"{self.msg_id or ''}/{self.pmt_inf_id or ''}/{last or ''}"

    def as_data(self) -> dict[str, str]:
        named = {
            "MsgId": self.msg_id,
            "PmtInfId": self.pmt_inf_id,
            "EndToEndId": self.end_to_end_id,
            "InstrId": self.instr_id,
            "AcctSvcrRef": self.acct_svcr_ref,
        }
        return {name: value for name, value in named.items() if value}


class _Known:
    """Transactions named by the instructions and status reports of the import, for joins."""

    def __init__(self) -> None:
        self.instructions: dict[tuple[str, str], dict[str, _Refs]] = {}
        # ("EndToEndId" or "InstrId", value) -> {debit_id: references}
        self._by_ref: dict[tuple[str, str], dict[str, _Refs]] = {}

    def add(self, refs: _Refs, debit_id: str, instruction: bool) -> None:
        if instruction and refs.msg_id and refs.pmt_inf_id:
            payment = self.instructions.setdefault((refs.msg_id, refs.pmt_inf_id), {})
            payment[debit_id] = refs
        for key in _keys(refs):
            self._by_ref.setdefault(key, {})[debit_id] = refs

    def payments(self, msg_id: str) -> list[str]:
        return [pmt for msg, pmt in self.instructions if msg == msg_id]

    def match(self, refs: _Refs) -> str | None:
        """The one known debit whose references agree with every reference both give."""
        found = {
            debit_id
            for key in _keys(refs)
            for debit_id, known in self._by_ref.get(key, {}).items()
            if all(
                mine is None or theirs is None or mine == theirs
                for mine, theirs in (
                    (refs.msg_id, known.msg_id),
                    (refs.pmt_inf_id, known.pmt_inf_id),
                    (refs.end_to_end_id, known.end_to_end_id),
                    (refs.instr_id, known.instr_id),
                )
            )
        }
        return found.pop() if len(found) == 1 else None

    def debit_id(self, refs: _Refs) -> str | None:
        if refs.complete():
            return f"{refs.msg_id}/{refs.pmt_inf_id}/{refs.end_to_end_id}"
        return self.match(refs) or refs.own_id()


def _keys(refs: _Refs) -> list[tuple[str, str]]:
    pairs = (("EndToEndId", refs.end_to_end_id), ("InstrId", refs.instr_id))
    return [(name, value) for name, value in pairs if value]


@attrs.frozen
class _Draft:
    """An event before the import is complete: a return's type depends on the whole import."""

    origin: str
    event: dict[str, Any]
    at: datetime
    returned: bool = False


def read(paths: Sequence[Path], options: ImportOptions, tally: ImportTally) -> Iterator[Record]:
    """Yield the events of every message, pain.008 first, then pain.002, then camt.054.

    Every file is read before the first event is yielded: joins need the instructions, and a
    bad file fails the import before anything is written.
    """
    tally.unit = ("transaction or status", "transactions and statuses")
    messages = [_load(path, options.timezone) for path in paths]
    messages.sort(key=lambda message: ORDER.index(message.kind))  # stable: file order within
    known = _Known()
    for message in messages:
        if message.kind == PAIN008:
            for _, _, refs, debit_id in _instructions(message):
                known.add(refs, debit_id, instruction=True)
        elif message.kind == PAIN002:
            for refs in _reported(message):
                reported = known.debit_id(refs)
                if reported is not None:
                    known.add(refs, reported, instruction=False)
    drafts: list[_Draft] = []
    for message in messages:
        if message.kind == PAIN008:
            drafts.extend(_created(message, tally))
        elif message.kind == PAIN002:
            drafts.extend(_statuses(message, known, tally))
        else:
            drafts.extend(_notified(message, known, options.timezone, tally))
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


# Reading a file


def _load(path: Path, zone: tzinfo) -> _Message:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFailed(path, None, f"cannot be read ({exc.strerror})") from None
    head = raw.removeprefix(b"\xef\xbb\xbf").lstrip()
    if not head:
        raise ImportFailed(path, "line 1", f"expected {EXPECTED}, got an empty file")
    if not head.startswith(b"<"):
        got = "JSON" if head[:1] in b"{[" else "text that is not XML"
        raise ImportFailed(path, "line 1", f"expected {EXPECTED}, got {got}")
    try:
        root = _xml.parse(raw, path, "an ISO 20022 message")
    except ET.ParseError as exc:
        line, column = exc.position
        problem = str(exc).rsplit(": line ", 1)[0]
        cut = (
            " (is the file cut short?)" if problem in ("no element found", "unclosed token") else ""
        )
        raise ImportFailed(
            path, f"line {line}, column {column}", f"expected well-formed XML{cut}: {problem}"
        ) from None
    namespace = root.tag.rpartition("}")[0]
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]  # by local name: versions differ by namespace
    if root.tag != "Document":
        raise ImportFailed(path, f"/{root.tag}", f"expected {EXPECTED}, got <{root.tag}>")
    body = next(iter(root), None)
    if body is None:
        raise ImportFailed(path, "/Document", f"expected {EXPECTED}, got an empty <Document>")
    node = _Node(body, f"/Document/{body.tag}", path)
    kind = MESSAGES.get(body.tag)
    if kind is None:
        found = _MESSAGE_NAME.search(namespace)
        name = FOREIGN.get(body.tag) or (found.group() if found else "another message")
        raise node.fail(f"expected {EXPECTED}, got {name} (<{body.tag}>)")
    return _Message(kind, node, node.need("GrpHdr/MsgId"), _time(node, "GrpHdr/CreDtTm", zone))


# pain.008: the instructions


def _instructions(message: _Message) -> Iterator[tuple[_Node, _Node, _Refs, str]]:
    for payment in message.node.children("PmtInf"):
        pmt_inf_id = payment.need("PmtInfId")
        for tx in payment.children("DrctDbtTxInf"):
            end_to_end = tx.need("PmtId/EndToEndId")
            refs = _Refs(message.msg_id, pmt_inf_id, end_to_end, tx.text("PmtId/InstrId"))
            yield payment, tx, refs, f"{message.msg_id}/{pmt_inf_id}/{end_to_end}"


def _created(message: _Message, tally: ImportTally) -> Iterator[_Draft]:
    for payment, tx, refs, debit_id in _instructions(message):
        tally.read += 1
        amount, currency = _amount(tx, "InstdAmt")
        data: dict[str, Any] = refs.as_data()
        for key, value in (
            ("MndtId", tx.text("DrctDbtTx/MndtRltdInf/MndtId")),
            ("SeqTp", payment.text("PmtTpInf/SeqTp")),
            ("ReqdColltnDt", payment.text("ReqdColltnDt")),
        ):
            if value:
                data[key] = value
        event = _event(
            message, tx, debit_id, CREATED, message.created_at, data,
            amount=amount, currency=currency,
        )  # fmt: skip
        yield _Draft(f"{message.node.file}:{tx.where}", event, message.created_at)


# pain.002: the status reports


def _reported(message: _Message) -> Iterator[_Refs]:
    """The references of every transaction a status report lists."""
    _, original = _original(message)
    for payment in message.node.children("OrgnlPmtInfAndSts"):
        pmt_inf_id = payment.need("OrgnlPmtInfId")
        for tx in payment.children("TxInfAndSts"):
            yield _tx_refs(original, pmt_inf_id, tx)


def _original(message: _Message) -> tuple[_Node, str]:
    """The report's group part and the MsgId of the message it reports on."""
    group = message.node.child("OrgnlGrpInfAndSts")
    if group is None:
        raise message.node.fail("expected <OrgnlGrpInfAndSts>, found none", "OrgnlGrpInfAndSts")
    return group, group.need("OrgnlMsgId")


def _tx_refs(original: str, pmt_inf_id: str, tx: _Node) -> _Refs:
    end_to_end = tx.text("OrgnlEndToEndId")
    end_to_end = None if end_to_end == NOT_PROVIDED else end_to_end
    return _Refs(original, pmt_inf_id, end_to_end, tx.text("OrgnlInstrId"))


@attrs.frozen
class _Status:
    """A status that decides its transactions: TxSts, PmtInfSts or GrpSts, and its code."""

    level: str
    code: str

    @classmethod
    def of(cls, node: _Node, level: str, otherwise: _Status | None = None) -> _Status | None:
        """The node's status; without one, ``otherwise`` (the enclosing level's)."""
        code = node.text(level)
        if code is None:
            return otherwise
        # PART leaves it to each transaction's own status; an unknown code decides nothing.
        return cls(level, code) if code in STATUSES else None


def _statuses(message: _Message, known: _Known, tally: ImportTally) -> Iterator[_Draft]:
    group, original = _original(message)
    common = {"MsgId": message.msg_id, "OrgnlMsgId": original}
    name = group.text("OrgnlMsgNmId")
    if name:
        common["OrgnlMsgNmId"] = name
    group_status = _Status.of(group, "GrpSts")
    _count_status(group, "GrpSts", bool(known.payments(original)), tally)
    mentioned: set[str] = set()
    for payment in message.node.children("OrgnlPmtInfAndSts"):
        pmt_inf_id = payment.need("OrgnlPmtInfId")
        mentioned.add(pmt_inf_id)
        here = {**common, "OrgnlPmtInfId": pmt_inf_id}
        payment_status = _Status.of(payment, "PmtInfSts", group_status)
        _count_status(payment, "PmtInfSts", (original, pmt_inf_id) in known.instructions, tally)
        listed: set[str] = set()
        for tx in payment.children("TxInfAndSts"):
            tally.read += 1
            refs = _tx_refs(original, pmt_inf_id, tx)
            debit_id = known.debit_id(refs)
            status = _Status.of(tx, "TxSts", payment_status)
            if debit_id is None:
                tally.skip("pain.002 transaction statuses that name no transaction")
                continue
            listed.add(debit_id)
            if status is not None:
                yield _status(message, (tx, payment, group), debit_id, refs, status, here)
            else:
                tally.skip(_UNDECIDED, tx.text("TxSts") or "none")
        if payment_status is None:
            continue
        # A status of the payment information stands for its transactions not listed.
        for debit_id, refs in known.instructions.get((original, pmt_inf_id), {}).items():
            if debit_id not in listed:
                yield _status(message, (payment, group), debit_id, refs, payment_status, here)
    if group_status is None:
        return
    # A group status stands for every payment information the report does not list.
    for pmt_inf_id in known.payments(original):
        if pmt_inf_id not in mentioned:
            here = {**common, "OrgnlPmtInfId": pmt_inf_id}
            for debit_id, refs in known.instructions[(original, pmt_inf_id)].items():
                yield _status(message, (group,), debit_id, refs, group_status, here)


_UNDECIDED: Final = "pain.002 statuses that decide nothing by themselves"


def _count_status(node: _Node, level: str, instructed: bool, tally: ImportTally) -> None:
    """Count a payment or group status, and skip one that has no transaction to stand for."""
    code = node.text(level)
    if code is None:
        return
    tally.read += 1
    if code not in STATUSES:
        tally.skip(_UNDECIDED, code)
    elif not instructed:
        tally.skip(f"pain.002 {level} statuses whose pain.008 is not in the import", code)


def _status(
    message: _Message,
    nodes: tuple[_Node, ...],
    debit_id: str,
    refs: _Refs,
    status: _Status,
    common: dict[str, str],
) -> _Draft:
    """The event of one transaction; ``nodes`` from the status's element out to the group."""
    node, kind = nodes[0], STATUSES[status.code]
    data: dict[str, Any] = {**common, **_orgnl(refs), status.level: status.code}
    info = _first(*(_status_info(outer) for outer in nodes))
    if info:
        data["AddtlInf"] = info
    # One element may stand for many transactions: the debit keeps their event ids apart.
    suffix = "" if node.element.tag == "TxInfAndSts" else f"#{debit_id}"
    reason = _first(*(_reason(outer) for outer in nodes)) if kind == FAILED else None
    event = _event(message, node, debit_id, kind, message.created_at, data, suffix, reason=reason)
    return _Draft(f"{message.node.file}:{node.where}", event, message.created_at)


def _orgnl(refs: _Refs) -> dict[str, str]:
    data = {}
    if refs.end_to_end_id:
        data["OrgnlEndToEndId"] = refs.end_to_end_id
    if refs.instr_id:
        data["OrgnlInstrId"] = refs.instr_id
    return data


def _reason(node: _Node) -> str | None:
    return node.text("StsRsnInf/Rsn/Cd") or node.text("StsRsnInf/Rsn/Prtry")


def _status_info(node: _Node) -> str | None:
    texts = [(e.text or "").strip() for e in node.element.findall("StsRsnInf/AddtlInf")]
    return " ".join(text for text in texts if text) or None


def _first(*values: str | None) -> str | None:
    return next((value for value in values if value), None)


# camt.054: the bank's notifications


def _notified(
    message: _Message, known: _Known, zone: tzinfo, tally: ImportTally
) -> Iterator[_Draft]:
    for notification in message.node.children("Ntfctn"):
        for entry in notification.children("Ntry"):
            status = entry.text("Sts/Cd") or entry.text("Sts")
            listed = len(entry.element.findall("NtryDtls/TxDtls"))
            tally.read += max(listed, 1)  # an entry without transactions counts as one
            if status not in (BOOKED, INFORMATION):
                for _ in range(max(listed, 1)):  # pending entries are not facts yet
                    tally.skip("camt.054 transactions of entries not booked", status or "none")
                continue
            reversal = (entry.text("RvslInd") or "false").lower() in ("true", "1")
            if entry.child("BookgDt") is not None:
                at = _date_or_time(entry, "BookgDt", zone)
            else:
                at = message.created_at
            entry_code = _bank_code(entry)
            entry_data: dict[str, Any] = {"MsgId": message.msg_id, "Sts": status}
            for key, value in (
                ("NtfctnId", notification.text("Id")),
                ("NtryRef", entry.text("NtryRef")),
                ("AcctSvcrRef", entry.text("AcctSvcrRef")),
            ):
                if value:
                    entry_data[key] = value
            if reversal:
                entry_data["RvslInd"] = True
            if not listed:
                tally.skip("camt.054 entries that name no transaction (a lump sum)")
            for details in entry.children("NtryDtls"):
                batch = details.child("Btch")
                for tx in details.children("TxDtls"):
                    found = _transaction(
                        message, known, tx, batch, at, entry_code, entry_data, reversal
                    )
                    if isinstance(found, _Draft):
                        yield found
                    else:
                        tally.skip(*found)


def _transaction(
    message: _Message,
    known: _Known,
    tx: _Node,
    batch: _Node | None,
    at: datetime,
    entry_code: tuple[str, ...],
    entry_data: dict[str, Any],
    reversal: bool,
) -> _Draft | tuple[str, str | None]:
    """The transaction's event, or why it has none and the value that says so."""
    end_to_end = tx.text("Refs/EndToEndId")
    refs = _Refs(
        tx.text("Refs/MsgId") or (batch.text("MsgId") if batch else None),
        tx.text("Refs/PmtInfId") or (batch.text("PmtInfId") if batch else None),
        None if end_to_end == NOT_PROVIDED else end_to_end,
        tx.text("Refs/InstrId"),
        tx.text("Refs/AcctSvcrRef"),
    )
    code = _bank_code(tx) or entry_code
    return_info = tx.child("RtrInf")
    returned = reversal or return_info is not None or (len(code) == 3 and code[2] in RETURNS)
    if not returned:
        direct_debit = len(code) >= 2 and code[1] in DIRECT_DEBITS
        if entry_data["Sts"] != BOOKED:
            return "camt.054 information (INFO) transactions that are not returns", None
        if not (direct_debit or known.match(refs)):
            kind = "/".join(code) or "no BkTxCd"
            return "camt.054 transactions that are not direct debits of the import", kind
    debit_id = known.debit_id(refs)
    if debit_id is None:
        return "camt.054 transactions with no reference", None
    data: dict[str, Any] = {**entry_data, "Refs": refs.as_data()}
    if code:
        data["BkTxCd"] = "/".join(code)
    indicator = tx.text("CdtDbtInd")
    if indicator:
        data["CdtDbtInd"] = indicator
    reason = None
    if return_info is not None:
        reason = return_info.text("Rsn/Cd") or return_info.text("Rsn/Prtry")
        info = " ".join(
            (e.text or "").strip() for e in return_info.element.findall("AddtlInf") if e.text
        )
        data["RtrInf"] = {k: v for k, v in (("Rsn", reason), ("AddtlInf", info)) if v}
    amount: tuple[int | None, str | None] = (None, None)
    for place in ("Amt", "AmtDtls/TxAmt/Amt", "AmtDtls/InstdAmt/Amt"):
        if tx.child(place) is not None:
            amount = _amount(tx, place)
            break
    event = _event(
        message, tx, debit_id, FAILED if returned else SUCCEEDED, at, data,
        amount=amount[0], currency=amount[1], reason=reason,
    )  # fmt: skip
    return _Draft(f"{message.node.file}:{tx.where}", event, at, returned)


def _bank_code(node: _Node) -> tuple[str, ...]:
    """``(domain, family, sub-family)`` of the bank transaction code, as far as given."""
    parts = (
        node.text("BkTxCd/Domn/Cd"),
        node.text("BkTxCd/Domn/Fmly/Cd"),
        node.text("BkTxCd/Domn/Fmly/SubFmlyCd"),
    )
    given = []
    for part in parts:
        if part is None:
            break
        given.append(part)
    return tuple(given)


# Values


def _event(
    message: _Message,
    node: _Node,
    debit_id: str,
    kind: str,
    at: datetime,
    data: dict[str, Any],
    suffix: str = "",
    *,
    amount: int | None = None,
    currency: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    return event_record(
        event_id=message.event_id(node, suffix),
        debit_id=debit_id,
        type=kind,
        occurred_at=at,
        source=SOURCES[message.kind],
        amount=amount,
        currency=currency,
        reason=reason,
        data=data,
    )


def _time(node: _Node, name: str, zone: tzinfo) -> datetime:
    text = node.need(name)
    try:
        return aware_time(text, zone, example="2018-03-13T10:09:01")
    except ValueError as exc:
        raise node.fail(str(exc), name) from None


def _date_or_time(node: _Node, name: str, zone: tzinfo) -> datetime:
    """``<Dt>`` (the start of that day in ``zone``) or ``<DtTm>`` under ``name``."""
    if node.text(f"{name}/DtTm"):
        return _time(node, f"{name}/DtTm", zone)
    text = node.need(f"{name}/Dt")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        problem = f"expected an ISO 8601 date such as 2019-05-19, got {text!r}"
        raise node.fail(problem, f"{name}/Dt") from None
    return aware_time(datetime.combine(day, time()), zone)  # the start of that day


def _amount(node: _Node, name: str) -> tuple[int, str]:
    """Minor units by the currency's exponent ("1.5" CHF is 150), and the currency."""
    text = node.need(name)
    element = node.element.find(name)
    assert element is not None  # need() found it
    currency = (element.get("Ccy") or "").strip()
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise node.fail(f"expected a Ccy attribute such as EUR, got {currency!r}", name)
    exponent = EXPONENTS.get(currency, 2)
    try:
        value = Decimal(text).scaleb(exponent)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or not 0 <= value < 2**63 or value != value.to_integral_value():
        raise node.fail(
            f"expected an amount >= 0 with at most {exponent} decimals for {currency}, "
            f"got {text!r}",
            name,
        )
    return int(value), currency
