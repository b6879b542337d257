"""`statemachine import` and `replay --format`: all or nothing, whatever the format."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from statemachine import Engine
from statemachine.cli import main
from statemachine.importers.xes import DEFAULT_MAPPING

BODY = {
    "events": [
        {"id": "EV1", "created_at": "2026-03-05T10:00:00.000Z", "resource_type": "payments",
         "action": "submitted", "links": {"payment": "PM1"}, "details": {}},
        {"id": "EV2", "created_at": "2026-03-07T10:00:00.000Z", "resource_type": "payments",
         "action": "confirmed", "links": {"payment": "PM1"}, "details": {}},
    ]
}  # fmt: skip


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_import_writes_events_in_the_event_format(tmp_path: Path) -> None:
    body, out = tmp_path / "hook.json", tmp_path / "events.jsonl"
    body.write_bytes(orjson.dumps(BODY))
    code, _ = invoke("import", "gocardless", str(body), "-o", str(out))
    assert code == 0
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(e["debit_id"], e["type"]) for e in events] == [
        ("PM1", "submitted"),
        ("PM1", "succeeded"),
    ]
    code, output = invoke("replay", str(out))  # the written file replays as a plain log
    assert code == 0
    assert "succeeded 1" in output


def test_a_bad_file_stops_the_import_and_nothing_is_written(tmp_path: Path) -> None:
    good, bad, out = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "events.jsonl"
    good.write_bytes(orjson.dumps(BODY))
    bad.write_bytes(orjson.dumps(BODY)[:-20])  # truncated
    code, output = invoke("import", "gocardless", str(good), str(bad), "-o", str(out))
    assert code == 1
    assert "bad.json" in output
    assert not out.exists()
    assert set(tmp_path.iterdir()) == {good, bad}  # no temporary file left behind


def test_replay_format_reads_the_whole_import_before_writing(tmp_path: Path) -> None:
    good, bad, db = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "d.sqlite"
    good.write_bytes(orjson.dumps(BODY))
    bad.write_text("<Document/>")
    code, output = invoke("replay", "--format", "gocardless", str(good), str(bad), "--db", str(db))
    assert code == 1
    assert "bad.json" in output
    assert not db.exists()
    code, output = invoke("replay", "--format", "gocardless", str(good), "--db", str(db))
    assert code == 0
    with Engine.open(db) as engine:
        debit = engine.get("PM1")
        assert debit is not None
        assert debit.state == "succeeded"
        origin = engine.history("PM1")[0].origin
        assert origin is not None
        assert origin.startswith(str(good))


def test_an_unknown_timezone_is_refused_with_examples(tmp_path: Path) -> None:
    body = tmp_path / "hook.json"
    body.write_bytes(orjson.dumps(BODY))
    code, output = invoke("import", "gocardless", str(body), "--timezone", "Mars/Olympus")
    assert code == 2
    assert "Europe/London or +08:00" in output


MANDATE = {
    "events": [
        {"id": "EV9", "created_at": "2026-03-05T10:00:00.000Z", "resource_type": "mandates",
         "action": "active", "links": {"mandate": "MD1"}, "details": {}},
    ]
}  # fmt: skip


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_a_written_import_says_what_it_read_and_skipped(tmp_path: Path) -> None:
    body, out = tmp_path / "hook.json", tmp_path / "events.jsonl"
    body.write_bytes(orjson.dumps({"events": BODY["events"] + MANDATE["events"]}))
    result = run("import", "gocardless", str(body), "-o", str(out))
    assert result.exit_code == 0
    assert result.stderr == (
        f"2 events written to {out} (read 3 webhook events, skipped 1: "
        "1 of a resource type other than payments (mandates))\n"
    )


def test_an_import_without_events_says_why_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    body, out = tmp_path / "mandates.json", tmp_path / "events.jsonl"
    body.write_bytes(orjson.dumps(MANDATE))
    result = run("import", "gocardless", str(body), "-o", str(out))
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no events in {body}: read 1 webhook event, skipped 1: "
        "1 of a resource type other than payments (mandates)\n"
    )
    assert set(tmp_path.iterdir()) == {body}  # no output, no temporary file
    result = run("import", "gocardless", str(body))  # to standard output: nothing either
    assert (result.exit_code, result.stdout) == (1, "")


@pytest.mark.parametrize(
    ("format", "name", "why"),
    [
        ("xes", "eventlogs_pm4py-core/14_Billing_1t_per_variant.xes.gz",
         "read 12506 events, skipped 12506: 12506 whose activity is not in the mapping (NEW, "),
        ("nacha", "nacha_moov-io_ach/contested-return.ach",
         "read 1 entry, skipped 1: 1 returns of credits, by transaction code (22)"),
        ("gocardless", "gocardless_alphagov_pay-direct-debit-connector/"
         "gocardless-webhook-mandate-active.json",
         "read 1 webhook event, skipped 1: 1 of a resource type other than payments (mandates)"),
        ("iso20022", "iso20022_moov-io_iso20022/"
         "pain002-chdd-cor1_p_ch2909000000250094239_1110097483_0_2018031317221082.xml",
         "read 1 transaction or status, skipped 1: "
         "1 pain.002 PmtInfSts statuses whose pain.008 is not in the import (ACCP)"),
    ],
    ids=["xes-billing", "nacha-contested", "gocardless-mandate", "iso20022-lone-report"],
)  # fmt: skip
def test_real_files_without_events_are_reported_not_written(
    realdata: Path, tmp_path: Path, format: str, name: str, why: str
) -> None:
    out = tmp_path / "events.jsonl"
    result = run("import", format, str(realdata / name), "-o", str(out))
    assert result.exit_code == 1
    assert f"Error: no events in {realdata / name}: {why}" in result.stderr
    assert ("--mapping FILE" in result.stderr) == (format == "xes")
    assert not out.exists()


def test_xes_without_a_mapping_says_it_uses_the_bundled_one(tmp_path: Path) -> None:
    log = tmp_path / "log.xes"
    log.write_text("<log><trace><event/></trace></log>")
    result = run("import", "xes", str(log), "-o", str(tmp_path / "out.jsonl"))
    first = result.stderr.splitlines()[0]
    assert first == (
        f"no --mapping: using the bundled BPI Challenge 2012 mapping {DEFAULT_MAPPING}"
    )
    assert DEFAULT_MAPPING.name == "bpic2012.toml"
    mapping = tmp_path / "mine.toml"
    mapping.write_text('source = "gateway"\n[activities]\nX = "failed"\n')
    result = run("import", "xes", str(log), "--mapping", str(mapping))
    assert "no --mapping" not in result.stderr


@pytest.mark.parametrize(
    ("format", "text"),
    [
        ("iso20022", '<?xml version="1.0" encoding="UTF-3"?>\n<Document/>'),
        ("xes", '<?xml version="1.0" encoding="UTF-3"?>\n<log/>'),
    ],
)
def test_an_unknown_encoding_is_refused_without_a_traceback(
    tmp_path: Path, format: str, text: str
) -> None:
    path, out = tmp_path / "in.xml", tmp_path / "events.jsonl"
    path.write_text(text)
    result = run("import", format, str(path), "-o", str(out))
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stderr.splitlines()[-1].startswith(f"Error: {path}: line 1: XML declaration:")
    assert "got encoding='UTF-3'" in result.stderr
    assert not out.exists()


def test_an_output_folder_that_does_not_exist_is_refused_by_name(tmp_path: Path) -> None:
    body, out = tmp_path / "hook.json", tmp_path / "missing" / "events.jsonl"
    body.write_bytes(orjson.dumps(BODY))
    result = run("import", "gocardless", str(body), "-o", str(out))
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stderr == f"Error: {out}: cannot be written (No such file or directory)\n"


@pytest.mark.parametrize(
    "args",
    [["import"], ["import", "paper", "x.json"], ["import", "gocardless", "no-such-file.json"]],
    ids=["no-format", "unknown-format", "missing-file"],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert "import [OPTIONS] FORMAT FILES..." in result.stderr


REAL_MANDATE = (
    "gocardless_alphagov_pay-direct-debit-connector/gocardless-webhook-mandate-active.json"
)


def test_replay_format_says_what_it_imported_as_import_does(tmp_path: Path) -> None:
    body, db = tmp_path / "hook.json", tmp_path / "d.sqlite"
    body.write_bytes(orjson.dumps({"events": BODY["events"] + MANDATE["events"]}))
    result = run("replay", "--format", "gocardless", str(body), "--db", str(db))
    assert result.exit_code == 0
    assert result.stderr == (
        f"2 events imported from {body} (read 3 webhook events, skipped 1: "
        "1 of a resource type other than payments (mandates))\n"
    )
    assert "lines read          2" in result.stdout
    with Engine.open(db, create=False) as engine:
        debit = engine.get("PM1")
        assert debit is not None
        assert debit.state == "succeeded"


@pytest.mark.parametrize("db", [True, False], ids=["db", "in-memory"])
def test_replay_format_without_events_exits_1_before_a_database_exists(
    tmp_path: Path, db: bool
) -> None:
    body = tmp_path / "mandates.json"
    body.write_bytes(orjson.dumps(MANDATE))
    store = ["--db", str(tmp_path / "d.sqlite")] if db else []
    result = run("replay", "--format", "gocardless", str(body), *store)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: no events in {body}: read 1 webhook event, skipped 1: "
        "1 of a resource type other than payments (mandates)\n"
    )
    assert result.stdout == ""  # no summary of an empty replay
    assert set(tmp_path.iterdir()) == {body}  # no database, no journal, no temporary file


def test_replay_format_of_a_real_mandate_webhook_says_the_same_as_import(
    realdata: Path, tmp_path: Path
) -> None:
    path, db = realdata / REAL_MANDATE, tmp_path / "d.sqlite"
    imported = run("import", "gocardless", str(path), "-o", str(tmp_path / "events.jsonl"))
    replayed = run("replay", "--format", "gocardless", str(path), "--db", str(db))
    assert (replayed.exit_code, imported.exit_code) == (1, 1)
    assert (
        replayed.stderr
        == imported.stderr
        == (
            f"Error: no events in {path}: read 1 webhook event, skipped 1: "
            "1 of a resource type other than payments (mandates)\n"
        )
    )
    assert list(tmp_path.iterdir()) == []


def test_replay_format_xes_names_the_mapping_it_uses_and_suggests_another(tmp_path: Path) -> None:
    log, db = tmp_path / "log.xes", tmp_path / "d.sqlite"
    log.write_text(
        '<log><trace><event><string key="concept:name" value="X"/></event></trace></log>'
    )
    result = run("replay", "--format", "xes", str(log), "--db", str(db))
    assert result.exit_code == 1
    first, *_, last = result.stderr.splitlines()
    assert first == f"no --mapping: using the bundled BPI Challenge 2012 mapping {DEFAULT_MAPPING}"
    assert last.startswith(f"Error: no events in {log}: read ")
    assert last.endswith("; give a mapping that fits the log with --mapping FILE")
    assert not db.exists()
