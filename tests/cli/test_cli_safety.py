"""Commands that cannot harm by mistake, and bad input that ends in a clean message with the
documented exit code, never a traceback."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PG_DSN
from support import ev

from statemachine import Engine
from statemachine.cli import main

HEADER = "event_id,debit_id,type,attempt,occurred_at,source,amount,currency,reason,data"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "command",
    [["show", "d-1"], ["stats"], ["verify"], ["dispatch"], ["dispatch", "--sender", "print"]],
)
def test_read_only_commands_refuse_a_database_that_does_not_exist(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "mistyped.sqlite"
    code, out = invoke(*command, "--db", str(missing))
    assert code == 1
    assert f"Error: {missing}: no such database (nothing was created)" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not PG_DSN, reason="set STATEMACHINE_PG_DSN to test PostgreSQL")
@pytest.mark.parametrize(
    "command",
    [
        ["show", "d-1", "--db", "DB"],
        ["stats", "--db", "DB"],
        ["verify", "--db", "DB"],
        ["dispatch", "--db", "DB"],
        ["receipts", "-", "--db", "DB"],
        ["diff", "DB", "DB"],
    ],
    ids=["show", "stats", "verify", "dispatch", "receipts", "diff"],
)
def test_read_only_commands_refuse_a_postgresql_schema_that_does_not_exist(
    command: list[str],
) -> None:
    import psycopg

    assert PG_DSN is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    code, out = invoke(*(f"{PG_DSN}?schema={schema}" if w == "DB" else w for w in command))
    assert code == 1, out
    assert f"no statemachine schema {schema!r} (nothing was created)" in out
    with psycopg.connect(PG_DSN) as pg:
        found = pg.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        assert found.fetchall() == []


def test_diff_refuses_a_missing_database_and_exits_1_when_debits_differ(tmp_path: Path) -> None:
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    with Engine.open(a) as engine:
        engine.apply(ev("succeeded", 0))
    with Engine.open(b) as engine:
        engine.apply(ev("failed", 0))
    assert invoke("diff", str(a), str(tmp_path / "c.sqlite"))[0] == 1
    assert not (tmp_path / "c.sqlite").exists()
    code, out = invoke("diff", str(a), str(b))
    assert (code, out.splitlines()[-1]) == (1, "1 of 1 debits differ")
    assert invoke("diff", str(a), str(a)) == (0, "0 of 1 debits differ\n")


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_replay_of_a_log_it_cannot_read_leaves_no_database(tmp_path: Path, kind: str) -> None:
    log = tmp_path / "logs"
    if kind == "directory":
        log.mkdir()
    db = tmp_path / "out.sqlite"
    code, out = invoke("replay", str(log), "--db", str(db))
    assert code == 1
    assert f"Error: cannot read {log}: " in out
    assert not db.exists()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("empty.jsonl", ""),
        ("blank.jsonl", "\n\n   \n"),
        ("invalid.jsonl", '{"event_id": "x"}\nnot json\n'),
        ("legacy.jsonl", '{"type": "notice_sent", "debit_id": "d-1", "notice": "failed",'
                         ' "occurred_at": "2026-03-05T10:00:00+00:00"}\n'),
        ("columns.csv", "a,b,c\n1,2,3\n"),
    ],
)  # fmt: skip
def test_replay_of_a_log_with_no_events_sums_up_cleanly(
    tmp_path: Path, name: str, text: str
) -> None:
    log = tmp_path / name
    log.write_text(text)
    code, out = invoke("replay", str(log), "--db", str(tmp_path / "db.sqlite"))
    assert code == 0, out
    assert "debits by state     none" in out


def test_a_truncated_gzip_log_names_the_file_and_the_last_whole_line(tmp_path: Path) -> None:
    log = tmp_path / "march.jsonl.gz"
    whole = gzip.compress("".join(ev("submitted", n, debit_id=f"d-{n}").to_json() + "\n"
                                  for n in range(400)).encode())  # fmt: skip
    log.write_bytes(whole[: len(whole) * 2 // 3])
    code, out = invoke("replay", str(log), "--db", str(tmp_path / "db.sqlite"))
    assert code == 1
    assert f"Error: {log}: truncated or corrupt after line " in out
    assert "replay again to resume" in out


def test_the_summary_tells_this_run_from_the_database(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(ev("submitted", n, debit_id=f"d-{n}").to_json() + "\n"
                             for n in range(5)))  # fmt: skip
    second.write_text(ev("succeeded", 9, debit_id="d-0").to_json() + "\n")
    invoke("replay", str(first), "--db", str(db))
    code, out = invoke("replay", str(second), "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert lines[:4] == [
        "lines read          1",
        "events by verdict   applied 1 (this run)",
        "database totals:",
        "events by verdict   applied 6",
    ]


def test_replay_of_webhooks_without_payment_events_creates_no_database(
    tmp_path: Path, realdata: Path
) -> None:
    mandate = realdata / "gocardless_alphagov_pay-direct-debit-connector"
    code, out = invoke("replay", "--format", "gocardless",
                       str(mandate / "gocardless-webhook-mandate-active.json"),
                       "--db", str(tmp_path / "db.sqlite"))  # fmt: skip
    assert code == 1, out
    assert "no events in" in out
    assert "lines read" not in out  # no summary of an empty replay
    assert list(tmp_path.iterdir()) == []
