"""pain.008, the creditor's direct-debit instructions: each transaction becomes ``created``.

A transaction is one debit, ``MsgId/PmtInfId/EndToEndId``, with its instructed amount.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...events import CREATED
from .. import ImportTally
from ._joins import Refs
from ._message import Draft, Message, Node, amount_of, event_of


def instructions(message: Message) -> Iterator[tuple[Node, Node, Refs, str]]:
    """Every transaction as ``(payment information, transaction, references, debit_id)``."""
    for payment in message.node.children("PmtInf"):
        pmt_inf_id = payment.need("PmtInfId")
        for tx in payment.children("DrctDbtTxInf"):
            end_to_end = tx.need("PmtId/EndToEndId")
            refs = Refs(message.msg_id, pmt_inf_id, end_to_end, tx.text("PmtId/InstrId"))
            yield payment, tx, refs, f"{message.msg_id}/{pmt_inf_id}/{end_to_end}"


def created(message: Message, tally: ImportTally) -> Iterator[Draft]:
    """The ``created`` event of every transaction, at the message's creation time."""
    for payment, tx, refs, debit_id in instructions(message):
        tally.read += 1
        amount, currency = amount_of(tx, "InstdAmt")
        data: dict[str, Any] = refs.as_data()
        for key, value in (
            ("MndtId", tx.text("DrctDbtTx/MndtRltdInf/MndtId")),
            ("SeqTp", payment.text("PmtTpInf/SeqTp")),
            ("ReqdColltnDt", payment.text("ReqdColltnDt")),
        ):
            if value:
                data[key] = value
        event = event_of(
            message, tx, debit_id, CREATED, message.created_at, data,
            amount=amount, currency=currency,
        )  # fmt: skip
        yield Draft(f"{message.node.file}:{tx.where}", event, message.created_at)
