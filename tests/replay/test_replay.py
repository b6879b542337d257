"""The replay tool: JSONL and CSV inputs, --strict, the JSON report, diff between databases,
and the replay clock (N5)."""

from __future__ import annotations

import gzip
import json
import os
import random
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import T0, chromium, ev, interrupt_after, needs_chromium

from statemachine import Engine, Event, ManualClock
from statemachine.cli import main
from statemachine.replay import Replay, read_records, replay_logs
from statemachine.spec import bundled_path

EXAMPLE = str(bundled_path("examples", "car-loans-month.jsonl"))
HEADER = "event_id,debit_id,type,attempt,occurred_at,source,amount,currency,reason,data"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_csv_logs_with_the_event_columns(tmp_path: Path) -> None:
    log = tmp_path / "march.csv"
    log.write_text(
        f"{HEADER}\n"
        "c-1,loan-1,created,1,2026-03-05T09:00:00+08:00,internal,356000,CNY,,\n"
        'g-1,loan-1,succeeded,1,2026-03-05T10:00:00+08:00,gateway,,,,"{""batch"": 7}"\n'
        "g-2,loan-1,failed,one,2026-03-05T10:01:00+08:00,gateway,,,,\n"
    )
    records = list(read_records([log]))
    assert records[0][2] == {"event_id": "c-1", "debit_id": "loan-1", "type": "created", "attempt": 1,
                             "occurred_at": "2026-03-05T09:00:00+08:00", "source": "internal",
                             "amount": 356000, "currency": "CNY"}  # fmt: skip
    assert records[1][2]["data"] == {"batch": 7}
    code, out = invoke("replay", str(log))
    assert code == 0
    assert "succeeded 1" in out
    assert f"invalid             {log}:4: attempt: expected an integer >= 1, got 'one'" in out


def test_gzipped_csv(tmp_path: Path) -> None:
    log = tmp_path / "march.csv.gz"
    log.write_bytes(
        gzip.compress(
            f"{HEADER}\ng-1,loan-1,failed,1,2026-03-05T10:00:00Z,gateway,,,AM04,\n".encode()
        )
    )
    assert "failed 1" in invoke("replay", str(log))[1]


def test_csv_cells_that_python_cannot_read_are_refused_lines(tmp_path: Path) -> None:
    # Each of these rows stopped the replay with a traceback (csv.Error, ValueError from int()).
    log = tmp_path / "march.csv"
    log.write_bytes(
        f"{HEADER}\n".encode()
        + b"\r,\n"  # a carriage return in an unquoted cell
        + b"g-1,loan-1,failed,"
        + b"9" * 5000
        + b",2026-03-05T10:00:00Z,gateway,,,,\n"
        + "g-2,loan-1,failed,\u00b2,2026-03-05T10:00:00Z,gateway,,,,\n".encode()  # a superscript 2
        + b"g-3,loan-1,failed,--1,2026-03-05T10:00:00Z,gateway,,,,\n"
        + b"g-4,loan-1,failed,1,2026-03-05T10:00:00Z,gateway,,,AM04,\n"
    )
    code, out = invoke("replay", str(log))
    assert code == 0, out
    assert "lines read          5" in out
    assert "events by verdict   applied 1, invalid 4 (this run)" in out
    assert f"invalid             {log}:3: attempt: expected an integer >= 1, got '9999" in out
    assert f"invalid             {log}:4: attempt: expected an integer >= 1, got '\u00b2'" in out
    assert f"invalid             {log}:5: attempt: expected an integer >= 1, got '--1'" in out


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_a_legacy_notice_naming_an_attempt_past_64_bits_names_none(
    tmp_path: Path, kind: str
) -> None:
    # Such an attempt stopped the summary with a traceback (OverflowError from SQLite); like an
    # attempt that is not a number, it counts as naming no attempt.
    log = tmp_path / f"legacy.{kind}"
    if kind == "jsonl":
        legacy = {"type": "notice_sent", "debit_id": "d-1", "notice": "failed", "attempt": 2**63}
        log.write_text(ev("succeeded", 0).to_json() + "\n" + json.dumps(legacy) + "\n")
    else:
        log.write_text(
            f"{HEADER},notice\n"
            "g-1,d-1,succeeded,1,2026-03-05T10:00:00Z,gateway,,,,,\n"
            f",d-1,notice_sent,{2**63},,,,,,,failed\n"
        )
    code, out = invoke("replay", str(log))
    assert code == 0, out
    assert (
        "failure notices for attempts that were collected: legacy 1 (in these logs), engine 0"
        in out
    )


def test_a_log_whose_name_is_not_utf8_is_replayed_and_resumed(tmp_path: Path) -> None:
    # Its name came in with a lone surrogate (\udcfe), which no store could hold as an origin.
    log = Path(os.fsdecode(bytes(tmp_path) + b"/march-\xfe.jsonl"))
    log.write_text(ev("submitted", 0).to_json() + "\n")
    db = tmp_path / "db.sqlite"
    code, out = invoke("replay", str(log), "--db", str(db))
    assert code == 0, out
    with Engine.open(db) as engine:
        assert [h.origin for h in engine.history("d-1")] == [f"{tmp_path}/march-\\xfe.jsonl:1"]
    code, out = invoke("replay", str(log), "--db", str(db))
    assert code == 0
    assert "resumed             1 lines already stored, skipped" in out


def test_strict_stops_at_the_first_bad_line_with_exit_code_2(tmp_path: Path) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text(
        ev("submitted", 0).to_json()
        + '\n{"event_id": "x", "type": "paid"}\n'
        + ev("succeeded", 1).to_json()
        + "\n"
    )
    result = CliRunner().invoke(main, ["replay", str(log), "--strict"])
    assert result.exit_code == 2
    assert f"Error: {log}:2: debit_id: expected a value (the field is required)" in result.output


@pytest.mark.parametrize("batch", ["1", "2", "1000"])
def test_strict_stops_at_a_reused_event_id_at_any_batch(tmp_path: Path, batch: str) -> None:
    first = ev("submitted", 0, event_id="gw-1")
    reused = ev("failed", 2, event_id="gw-1")  # the same event_id with other content
    log = tmp_path / "reused.jsonl"
    lines = [first, ev("succeeded", 1, debit_id="d-2"), reused, ev("succeeded", 3, debit_id="d-3")]
    log.write_text("".join(e.to_json() + "\n" for e in lines))
    db = tmp_path / "strict.sqlite"
    result = CliRunner().invoke(main, ["replay", str(log), "--strict", "--batch", batch,
                                       "--db", str(db)])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"Error: {log}:3: event_id 'gw-1' reused with different content" in result.output
    with Engine.open(db) as engine:
        # Everything before the refused line and the line itself are stored; nothing after.
        assert [h.verdict for h in engine.history("d-1")] == ["applied", "invalid"]
        assert engine.get("d-2") is not None
        assert engine.get("d-3") is None


@pytest.mark.parametrize("batch", ["1", "1000"])
def test_a_line_that_is_not_utf8_is_refused_with_its_line_number(
    tmp_path: Path, batch: str
) -> None:
    log = tmp_path / "latin1.jsonl"
    bad = ev("failed", 5, reason="AM04").to_json().replace("AM04", "AM\xe9").encode("latin-1")
    log.write_bytes(ev("submitted", 0).to_json().encode() + b"\n" + bad + b"\n")
    db = tmp_path / "utf8.sqlite"
    code, out = invoke("replay", str(log), "--batch", batch, "--db", str(db))
    assert code == 0, out
    assert f"invalid             {log}:2: line: expected UTF-8 text, got byte 0xe9" in out
    with Engine.open(db) as engine:
        assert engine.get("d-1").state == "submitted"  # type: ignore[union-attr]
        assert [h.verdict for h in engine.history("d-1")] == ["applied", "invalid"]
        refused = engine.history("d-1")[-1]
        assert (refused.origin, refused.type) == (f"{log}:2", None)
        assert "AM\\xe9" in (refused.raw or "")
        assert engine.notices("d-1") == []  # never applied: no failure notice planned


def test_the_json_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    code, _ = invoke("replay", EXAMPLE, "--report", str(report))
    assert code == 0
    data = json.loads(report.read_text())
    assert data["lines"] == 1890
    assert data["debits_by_state"] == {"failed": 22, "reversed": 13, "succeeded": 365}
    assert data["conflicts"] == data["events_by_verdict"]["conflict"]
    assert {"kind": "correction", "status": "sent", "count": 9} in data["notices"]
    legacy = data["failure_notices_for_collected_attempts"]
    assert len(legacy["legacy"]) > len(legacy["engine"])
    assert set(data) >= {"needs_review", "stuck", "unknown_sources", "invalid"}


def test_diff_lists_the_debits_a_spec_change_would_change(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(e.to_json() for e in [
        ev("succeeded", 0, debit_id="a", source="gateway"),
        ev("failed", 1, debit_id="a", source="internal"),
        ev("succeeded", 0, debit_id="b"),
    ]) + "\n")  # fmt: skip
    spec = tmp_path / "internal-trusted.toml"
    spec.write_text(bundled_path("debit.toml").read_text().replace("internal = 1", "internal = 5"))
    today, proposed = str(tmp_path / "today.sqlite"), str(tmp_path / "proposed.sqlite")
    invoke("replay", str(log), "--db", today)
    invoke("replay", str(log), "--db", proposed, "--spec", str(spec))
    code, out = invoke("diff", today, proposed)
    assert code == 1  # like verify: a difference is exit 1
    assert out.splitlines() == [
        "a",
        "  A: succeeded@1; notices: succeeded@1 sent",
        "  B: failed@1; notices: correction@1 sent, succeeded@1 sent",
        "1 of 2 debits differ",
    ]


def test_n5_a_notice_is_dispatched_when_the_clock_passes_its_due_time() -> None:
    engine = Engine.in_memory(clock=ManualClock())
    replay = Replay(engine)
    replay.apply(ev("failed", 0))  # due at T0 + 15 min
    replay.apply(ev("submitted", 14, debit_id="other"))  # the clock reaches T0 + 14: not yet
    assert list(replay.dispatched) == []
    replay.apply(ev("submitted", 15, debit_id="other"))  # reaches the due time: dispatched first
    assert [(n.kind, n.status, n.sent_at) for n in replay.dispatched] == [
        ("failed", "sent", T0 + timedelta(minutes=15))
    ]
    replay.apply(ev("succeeded", 0, debit_id="late"))  # an older event never moves the clock back
    assert replay.clock.now == T0 + timedelta(minutes=15)


def test_n5_the_end_moves_the_clock_past_every_settle_window() -> None:
    replay = Replay(Engine.in_memory(clock=ManualClock()))
    replay.apply(ev("failed", 0))
    handled = replay.finish()
    assert [(n.kind, n.status) for n in handled] == [("failed", "sent")]
    assert replay.clock.now == T0 + timedelta(minutes=15)


def test_replay_logs_reads_several_files_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    first.write_text(ev("submitted", 0, event_id="s").to_json() + "\n")
    second.write_text(ev("succeeded", 5, event_id="o").to_json() + "\n")
    replay = Replay(Engine.in_memory(clock=ManualClock()))
    summary = replay_logs(replay, [first, second])
    assert summary.lines == 2
    history = replay.engine.history("d-1")
    assert [(h.event_id, h.origin) for h in history] == [("s", f"{first}:1"), ("o", f"{second}:1")]
    assert isinstance(history[0].event, Event)


# Batched replay -----------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from statemachine.replay import BatchedReplay  # noqa: E402
from statemachine.synthetic import car_loan_book  # noqa: E402


def outcome(engine: Engine) -> tuple[object, ...]:
    debits = {d: engine.get(d) for d in engine.store.debit_ids()}
    notices = sorted(
        (n.notice_id, n.outcome, str(n.status), n.due_at, n.sent_at) for n in engine.notices()
    )
    history = {
        d: [(h.event_id, str(h.verdict), h.reason) for h in engine.history(d)] for d in debits
    }
    return debits, notices, history


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 12),
    st.integers(1, 40),
    st.randoms(use_true_random=False),
)
def test_a_batched_replay_sends_exactly_what_an_event_by_event_replay_sends(
    seed: int, loans: int, batch: int, rng: random.Random
) -> None:
    events = [Event.from_dict(r) for r in car_loan_book(loans, seed=seed, legacy_notices=False)]
    # Disorder beyond the book's own: some events arrive much later than they happened.
    for _ in range(len(events) // 4):
        i, j = rng.randrange(len(events)), rng.randrange(len(events))
        events[i], events[j] = events[j], events[i]
    one = Replay(Engine.in_memory(clock=ManualClock()))
    for event in events:
        one.apply(event)
    one.finish()
    many = BatchedReplay(Engine.in_memory(clock=ManualClock()), batch_size=batch)
    for event in events:
        many.feed(event)
    many.finish()
    assert outcome(many.engine) == outcome(one.engine)
    assert many.clock.now == one.clock.now


def test_a_batched_replay_on_sqlite_matches_too(tmp_path: Path) -> None:
    events = [Event.from_dict(r) for r in car_loan_book(80, seed=9, legacy_notices=False)]
    one = Replay(Engine.in_memory(clock=ManualClock()))
    for event in events:
        one.apply(event)
    one.finish()
    many = BatchedReplay(Engine.open(tmp_path / "b.sqlite", clock=ManualClock()), batch_size=500)
    for event in events:
        many.feed(event)
    many.finish()
    assert outcome(many.engine)[:2] == outcome(one.engine)[:2]


def test_the_summary_shows_the_last_message_sent_as_its_customer_read_it(tmp_path: Path) -> None:
    summary = replay_logs(Replay(Engine.in_memory(clock=ManualClock())), [EXAMPLE])
    message = summary.example
    assert message is not None
    assert (message.locale, message.kind, message.template_id) == (
        "zh-CN",
        "reversed",
        "SMS_100003",
    )
    assert message.text == (
        "您的贷款loan-00257本期还款¥2,314.00已被银行退回（2026年5月5日），请留意后续扣款安排。"
    )
    assert summary.render().splitlines()[-2:] == [
        "last message sent   loan-00257/2026-03#1:reversed (zh-CN, template SMS_100003)",
        f"                    {message.text}",
    ]
    report = tmp_path / "report.json"
    code, out = invoke("replay", EXAMPLE, "--report", str(report))
    assert code == 0
    assert message.text in out
    written = json.loads(report.read_text(encoding="utf-8"))
    assert written["example_message"]["params"] == {
        "loan_ref": "loan-00257",
        "amount": "¥2,314.00",
        "date": "2026年5月5日",
    }
    assert "+86" not in report.read_text(encoding="utf-8")  # contact details stay out of reports


def test_a_replay_that_sends_nothing_shows_no_message() -> None:
    summary = replay_logs(Replay(Engine.in_memory(clock=ManualClock())), [])
    assert summary.example is None
    assert "last message sent" not in summary.render()


def test_the_cli_batch_size_changes_nothing_but_speed(tmp_path: Path) -> None:
    one, many = str(tmp_path / "one.sqlite"), str(tmp_path / "many.sqlite")
    first = invoke("replay", EXAMPLE, "--db", one, "--batch", "1")
    second = invoke("replay", EXAMPLE, "--db", many, "--batch", "250")
    assert first == second
    with Engine.open(one) as a, Engine.open(many) as b:
        assert outcome(a)[:2] == outcome(b)[:2]


# The HTML report ----------------------------------------------------------------------------

import contextlib  # noqa: E402

import pytest  # noqa: E402


def test_the_html_report_is_one_self_contained_page(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, _ = invoke("replay", EXAMPLE, "--html", str(page))
    assert code == 0
    html = page.read_text()
    assert html.count("<svg") == 6  # five charts and the state diagram
    for title in ("Debits by final state", "Events by verdict", "Contradictory notices prevented"):
        assert title in html
    assert "stateDiagram-v2" in html
    assert '<blockquote lang="zh-CN">您的贷款loan-00257本期还款¥2,314.00' in html
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched


@needs_chromium
def test_the_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    invoke("replay", EXAMPLE, "--html", str(page))
    chromium(page.as_uri(), tmp_path, screenshot=shot)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG")
    # Not blank: a white page compresses to a few kilobytes; charts and text do not.
    assert len(data) > 20_000


def test_an_interrupted_replay_resumes_to_the_same_end(tmp_path: Path) -> None:
    db = tmp_path / "march.sqlite"

    engine = Engine.open(db, clock=ManualClock())
    with contextlib.suppress(KeyboardInterrupt):
        replay_logs(BatchedReplay(engine, batch_size=100), [EXAMPLE], progress=interrupt_after(777))
    engine.close()
    with Engine.open(db) as engine:
        assert engine.verify() == []  # consistent: whole batches only
    resumed = Engine.open(db, clock=ManualClock())
    summary = replay_logs(BatchedReplay(resumed, batch_size=100), [EXAMPLE])
    assert 0 < summary.resumed <= 777  # the committed batches' lines, skipped
    clean = Engine.in_memory(clock=ManualClock())
    replay_logs(BatchedReplay(clean, batch_size=100), [EXAMPLE])
    assert {d: resumed.get(d) for d in resumed.store.debit_ids()} == {
        d: clean.get(d) for d in clean.store.debit_ids()
    }
    # Nothing stored twice: the resumed database counts what a clean run counts.
    assert resumed.metrics().events_by_verdict == clean.metrics().events_by_verdict
    assert sorted((n.notice_id, n.status) for n in resumed.notices()) == sorted(
        (n.notice_id, n.status) for n in clean.notices()
    )
    resumed.close()


def test_the_state_diagram_draws_every_state_and_transition_of_the_spec() -> None:
    from statemachine import Spec
    from statemachine.replay.report import state_chart

    spec = Spec.default()
    svg = state_chart(spec)
    pairs = {(edge.source, edge.dest) for edge in spec.transitions}
    assert svg.count("<rect") == len(spec.states)
    assert svg.count('marker-end="url(#arrow)"') == len(pairs)
    for state in spec.states:
        assert f">{state}</text>" in svg
    assert "retried [next_attempt]" in svg


def test_a_csv_row_that_cannot_be_read_is_refused_naming_the_cells(tmp_path: Path) -> None:
    log = tmp_path / "short.csv"
    log.write_bytes(f"{HEADER}\ng-1,loan-1,failed\ng-2,loan-1,failed\r,x\n".encode())
    code, out = invoke("replay", str(log))
    assert code == 0
    assert (
        f"invalid             {log}:2: line: expected 10 CSV cells, as the header has, got 3" in out
    )
    assert f"{log}:3: line: expected a CSV row, got one the csv module cannot read" in out
