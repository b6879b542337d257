"""XES import: traces become debits through a mapping; bad logs and mappings are refused."""

from __future__ import annotations

import gzip
import tempfile
from collections import Counter
from datetime import timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import debit_of
from support import replayed as replay_imported

from statemachine import Engine, Event
from statemachine.importers import ImportFailed, ImportOptions, Record, read

BPIC = "eventlogs_pm4py-core/bpic2012.xes.gz"
BILLING = "eventlogs_pm4py-core/14_Billing_1t_per_variant.xes.gz"


def event(activity: str, at: str, lifecycle: str = "COMPLETE") -> str:
    return (
        f'<event><string key="concept:name" value="{activity}"/>'
        f'<string key="lifecycle:transition" value="{lifecycle}"/>'
        f'<date key="time:timestamp" value="{at}"/></event>\n'
    )


def trace(name: str, amount: str, *events: str) -> str:
    head = f'<trace><string key="concept:name" value="{name}"/>\n'
    return head + f'<string key="AMOUNT_REQ" value="{amount}"/>\n' + "".join(events) + "</trace>\n"


def log(*traces: str) -> str:
    return '<log xmlns="http://www.xes-standard.org/">\n' + "".join(traces) + "</log>\n"


APPROVED = trace(
    "1",
    "1.50",
    event("A_SUBMITTED", "2011-10-01T00:38:44.546+02:00"),
    event("A_PARTLYSUBMITTED", "2011-10-01T00:38:45+02:00"),
    event("W_Completeren aanvraag", "2011-10-01T00:39:00+02:00", "START"),
    event("A_APPROVED", "2011-10-02T10:00:00+02:00"),
    event("A_ACTIVATED", "2011-10-02T10:00:01+02:00"),
)
DECLINED = trace(
    "2",
    "5000",
    event("A_SUBMITTED", "2011-10-01T01:00:00+02:00"),
    event("A_DECLINED", "2011-10-01T01:00:30+02:00"),
)
OPEN = trace(
    "3",
    "0",
    event("A_SUBMITTED", "2011-10-03T09:00:00+02:00"),
    event("A_PARTLYSUBMITTED", "2011-10-03T09:00:01+02:00"),
)


def write(folder: Path, text: str | bytes, name: str = "log.xes") -> Path:
    path = folder / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def records(*paths: Path, **options: Any) -> list[Record]:
    return list(read("xes", paths, ImportOptions(**options)))


def replayed(found: list[Record]) -> Engine:
    return replay_imported(found).engine


def test_applications_become_debits_in_the_states_the_bundled_mapping_implies(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, log(APPROVED, DECLINED, OPEN))
    found = records(path)
    assert found == records(path)  # ids and content are stable: a re-import is a duplicate
    origins = {item["event_id"]: origin for origin, item in found}
    events = {item["event_id"]: item for _, item in found}
    assert len(found) == 8  # the W_ work item is skipped
    assert origins["xes:bpic2012/1:4"] == f"{path}:/log/trace[1]/event[4]"
    assert events["xes:bpic2012/1:1"]["amount"] == 150
    assert events["xes:bpic2012/1:1"]["currency"] == "EUR"
    assert events["xes:bpic2012/2:2"]["reason"] == "A_DECLINED"
    assert events["xes:bpic2012/2:2"]["data"] == {
        "trace": "2",
        "activity": "A_DECLINED",
        "lifecycle": "COMPLETE",
    }
    engine = replayed(found)
    states = {d: debit_of(engine, f"bpic2012/{d}").state for d in "123"}
    assert states == {"1": "succeeded", "2": "failed", "3": "submitted"}


def test_a_lifecycle_key_wins_and_naive_times_are_read_in_the_given_zone(tmp_path: Path) -> None:
    mapping = write(
        tmp_path,
        'source = "settlement"\n[amount]\ndefault = 0\n'
        '[activities]\nNEW = "created"\nBILL = "succeeded"\n"BILL+start" = "submitted"\n',
        "billing.toml",
    )
    body = event("NEW", "2013-01-02T08:00:00") + event("BILL", "2013-01-03T08:00:00", "start")
    body += event("BILL", "2013-01-04T08:00:00", "complete")
    bare = log(trace("A", "n/a", body)).replace(' xmlns="http://www.xes-standard.org/"', "")
    path = write(tmp_path, bare)  # no namespace, as XES 2.0 writers may leave it
    found = records(path, mapping=mapping, timezone=timezone(timedelta(hours=1)))
    assert [item["type"] for _, item in found] == ["created", "submitted", "succeeded"]
    assert found[0][1]["occurred_at"] == "2013-01-02T08:00:00+01:00"
    assert found[0][1]["amount"] == 0
    assert debit_of(replayed(found), "A").state == "succeeded"


@given(st.decimals(min_value=0, max_value=10**12, places=2))
def test_amounts_are_exact_minor_units(amount: Decimal) -> None:
    with tempfile.TemporaryDirectory() as folder:
        text = log(trace("1", str(amount), event("A_SUBMITTED", "2011-10-01T00:00:00+02:00")))
        [(_, created)] = records(write(Path(folder), text))
    assert created["amount"] == int(amount * 100)
    Event.from_dict(created)


@pytest.mark.parametrize("compress", [False, True], ids=["xes", "xes.gz"])
def test_a_truncated_log_is_refused_naming_the_file_and_element(
    tmp_path: Path, compress: bool
) -> None:
    text = log(APPROVED, DECLINED, *[OPEN] * 3000).encode()
    cut = text[: text.index(b"A_DECLINED") + 4]  # inside trace 2, event 2
    packed = gzip.compress(text)
    path = write(tmp_path, packed[: len(packed) // 2] if compress else cut, "cut.xes")
    with pytest.raises(ImportFailed) as failed:
        records(path)
    assert failed.value.path == str(path)
    assert "/log/trace[" in str(failed.value.where)
    if not compress:
        assert failed.value.where == "line 13, column 7, in /log/trace[2]/event[2]"


@pytest.mark.parametrize(
    "content",
    [
        "",
        '{"events": [{"type": "payments"}]}',
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"><GrpHdr/></Document>',
        "101 091000019 2310000001907181015A094101FEDERAL RESERVE BANK   MY BANK NAME",
    ],
    ids=["empty", "json", "iso20022", "nacha"],
)
def test_a_foreign_or_empty_file_is_refused(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content, "other.xes")
    with pytest.raises(ImportFailed, match=r"expected an XES log") as failed:
        records(path)
    assert str(failed.value).startswith(f"{path}: ")
    assert failed.value.where in ("/Document", "line 1, column 0", "line 1, column 1")


SUBMITTED = event("A_SUBMITTED", "2011-10-01T00:00:00Z")


@pytest.mark.parametrize(
    ("broken", "where", "problem"),
    [
        (trace("9", "UNKNOWN", SUBMITTED), "/log/trace[2]", "AMOUNT_REQ: expected an amount"),
        (trace("9", "2.005", SUBMITTED), "/log/trace[2]", "whole number of minor units"),
        (trace("9", "1", event("A_DECLINED", "soon")), "/log/trace[2]/event[1]", "time:timestamp"),
        (f"<trace>{SUBMITTED}</trace>", "/log/trace[2]", "'concept:name' naming the debit"),
    ],
    ids=["amount-text", "amount-fraction", "timestamp", "no-trace-name"],
)
def test_a_bad_trace_is_refused_naming_the_element(
    tmp_path: Path, broken: str, where: str, problem: str
) -> None:
    with pytest.raises(ImportFailed, match=problem) as failed:
        records(write(tmp_path, log(OPEN, broken, OPEN)))
    assert failed.value.where == where


GOOD = 'source = "gateway"\n[amount]\nattribute = "AMOUNT_REQ"\nscale = 100\n'


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (GOOD + '[activities]\nA_APPROVED = "paid"\n', 'key activities."A_APPROVED"'),
        (GOOD + '[activities]\nA_CANCELLED = "retried"\n', 'key activities."A_CANCELLED"'),
        (GOOD.replace('source = "gateway"', "") + '[activities]\nX = "failed"\n', "key source"),
        (GOOD.replace("100", "0") + '[activities]\nX = "failed"\n', "key amount.scale"),
        (GOOD.replace("scale = 100\n", "") + '[activities]\nX = "failed"\n', "key amount.scale"),
        ('source = "gateway"\n[activities]\nA_SUBMITTED = "created"\n', "key amount"),
        (GOOD + '[activites]\nX = "failed"\n', "key activites"),
        (GOOD, "key activities"),
        (GOOD + "[activities\n", None),
    ],
    ids=[
        "unknown-type",
        "retried",
        "no-source",
        "zero-scale",
        "no-scale",
        "no-amount",
        "typo",
        "no-activities",
        "not-toml",
    ],
)
def test_a_bad_mapping_is_refused_naming_the_key(
    tmp_path: Path, text: str, key: str | None
) -> None:
    mapping = write(tmp_path, text, "mapping.toml")
    with pytest.raises(ImportFailed) as failed:
        records(write(tmp_path, log(OPEN)), mapping=mapping)
    assert (failed.value.path, failed.value.where) == (str(mapping), key)


@pytest.mark.slow
def test_bpic2012_imports_every_application(realdata: Path) -> None:
    found = records(realdata / BPIC)
    kinds = Counter(item["type"] for _, item in found)
    assert kinds == {"created": 13087, "submitted": 13087, "failed": 10442, "succeeded": 4492}
    assert len({item["debit_id"] for _, item in found}) == 13087
    assert len({item["event_id"] for _, item in found}) == len(found)
    origin, first = found[0]
    assert origin == f"{realdata / BPIC}:/log/trace[1]/event[1]"
    assert first["debit_id"] == "bpic2012/173688"
    assert (first["amount"], first["currency"]) == (2_000_000, "EUR")  # AMOUNT_REQ 20000 euros
    assert first["occurred_at"] == "2011-10-01T00:38:44.546000+02:00"
    assert all(Event.from_dict(item) for _, item in found[::97])


def test_a_bpic2012_slice_replays_to_the_states_the_mapping_implies(realdata: Path) -> None:
    found: list[Record] = []
    for origin, item in read("xes", [realdata / BPIC]):
        if "/log/trace[501]/" in origin:
            break
        found.append((origin, item))
    activities: dict[str, set[str]] = {}
    for _, item in found:
        activities.setdefault(item["debit_id"], set()).add(item["data"]["activity"])
    engine = replayed(found)
    for debit_id, seen in activities.items():
        expected = (
            "succeeded"
            if "A_APPROVED" in seen
            else "failed"
            if seen & {"A_DECLINED", "A_CANCELLED"}
            else "submitted"
        )
        assert debit_of(engine, debit_id).state == expected, debit_id
    assert len(activities) == 500
    verdicts = Counter(e.verdict for d in list(activities)[:50] for e in engine.history(d))
    assert set(verdicts) <= {"applied", "stale"}, verdicts


def test_the_billing_log_imports_with_its_own_mapping(realdata: Path, tmp_path: Path) -> None:
    mapping = write(
        tmp_path,
        'source = "gateway"\n[debit]\nprefix = "billing/"\n[amount]\ndefault = 0\n'
        '[activities]\nNEW = "created"\nRELEASE = "submitted"\nBILLED = "succeeded"\n'
        'DELETE = "failed"\n',
        "billing.toml",
    )
    found = records(realdata / BILLING, mapping=mapping, timezone=timezone(timedelta(hours=1)))
    assert len({item["debit_id"] for _, item in found}) == 1020
    assert Counter(item["type"] for _, item in found)["created"] == 2155
    assert found[0][1]["occurred_at"] == "2012-12-16T19:33:10+01:00"
    engine = replayed(found)
    assert debit_of(engine, "billing/A").state == "succeeded"
    assert debit_of(engine, "billing/B").state == "failed"
    debits = [engine.get(d) for d in {item["debit_id"] for _, item in found}]
    states = Counter(debit.state for debit in debits if debit is not None)
    assert states == {"succeeded": 725, "failed": 184, "submitted": 79, "pending": 32}
