"""An inquirer for `statemachine inquire` in tests: a gateway whose answers are a JSON file.

$GATEWAY_ANSWERS names a file mapping debit ids to the gateway's answer: an event's fields,
null for no news, or "unreachable" for a query that fails. Read at each question, so a test
can change what the gateway says between rounds."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from statemachine import Debit


def make() -> Callable[[Debit], dict[str, Any] | None]:
    answers = Path(os.environ["GATEWAY_ANSWERS"])

    def ask(debit: Debit) -> dict[str, Any] | None:
        answer = json.loads(answers.read_text(encoding="utf-8")).get(debit.debit_id)
        if answer == "unreachable":
            raise ConnectionError(f"gateway unreachable asking about {debit.debit_id}")
        return answer  # type: ignore[no-any-return]

    return ask


def not_a_function() -> str:
    return "an inquirer must be a function"
