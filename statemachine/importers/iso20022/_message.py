"""One ISO 20022 message read from its file, its elements, and the values in them.

A file is one message, recognised by its message element below ``<Document>``; elements are
read by local name, whatever the namespace. Every element is a :class:`Node` that knows its
path, so that each error names the file and the element it is about.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

import attrs

from .. import ImportFailed, _xml
from .._common import aware_time, event_record

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
class Node:
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

    def child(self, name: str) -> Node | None:
        found = self.element.find(name)
        return None if found is None else Node(found, f"{self.where}/{name}", self.file)

    def children(self, name: str) -> list[Node]:
        return [
            Node(element, f"{self.where}/{name}[{number}]", self.file)
            for number, element in enumerate(self.element.findall(name), 1)
        ]


@attrs.frozen
class Message:
    kind: str
    node: Node
    msg_id: str
    created_at: datetime

    def event_id(self, node: Node, suffix: str = "") -> str:
        """The message's MsgId and the element's place in it: the same file, the same ids."""
        return f"{PREFIX}{self.msg_id}{node.where.removeprefix(self.node.where)}{suffix}"


@attrs.frozen
class Draft:
    """An event before the import is complete: a return's type depends on the whole import."""

    origin: str
    event: dict[str, Any]
    at: datetime
    returned: bool = False


# Reading a file


def load(path: Path, zone: tzinfo) -> Message:
    """The file's message: its kind, MsgId and creation time; a file that is none fails."""
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
    node = Node(body, f"/Document/{body.tag}", path)
    kind = MESSAGES.get(body.tag)
    if kind is None:
        found = _MESSAGE_NAME.search(namespace)
        name = FOREIGN.get(body.tag) or (found.group() if found else "another message")
        raise node.fail(f"expected {EXPECTED}, got {name} (<{body.tag}>)")
    return Message(kind, node, node.need("GrpHdr/MsgId"), time_of(node, "GrpHdr/CreDtTm", zone))


# Values


def event_of(
    message: Message,
    node: Node,
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
    """The event of ``node``, its id from the message and the node's place in it."""
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


def time_of(node: Node, name: str, zone: tzinfo) -> datetime:
    """The ISO 8601 time under ``name``, read in ``zone`` when it has no offset."""
    text = node.need(name)
    try:
        return aware_time(text, zone, example="2018-03-13T10:09:01")
    except ValueError as exc:
        raise node.fail(str(exc), name) from None


def date_or_time(node: Node, name: str, zone: tzinfo) -> datetime:
    """``<Dt>`` (the start of that day in ``zone``) or ``<DtTm>`` under ``name``."""
    if node.text(f"{name}/DtTm"):
        return time_of(node, f"{name}/DtTm", zone)
    text = node.need(f"{name}/Dt")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        problem = f"expected an ISO 8601 date such as 2019-05-19, got {text!r}"
        raise node.fail(problem, f"{name}/Dt") from None
    return aware_time(datetime.combine(day, time()), zone)  # the start of that day


def amount_of(node: Node, name: str) -> tuple[int, str]:
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
