"""N1-N6: the outbox planned with each change, the settle window, the re-check, the senders."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from support import T0, clocked_engine, ev

from statemachine import (
    DeliveryError,
    Engine,
    InvalidDefinition,
    Notice,
    NoticeStatus,
    RecordingSender,
    RetryPolicy,
    Spec,
)


def test_n1_each_change_of_outcome_enqueues_one_notice() -> None:
    engine, clock = clocked_engine()
    engine.apply(ev("created", 0))
    engine.apply(ev("submitted", 1))
    assert engine.notices() == []  # pending and submitted are not outcomes
    engine.apply(ev("succeeded", 2))
    engine.apply(ev("failed", 3, source="internal"))  # a conflict: no change, no notice
    assert [(n.kind, n.status) for n in engine.notices()] == [("succeeded", NoticeStatus.QUEUED)]
    clock.advance_to(T0 + timedelta(days=14))
    engine.apply(ev("reversed", 60 * 24 * 14, source="settlement"))
    assert [n.kind for n in engine.notices()] == ["succeeded", "reversed"]


def test_n1_a_superseded_sent_notice_gets_a_correction_stating_the_new_outcome() -> None:
    engine, clock = clocked_engine()
    sms = RecordingSender("sms")
    engine.apply(ev("failed", 0))
    clock.advance_to(T0 + timedelta(minutes=16))
    assert [n.kind for n in engine.dispatch_due([sms])] == ["failed"]
    engine.apply(ev("succeeded", 10, source="settlement"))
    correction = engine.dispatch_due([sms])
    assert [(n.kind, n.outcome, n.status) for n in correction] == [
        ("correction", "succeeded", "sent")
    ]
    assert correction[0].text().startswith("Correction: your payment d-1 was collected")


def test_n2_a_failure_notice_waits_the_settle_window() -> None:
    engine, clock = clocked_engine()
    sms = RecordingSender("sms")
    engine.apply(ev("failed", 0))
    (notice,) = engine.notices()
    assert notice.due_at == T0 + timedelta(minutes=15)
    clock.advance_to(T0 + timedelta(minutes=14, seconds=59))
    assert engine.dispatch_due([sms]) == []
    clock.advance_to(T0 + timedelta(minutes=15))
    assert [n.status for n in engine.dispatch_due([sms])] == ["sent"]


@pytest.mark.parametrize("seconds", [0, 3600])
def test_n2_the_settle_window_is_configurable(seconds: int) -> None:
    spec = Spec.default().evolve(settle_window=timedelta(seconds=seconds))
    engine, _ = clocked_engine(spec=spec)
    engine.apply(ev("failed", 0))
    assert engine.notices()[0].due_at == T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize("kind", ["succeeded", "reversed"])
def test_n2_success_and_reversal_are_due_at_once(kind: str) -> None:
    engine, _ = clocked_engine()
    engine.apply(ev(kind, 0, source="settlement"))
    assert engine.notices()[0].due_at == T0


def test_n3_a_notice_that_no_longer_matches_is_cancelled_as_superseded() -> None:
    engine, clock = clocked_engine()
    sms = RecordingSender("sms")
    engine.apply(ev("failed", 0, source="internal"))
    engine.apply(ev("succeeded", 5))
    clock.advance_to(T0 + timedelta(hours=1))
    handled = {n.kind: n for n in engine.dispatch_due([sms])}
    assert handled["failed"].status is NoticeStatus.CANCELLED
    assert handled["failed"].status_reason == "superseded: the debit is succeeded on attempt 1"
    assert [n.kind for n in sms.sent] == ["succeeded"]


def test_n3_a_failure_notice_is_cancelled_when_a_retry_moves_on() -> None:
    engine, clock = clocked_engine()
    engine.apply(ev("failed", 0))
    engine.apply(ev("retried", 1, attempt=2, source="internal"))
    clock.advance_to(T0 + timedelta(hours=1))
    assert [n.status for n in engine.dispatch_due([RecordingSender()])] == ["cancelled"]


def test_n4_senders_are_tried_in_order_until_one_accepts() -> None:
    engine, _ = clocked_engine()
    sms, push = RecordingSender("sms", fail=1), RecordingSender("push")
    engine.apply(ev("succeeded", 0))
    (notice,) = engine.dispatch_due([sms, push])
    assert (notice.status, notice.channel, notice.deliveries) == ("sent", "push", 1)
    assert notice.last_error is not None
    assert notice.last_error.startswith("sms: sms: refused")
    assert [n.notice_id for n in push.sent] == ["d-1#1:succeeded"]
    assert push.sent[0].idempotency_key == push.sent[0].notice_id


def test_n4_failed_deliveries_are_retried_with_backoff_then_given_up() -> None:
    clock_engine, clock = clocked_engine()
    engine = Engine(clock_engine.store, clock=clock, retry=RetryPolicy(max_deliveries=3))
    down = RecordingSender("sms", fail=10)
    engine.apply(ev("succeeded", 0))
    first = engine.dispatch_due([down])[0]
    assert (first.status, first.deliveries, first.due_at) == (
        "queued",
        1,
        T0 + timedelta(minutes=1),
    )
    clock.advance_to(first.due_at)
    second = engine.dispatch_due([down])[0]
    assert second.due_at == clock.now + timedelta(minutes=2)
    clock.advance_to(second.due_at)
    third = engine.dispatch_due([down])[0]
    assert (third.status, third.deliveries) == ("failed", 3)
    assert engine.metrics().acceptance_rate == 0.0
    assert engine.metrics().delivery_rate is None  # no receipt: nothing measured


def test_n2_a_failure_replaced_and_returned_inside_its_window_is_one_notice() -> None:
    engine, clock = clocked_engine()
    sms = RecordingSender("sms")
    engine.apply(ev("failed", 0, source="gateway"))
    engine.apply(ev("succeeded", 1, source="settlement"))
    engine.apply(ev("failed", 2, source="operator"))  # the failure comes back, stronger
    clock.advance_to(T0 + timedelta(hours=1))
    engine.dispatch_due([sms])
    keys = [(n.attempt, n.kind, n.status) for n in engine.notices()]
    assert sorted(keys) == [(1, "failed", "sent"), (1, "succeeded", "cancelled")]
    assert [n.kind for n in sms.sent] == ["failed"]


@pytest.mark.parametrize(
    ("sender", "message"),
    [
        (object(), "has no name; give it a `name` attribute"),
        (type("Nameless", (), {"name": "", "send": lambda self, n: None})(), "has no name"),
        (type("Mute", (), {"name": "sms"})(), "sender 'sms' has no send(notice) method"),
    ],
)
def test_unusable_senders_fail_at_once_with_the_fix(sender: object, message: str) -> None:
    engine, _ = clocked_engine()
    with pytest.raises(InvalidDefinition, match=re.escape(message)):
        engine.dispatch_due([sender])  # type: ignore[list-item]


def test_dispatch_needs_a_sender() -> None:
    with pytest.raises(InvalidDefinition, match="at least one sender"):
        Engine.in_memory().dispatch_due([])


def test_recording_sender_refusal_is_a_delivery_error() -> None:
    sender = RecordingSender("sms", fail=1)
    notice = Notice("n", "d", 1, "succeeded", "succeeded", T0, T0)
    with pytest.raises(DeliveryError):
        sender.send(notice)
    sender.send(notice)
    assert sender.sent == [notice]


def test_n6_every_settled_change_is_told_however_often_the_outcome_changes() -> None:
    engine, clock = clocked_engine()
    sms = RecordingSender("sms")
    engine.apply(ev("succeeded", 0, source="gateway"))
    engine.dispatch_due([sms])
    engine.apply(ev("failed", 1, source="settlement"))
    clock.advance_to(T0 + timedelta(hours=1))
    engine.dispatch_due([sms])  # the correction stating the failure goes out
    assert engine.misinformed() == []
    engine.apply(ev("succeeded", 2, source="operator"))
    assert [(debit_id, told.outcome) for debit_id, told, _ in engine.misinformed()] == [
        ("d-1", "failed")
    ]  # until the second correction goes out
    clock.advance_to(T0 + timedelta(hours=2))
    engine.dispatch_due([sms])
    assert engine.misinformed() == []
    assert [(n.notice_id, n.kind, n.outcome) for n in sms.sent] == [
        ("d-1#1:succeeded", "succeeded", "succeeded"),
        ("d-1#1:correction", "correction", "failed"),
        ("d-1#1:correction:2", "correction", "succeeded"),
    ]
    assert len({n.notice_id for n in engine.notices()}) == len(engine.notices()) == 3


def test_misinformed_lists_a_customer_until_the_correction_is_sent() -> None:
    engine, clock = clocked_engine()
    sms = RecordingSender("sms")
    engine.apply(ev("succeeded", 0, source="gateway"))
    engine.dispatch_due([sms])
    engine.apply(ev("failed", 1, source="settlement"))
    ((debit_id, told, debit),) = engine.misinformed()
    assert (debit_id, told.kind, told.outcome, debit.state) == (
        "d-1",
        "succeeded",
        "succeeded",
        "failed",
    )
    clock.advance_to(T0 + timedelta(hours=1))
    engine.dispatch_due([sms])
    assert engine.misinformed() == []


def test_n1_a_correction_for_a_later_attempt_when_the_last_word_was_wrong() -> None:
    engine, clock = clocked_engine()
    sms = RecordingSender("sms")
    hour = timedelta(hours=1)

    def step(event: object) -> None:
        engine.apply(event)  # type: ignore[arg-type]
        clock.advance_to(clock.now + hour)
        engine.dispatch_due([sms])

    step(ev("failed", 0))
    step(ev("retried", 60, attempt=2, source="internal"))
    step(ev("failed", 120, attempt=2))
    step(ev("succeeded", 1, source="settlement"))  # a late success of attempt 1: a correction
    step(
        ev("failed", 2, source="operator")
    )  # the operator overrules it: attempt 2 failed after all
    assert [(n.kind, n.attempt, n.outcome) for n in sms.sent] == [
        ("failed", 1, "failed"),
        ("failed", 2, "failed"),
        ("correction", 1, "succeeded"),
        ("correction", 2, "failed"),
    ]
    assert engine.misinformed() == []


def test_n3_an_older_notice_superseded_by_a_newer_one_is_not_sent() -> None:
    engine, clock = clocked_engine()
    sms = RecordingSender("sms")
    engine.apply(ev("failed", 0))  # waits 15 minutes
    engine.apply(ev("succeeded", 1, source="settlement"))
    engine.dispatch_due([sms])  # the success goes out at once
    engine.apply(ev("failed", 2, source="operator"))  # a correction stating the failure
    clock.advance_to(T0 + timedelta(hours=1))
    handled = {n.kind: n for n in engine.dispatch_due([sms])}
    assert handled["failed"].status == "cancelled"
    assert handled["correction"].status == "sent"
    assert [n.text() for n in sms.sent] == [
        "Your payment d-1 was collected.",
        "Correction: your payment d-1 could not be collected.",
    ]


def test_a_notice_sent_on_a_channel_is_the_notice_with_those_fields_replaced() -> None:
    planned = Notice("d-1#1:failed", "d-1", 1, "failed", "failed", T0, T0, deliveries=1,
                     status_reason="why", version=3, tried=("push",))  # fmt: skip
    at = T0 + timedelta(minutes=1)
    sent = planned.sent_on("sms", at, "push: down", at + timedelta(hours=1))
    assert sent == planned._replace(status=NoticeStatus.SENT, sent_at=at, channel="sms",
                                    deliveries=2, last_error="push: down",
                                    receipt_by=at + timedelta(hours=1))  # fmt: skip
    assert type(sent) is Notice
