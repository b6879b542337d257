"""GoCardless webhook bodies imported as events, proved by replaying them through the engine."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import debit_of, replayed

from statemachine import Event
from statemachine.importers import ImportFailed, ImportOptions, read
from statemachine.replay import Replay

FIXTURES = "gocardless_alphagov_pay-direct-debit-connector"
REAL_PAYMENT = "PM000JWCBM6ABD"
# Each real payment fixture (gocardless-webhook-payment-NAME.json) -> (type, reason).
REAL_TYPES = {
    "submitted": ("submitted", None),
    "confirmed": ("succeeded", None),
    "paid-out": ("succeeded", None),
    "failed": ("failed", "ARUDD-2"),
    "cancelled": ("failed", "ADDACS-0"),
    "customer-approval-denied": ("failed", None),
    "late-failure-settled": ("failed", None),
    "charged-back": ("reversed", "DDICA-1"),
    "chargeback-settled": ("reversed", None),
    "chargeback-cancelled": ("reinstated", "DDICA-5"),
}


def hook(key: str, action: str, at: str, payment: str = "PM1", **details: str) -> dict[str, Any]:
    """A payment event shaped like the real fixtures."""
    return {"id": key, "created_at": at, "resource_type": "payments", "action": action,
            "links": {"payment": payment, "organisation": "OR1"},
            "details": {"origin": "bank", **details}, "metadata": {}}  # fmt: skip


def write(folder: Path, name: str, *bodies: list[dict[str, Any]]) -> Path:
    """One body as a JSON document, several as JSON lines."""
    path = folder / name
    lines = [orjson.dumps({"events": events}) for events in bodies]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def verdicts(replay: Replay, debit_id: str) -> dict[str, str]:
    return {str(e.event_id): str(e.verdict) for e in replay.engine.history(debit_id)}


@pytest.mark.parametrize(("name", "expected"), REAL_TYPES.items())
def test_every_real_payment_fixture_maps_to_its_event(
    realdata: Path, name: str, expected: tuple[str, str | None]
) -> None:
    path = realdata / FIXTURES / f"gocardless-webhook-payment-{name}.json"
    [(origin, event)] = read("gocardless", [path])
    source = orjson.loads(path.read_bytes())["events"][0]
    assert Event.from_dict(event).debit_id == REAL_PAYMENT
    assert (event["type"], event["reason"]) == expected
    assert event["event_id"] == "gc:" + source["id"]
    assert event["data"]["details"]["cause"] == source["details"]["cause"]
    assert origin == f"{path}:events[0]"
    # Alone, a reinstatement has no reversal to cancel: parked, the debit still pending (P3b).
    alone = "pending" if expected[0] == "reinstated" else expected[0]
    assert debit_of(replayed([(origin, event)]).engine, REAL_PAYMENT).state == alone


def test_real_sandbox_webhook_ends_succeeded(realdata: Path) -> None:
    records = list(read("gocardless", [realdata / FIXTURES / "gocardless-webhook.json"]))
    assert [e["type"] for _, e in records] == ["submitted", "succeeded"]
    debit = debit_of(replayed(records).engine, "PM00008Q30R2BR")
    assert (debit.state, debit.attempt, debit.needs_review) == ("succeeded", 1, False)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.randoms(use_true_random=False))
def test_the_real_fixtures_in_any_order_leave_no_customer_misinformed(
    realdata: Path, order: Any
) -> None:
    """The GOV.UK Pay fixtures tell PM000JWCBM6ABD's story several times over (paid out,
    charged back, failed late, charge-back cancelled): whatever order they arrive in, the
    last notice states where it ends (N6), and none was sent twice."""
    records = list(read("gocardless", sorted((realdata / FIXTURES).glob("*.json"))))
    order.shuffle(records)
    replay = replayed(records)
    assert replay.engine.misinformed() == []
    sent = [n.notice_id for n in replay.engine.notices() if n.sent_at is not None]
    assert len(sent) == len(set(sent))
    told = max(
        (n for n in replay.engine.notices(REAL_PAYMENT) if n.sent_at is not None),
        key=lambda n: (n.sent_at, n.version),
    )
    assert told.outcome == debit_of(replay.engine, REAL_PAYMENT).state


def test_real_mandate_fixtures_are_skipped(realdata: Path) -> None:
    mandates = sorted((realdata / FIXTURES).glob("gocardless-webhook-mandate-*.json"))
    assert len(mandates) == 6
    assert list(read("gocardless", mandates)) == []


def test_govuk_out_of_order_body_ends_failed(tmp_path: Path) -> None:
    failed = hook("EV1", "failed", "2019-07-01T16:00:00.000Z", scheme="bacs", reason_code="ARUDD-B")
    paid_out = hook("EV2", "paid_out", "2019-07-01T13:00:00.000Z")
    records = list(read("gocardless", [write(tmp_path, "body.json", [failed, paid_out])]))
    assert [(e["type"], e["reason"]) for _, e in records] == [
        ("failed", "ARUDD-B"),
        ("succeeded", None),
    ]
    replay = replayed(records)
    assert debit_of(replay.engine, "PM1").state == "failed"
    assert verdicts(replay, "PM1") == {"gc:EV1": "applied", "gc:EV2": "conflict"}


def test_chargeback_cancelled_reinstates_the_payment(tmp_path: Path) -> None:
    events = [
        hook("EV1", "confirmed", "2019-07-24T18:00:00Z"),
        hook("EV2", "charged_back", "2019-07-24T19:00:00Z", reason_code="DDICA-1"),
        hook("EV3", "chargeback_cancelled", "2019-07-24T20:00:00Z", reason_code="DDICA-5"),
    ]
    replay = replayed(list(read("gocardless", [write(tmp_path, "cb.json", events)])))
    assert debit_of(replay.engine, "PM1").state == "succeeded"  # P3b
    assert verdicts(replay, "PM1")["gc:EV3"] == "applied"
    told = [n.kind for n in replay.engine.notices("PM1") if n.status == "sent"]
    assert told[-1] == "correction"  # "returned" is taken back


RETRY_STORY = [
    hook("EV1", "submitted", "2019-07-01T10:00:00Z"),
    hook("EV2", "failed", "2019-07-02T10:00:00Z", reason_code="ARUDD-0"),
    hook("EV3", "resubmission_requested", "2019-07-03T10:00:00Z"),
    hook("EV4", "submitted", "2019-07-04T10:00:00Z"),
    hook("EV5", "confirmed", "2019-07-05T10:00:00Z"),
]


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(RETRY_STORY))
def test_resubmission_opens_the_next_attempt_whatever_the_listing_order(
    tmp_path_factory: pytest.TempPathFactory, order: list[dict[str, Any]]
) -> None:
    path = write(tmp_path_factory.mktemp("retry"), "retry.jsonl", *([e] for e in order))
    records = list(read("gocardless", [path]))
    attempts = {e["event_id"]: (e["type"], e["attempt"]) for _, e in records}
    assert attempts == {"gc:EV1": ("submitted", 1), "gc:EV2": ("failed", 1),
                        "gc:EV3": ("retried", 2), "gc:EV4": ("submitted", 2),
                        "gc:EV5": ("succeeded", 2)}  # fmt: skip
    debit = debit_of(replayed(records).engine, "PM1")
    assert (debit.state, debit.attempt) == ("succeeded", 2)


def test_json_lines_name_the_line_and_reimports_replay_as_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path, "hooks.jsonl", [hook("EV1", "submitted", "2019-07-01T10:00:00Z")],
                 [hook("EV2", "confirmed", "2019-07-02T10:00:00Z")])  # fmt: skip
    first, again = list(read("gocardless", [path])), list(read("gocardless", [path]))
    assert [o for o, _ in first] == [f"{path}:1:events[0]", f"{path}:2:events[0]"]
    assert first == again
    replay = replayed(first + again)
    assert [str(e.verdict) for e in replay.engine.history("PM1")].count("duplicate") == 2


def test_a_time_without_offset_is_read_in_the_given_zone(tmp_path: Path) -> None:
    path = write(tmp_path, "naive.json", [hook("EV1", "paid_out", "2019-07-01T13:00:00")])
    options = ImportOptions(timezone=timezone(timedelta(hours=1)))
    [(_, event)] = read("gocardless", [path], options)
    assert event["occurred_at"] == "2019-07-01T13:00:00+01:00"


GOOD = orjson.dumps(
    {"events": [hook("EV1", "paid_out", "2019-07-01T13:00:00Z")]}, option=orjson.OPT_INDENT_2
)


@pytest.mark.parametrize(
    ("content", "where", "problem"),
    [
        pytest.param(GOOD[: GOOD.index(b'"details"')], "line 12, column 7", "truncated", id="cut"),
        pytest.param(b'<?xml version="1.0"?>\n<Document/>', "line 1, column 1", "XML", id="xml"),
        pytest.param(b"", "line 1", "empty file", id="empty"),
        pytest.param(b'{"payments": []}', "top level", "keys payments", id="no-events"),
        pytest.param(b'{"event_id": "gw-1"}\n{}\n', "line 1", '{"events": [...]}', id="our-log"),
        pytest.param(b'{"events": []}\n{"events": [\n', "line 2, column 13", "per line", id="line"),
        pytest.param(
            GOOD.replace(b'"PM1"', b"null"), "events[0].links.payment", "string", id="no-payment"
        ),
        pytest.param(
            GOOD.replace(b"2019-07-01T13", b"July 1st"), "events[0].created_at", "8601", id="time"
        ),
    ],
)
def test_bad_input_names_the_file_and_place(
    tmp_path: Path, content: bytes, where: str, problem: str
) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(GOOD)
    bad.write_bytes(content)
    records = read("gocardless", [good, bad])
    with pytest.raises(ImportFailed) as failure:
        next(records)  # nothing is yielded, not even the good file's events
    assert (failure.value.path, failure.value.where) == (str(bad), where)
    assert problem in failure.value.problem


def test_a_truncated_real_fixture_fails_with_its_line(realdata: Path, tmp_path: Path) -> None:
    real = (realdata / FIXTURES / "gocardless-webhook-payment-failed.json").read_bytes()
    cut = tmp_path / "failed.json"
    cut.write_bytes(real[: real.index(b'"reason_code"')])
    with pytest.raises(ImportFailed, match=r"failed\.json: line 16, column 9: .*truncated"):
        list(read("gocardless", [cut]))
