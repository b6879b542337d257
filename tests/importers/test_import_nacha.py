"""NACHA ACH files imported as events, proved by replaying them through the engine."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import debit_of, replayed

from statemachine import Event
from statemachine.importers import ImportFailed, ImportOptions, Record, read

FIXTURES = "nacha_moov-io_ach"
TRACE = "121042880000001"  # the outbound debit of every built file


def entry(code: str, amount: int, trace: str, *addenda: str) -> list[str]:
    """An entry detail record and its addenda records."""
    head = f"6{code}231380104{'12345678':17}{amount:010d}{'LOAN-42':15}{'Receiver Name':22}  "
    return [head + ("1" if addenda else "0") + trace, *addenda]


def returned(code: str, original: str = TRACE) -> str:
    """An addenda 99 of a return: code, original trace, original RDFI, information, trace."""
    return f"799{code}{original}      23138010{'':44}091000010000001"


def dishonored(code: str, returned_code: str = "01", original: str = TRACE) -> str:
    """An addenda 99 of a dishonored return; returned_code is the code of the return it refuses."""
    return f"799{code}{original}      23138010   091000010000001179{returned_code}{'':21}{TRACE}"


def contested(code: str, returned_code: str = "01", original: str = TRACE) -> str:
    """An addenda 99 of a contested dishonored return (of an R68 dishonor)."""
    return (f"799{code}{original}23042423138010164091000010000001165{returned_code}"
            f"12104288000000916668 {TRACE}")  # fmt: skip


def ach(*entries: list[str], created: str = "2304211201") -> str:
    """A file of one batch with correct counts and totals."""
    records = [record for lines in entries for record in lines]
    debit = sum(int(r[29:39]) for r in records if r[0] == "6" and r[2] in "56789")
    credit = sum(int(r[29:39]) for r in records if r[0] == "6" and r[2] in "1234")
    totals = f"{len(records):06d}{0:010d}{debit:012d}{credit:012d}"
    return "\n".join([
        f"101 231380104 121042882{created}A094101{'Federal Reserve Bank':23}{'My Bank':31}",
        f"5200{'ACME Corporation':16}{'':20}121042882 PPD{'LOAN':10}{'':6}230424   1121042880000001",
        *records,
        f"8200{totals}121042882 {'':25}121042880000001",
        f"9000001000001{len(records):08d}{totals[6:]}{'':39}",
        "9" * 94,
    ]) + "\n"  # fmt: skip


def write(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content)
    return path


def state(records: list[Record], debit_id: str = TRACE) -> str:
    return str(debit_of(replayed(records).engine, debit_id).state)


def test_real_web_return_fails_its_debit_and_skips_the_credit_return(realdata: Path) -> None:
    path = realdata / FIXTURES / "return-WEB.ach"
    [(origin, event)] = read("nacha", [path])  # the R03 return of a credit (tx 21) is skipped
    assert origin == f"{path}:4"
    assert (event["debit_id"], event["type"], event["reason"]) == (
        "091400600000001",
        "failed",
        "R01",
    )
    assert (event["amount"], event["currency"], event["source"]) == (12354, "USD", "settlement")
    assert event["data"]["entry_trace"] == "091000017611242"
    assert state([(origin, event)], "091400600000001") == "failed"


def test_real_ppd_debit_is_one_submitted_debit(realdata: Path) -> None:
    path = realdata / FIXTURES / "ppd-debit.ach"
    [(origin, event)] = read("nacha", [path])
    assert Event.from_dict(event).debit_id == TRACE
    assert (origin, event["type"], event["amount"]) == (f"{path}:3", "submitted", 100000000)
    assert event["occurred_at"] == "2019-06-24T00:00:00+00:00"
    assert state([(origin, event)]) == "submitted"


def test_real_dishonored_returns_leave_the_debit_succeeded(realdata: Path) -> None:
    records = list(read("nacha", [realdata / FIXTURES / "dishonored-return.ach"]))
    assert [(e["debit_id"], e["type"], e["reason"]) for _, e in records] == [
        ("059999990000301", "succeeded", "R68"),
        ("059999990000301", "succeeded", "R68"),
    ]
    assert {e["data"]["return_reason"] for _, e in records} == {"R01"}
    assert state(records, "059999990000301") == "succeeded"


def test_real_contested_file_is_a_payroll_credit_but_its_addenda_map(
    realdata: Path, tmp_path: Path
) -> None:
    path = realdata / FIXTURES / "contested-return.ach"
    assert list(read("nacha", [path])) == []  # its one entry is a credit (tx 22): skipped
    addenda = [line for line in path.read_text().splitlines() if line.startswith("799")]
    debit = write(tmp_path, "debit.ach", ach(entry("27", 100, "121042880000001", *addenda)))
    records = list(read("nacha", [debit]))
    assert [(e["debit_id"], e["type"], e["reason"]) for _, e in records] == [
        ("099912340000015", "reversed", "R07"),
        ("059999990000301", "succeeded", "R68"),
        ("059999990000301", "failed", "R71"),  # the contested return was an R01
    ]
    replay = replayed(records)
    assert debit_of(replay.engine, "099912340000015").state == "reversed"
    assert debit_of(replay.engine, "059999990000301").state == "failed"


def test_real_issue702_maps_its_two_debit_returns(realdata: Path) -> None:
    records = list(read("nacha", [realdata / FIXTURES / "issue702.ach"]))  # CRLF, masked digits
    assert [(e["type"], e["reason"], e["amount"]) for _, e in records] == [
        ("failed", "R03", 101),
        ("failed", "R01", 10001),
    ]
    assert state(records, "101206100000001") == "failed"


OUTCOMES = {"R01": "failed", "R02": "failed", "R16": "failed", "R05": "reversed",
            "R07": "reversed", "R10": "reversed", "R29": "reversed"}  # fmt: skip


@pytest.mark.parametrize(("code", "expected"), OUTCOMES.items())
def test_a_return_after_the_outbound_debit_ends_in_its_codes_state(
    tmp_path: Path, code: str, expected: str
) -> None:
    outbound = write(tmp_path, "out.ach", ach(entry("27", 35600, TRACE)))
    back = ach(entry("26", 35600, "091000010000001", returned(code)), created="2304240900")
    records = list(read("nacha", [outbound, write(tmp_path, "ret.ach", back)]))
    assert [e["type"] for _, e in records] == ["submitted", expected]
    assert state(records) == expected


STAGES = [  # outbound, R01 return, R68 dishonor, R73 contest: one file each, days apart
    ach(entry("27", 500, TRACE), created="2304210900"),
    ach(entry("26", 500, "091000010000001", returned("R01")), created="2304230900"),
    ach(entry("26", 500, "121042880000007", dishonored("R68")), created="2304250900"),
    ach(entry("26", 500, "091000010000009", contested("R73")), created="2304270900"),
]


@settings(max_examples=20, deadline=None)
@given(order=st.permutations(range(4)))
def test_a_contested_dishonor_ends_failed_whatever_the_order(
    tmp_path_factory: pytest.TempPathFactory, order: list[int]
) -> None:
    folder = tmp_path_factory.mktemp("stages")
    paths = [write(folder, f"{i}.ach", STAGES[i]) for i in order]
    assert state(list(read("nacha", paths))) == "failed"
    uncontested = [path for path, i in zip(paths, order, strict=True) if i != 3]
    assert state(list(read("nacha", uncontested))) == "succeeded"


def test_stages_in_one_file_are_ordered_by_the_scheme(tmp_path: Path) -> None:
    one = ach(entry("26", 500, "091000010000001", returned("R01"), dishonored("R68")))
    assert state(list(read("nacha", [write(tmp_path, "a.ach", one)]))) == "succeeded"
    both = ach(entry("26", 500, "091000010000001", dishonored("R68"), contested("R71")))
    records = list(read("nacha", [write(tmp_path, "b.ach", both)]))
    assert [e["occurred_at"][11:19] for _, e in records] == ["12:01:01", "12:01:02"]
    assert state(records) == "failed"


def test_a_dishonored_reversal_reinstates_the_debit(tmp_path: Path) -> None:
    text = ach(entry("26", 500, "091000010000001", returned("R07"), dishonored("R68", "07")))
    records = list(read("nacha", [write(tmp_path, "r.ach", text)]))
    assert [event["type"] for _, event in records] == ["reversed", "reinstated"]
    replay = replayed(records)
    assert debit_of(replay.engine, TRACE).state == "succeeded"  # P3b: the collection stands
    assert [str(e.verdict) for e in replay.engine.history(TRACE)] == ["applied", "applied"]


def test_prenotes_zero_amounts_credits_and_notifications_of_change_are_skipped(
    tmp_path: Path,
) -> None:
    change = "798C01" + TRACE + "      23138010" + "1234567".ljust(29) + "".ljust(15) + TRACE
    text = ach(entry("28", 0, "121042880000002"), entry("27", 0, "121042880000003"),
               entry("22", 900, "121042880000004"), entry("26", 0, "121042880000005", change),
               entry("21", 900, "121042880000006", returned("R01")))  # fmt: skip
    assert list(read("nacha", [write(tmp_path, "skip.ach", text)])) == []


def test_reimport_gives_the_same_ids_and_replays_as_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "out.ach", ach(entry("27", 100, TRACE)))
    first, again = list(read("nacha", [path])), list(read("nacha", [path]))
    assert first == again
    assert first[0][1]["event_id"] == f"nacha:121042882-2304211201A:{TRACE}"
    history = replayed(first + again).engine.history(TRACE)
    assert [str(e.verdict) for e in history] == ["applied", "duplicate"]


def test_times_are_read_in_the_given_zone_and_unbroken_files_are_cut(tmp_path: Path) -> None:
    path = write(tmp_path, "flat.ach", ach(entry("27", 100, TRACE)).replace("\n", ""))
    options = ImportOptions(timezone=timezone(timedelta(hours=-5)))
    [(origin, event)] = read("nacha", [path], options)
    assert (origin, event["occurred_at"]) == (f"{path}:3", "2023-04-21T12:01:00-05:00")


GOOD = ach(entry("27", 100, TRACE))
LINES = GOOD.splitlines(keepends=True)
STRAY = "".join([*LINES[:3], returned("R01") + "\n", *LINES[3:]])  # after an entry without addenda


@pytest.mark.parametrize(
    ("content", "where", "problem"),
    [
        pytest.param(GOOD.replace("LOAN-42 ", "LOAN-42"), "line 3", "94-character", id="short"),
        pytest.param("".join(LINES[:3]) + LINES[3][:40], "line 4", "truncated record", id="cut"),
        pytest.param("".join(LINES[:4]), "line 4", "file control", id="no-file-control"),
        pytest.param(GOOD.replace("\n6", "\n4"), "line 3", "type 1, 5, 6, 7, 8 or 9", id="type"),
        pytest.param("<?xml version='1.0'?>\n<Document/>\n", "line 1", "XML", id="xml"),
        pytest.param('{"event_id": "gw-1"}\n', "line 1", "JSON", id="json"),
        pytest.param("", "line 1", "empty file", id="empty"),
        pytest.param("".join(LINES[:3] + LINES[2:]), "line 5", "count", id="extra-entry"),
        pytest.param(GOOD.replace("0000000100L", "0000000900L"), "line 4", "debit", id="amount"),
        pytest.param(STRAY, "line 4", "addenda record indicator 1", id="stray-addenda"),
        pytest.param(ach(entry("26", 5, TRACE, returned("X01"))), "line 4", "R01", id="code"),
        pytest.param(ach(entry("26", 5, TRACE)), "line 3", "addenda 99", id="bare-return"),
    ],
)
def test_bad_input_names_the_file_and_line(
    tmp_path: Path, content: str, where: str, problem: str
) -> None:
    good, bad = write(tmp_path, "good.ach", GOOD), write(tmp_path, "bad.ach", content)
    records = read("nacha", [good, bad])
    with pytest.raises(ImportFailed) as failure:
        next(records)  # nothing is yielded, not even the good file's event
    assert (failure.value.path, failure.value.where) == (str(bad), where)
    assert problem in failure.value.problem


def test_a_truncated_real_file_fails_at_its_last_line(realdata: Path, tmp_path: Path) -> None:
    real = (realdata / FIXTURES / "return-WEB.ach").read_text()
    cut = write(tmp_path, "return-WEB.ach", real[: real.index("\n9")])
    with pytest.raises(ImportFailed, match=r"return-WEB\.ach: line 9: .*truncated file"):
        list(read("nacha", [cut]))
