"""N7 on every store: a dispatcher claims due notices under a token of its own, renews its
claim right before each send, and records a result only where its claim still holds.

Two dispatchers share one database as two processes would (in memory: one store). Time moves
only through a ManualClock or the explicit ``now`` of each dispatch: no sleeps.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from conftest import DURABLE, EngineFactory, Target, undo_schema_3
from support import T0, ev

from statemachine import Engine, ManualClock, Notice, NoticeStatus, RecordingSender
from statemachine.stores.base import StoreAdapter

LEASE = timedelta(minutes=5)
LATER = T0 + LEASE + timedelta(minutes=1)  # past the first dispatcher's lease


def five_due(make_engine: EngineFactory, clock: ManualClock) -> tuple[Engine, Engine]:
    """Dispatchers A and B on one fresh database holding five due success notices."""
    a = make_engine(clock=clock)
    b = make_engine(clock=clock, sharing=a)
    for n in range(5):
        a.apply(ev("succeeded", 0, debit_id=f"d-{n}"))
    return a, b


@pytest.mark.parametrize("timing", ["clock", "now"])
def test_a_dispatcher_whose_lease_ran_out_mid_send_sends_nothing_more(
    make_engine: EngineFactory, timing: str
) -> None:
    clock = ManualClock(T0)
    a, b = five_due(make_engine, clock)
    b_sms = RecordingSender("sms-b")
    by_b: list[Notice] = []

    def outlast_the_lease(notice: Notice) -> None:
        if not by_b:  # A's first send takes longer than its lease; B dispatches meanwhile
            clock.advance_to(LATER)
            by_b.extend(b.dispatch_due([b_sms], now=LATER if timing == "now" else None))

    a_sms = RecordingSender("sms-a", on_send=outlast_the_lease)
    by_a = a.dispatch_due([a_sms], now=T0 if timing == "now" else None, lease=LEASE)

    (in_flight,) = (n.notice_id for n in a_sms.sent)
    sends = Counter(n.notice_id for n in [*a_sms.sent, *b_sms.sent])
    assert len(sends) == 5
    assert {notice_id for notice_id, count in sends.items() if count > 1} == {in_flight}
    assert max(sends.values()) == 2
    assert [n.notice_id for n in by_a] == [in_flight]
    assert sorted(n.notice_id for n in by_b) == sorted(sends)
    stored = a.notices()
    assert Counter(n.status for n in stored) == {"sent": 5}
    assert {n.channel for n in stored} == {"sms-b"}  # A did not overwrite B's record
    assert a.dispatch_due([a_sms], now=LATER + LEASE) == []


def test_a_dispatcher_whose_lease_ran_out_records_its_send_and_leaves_the_rest(
    make_engine: EngineFactory,
) -> None:
    clock = ManualClock(T0)
    a, b = five_due(make_engine, clock)

    def outlast_the_lease(notice: Notice) -> None:
        clock.advance_to(LATER)  # and no other dispatcher comes meanwhile

    slow = RecordingSender("sms", on_send=outlast_the_lease)
    (first,) = a.dispatch_due([slow], lease=LEASE)  # the other claims ran out: passed by
    assert [n.notice_id for n in slow.sent] == [first.notice_id]
    assert {n.notice_id: n.status for n in a.notices()}[first.notice_id] == "sent"
    sms = RecordingSender("sms")
    assert len(b.dispatch_due([sms])) == 4
    assert sorted(n.notice_id for n in [*slow.sent, *sms.sent]) == sorted(
        n.notice_id for n in a.notices()
    )


def test_a_record_under_a_claim_taken_over_is_not_written(make_engine: EngineFactory) -> None:
    clock = ManualClock(T0)
    a, b = five_due(make_engine, clock)
    first, *rest = a.store.claim_due(T0, LEASE, token="a")
    assert a.store.renew_claim(first.notice_id, "a", T0, LEASE)
    taken = b.store.claim_due(LATER, LEASE, token="b")  # A's send outlasted its lease
    assert [n.notice_id for n in taken] == [first.notice_id, *(n.notice_id for n in rest)]
    a.store.save_notices([sent(first, "sms-a", T0)], token="a")
    assert [a.store.renew_claim(n.notice_id, "a", T0, LEASE) for n in rest] == [False] * 4
    assert {n.status for n in a.notices()} == {"queued"}  # B holds them all, A wrote nothing
    b.store.save_notices([sent(n, "sms-b", LATER) for n in taken], token="b")
    a.store.save_notices([sent(first, "sms-a", T0)], token="a")  # too late as well
    records = {(n.status, n.channel, n.sent_at) for n in b.notices()}
    assert records == {("sent", "sms-b", LATER)}


def test_a_claim_is_renewed_only_by_its_holder_while_it_lasts(make_engine: EngineFactory) -> None:
    a, b = five_due(make_engine, ManualClock(T0))
    store: StoreAdapter = a.store
    first, second, *_ = store.claim_due(T0, LEASE, limit=2, token="a")
    assert store.renew_claim(first.notice_id, "a", T0 + timedelta(minutes=4), LEASE)
    assert not store.renew_claim(first.notice_id, "b", T0, LEASE)  # not B's claim
    assert not store.renew_claim(second.notice_id, "a", T0 + LEASE, LEASE)  # ran out
    assert not store.renew_claim("no-such-notice", "a", T0, LEASE)
    # Renewed at minute 4, the first claim lasts to minute 9; the second ran out at minute 5.
    at_six = b.store.claim_due(T0 + timedelta(minutes=6), LEASE, token="b")
    assert first.notice_id not in {n.notice_id for n in at_six}
    assert second.notice_id in {n.notice_id for n in at_six}
    assert not store.renew_claim(second.notice_id, "a", T0, LEASE)  # B holds it now
    store.save_notices([sent(first, "sms-a", T0)], token="a")
    assert not store.renew_claim(first.notice_id, "a", T0, LEASE)  # settled: nothing to renew
    assert first.notice_id not in {
        n.notice_id for n in b.store.claim_due(T0 + timedelta(hours=1), LEASE, token="c")
    }


@pytest.mark.parametrize("store_kind", DURABLE, indirect=True)
def test_a_database_from_before_claim_tokens_gains_them_when_opened(target: Target) -> None:
    Engine.open(target.url).close()
    undo_schema_3(target)
    clock = ManualClock(T0)
    with Engine.open(target.url, clock=clock) as engine:
        engine.apply(ev("succeeded", 0))
        sms = RecordingSender("sms")
        assert [n.status for n in engine.dispatch_due([sms])] == ["sent"]
    Engine.open(target.url).close()  # and opening it again changes nothing
    assert len(sms.sent) == 1
    assert target.query("SELECT status, claimed_by FROM notices") == [("sent", None)]


def sent(notice: Notice, channel: str, at: datetime) -> Notice:
    return notice._replace(status=NoticeStatus.SENT, channel=channel, sent_at=at, deliveries=1)
