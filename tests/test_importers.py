"""`statemachine.importers.read`: a format it does not know is the package's own error."""

from __future__ import annotations

from pathlib import Path

import pytest

from statemachine.errors import StateMachineError
from statemachine.importers import FORMATS, UnknownFormat, read, staged


def test_an_unknown_format_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "march.csv"
    path.write_text("event_id,debit_id\n")
    with pytest.raises(UnknownFormat) as caught:
        read("csv", [path])
    assert isinstance(caught.value, StateMachineError)
    assert str(caught.value) == (
        "format: expected one of gocardless, iso20022, nacha, xes, got 'csv'"
    )
    assert caught.value.format == "csv"
    assert sorted(FORMATS) == ["gocardless", "iso20022", "nacha", "xes"]


def test_the_format_is_checked_before_the_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ach"
    with pytest.raises(UnknownFormat, match="got 'NACHA'"):
        read("NACHA", [missing])  # names are exact: the format is wrong, whatever the files
    with pytest.raises(UnknownFormat), staged("ach", [missing]):
        pass
