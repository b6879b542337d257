"""Every endpoint of a real ``statemachine serve`` over real HTTP: answers and failures."""

from __future__ import annotations

import socket
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import orjson
from click.testing import CliRunner
from served import serving, start

from statemachine import Engine
from statemachine.cli import main
from statemachine.service.webhooks import signature


def event(
    event_id: str, type: str = "succeeded", debit_id: str = "d-1", **extra: Any
) -> dict[str, Any]:
    return {"event_id": event_id, "debit_id": debit_id, "type": type,
            "occurred_at": "2026-03-05T10:00:00+00:00", **extra}  # fmt: skip


def rows(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def test_events_in_every_form_are_answered_with_their_verdicts_after_the_commit(
    tmp_path: Path,
) -> None:
    db = tmp_path / "debits.sqlite"
    with serving(str(db)) as served:
        one = served.client.post("/events", json=event("gw-1", "submitted"))
        many = served.client.post("/events", json=[event("gw-2"), event("gw-2")])
        lines = b"\n".join(orjson.dumps(event(f"gw-{n}", "failed", f"d-{n}")) for n in (3, 4))
        jsonl = served.client.post("/events", content=lines + b"\n")
        debit = served.client.get("/debits/d-1")
    assert one.status_code == 200
    assert one.json()["results"][0] | {"at": None} == {
        "event_id": "gw-1", "debit_id": "d-1", "verdict": "applied", "reason": one.json()["results"][0]["reason"],
        "state": "submitted", "attempt": 1, "needs_review": False, "at": None,
    }  # fmt: skip
    assert [r["verdict"] for r in many.json()["results"]] == ["applied", "duplicate"]
    assert [(r["at"], r["verdict"]) for r in jsonl.json()["results"]] == [
        ("line 1", "applied"),
        ("line 2", "applied"),
    ]
    # Answered after the commit: the rows are there for any other reader.
    assert rows(db, "SELECT event_id, verdict FROM events ORDER BY seq") == [
        ("gw-1", "applied"), ("gw-2", "applied"), ("gw-2", "duplicate"),
        ("gw-3", "applied"), ("gw-4", "applied"),
    ]  # fmt: skip
    shown = debit.json()
    assert shown["debit"]["state"] == "succeeded"
    assert [(e["event_id"], e["verdict"]) for e in shown["events"]] == [
        ("gw-1", "applied"), ("gw-2", "applied"), ("gw-2", "duplicate"),
    ]  # fmt: skip
    assert [n["kind"] for n in shown["notices"]] == ["succeeded"]


def test_bad_input_is_answered_400_naming_line_and_field_and_stored_invalid(
    tmp_path: Path,
) -> None:
    db = tmp_path / "debits.sqlite"
    body = orjson.dumps(event("gw-1")) + b"\n" + orjson.dumps(event("gw-2", "paid")) + b"\n"
    with serving(str(db)) as served:
        bad = served.client.post("/events", content=body)
        broken = served.client.post("/events", content=b'{"event_id": "gw-3", "debit_id"')
        empty = served.client.post("/events", content=b"")
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("line 2: type: expected one of created,")
    assert "got 'paid'" in bad.json()["error"]
    assert [r["verdict"] for r in bad.json()["results"]] == ["applied", "invalid"]
    assert broken.status_code == 400
    assert broken.json()["error"].startswith("line 1: event: expected one JSON object, got")
    assert empty.status_code == 400
    assert "got none" in empty.json()["error"]
    stored = rows(db, "SELECT event_id, verdict, raw FROM events WHERE verdict = 'invalid'")
    assert stored == [
        ("gw-2", "invalid", orjson.dumps(event("gw-2", "paid")).decode()),
        (None, "invalid", '{"event_id": "gw-3", "debit_id"'),
    ]


def test_a_body_over_the_limit_is_413_whether_its_size_is_told_or_streamed(tmp_path: Path) -> None:
    db = tmp_path / "debits.sqlite"
    big = orjson.dumps([event(f"gw-{n}") for n in range(40)])
    assert len(big) > 1000

    def chunks() -> Any:
        yield big[:600]
        yield big[600:]

    with serving(str(db), "--body-limit", "1000") as served:
        told = served.client.post("/events", content=big)
        streamed = served.client.post("/events", content=chunks())
        small = served.client.post("/events", json=event("gw-x"))
    assert (told.status_code, streamed.status_code, small.status_code) == (413, 413, 200)
    assert told.json() == {"error": "body: expected at most 1000 bytes"}
    assert rows(db, "SELECT event_id FROM events") == [("gw-x",)]


def test_a_token_guards_every_endpoint_but_healthz_and_the_webhook(tmp_path: Path) -> None:
    db = str(tmp_path / "debits.sqlite")
    with serving(db, "--gocardless-secret", "s3cret", token="t0ken") as served:
        anonymous = httpx.Client(base_url=served.url)
        wrong = httpx.Client(base_url=served.url, headers={"Authorization": "Bearer nope"})
        for path in ("/metrics", "/debits/d-1"):
            assert anonymous.get(path).status_code == 401
            assert wrong.get(path).status_code == 401
        refused = anonymous.post("/events", json=event("gw-1"))
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "bearer token is required" in refused.json()["error"]
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        hook = anonymous.post("/webhooks/gocardless", content=b'{"events": []}',
                              headers={"Webhook-Signature": signature(b'{"events": []}', "s3cret")})  # fmt: skip
        assert hook.status_code == 200
        assert served.client.post("/events", json=event("gw-1")).status_code == 200
        anonymous.close()
        wrong.close()
    assert rows(Path(db), "SELECT event_id FROM events") == [("gw-1",)]


def test_without_a_token_the_service_refuses_to_listen_beyond_loopback(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--db", str(tmp_path / "d.sqlite"), "--host", "0.0.0.0"],
        env={"STATEMACHINE_TOKEN": None},
    )
    assert result.exit_code == 2
    assert "--host 0.0.0.0 is reachable from other machines" in result.output
    assert "--token" in result.output
    assert not (tmp_path / "d.sqlite").exists()


def test_unknown_debit_is_404_and_metrics_are_prometheus_text(tmp_path: Path) -> None:
    db = str(tmp_path / "debits.sqlite")
    with serving(db) as served:
        served.client.post("/events", json=[event("gw-1", "failed"), event("gw-2", debit_id="d-2")])
        missing = served.client.get("/debits/loan-9/2026-03")
        metrics = served.client.get("/metrics")
    assert missing.status_code == 404
    assert missing.json() == {"error": "debit_id: no event has named 'loan-9/2026-03'"}
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'statemachine_events{verdict="applied"} 2.0' in metrics.text
    assert 'statemachine_debits{state="failed"} 1.0' in metrics.text
    assert "statemachine_success_rate 0.5" in metrics.text


def test_contact_details_are_masked_in_answers(tmp_path: Path) -> None:
    db = str(tmp_path / "debits.sqlite")
    customer = {"customer": {"contact": {"sms": "+8613800001234"}}}
    with serving(db) as served:
        served.client.post("/events", json=event("gw-1", "created", amount=100, data=customer))
        bad = served.client.post("/events", json=event("gw-2", reason=123, data=customer))
        shown = served.client.get("/debits/d-1").text
        echoed = served.client.post("/events", json=event("gw-3", attempt="+8613800001234"))
    assert "13800001234" not in shown
    assert "+86******1234" in shown
    assert bad.status_code == 400
    assert "13800001234" not in bad.text
    assert echoed.status_code == 400
    assert echoed.json()["error"] == (
        "line 1: attempt: expected an integer >= 1, got '+86******1234'"
    )


def test_busy_store_is_503_with_retry_after_and_nothing_stored(tmp_path: Path) -> None:
    db = tmp_path / "debits.sqlite"
    with serving(str(db)) as served:
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the file past the busy timeout
        busy = served.client.post("/events", json=event("gw-1"))
        holder.execute("ROLLBACK")
        holder.close()
        after = served.client.post("/events", json=event("gw-2"))
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "1"
    assert "another writer held the database" in busy.json()["error"]
    assert after.status_code == 200
    assert rows(db, "SELECT event_id FROM events") == [("gw-2",)]


def test_healthz_is_503_once_the_store_does_not_answer(tmp_path: Path) -> None:
    db = tmp_path / "debits.sqlite"
    with serving(str(db)) as served:
        assert served.client.get("/healthz").status_code == 200
        with closing(sqlite3.connect(db)) as conn:
            conn.execute("DROP TABLE debits")
        broken = served.client.get("/healthz")
    assert broken.status_code == 503
    assert broken.json()["error"].startswith("store: ")
    assert "no such table" in broken.json()["error"]


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    db = tmp_path / "debits.sqlite"
    served = start(str(db), "--log-level", "trace")
    body = orjson.dumps(event("gw-1"))
    host, port = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:
        head = f"POST /events HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        conn.sendall(head.encode() + body[:10])
        served.wait_for_stderr("'more_body': True")  # the app is reading this request's body
        served.process.send_signal(15)
        served.wait_for_stderr("Shutting down")
        conn.sendall(body[10:])
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    assert b'"verdict":"applied"' in answer
    assert served.process.wait() == 0
    with Engine.open(db, create=False) as engine:
        assert [s.event_id for s in engine.history("d-1")] == ["gw-1"]


def test_the_service_serves_the_operators_page_and_a_debits_page_for_browsers(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "debits.sqlite")
    with serving(db, token="t0ken") as served:
        assert served.client.post("/events", json=[event("gw-1", "submitted"), event("gw-2")])
        bare = httpx.get(served.url + "/", timeout=10)
        page = served.client.get("/")
        metrics = served.client.get("/metrics").text
        browser = served.client.get("/debits/d-1", headers={"Accept": "text/html"})
        program = served.client.get("/debits/d-1")
    assert bare.status_code == 401
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="success-rate" value="1.0"' in page.text
    assert "statemachine_success_rate 1.0" in metrics
    assert 'href="/debits/d-1"' in page.text
    assert browser.headers["content-type"].startswith("text/html")
    assert "gw-2" in browser.text
    assert program.json()["debit"]["state"] == "succeeded"
