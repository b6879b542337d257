"""`statemachine.importers.read`: a format it does not know is the package's own error, and the
tally counts the events it gave."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from statemachine.errors import StateMachineError
from statemachine.importers import FORMATS, ImportTally, UnknownFormat, read, staged


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


def test_the_tally_counts_the_events_given_once_they_are(tmp_path: Path) -> None:
    body = tmp_path / "hook.json"
    hooks = [
        {"id": f"EV{n}", "created_at": "2026-03-05T10:00:00.000Z", "resource_type": kind,
         "action": action, "links": {kind[:-1]: "X1"}, "details": {}}
        for n, (kind, action) in enumerate(
            [("payments", "submitted"), ("mandates", "active"), ("payments", "confirmed")]
        )
    ]  # fmt: skip
    body.write_bytes(orjson.dumps({"events": hooks}))
    tally = ImportTally()
    records = read("gocardless", [body], tally=tally)
    assert tally.events == 0  # nothing is read before the records are
    assert len(list(records)) == tally.events == 2
    assert tally.describe() == (
        "read 3 webhook events, skipped 1: 1 of a resource type other than payments (mandates)"
    )
    staged_tally = ImportTally()
    with staged("gocardless", [body], tally=staged_tally) as replayed:
        assert staged_tally.events == 2  # complete before anything is replayed
        assert len(list(replayed)) == 2
