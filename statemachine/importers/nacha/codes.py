"""What NACHA's codes mean for a debit: transaction codes, and return reason codes mapped to
event types and to the step of a return they are.

>>> RETURN_TYPES["R01"], RETURN_TYPES["R07"], RETURN_TYPES["R68"]
('failed', 'reversed', 'succeeded')
>>> stage("R01"), stage("R68"), stage("R71")
('return', 'dishonored', 'contested')
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from ...events import FAILED, REVERSED, SUCCEEDED

# Live debits to a checking or savings account: each is one collection attempt.
DEBIT_ENTRIES: Final = frozenset({"27", "37"})
# Prenotes (x3, x8) and zero-dollar entries (x4, x9) move no money: they and their returns
# say nothing about a collection.
NO_MONEY: Final = frozenset(f"{kind}{last}" for kind in "2345" for last in "3489")
# Codes ending in 1 or 6 are "automated return or notification of change".
RETURN_ENTRIES: Final = frozenset({"21", "26", "31", "36", "41", "46", "51", "56"})
# Batches whose records have other layouts (advices, international): counted, not mapped.
UNSUPPORTED_SEC: Final = frozenset({"ADV", "IAT"})


def _codes(*spans: tuple[int, int]) -> list[str]:
    return [f"R{n:02d}" for first, last in spans for n in range(first, last + 1)]


# Authorisation disputes and the other 60-day (extended) returns: the debit was collected and
# the money is claimed back.
REVERSED_CODES: Final = ("R05", "R07", "R10", "R11", "R29", "R37", "R38", "R51", "R52", "R53")
# Every other return: the debit was never good (funds, account, format, routing, ...).
FAILED_CODES: Final = tuple(
    code for code in _codes((1, 53), (80, 85)) if code not in REVERSED_CODES
)
# The ODFI refuses a return (R68 untimely, ...): the original debit stands.
DISHONORED_CODES: Final = tuple(_codes((61, 70)))
# The RDFI insists on its return: the original return's type again.
CONTESTED_CODES: Final = tuple(_codes((71, 77)))

RETURN_TYPES: Final[Mapping[str, str]] = {
    **dict.fromkeys(FAILED_CODES, FAILED),
    **dict.fromkeys(REVERSED_CODES, REVERSED),
    **dict.fromkeys(DISHONORED_CODES, SUCCEEDED),
}
# One time per file: a later stage of one return gets a later instant, as in the scheme.
STAGE_DELAY: Final[Mapping[str, timedelta]] = {
    "return": timedelta(0),
    "dishonored": timedelta(seconds=1),
    "contested": timedelta(seconds=2),
}


def stage(code: str) -> str:
    """Which step of a return an addenda 99 reason code is: return, dishonored or contested."""
    if code in CONTESTED_CODES:
        return "contested"
    return "dishonored" if code in DISHONORED_CODES else "return"
