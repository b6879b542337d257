"""N8 on every store: delivery receipts, channel fallback, receipt timeouts, the delivery rate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import EngineFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import T0, ev

from statemachine import Engine, ManualClock, NoticeStatus, RecordingSender, Spec
from statemachine.operations import AlertRule, check_alerts, prometheus_text

NOTICE = "d-1#1:succeeded"


def sent_on_sms(
    make_engine: EngineFactory, timeout: float = 0
) -> tuple[Engine, ManualClock, RecordingSender, RecordingSender]:
    """An engine whose success notice went out on sms; push is the next channel."""
    clock = ManualClock(T0)
    spec = Spec.default().evolve(receipt_timeout=timedelta(seconds=timeout))
    engine = make_engine(spec=spec, clock=clock)
    sms, push = RecordingSender("sms"), RecordingSender("push")
    engine.apply(ev("succeeded", 0))
    (notice,) = engine.dispatch_due([sms, push])
    assert (notice.notice_id, notice.status, notice.channel) == (NOTICE, "sent", "sms")
    return engine, clock, sms, push


def status_of(engine: Engine) -> NoticeStatus:
    (notice,) = engine.notices("d-1")
    return notice.status


def test_a_delivered_receipt_delivers_and_a_second_copy_is_a_duplicate(
    make_engine: EngineFactory,
) -> None:
    engine, _, _, _ = sent_on_sms(make_engine)
    first = engine.record_receipt(NOTICE, "sms", "delivered", T0, ref="SMS-1")
    again = engine.record_receipt(NOTICE, "sms", "delivered", T0 + timedelta(seconds=5))
    assert (first.verdict, first.reason) == ("applied", "delivered on sms")
    assert (again.verdict, again.reason) == ("duplicate", "sms already reported delivered")
    assert status_of(engine) == "delivered"
    assert [(r.verdict, r.receipt.ref) for r in engine.receipts(NOTICE)] == [
        ("applied", "SMS-1"),
        ("duplicate", None),
    ]
    metrics = engine.metrics()
    assert (metrics.deliveries, metrics.delivery_rate) == ({"sms": {"delivered": 1}}, 1.0)


def test_delivered_stands_whatever_arrives_after_it(make_engine: EngineFactory) -> None:
    engine, _, _, push = sent_on_sms(make_engine)
    engine.record_receipt(NOTICE, "sms", "delivered", T0)
    late = engine.record_receipt(NOTICE, "sms", "undelivered", T0 - timedelta(seconds=1))
    assert (late.verdict, late.reason) == ("stale", "sms already reported delivered, which stands")
    assert engine.dispatch_due([RecordingSender("sms"), push]) == []
    assert status_of(engine) == "delivered"


def test_delivered_after_undelivered_withdraws_the_fallback_not_yet_sent(
    make_engine: EngineFactory,
) -> None:
    engine, _, sms, push = sent_on_sms(make_engine)
    assert engine.record_receipt(NOTICE, "sms", "undelivered", T0).verdict == "applied"
    assert status_of(engine) == "queued"
    after = engine.record_receipt(NOTICE, "sms", "delivered", T0)
    assert (after.verdict, after.reason) == (
        "applied",
        "delivered on sms; its fallback is withdrawn",
    )
    assert engine.dispatch_due([sms, push]) == []
    assert (status_of(engine), push.sent) == ("delivered", [])
    assert engine.metrics().deliveries == {"sms": {"delivered": 1}}


def test_receipts_that_cannot_apply_are_kept_as_rejected_with_the_reason(
    make_engine: EngineFactory,
) -> None:
    engine, _, _, _ = sent_on_sms(make_engine)
    unknown = engine.record_receipt("nope#1:failed", "sms", "delivered", T0)
    elsewhere = engine.record_receipt(NOTICE, "email", "delivered", T0)
    odd = engine.record_receipt(NOTICE, "sms", "read", T0)
    naive = engine.record_receipt(NOTICE, "sms", "delivered", "2026-03-05T10:00:00")
    assert [r.verdict for r in (unknown, elsewhere, odd, naive)] == ["rejected"] * 4
    assert unknown.reason == "unknown notice id 'nope#1:failed'"
    assert elsewhere.reason == f"notice {NOTICE} was never sent on 'email' (taken by sms)"
    assert odd.reason == "status: expected 'delivered' or 'undelivered', got 'read'"
    assert naive.reason.startswith("occurred_at: expected a UTC offset")
    stored = engine.receipts()
    assert [(r.receipt.notice_id, r.verdict) for r in stored] == [
        ("nope#1:failed", "rejected"),
        (NOTICE, "rejected"),
        (NOTICE, "rejected"),
        (NOTICE, "rejected"),
    ]
    assert status_of(engine) == "sent"
    assert engine.metrics().delivery_rate is None  # nothing was measured


def test_undelivered_falls_back_to_the_next_channel_with_the_same_notice_id(
    make_engine: EngineFactory,
) -> None:
    engine, _, sms, push = sent_on_sms(make_engine)
    result = engine.record_receipt(NOTICE, "sms", "undelivered", T0, ref="SMS-9")
    assert result.reason == "undelivered on sms: due again for the next channel"
    (notice,) = engine.dispatch_due([sms, push])
    assert (notice.status, notice.channel, notice.tried) == ("sent", "push", ("sms",))
    assert [n.notice_id for n in push.sent] == [NOTICE]
    assert [n.notice_id for n in sms.sent] == [NOTICE]  # once on sms, never again
    # The word on a channel the notice has left changes nothing, the rate included.
    late = engine.record_receipt(NOTICE, "sms", "delivered", T0)
    assert (late.verdict, late.reason) == ("stale", "the notice has left sms: sent on push")
    engine.record_receipt(NOTICE, "push", "delivered", T0)
    metrics = engine.metrics()
    assert metrics.deliveries == {"sms": {"undelivered": 1}, "push": {"delivered": 1}}
    assert metrics.delivery_rates == {"sms": 0.0, "push": 1.0}
    assert metrics.delivery_rate == 0.5
    assert metrics.notices_by_status == {"delivered": 1}


def test_the_fallback_is_rechecked_first_n3(make_engine: EngineFactory) -> None:
    engine, _, sms, push = sent_on_sms(make_engine)
    engine.record_receipt(NOTICE, "sms", "undelivered", T0)
    engine.apply(ev("failed", 1, source="settlement"))  # the debit changed meanwhile
    handled = {n.notice_id: n for n in engine.dispatch_due([sms, push])}
    assert handled[NOTICE].status == "cancelled"
    assert handled[NOTICE].status_reason == "superseded: the debit is failed on attempt 1"
    assert push.sent == []


def test_with_no_next_channel_the_notice_ends_undelivered(make_engine: EngineFactory) -> None:
    engine, _, sms, push = sent_on_sms(make_engine)
    engine.record_receipt(NOTICE, "sms", "undelivered", T0)
    engine.dispatch_due([sms, push])
    engine.record_receipt(NOTICE, "push", "undelivered", T0)
    (notice,) = engine.dispatch_due([sms, push])
    assert (notice.status, notice.status_reason) == (
        "undelivered",
        "undelivered on every channel: sms, push",
    )
    metrics = engine.metrics()
    assert (metrics.undelivered, metrics.delivery_rate, metrics.misinformed) == (1, 0.0, 0)
    fired = check_alerts(metrics, [AlertRule("undelivered", "undelivered", above=0)])
    assert [a.rule.name for a in fired] == ["undelivered"]
    # The customer heard nothing: the next change is news, not a correction.
    engine.apply(ev("failed", 2, source="settlement"))
    assert sorted(n.kind for n in engine.notices("d-1")) == ["failed", "succeeded"]
    # Delivered after all, late: the notice is delivered.
    assert engine.record_receipt(NOTICE, "push", "delivered", T0).verdict == "applied"
    assert {n.kind: n.status for n in engine.notices("d-1")}["succeeded"] == "delivered"


def test_no_receipt_within_the_timeout_expires_and_falls_back(make_engine: EngineFactory) -> None:
    engine, clock, sms, push = sent_on_sms(make_engine, timeout=600)
    (notice,) = engine.notices("d-1")
    assert notice.receipt_by == T0 + timedelta(minutes=10)
    clock.advance_to(T0 + timedelta(minutes=9))
    assert engine.dispatch_due([sms, push]) == []
    clock.advance_to(T0 + timedelta(minutes=10))
    (expired,) = engine.expire_receipts()  # dispatch_due does this first
    assert (expired.verdict, expired.notice and expired.notice.status) == ("applied", "queued")
    assert [(r.receipt.channel, r.receipt.status, r.verdict) for r in engine.receipts()] == [
        ("sms", "expired", "applied")
    ]
    # An undelivered receipt for the expired send says more, until the fallback goes out.
    assert engine.record_receipt(NOTICE, "sms", "undelivered", T0).verdict == "applied"
    (fallback,) = engine.dispatch_due([sms, push])
    assert (fallback.channel, fallback.tried) == ("push", ("sms",))
    assert engine.record_receipt(NOTICE, "sms", "delivered", T0).verdict == "stale"
    clock.advance_to(T0 + timedelta(minutes=30))
    (last,) = engine.dispatch_due([sms, push])
    assert last.status == "undelivered"
    assert engine.metrics().deliveries == {"sms": {"undelivered": 1}, "push": {"expired": 1}}


def test_without_a_timeout_a_notice_without_receipt_stays_sent_and_counts_nowhere(
    make_engine: EngineFactory,
) -> None:
    engine, clock, sms, push = sent_on_sms(make_engine)
    clock.advance_to(T0 + timedelta(days=30))
    assert engine.dispatch_due([sms, push]) == []
    metrics = engine.metrics()
    assert (status_of(engine), metrics.delivery_rate, metrics.acceptance_rate) == (
        "sent",
        None,
        1.0,
    )


def test_the_rate_in_prometheus_text_and_the_default_alert(make_engine: EngineFactory) -> None:
    engine, _, _, _ = sent_on_sms(make_engine)
    engine.record_receipt(NOTICE, "sms", "undelivered", T0)
    text = prometheus_text(engine.metrics())
    assert 'statemachine_deliveries{channel="sms",outcome="undelivered"} 1.0' in text
    assert 'statemachine_channel_delivery_rate{channel="sms"} 0.0' in text
    assert "statemachine_delivery_rate 0.0" in text
    assert "notices-undelivered" in [a.rule.name for a in check_alerts(engine.metrics())]


RECEIPTS = st.lists(
    st.tuples(st.sampled_from(["delivered", "undelivered"]), st.integers(0, 60)),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(receipts=RECEIPTS, order=st.randoms(use_true_random=False))
def test_any_order_of_the_same_receipts_ends_the_same(
    make_engine: EngineFactory,
    receipts: list[tuple[str, int]],
    order: object,
) -> None:
    """Duplicates and any order: the same final status and the same rate."""
    import random

    assert isinstance(order, random.Random)
    ends = []
    for arrival in (receipts, order.sample(receipts, len(receipts))):
        engine, _, sms, push = sent_on_sms(make_engine)
        for status, seconds in arrival:
            engine.record_receipt(NOTICE, "sms", status, T0 + timedelta(seconds=seconds))
        engine.dispatch_due([sms, push])
        metrics = engine.metrics()
        ends.append((status_of(engine), metrics.deliveries, metrics.delivery_rate))
    assert ends[0] == ends[1]
    delivered = any(status == "delivered" for status, _ in receipts)
    assert ends[0][0] == ("delivered" if delivered else "sent")


@pytest.mark.parametrize("timeout", [0, 600])
def test_a_replay_applies_receipt_lines_in_order(timeout: float) -> None:
    from statemachine.dispatch import CountingSender
    from statemachine.replay import BatchedReplay, Replay, replay_records

    spec = Spec.default().evolve(receipt_timeout=timedelta(seconds=timeout))
    lines = [
        {"event_id": "g1", "debit_id": "d-1", "type": "succeeded", "occurred_at": "2026-03-05T10:00:00Z"},
        {"event_id": "g2", "debit_id": "d-2", "type": "succeeded", "occurred_at": "2026-03-05T10:01:00Z"},
        {"type": "receipt", "notice_id": NOTICE, "channel": "sms", "status": "delivered",
         "occurred_at": "2026-03-05T10:02:00Z", "ref": "a"},
        {"type": "receipt", "notice_id": "d-2#1:succeeded", "channel": "sms",
         "status": "undelivered", "occurred_at": "2026-03-05T10:03:00Z"},
        {"event_id": "g3", "debit_id": "d-3", "type": "succeeded", "occurred_at": "2026-03-05T11:00:00Z"},
        {"type": "receipt", "notice_id": "d-2#1:succeeded", "channel": "push",
         "status": "delivered", "occurred_at": "2026-03-05T11:01:00Z"},
        {"type": "receipt", "notice_id": "d-9#1:failed", "channel": "sms",
         "status": "delivered", "occurred_at": "2026-03-05T11:02:00Z"},
    ]  # fmt: skip
    import orjson

    records = [(f"log:{n}", orjson.dumps(d), d) for n, d in enumerate(lines, 1)]
    summaries = []
    for runner in (Replay, BatchedReplay):
        engine = Engine.in_memory(spec=spec, clock=ManualClock())
        senders = [CountingSender("sms"), CountingSender("push")]
        summary = replay_records(runner(engine, senders), records)
        summaries.append((summary.render(), [n.status for n in engine.notices()]))
    assert summaries[0] == summaries[1]
    render, statuses = summaries[0]
    assert "receipts by verdict applied 3, rejected 1 (this run)" in render
    if timeout:  # d-3's sms wait ends at the end of the log: it falls back, and push's too
        assert statuses == ["delivered", "delivered", "undelivered"]
        assert (
            "delivery rate       40.0% overall, push 50.0% (1 of 2), sms 33.3% (1 of 3)" in render
        )
    else:
        assert statuses == ["delivered", "delivered", "sent"]
        assert (
            "delivery rate       66.7% overall, push 100.0% (1 of 1), sms 50.0% (1 of 2)" in render
        )
