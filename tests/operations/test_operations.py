"""Operations on a store: the CLI on a database, dispatchers in several processes, metrics,
Prometheus text, alerts, stuck debits and inquiries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import EngineFactory
from support import T0, debit_of, ev

from statemachine import Engine, Event, ManualClock, Notice, RecordingSender
from statemachine.cli import main
from statemachine.errors import DeliveryRefused
from statemachine.inquiry import InquiryPolicy
from statemachine.operations import Alert, AlertRule, check_alerts, prometheus_text
from statemachine.replay import Replay, html_report, replay_records
from statemachine.spec import bundled_path

EXAMPLE = str(bundled_path("examples", "car-loans-month.jsonl"))
TESTS = Path(__file__).resolve().parents[1]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_replay_into_a_database_then_show_stats_verify(tmp_path: Path) -> None:
    db = str(tmp_path / "march.sqlite")
    code, out = invoke("replay", EXAMPLE, "--db", db)
    assert code == 0, out
    assert invoke("replay", EXAMPLE)[1] == out  # the same summary as in memory
    code, out = invoke("verify", "--db", db)
    assert (code, out) == (0, "400 debits: live state equals the rebuild from stored events\n")
    code, out = invoke("stats", "--db", db)
    assert code == 0
    assert "success rate        91.2%" in out
    code, out = invoke("stats", "--db", db, "--prometheus")
    assert 'statemachine_debits{state="succeeded"} 365.0' in out
    code, out = invoke("show", "loan-00007/2026-03", "--db", db)
    assert code == 0
    assert out.splitlines()[0] == "loan-00007/2026-03: succeeded, attempt 1, version 3"
    assert "notice succeeded@1 (succeeded): sent via replay" in out
    code, out = invoke("show", "nope", "--db", db)
    assert (code, out.strip()) == (1, f"Error: no debit 'nope' in {db}")


def test_replaying_again_changes_nothing(tmp_path: Path) -> None:
    db = str(tmp_path / "march.sqlite")
    invoke("replay", EXAMPLE, "--db", db)
    engine = Engine.open(db)
    before = [engine.get(d) for d in engine.store.debit_ids()]
    verdicts = engine.metrics().events_by_verdict
    engine.close()
    code, out = invoke("replay", EXAMPLE, "--db", db)
    assert code == 0
    engine = Engine.open(db)
    assert [engine.get(d) for d in engine.store.debit_ids()] == before
    # The store holds every line of this file already: each is skipped, none stored again.
    assert engine.metrics().events_by_verdict == verdicts
    engine.close()
    assert f"resumed             {sum(verdicts.values())} lines already stored, skipped" in out
    # The same events under another file name are new arrivals: each is a duplicate (P1).
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(Path(EXAMPLE).read_bytes())
    assert invoke("replay", str(copy), "--db", db)[0] == 0
    with Engine.open(db) as engine:
        again = engine.metrics().events_by_verdict
    assert again["duplicate"] == verdicts["duplicate"] + sum(verdicts.values())


def test_verify_reports_a_debit_that_differs_from_its_rebuild(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    with Engine.open(db) as engine:
        engine.apply(ev("succeeded", 0))
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("UPDATE debits SET state = 'failed'")
    conn.commit()
    conn.close()
    code, out = invoke("verify", "--db", str(db))
    assert code == 1
    assert (
        "d-1: live failed@1 review=False version 1, rebuilt succeeded@1 review=False version 1"
        in out
    )


def test_dispatch_command_prints_what_it_sends(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    customer = {"locale": "zh-CN", "loan_ref": "L-1", "contact": {"sms": "+8613800001234"}}
    with Engine.open(db) as engine:
        engine.apply(ev("created", 0, currency="CNY", data={"customer": customer}))
        engine.apply(ev("succeeded", 8 * 60))  # 18:00 UTC: the next day in Shanghai
    # Without a sender: a dry run that shows what is due and changes nothing.
    for _ in range(2):
        code, out = invoke("dispatch", "--db", str(db))
        assert code == 0
        assert "would send   d-1#1:succeeded (succeeded)" in out
        assert "1 notice(s) due; nothing sent (dry run)" in out
    with Engine.open(db) as engine:
        assert [n.status for n in engine.notices()] == ["queued"]
    code, out = invoke("dispatch", "--db", str(db), "--sender", "print")
    assert code == 0
    assert (
        "-> d-1 #1 (zh-CN SMS_100001; sms +86******1234): "
        "您的贷款L-1本期还款¥3,560.00已于2026年3月6日扣款成功，感谢您按时还款。 [d-1#1:succeeded]"
    ) in out
    assert "+8613800001234" not in out
    assert "sent      d-1#1:succeeded via print" in out
    assert invoke("dispatch", "--db", str(db), "--sender", "print")[1] == ""  # nothing twice


def test_dispatch_command_sends_concurrently(tmp_path: Path) -> None:
    db = tmp_path / "d.sqlite"
    with Engine.open(db) as engine:
        for n in range(30):
            engine.apply(ev("succeeded", 0, debit_id=f"d-{n}"))
    code, out = invoke("dispatch", "--db", str(db), "--sender", "print", "--concurrency", "8")
    assert code == 0, out
    assert sorted(line.split()[1] for line in out.splitlines() if line.startswith("sent ")) == (
        sorted(f"d-{n}#1:succeeded" for n in range(30))
    )
    code, out = invoke("dispatch", "--db", str(db), "--concurrency", "0")
    assert code == 2
    assert "--concurrency" in out


def test_a_dispatcher_that_dies_mid_batch_loses_nothing(make_engine: EngineFactory) -> None:
    clock = ManualClock(T0)
    engine = make_engine(clock=clock)
    for n in range(3):
        engine.apply(ev("succeeded", 0, debit_id=f"d-{n}"))

    class Dies:
        name = "dies"

        def send(self, notice: object) -> None:
            raise KeyboardInterrupt  # the process is going down mid-send

    with pytest.raises(KeyboardInterrupt):
        engine.dispatch_due([Dies()], lease=timedelta(minutes=5))
    sms = RecordingSender("sms")
    assert engine.dispatch_due([sms]) == []  # the claimed notices wait out their lease
    clock.advance_to(T0 + timedelta(minutes=6))
    engine.dispatch_due([sms])
    assert sorted(n.debit_id for n in sms.sent) == ["d-0", "d-1", "d-2"]


def test_n4_fallback_retry_and_give_up_on_every_store(make_engine: EngineFactory) -> None:
    clock = ManualClock(T0)
    engine = make_engine(clock=clock)
    engine.retry = engine.retry.__class__(max_deliveries=2)
    engine.apply(ev("succeeded", 0, debit_id="a"))
    sms, push = RecordingSender("sms", fail=1), RecordingSender("push")
    (sent,) = engine.dispatch_due([sms, push])
    assert (sent.status, sent.channel) == ("sent", "push")
    engine.apply(ev("succeeded", 0, debit_id="b"))
    down = RecordingSender("sms", fail=99)
    (first,) = engine.dispatch_due([down])
    assert (first.status, first.deliveries) == ("queued", 1)
    clock.advance_to(first.due_at)
    (last,) = engine.dispatch_due([down])
    assert (last.status, last.deliveries, last.status_reason) == (
        "failed",
        2,
        "gave up after 2 deliveries",
    )
    stored = {n.debit_id: n for n in engine.notices()}
    assert stored["b"].last_error is not None
    assert "simulated outage" in stored["b"].last_error
    assert engine.metrics().acceptance_rate == 0.5


def test_stuck_debits_are_listed_and_inquired(make_engine: EngineFactory) -> None:
    clock = ManualClock(T0 + timedelta(days=4))
    engine = make_engine(clock=clock)
    engine.apply(ev("submitted", 0, debit_id="old"))
    engine.apply(ev("submitted", 60 * 24 * 3.9, debit_id="recent"))
    engine.apply(ev("succeeded", 0, debit_id="done"))
    assert [d for d, _ in engine.stuck(timedelta(days=3))] == ["old"]
    assert engine.metrics(stuck_after=timedelta(days=3)).stuck == 1
    assert debit_of(engine, "old").state == "submitted"  # never failed by itself

    def ask(debit: object) -> Event:
        return ev("succeeded", 60 * 24 * 4, debit_id="old", source="gateway", event_id="inquiry-1")

    engine.inquiry = InquiryPolicy(delays=(timedelta(days=3),))  # "recent": not yet
    (answer,) = engine.inquire_due(ask)
    assert (answer.debit_id, answer.answer, answer.verdict) == ("old", "succeeded", "applied")
    assert debit_of(engine, "old").state == "succeeded"
    assert engine.stuck(timedelta(days=3)) == []


def test_prometheus_text_and_alerts() -> None:
    engine = Engine.in_memory()
    engine.apply(ev("succeeded", 0, debit_id="a"))
    engine.apply(ev("failed", 0, debit_id="b"))
    engine.apply(ev("failed", 1, debit_id="a", source="internal"))
    metrics = engine.metrics()
    text = prometheus_text(metrics)
    assert 'statemachine_events{verdict="conflict"} 1.0' in text
    assert "statemachine_success_rate 0.5" in text
    assert "# TYPE statemachine_debits gauge" in text
    seen: list[Alert] = []
    rules = [
        AlertRule("low-success", "success_rate", below=0.8),
        AlertRule("conflicts", "conflicts", above=5),
    ]
    fired = check_alerts(metrics, rules, on_alert=seen.append)
    assert [str(a) for a in fired] == ["low-success: success_rate is 0.5, below 0.8"]
    assert seen == fired


def test_alert_rules_are_checked_when_made() -> None:
    with pytest.raises(ValueError, match="metric 'succes_rate' is not one of"):
        AlertRule("typo", "succes_rate", below=0.8)
    with pytest.raises(ValueError, match="needs a bound"):
        AlertRule("loose", "stuck")


def test_a_notice_replanned_while_being_sent_keeps_its_claim(tmp_path: Path) -> None:
    from statemachine import Spec

    path = tmp_path / "d.sqlite"
    spec = Spec.default().evolve(settle_window=timedelta(0))
    clock = ManualClock(T0)
    dispatcher, api, other = (Engine.open(path, spec=spec, clock=clock) for _ in range(3))
    api.apply(ev("failed", 0))
    other_sms = RecordingSender("sms-other")
    seen = []

    def meanwhile(notice: object) -> None:
        api.apply(ev("succeeded", 1))  # the failure is re-planned while it is being sent
        api.apply(ev("failed", 2))
        seen.extend(other.dispatch_due([other_sms]))

    sms = RecordingSender("sms", on_send=meanwhile)
    assert [n.status for n in dispatcher.dispatch_due([sms])] == ["sent"]
    assert [(n.kind, n.status) for n in seen] == [("succeeded", "cancelled")]
    clock.advance_to(T0 + timedelta(minutes=10))
    assert dispatcher.dispatch_due([sms]) == []
    assert len(sms.sent) + len(other_sms.sent) == 1


def test_the_misinformed_count_is_in_metrics_stats_and_prometheus(
    make_engine: EngineFactory,
) -> None:
    clock = ManualClock(T0)
    engine = make_engine(clock=clock)
    sms = RecordingSender("sms")
    engine.apply(ev("succeeded", 0, debit_id="a"))
    engine.apply(ev("succeeded", 0, debit_id="b"))
    engine.dispatch_due([sms])
    assert engine.metrics(now=T0).misinformed == 0
    # A return for "a": the customer was told "collected", and the reversal notice is still
    # queued, so until it goes out the customer is misinformed.
    engine.apply(ev("reversed", 1, debit_id="a", source="settlement"))
    metrics = engine.metrics(now=T0)
    assert metrics.misinformed == len(engine.misinformed()) == 1
    assert "statemachine_misinformed 1.0" in prometheus_text(metrics)
    clock.advance_to(T0 + timedelta(minutes=2))
    engine.dispatch_due([sms])
    assert engine.metrics(now=T0).misinformed == len(engine.misinformed()) == 0


class FirstOnly:
    """A channel that takes its first notice and refuses every later one."""

    name = "sms"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, notice: Notice) -> None:
        if self.sent:
            raise DeliveryRefused(f"sms: {notice.notice_id} refused")
        self.sent.append(notice.notice_id)


def test_a_misinformed_customer_is_counted_by_the_replay_summary_its_reports_and_stats(
    tmp_path: Path,
) -> None:
    """The customer heard "collected"; the bank's return was never told, its only channel
    refusing: the replay summary, its JSON and HTML reports, `stats` and its Prometheus text
    each show one misinformed customer."""
    lines = [ev("succeeded", 0, debit_id="a"), ev("reversed", 60 * 24, "settlement", debit_id="a")]
    db = tmp_path / "told-wrong.sqlite"
    sms = FirstOnly()
    with Engine.open(db, clock=ManualClock()) as engine:
        records = [(f"log:{n}", e.to_json().encode(), e.to_dict()) for n, e in enumerate(lines)]
        summary = replay_records(Replay(engine, [sms]), records)
        assert [debit for debit, _, _ in engine.misinformed()] == ["a"]
        html = html_report(summary, engine.spec)
    assert sms.sent == ["a#1:succeeded"]
    assert summary.misinformed == 1
    assert "misinformed         1" in summary.render().splitlines()
    assert summary.to_dict()["misinformed"] == 1
    assert "1 customers misinformed" in html
    code, out = invoke("stats", "--db", str(db))
    assert (code, [line for line in out.splitlines() if "misinformed" in line]) == (
        0,
        ["misinformed         1", "ALERT customers-misinformed: misinformed is 1, above 0"],
    )
    code, out = invoke("stats", "--db", str(db), "--prometheus")
    assert (code, "statemachine_misinformed 1.0" in out.splitlines()) == (0, True)
