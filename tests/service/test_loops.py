"""Dispatch and inquiry inside the service: ``serve --sender ... --inquirer ...`` runs each as
a loop of its own beside the requests; a loop's failed round is tried again, and stopping
the service finishes the round in progress."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest
from conftest import DURABLE, Target
from served import start
from support import debit_of, ev

from statemachine import Engine
from statemachine.service.loops import Loop


@pytest.mark.parametrize("store_kind", DURABLE, indirect=True)
def test_serve_dispatches_and_inquires_in_loops_of_its_own(target: Target, tmp_path: Path) -> None:
    with Engine.open(target.url) as engine:  # quiet since March 2026: due for an inquiry
        engine.apply(ev("submitted", 0, debit_id="paid"))
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({"paid": {"type": "succeeded"}}), encoding="utf-8")
    served = start(
        target.url,
        *("--sender", "print", "--dispatch-every", "0.01"),
        *("--inquirer", "gateway_inquirer:make", "--inquire-every", "0.01"),
        env={"GATEWAY_ANSWERS": str(answers), "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    try:
        posted = served.client.post("/events", json={
            "event_id": "gw-1", "debit_id": "posted", "type": "succeeded",
            "occurred_at": "2026-03-05T10:00:00+00:00"})  # fmt: skip
        assert posted.status_code == 200, posted.text
        # The inquiry's answer is applied, and its success notice sent by the dispatch loop,
        # as is the success posted to the service.
        served.wait_for_stdout("-> paid #1 (en): ")
        served.wait_for_stdout("-> posted #1 (en): ")
    finally:
        assert served.stop() == 0, served.stderr  # each loop finishes its round first
    with Engine.open(target.url) as engine:
        assert debit_of(engine, "paid").state == "succeeded"
        assert [i.answer is not None for i in engine.inquiries("paid")] == [True]
        sent = {n.debit_id: (n.kind, n.status) for n in engine.notices()}
    assert sent == {"paid": ("succeeded", "sent"), "posted": ("succeeded", "sent")}


def test_serve_refuses_loops_on_a_store_no_other_connection_can_open(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="need a store other connections can open"):
        start(":memory:", "--sender", "print")


def test_a_failed_round_is_logged_and_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine.in_memory()
    done = threading.Event()
    rounds: list[int] = []

    def work(engine: Engine) -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise ConnectionError("the provider at +86 138 0013 8000 is down")
        done.set()

    loop = Loop("dispatch", lambda: engine, work, every=0)
    with caplog.at_level(logging.ERROR, logger="statemachine.service"):
        loop.start()
        done.wait(60)  # a bound, not a measure
        loop.stop()
    assert done.is_set()
    assert rounds[:2] == [0, 1]
    (record,) = [r for r in caplog.records if "round failed" in r.getMessage()]
    assert "ConnectionError" in record.getMessage()
    assert "138 0013" not in record.getMessage()  # contact details masked


def test_an_engine_that_does_not_open_stops_the_start() -> None:
    def refuse() -> Engine:
        raise OSError("no such store")

    loop = Loop("inquire", refuse, lambda engine: None, every=0)
    with pytest.raises(OSError, match="no such store"):
        loop.start()
    loop.stop()
