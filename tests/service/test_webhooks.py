"""``POST /webhooks/gocardless`` on a real server: signed bodies mapped as the importer maps
them, a wrong signature refused with 498, a resubmission counted across deliveries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from served import Served, serving

from statemachine import Engine
from statemachine.importers import ImportOptions, ImportTally, gocardless
from statemachine.service.webhooks import signature

SECRET = "whsec-test"


def hook(served: Served, body: bytes, secret: str = SECRET) -> Any:
    return served.client.post(
        "/webhooks/gocardless", content=body, headers={"Webhook-Signature": signature(body, secret)}
    )


def payment(event_id: str, action: str, at: str, payment: str = "PM1") -> dict[str, Any]:
    return {"id": event_id, "created_at": at, "resource_type": "payments", "action": action,
            "links": {"payment": payment}}  # fmt: skip


def test_real_webhook_bodies_are_stored_as_the_importer_reads_them(
    tmp_path: Path, realdata: Path
) -> None:
    folder = realdata / "gocardless_alphagov_pay-direct-debit-connector"
    files = sorted(folder.glob("gocardless-webhook-payment-*.json"))
    assert files
    db = tmp_path / "debits.sqlite"
    with serving(str(db), "--gocardless-secret", SECRET) as served:
        answers = [hook(served, path.read_bytes()) for path in files]
    assert {answer.status_code for answer in answers} == {200}
    expected = [
        event for path in files
        for _, event in gocardless.read([path], ImportOptions(), ImportTally())
    ]  # fmt: skip
    with Engine.open(db, create=False) as engine:
        stored = [s for debit_id in sorted({e["debit_id"] for e in expected})
                  for s in engine.history(debit_id)]  # fmt: skip
    assert sorted((s.event_id, s.type, s.attempt) for s in stored) == sorted(
        (e["event_id"], e["type"], e["attempt"]) for e in expected
    )
    answered = [r["event_id"] for answer in answers for r in answer.json()["results"]]
    assert sorted(answered) == sorted(e["event_id"] for e in expected)


def test_a_wrong_signature_is_498_and_nothing_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "debits.sqlite"
    body = orjson.dumps({"events": [payment("EV1", "confirmed", "2026-03-05T10:00:00Z")]})
    with serving(str(db), "--gocardless-secret", SECRET) as served:
        forged = hook(served, body, secret="another")
        unsigned = served.client.post("/webhooks/gocardless", content=body)
        metrics = served.client.get("/metrics").text
    assert (forged.status_code, unsigned.status_code) == (498, 498)
    assert "Webhook-Signature" in forged.json()["error"]
    assert "statemachine_events{" not in metrics


def test_attempts_count_resubmissions_of_earlier_deliveries(tmp_path: Path) -> None:
    db = tmp_path / "debits.sqlite"
    first = {"events": [payment("EV1", "failed", "2026-03-05T10:00:00Z"),
                        payment("EV2", "resubmission_requested", "2026-03-06T10:00:00Z")]}  # fmt: skip
    later = {"events": [payment("EV3", "confirmed", "2026-03-09T10:00:00Z")]}
    with serving(str(db), "--gocardless-secret", SECRET) as served:
        one = hook(served, orjson.dumps(first))
        two = hook(served, orjson.dumps(later))
        again = hook(served, orjson.dumps(first))  # delivered twice
    assert [(r["event_id"], r["verdict"]) for r in one.json()["results"]] == [
        ("gc:EV1", "applied"), ("gc:EV2", "applied"),
    ]  # fmt: skip
    assert two.json()["results"][0] | {"reason": None} == {
        "event_id": "gc:EV3", "debit_id": "PM1", "verdict": "applied", "reason": None,
        "state": "succeeded", "attempt": 2, "needs_review": False,
    }  # fmt: skip
    assert [r["verdict"] for r in again.json()["results"]] == ["duplicate", "duplicate"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"events": [{"id": "EV1"', "line 1, column"),
        (b'{"event": []}', "top level: expected a GoCardless webhook body"),
        (
            orjson.dumps({"events": [payment("EV1", "paid_out", "2026-03-05T10:00:00Z", "")]}),
            "events[0].links.payment: expected a non-empty string",
        ),
    ],
)
def test_a_signed_body_that_is_no_webhook_is_400_and_stored_invalid(
    tmp_path: Path, body: bytes, error: str
) -> None:
    db = tmp_path / "debits.sqlite"
    with serving(str(db), "--gocardless-secret", SECRET) as served:
        answer = hook(served, body)
    assert answer.status_code == 400
    assert error in answer.json()["error"]
    with Engine.open(db, create=False) as engine:
        assert [(s.verdict.value, s.raw) for s in engine.rejected()] == [("invalid", body.decode())]


def test_without_a_secret_the_webhook_is_404(tmp_path: Path) -> None:
    with serving(str(tmp_path / "debits.sqlite")) as served:
        answer = served.client.post("/webhooks/gocardless", content=b"{}")
    assert answer.status_code == 404
    assert "--gocardless-secret" in answer.json()["error"]
