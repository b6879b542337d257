"""``statemachine dispatch --sender URL``: notices POSTed to a real provider on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from click.testing import CliRunner
from provider import Provider
from support import ev

from statemachine import Engine
from statemachine.cli import main

SECRET = "whsec-cli-71c0"


def invoke(*args: str, secret: str | None = None) -> tuple[int, str]:
    # The variable is set, or unset, whatever the environment the tests run in.
    result = CliRunner().invoke(main, list(args), env={"STATEMACHINE_HTTP_SECRET": secret})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database with two success notices due."""
    path = tmp_path / "d.sqlite"
    with Engine.open(path) as engine:
        engine.apply(ev("succeeded", 0, debit_id="d-1"))
        engine.apply(ev("succeeded", 0, debit_id="d-2"))
    return path


def test_dispatch_posts_each_notice_signed_with_the_secret_from_the_environment(
    provider: Provider, db: Path
) -> None:
    code, out = invoke("dispatch", "--db", str(db), "--sender", provider.url(), secret=SECRET)
    assert code == 0, out
    assert out.splitlines() == [
        "sent      d-1#1:succeeded via http",
        "sent      d-2#1:succeeded via http",
    ]
    for request in provider.received:
        signature = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-statemachine-signature"] == f"sha256={signature}"
    keys = [request.headers["idempotency-key"] for request in provider.received]
    assert keys == ["d-1#1:succeeded", "d-2#1:succeeded"]
    assert invoke("dispatch", "--db", str(db), "--sender", provider.url(), secret=SECRET) == (0, "")


def test_a_refusal_or_a_server_error_passes_the_notice_to_the_next_sender(
    provider: Provider, db: Path
) -> None:
    provider.plan(404, 503, path="/a")
    provider.plan(410, 503, path="/b")
    senders = ["--sender", provider.url("/a"), "--sender", provider.url("/b"), "--sender", "print"]
    code, out = invoke("dispatch", "--db", str(db), *senders, "--http-secret", SECRET)
    assert code == 0, out
    assert "sent      d-1#1:succeeded via print" in out
    assert "sent      d-2#1:succeeded via print" in out
    assert SECRET not in out
    with Engine.open(db) as engine:
        errors = {n.debit_id: n.last_error for n in engine.notices()}
    assert errors["d-1"] == (
        f"http: {provider.url('/a')} answered 404 Not Found; "
        f"http-2: {provider.url('/b')} answered 410 Gone"
    )
    assert errors["d-2"] is not None
    assert errors["d-2"].count("503 Service Unavailable") == 2


def test_a_server_error_leaves_the_notice_queued_for_a_retry(provider: Provider, db: Path) -> None:
    provider.plan(500)
    code, out = invoke("dispatch", "--db", str(db), "--sender", provider.url(), secret=SECRET)
    assert code == 0, out
    assert out.splitlines() == ["queued    d-1#1:succeeded", "sent      d-2#1:succeeded via http"]
    with Engine.open(db) as engine:
        [retried] = [n for n in engine.notices() if n.debit_id == "d-1"]
    assert retried.deliveries == 1
    assert retried.due_at > retried.created_at  # backed off


@pytest.mark.parametrize(
    ("url", "says"),
    [("http://", "not an HTTP URL"), ("https://hooks:pw-9e1@127.0.0.1:99999/n",
     "https://***@127.0.0.1:99999/n: no such host or port"), ("http:hooks", "not an HTTP URL")],
)  # fmt: skip
def test_a_bad_url_is_a_clear_error_that_shows_no_password(db: Path, url: str, says: str) -> None:
    code, out = invoke("dispatch", "--db", str(db), "--sender", url, secret=SECRET)
    assert code == 2
    assert "Invalid value for '--sender'" in out
    assert says in out
    assert "expected http://HOST[:PORT]/PATH" in out
    assert "pw-9e1" not in out


def test_a_url_without_a_secret_says_where_to_put_it(provider: Provider, db: Path) -> None:
    code, out = invoke("dispatch", "--db", str(db), "--sender", provider.url())
    assert code == 2
    assert "needs a secret to sign notices with: set STATEMACHINE_HTTP_SECRET" in out
    assert provider.received == []
