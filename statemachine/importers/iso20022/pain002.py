"""pain.002, the payment status reports: ``submitted``, ``succeeded`` or ``failed``.

A status is given for a transaction (``TxSts``), a payment information (``PmtInfSts``) or the
whole group (``GrpSts``); an enclosing level's status stands for the transactions a report does
not list, and ``PART`` leaves it to each transaction's own status.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

from ...events import FAILED, SUBMITTED, SUCCEEDED
from .. import ImportTally
from ._joins import NOT_PROVIDED, Known, Refs
from ._message import Draft, Message, Node, event_of

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
_UNDECIDED: Final = "pain.002 statuses that decide nothing by themselves"


def reported(message: Message) -> Iterator[Refs]:
    """The references of every transaction a status report lists."""
    _, original = _original(message)
    for payment in message.node.children("OrgnlPmtInfAndSts"):
        pmt_inf_id = payment.need("OrgnlPmtInfId")
        for tx in payment.children("TxInfAndSts"):
            yield _tx_refs(original, pmt_inf_id, tx)


def _original(message: Message) -> tuple[Node, str]:
    """The report's group part and the MsgId of the message it reports on."""
    group = message.node.child("OrgnlGrpInfAndSts")
    if group is None:
        raise message.node.fail("expected <OrgnlGrpInfAndSts>, found none", "OrgnlGrpInfAndSts")
    return group, group.need("OrgnlMsgId")


def _tx_refs(original: str, pmt_inf_id: str, tx: Node) -> Refs:
    end_to_end = tx.text("OrgnlEndToEndId")
    end_to_end = None if end_to_end == NOT_PROVIDED else end_to_end
    return Refs(original, pmt_inf_id, end_to_end, tx.text("OrgnlInstrId"))


@attrs.frozen
class _Status:
    """A status that decides its transactions: TxSts, PmtInfSts or GrpSts, and its code."""

    level: str
    code: str

    @classmethod
    def of(cls, node: Node, level: str, otherwise: _Status | None = None) -> _Status | None:
        """The node's status; without one, ``otherwise`` (the enclosing level's)."""
        code = node.text(level)
        if code is None:
            return otherwise
        # PART leaves it to each transaction's own status; an unknown code decides nothing.
        return cls(level, code) if code in STATUSES else None


def statuses(message: Message, known: Known, tally: ImportTally) -> Iterator[Draft]:
    """The event of every transaction whose status the report decides."""
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


def _count_status(node: Node, level: str, instructed: bool, tally: ImportTally) -> None:
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
    message: Message,
    nodes: tuple[Node, ...],
    debit_id: str,
    refs: Refs,
    status: _Status,
    common: dict[str, str],
) -> Draft:
    """The event of one transaction; ``nodes`` from the status's element out to the group."""
    node, kind = nodes[0], STATUSES[status.code]
    data: dict[str, Any] = {**common, **_orgnl(refs), status.level: status.code}
    info = _first(*(_status_info(outer) for outer in nodes))
    if info:
        data["AddtlInf"] = info
    # One element may stand for many transactions: the debit keeps their event ids apart.
    suffix = "" if node.element.tag == "TxInfAndSts" else f"#{debit_id}"
    reason = _first(*(_reason(outer) for outer in nodes)) if kind == FAILED else None
    event = event_of(message, node, debit_id, kind, message.created_at, data, suffix, reason=reason)
    return Draft(f"{message.node.file}:{node.where}", event, message.created_at)


def _orgnl(refs: Refs) -> dict[str, str]:
    data = {}
    if refs.end_to_end_id:
        data["OrgnlEndToEndId"] = refs.end_to_end_id
    if refs.instr_id:
        data["OrgnlInstrId"] = refs.instr_id
    return data


def _reason(node: Node) -> str | None:
    return node.text("StsRsnInf/Rsn/Cd") or node.text("StsRsnInf/Rsn/Prtry")


def _status_info(node: Node) -> str | None:
    texts = [(e.text or "").strip() for e in node.element.findall("StsRsnInf/AddtlInf")]
    return " ".join(text for text in texts if text) or None


def _first(*values: str | None) -> str | None:
    return next((value for value in values if value), None)
