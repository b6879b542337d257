"""camt.054, the bank's debit and credit notifications: ``succeeded``, ``failed`` or ``reversed``.

A booked direct debit of the import is ``succeeded`` at its booking date; a return (a reversal
indicator, return information, or an unpaid, returned or cancelled direct debit by its bank
transaction code) is a draft whose type the whole import decides: ``reversed`` after a
collection, else ``failed``. Pending entries are not facts yet and are skipped; an information
(``INFO``) entry counts for its returns only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, tzinfo
from typing import Any, Final

from ...events import FAILED, SUCCEEDED
from .. import ImportTally
from ._joins import NOT_PROVIDED, Known, Refs
from ._message import Draft, Message, Node, amount_of, date_or_time, event_of

BOOKED, INFORMATION = "BOOK", "INFO"
# Bank transaction code families of direct debits: issued (creditor side), received (debtor side).
DIRECT_DEBITS: Final = frozenset({"IDDT", "RDDT"})
# Sub-families that are a direct debit coming back: unpaid, reversal after return, cancellation.
RETURNS: Final = frozenset({"UPDD", "PRDD", "RCDD"})


def notified(message: Message, known: Known, zone: tzinfo, tally: ImportTally) -> Iterator[Draft]:
    """The draft of every transaction of a booked entry that is about a debit."""
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
                at = date_or_time(entry, "BookgDt", zone)
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
                    if isinstance(found, Draft):
                        yield found
                    else:
                        tally.skip(*found)


def _transaction(
    message: Message,
    known: Known,
    tx: Node,
    batch: Node | None,
    at: datetime,
    entry_code: tuple[str, ...],
    entry_data: dict[str, Any],
    reversal: bool,
) -> Draft | tuple[str, str | None]:
    """The transaction's event, or why it has none and the value that says so."""
    end_to_end = tx.text("Refs/EndToEndId")
    refs = Refs(
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
            amount = amount_of(tx, place)
            break
    event = event_of(
        message, tx, debit_id, FAILED if returned else SUCCEEDED, at, data,
        amount=amount[0], currency=amount[1], reason=reason,
    )  # fmt: skip
    return Draft(f"{message.node.file}:{tx.where}", event, at, returned)


def _bank_code(node: Node) -> tuple[str, ...]:
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
