"""`statemachine receipts` and receipt lines in `statemachine replay` (N8), on a database."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from conftest import DURABLE, Target
from support import T0, ev

from statemachine import Engine, ManualClock, RecordingSender
from statemachine.cli import main

NOTICE = "d-1#1:succeeded"


def receipt(
    status: str, channel: str = "sms", notice_id: str = NOTICE, at: str = "10:00:09"
) -> bytes:
    return orjson.dumps({"notice_id": notice_id, "channel": channel, "status": status,
                         "occurred_at": f"2026-03-05T{at}+08:00", "ref": "R-1"})  # fmt: skip


@pytest.mark.parametrize("store_kind", DURABLE, indirect=True)
def test_receipts_are_recorded_and_bad_lines_named_and_kept(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Engine.open(target.url, clock=ManualClock(T0)) as engine:
        engine.apply(ev("succeeded", 0))
        engine.apply(ev("succeeded", 0, debit_id="d-2"))
        engine.dispatch_due([RecordingSender("sms"), RecordingSender("push")])
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)  # the origins name the file as given: r.jsonl:3
    Path("r.jsonl").write_bytes(
        b"\n".join(
            [
                receipt("delivered"),
                receipt("delivered"),
                b"{not json",
                receipt("read"),
                b"[1, 2]",
                receipt("delivered", notice_id="nope"),
                receipt("undelivered", notice_id="d-2#1:succeeded"),
            ]
        )
    )
    result = runner.invoke(main, ["receipts", "r.jsonl", "--db", target.url])
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out == [
        "receipts by verdict applied 2, duplicate 1, rejected 4 (this run)",
        "delivery rate       50.0% overall, sms 50.0% (1 of 2)",
    ]
    errors = result.stderr.splitlines()
    assert errors[0].startswith("r.jsonl:3: rejected: line: expected a JSON object, got ")
    assert errors[1:] == [
        "r.jsonl:4: rejected: status: expected 'delivered' or 'undelivered', got 'read'",
        "r.jsonl:5: rejected: line: expected a JSON object, got [1, 2]",
        "r.jsonl:6: rejected: unknown notice id 'nope'",
    ]
    assert "Traceback" not in result.output
    with Engine.open(target.url) as engine:
        rejected = [r for r in engine.receipts() if r.verdict == "rejected"]
        assert [(r.receipt.origin, r.receipt.raw) for r in rejected][:1] == [
            ("r.jsonl:3", "{not json")
        ]
        assert {n.debit_id: n.status for n in engine.notices()} == {
            "d-1": "delivered",
            "d-2": "queued",  # due again, for the next channel
        }
    result = CliRunner().invoke(main, ["stats", "--db", target.url])
    assert "delivery rate       50.0% overall, sms 50.0% (1 of 2)" in result.output
    assert "acceptance rate     100.0%" in result.output


def test_receipts_refuses_a_database_that_does_not_exist(tmp_path: Path) -> None:
    log = tmp_path / "r.jsonl"
    log.write_bytes(receipt("delivered"))
    missing = tmp_path / "missing.sqlite"
    result = CliRunner().invoke(main, ["receipts", str(log), "--db", str(missing)])
    assert result.exit_code == 1
    assert "no such database (nothing was created)" in result.output
    assert not missing.exists()
    result = CliRunner().invoke(main, ["receipts", str(tmp_path / "nope.jsonl"), "--db", "x"])
    assert (result.exit_code, result.output.strip()) == (
        1,
        f"Error: cannot read {tmp_path / 'nope.jsonl'}: no such file",
    )


def test_replay_reads_receipt_lines_and_shows_the_rate_per_channel(tmp_path: Path) -> None:
    log = tmp_path / "march.jsonl"
    event = {"event_id": "g1", "debit_id": "d-1", "type": "succeeded",
             "occurred_at": "2026-03-05T10:00:00+08:00"}  # fmt: skip
    log.write_bytes(
        b"\n".join([orjson.dumps(event), b'{"type": "receipt", ' + receipt("undelivered")[1:]])
        + b"\n"
        + b'{"type": "receipt", '
        + receipt("delivered", channel="push", at="10:05:00")[1:]
    )
    db = str(tmp_path / "march.sqlite")
    args = ["replay", str(log), "--db", db, "--channel", "sms", "--channel", "push"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "receipts by verdict applied 2 (this run)" in result.output
    assert "delivery rate       50.0% overall, push 100.0% (1 of 1), sms 0.0% (0 of 1)" in (
        result.output
    )
    with Engine.open(db) as engine:
        (notice,) = engine.notices()
    assert (notice.status, notice.channel, notice.tried) == ("delivered", "push", ("sms",))
