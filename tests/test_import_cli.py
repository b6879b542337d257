"""`statemachine import` and `replay --format`: all or nothing, whatever the format."""

from __future__ import annotations

from pathlib import Path

import orjson
from click.testing import CliRunner

from statemachine import Engine
from statemachine.cli import main

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
