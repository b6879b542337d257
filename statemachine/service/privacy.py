"""Customer contact details masked wherever the service shows or logs input: the contacts an
event's ``data.customer.contact`` names, and anything in free text that reads as a phone
number or an e-mail address, all with :func:`statemachine.messages.mask`.

>>> masked_text('reason: expected a scheme code, got "+8613800001234"')
'reason: expected a scheme code, got "+86******1234"'
>>> masked_data({"customer": {"contact": {"sms": "+8613800001234"}}})
{'customer': {'contact': {'sms': '+86******1234'}}}
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

from ..messages import mask

# A number of 7 or more digits standing alone (spaces between allowed: "+86 138 0000 1234";
# not a time's "2026-03-05" nor an id's "PM00123456"), or an e-mail address.
_CONTACT: Final = re.compile(r"(?<!\w)\+?\d(?: ?\d){6,}(?!\w)|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def masked_text(text: str) -> str:
    """``text`` with every phone number and e-mail address masked."""
    return _CONTACT.sub(lambda found: mask(found.group()), text)


def masked_data(value: Any) -> Any:
    """A copy of JSON-like ``value`` whose ``contact`` objects have their values masked."""
    if isinstance(value, dict):
        return {
            key: (
                {k: mask(v) if isinstance(v, str) else masked_data(v) for k, v in item.items()}
                if key == "contact" and isinstance(item, dict)
                else masked_data(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked_data(item) for item in value]
    return value


def masked_raw(raw: str | None) -> str | None:
    """Raw input as received, its contacts masked: read as JSON where it is, else as text."""
    if raw is None:
        return None
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return masked_text(raw)
    return masked_text(orjson.dumps(masked_data(parsed)).decode())
