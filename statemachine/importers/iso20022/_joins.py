"""Joins between the messages of an import: which debit a status or a notification is about.

A debit is one transaction of an instruction, ``MsgId/PmtInfId/EndToEndId``. A status report
or a bank notification names the original instruction's references as far as it knows them;
the one known transaction whose references agree with every reference given is its debit.
"""

from __future__ import annotations

from typing import Final

import attrs

# The EndToEndId written when the instruction gave none: it names no transaction.
NOT_PROVIDED: Final = "NOTPROVIDED"


@attrs.frozen
class Refs:
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


class Known:
    """Transactions named by the instructions and status reports of the import, for joins."""

    def __init__(self) -> None:
        self.instructions: dict[tuple[str, str], dict[str, Refs]] = {}
        # ("EndToEndId" or "InstrId", value) -> {debit_id: references}
        self._by_ref: dict[tuple[str, str], dict[str, Refs]] = {}

    def add(self, refs: Refs, debit_id: str, instruction: bool) -> None:
        if instruction and refs.msg_id and refs.pmt_inf_id:
            payment = self.instructions.setdefault((refs.msg_id, refs.pmt_inf_id), {})
            payment[debit_id] = refs
        for key in _keys(refs):
            self._by_ref.setdefault(key, {})[debit_id] = refs

    def payments(self, msg_id: str) -> list[str]:
        return [pmt for msg, pmt in self.instructions if msg == msg_id]

    def match(self, refs: Refs) -> str | None:
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

    def debit_id(self, refs: Refs) -> str | None:
        if refs.complete():
            return f"{refs.msg_id}/{refs.pmt_inf_id}/{refs.end_to_end_id}"
        return self.match(refs) or refs.own_id()


def _keys(refs: Refs) -> list[tuple[str, str]]:
    pairs = (("EndToEndId", refs.end_to_end_id), ("InstrId", refs.instr_id))
    return [(name, value) for name, value in pairs if value]
