"""The HTTP channel against a real HTTP provider on 127.0.0.1: what it sends, and what each
kind of answer (or no answer) means for the notice."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
from datetime import timedelta

import orjson
import pytest
from provider import Provider
from support import T0, clocked_engine, ev

from statemachine import (
    DeliveryDeferred,
    DeliveryError,
    DeliveryRefused,
    InvalidDefinition,
    ManualClock,
    Notice,
    NoticeStatus,
    RecordingSender,
)
from statemachine.channels.http import AsyncHttpSender, HttpSender

SECRET = "whsec-test-3f9a"
NOTICE = Notice("d-1#1:succeeded", "d-1", 1, "succeeded", "succeeded", T0, T0)
# Short, so a test of an answer that never comes ends soon; no test measures time.
READ_TIMEOUT = 0.2


def verifies(body: bytes, header: str, secret: str = SECRET) -> bool:
    """The receiving side's check, written from the documented format, not from our code."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


def test_an_accepted_notice_is_signed_json_under_its_idempotency_key(provider: Provider) -> None:
    with HttpSender(provider.url("/hooks/notices"), SECRET) as sender:
        sender.send(NOTICE)
    [request] = provider.received
    assert (request.method, request.path) == ("POST", "/hooks/notices")
    assert request.headers["idempotency-key"] == NOTICE.notice_id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("statemachine/")
    assert verifies(request.body, request.headers["x-statemachine-signature"])
    assert not verifies(request.body, request.headers["x-statemachine-signature"], "other")
    assert orjson.loads(request.body) == {
        "notice_id": "d-1#1:succeeded",
        "debit_id": "d-1",
        "attempt": 1,
        "kind": "succeeded",
        "outcome": "succeeded",
        "due_at": "2026-03-05T10:00:00+00:00",
        "text": "Your payment d-1 was collected.",
    }


def test_the_same_notice_sent_twice_carries_the_same_key_over_one_pooled_connection(
    provider: Provider,
) -> None:
    with HttpSender(provider.url(), SECRET) as sender:
        sender.send(NOTICE)
        sender.send(NOTICE)
    first, second = provider.received
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == NOTICE.notice_id
    assert first.body == second.body
    assert first.client_port == second.client_port


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, DeliveryRefused), (401, DeliveryRefused), (404, DeliveryRefused),
     (422, DeliveryRefused), (301, DeliveryRefused), (408, DeliveryDeferred),
     (429, DeliveryDeferred), (500, DeliveryDeferred), (502, DeliveryDeferred),
     (503, DeliveryDeferred)],
)  # fmt: skip
def test_each_answer_is_refused_or_deferred(
    provider: Provider, status: int, kind: type[Exception]
) -> None:
    provider.plan(status)
    with HttpSender(provider.url(), SECRET) as sender, pytest.raises(kind) as raised:
        sender.send(NOTICE)
    assert isinstance(raised.value, DeliveryRefused | DeliveryDeferred)
    assert raised.value.status == status
    assert f"answered {status}" in str(raised.value)


def test_a_refusal_passes_the_notice_to_the_next_channel(provider: Provider) -> None:
    engine, _ = clocked_engine()
    engine.apply(ev("succeeded", 0))
    provider.plan(422)
    sms = RecordingSender("sms")
    with HttpSender(provider.url(), SECRET) as http:
        [notice] = engine.dispatch_due([http, sms])
    assert (notice.status, notice.channel) == (NoticeStatus.SENT, "sms")
    assert notice.last_error is not None
    assert "422" in notice.last_error
    assert [n.notice_id for n in sms.sent] == [provider.received[0].headers["idempotency-key"]]


def test_a_server_error_is_retried_with_backoff_under_the_same_key(provider: Provider) -> None:
    engine, clock = clocked_engine()
    engine.apply(ev("succeeded", 0))
    provider.plan(500)
    with HttpSender(provider.url(), SECRET) as http:
        [failed] = engine.dispatch_due([http])
        assert (failed.status, failed.deliveries) == (NoticeStatus.QUEUED, 1)
        assert failed.due_at == clock() + engine.retry.delay(1)
        assert failed.last_error is not None
        assert "500" in failed.last_error
        assert engine.dispatch_due([http]) == []  # not due again before the backoff
        clock.advance_to(failed.due_at)
        [sent] = engine.dispatch_due([http])
    assert (sent.status, sent.channel, sent.deliveries) == (NoticeStatus.SENT, "http", 2)
    keys = [request.headers["idempotency-key"] for request in provider.received]
    assert keys == [failed.notice_id, failed.notice_id]


def test_an_answer_slower_than_the_read_timeout_is_deferred(provider: Provider) -> None:
    provider.plan("hang", path="/slow")
    sender = HttpSender(provider.url("/slow"), SECRET, read_timeout=READ_TIMEOUT)
    with sender, pytest.raises(DeliveryDeferred, match="ReadTimeout") as raised:
        sender.send(NOTICE)
    assert (raised.value.status, raised.value.retry_after) == (None, None)


@pytest.mark.parametrize("drop", ["close", "reset"])
def test_a_dropped_connection_is_deferred(provider: Provider, drop: str) -> None:
    provider.plan("close" if drop == "close" else "reset")
    with HttpSender(provider.url(), SECRET) as sender:
        with pytest.raises(DeliveryDeferred, match="disconnected" if drop == "close" else "reset"):
            sender.send(NOTICE)
        sender.send(NOTICE)
    assert [r.headers["idempotency-key"] for r in provider.received] == [NOTICE.notice_id] * 2


def test_a_refused_connection_is_deferred() -> None:
    # Bound and never listening: connecting to it is refused at once, and nobody else can take it.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/notices"
        with HttpSender(url, SECRET) as sender, pytest.raises(DeliveryDeferred, match="Connect"):
            sender.send(NOTICE)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_makes_the_channel_back_off_until_then(provider: Provider, status: int) -> None:
    clock = ManualClock(T0)
    provider.plan((status, {"Retry-After": "120"}))
    with HttpSender(provider.url(), SECRET, clock=clock) as sender:
        with pytest.raises(DeliveryDeferred) as first:
            sender.send(NOTICE)
        assert (first.value.status, first.value.retry_after) == (status, timedelta(seconds=120))
        assert sender.not_before == T0 + timedelta(seconds=120)
        clock.advance_to(T0 + timedelta(seconds=90))
        with pytest.raises(DeliveryDeferred, match="backing off") as resting:
            sender.send(NOTICE)
        assert resting.value.retry_after == timedelta(seconds=30)
        assert len(provider.received) == 1  # refused without asking the provider
        clock.advance_to(T0 + timedelta(seconds=120))
        sender.send(NOTICE)
    assert sender.not_before is None
    assert len(provider.received) == 2


def test_an_unbounded_retry_after_is_capped(provider: Provider) -> None:
    provider.plan((429, {"Retry-After": "9" * 40}))
    sender = HttpSender(provider.url(), SECRET, clock=lambda: T0)
    with sender, pytest.raises(DeliveryDeferred) as raised:
        sender.send(NOTICE)
    assert raised.value.retry_after == timedelta(hours=1)


def test_no_secret_reaches_a_message_or_a_repr(provider: Provider) -> None:
    url = provider.url("/n?token=tok-8d1e").replace("//", "//op-7a2b:pw-51c2@")
    provider.plan(500, 403, "close", path="/n")
    messages = []
    with HttpSender(url, SECRET) as sender:
        messages.append(repr(sender))
        for _ in range(3):
            with pytest.raises(DeliveryError) as raised:
                sender.send(NOTICE)
            messages.append(str(raised.value))
    assert provider.received[0].headers["authorization"].startswith("Basic ")  # it was used
    for text in messages:
        assert "127.0.0.1" in text
        assert all(hidden not in text for hidden in ("tok-8d1e", "op-7a2b", "pw-51c2", SECRET)), (
            text
        )


@pytest.mark.parametrize(
    ("url", "secret", "says"),
    [("http://", SECRET, "not an HTTP URL"), ("ftp://example.com/", SECRET, "not an HTTP URL"),
     ("http://127.0.0.1:99999/", SECRET, "no such host or port"), ("http://[::1/", SECRET,
     "not a URL"), ("https://example.com/", "", "no secret")],
)  # fmt: skip
def test_misuse_fails_at_once_with_the_fix(url: str, secret: str, says: str) -> None:
    with pytest.raises(InvalidDefinition, match=says):
        HttpSender(url, secret)
    with pytest.raises(InvalidDefinition, match="read_timeout"):
        HttpSender("https://example.com/", SECRET, read_timeout=0)


def test_the_async_sender_accepts_refuses_defers_and_backs_off(provider: Provider) -> None:
    notices = [NOTICE._replace(notice_id=f"d-{n}#1:succeeded", debit_id=f"d-{n}") for n in range(5)]
    clock = ManualClock(T0)
    provider.plan("hang", path="/slow")

    async def attempt(sender: AsyncHttpSender) -> DeliveryError | None:
        try:
            await sender.send(NOTICE)
        except DeliveryError as exc:
            return exc
        return None

    async def scenario() -> list[DeliveryError | None]:
        impatient = AsyncHttpSender(provider.url("/slow"), SECRET, read_timeout=READ_TIMEOUT)
        async with AsyncHttpSender(provider.url(), SECRET, clock=clock) as sender, impatient:
            await asyncio.gather(*(sender.send(notice) for notice in notices))
            provider.plan(404, "close", (429, {"Retry-After": "60"}))
            outcomes = [await attempt(sender) for _ in range(4)]  # the last while backing off
            outcomes.append(await attempt(impatient))
            clock.advance_to(T0 + timedelta(seconds=60))
            outcomes.append(await attempt(sender))
            return outcomes

    refused, dropped, limited, resting, slow, accepted = asyncio.run(scenario())
    assert isinstance(refused, DeliveryRefused)
    assert refused.status == 404
    assert isinstance(dropped, DeliveryDeferred)
    assert isinstance(limited, DeliveryDeferred)
    assert limited.retry_after == timedelta(seconds=60)
    assert isinstance(resting, DeliveryDeferred)
    assert "backing off" in str(resting)
    assert isinstance(slow, DeliveryDeferred)
    assert "ReadTimeout" in str(slow)
    assert accepted is None
    # The hung request may reach the provider's records late: only the other path is counted.
    received = [r for r in provider.received if r.path == "/notices"]
    assert len(received) == 5 + 3 + 1  # none while backing off
    assert sorted(r.headers["idempotency-key"] for r in received[:5]) == sorted(
        n.notice_id for n in notices
    )
    assert all(verifies(r.body, r.headers["x-statemachine-signature"]) for r in received)
