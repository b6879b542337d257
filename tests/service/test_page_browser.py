"""The operator's page served over real HTTP on 127.0.0.1 and opened in headless Chromium:
the figures the browser shows are the ones ``/metrics`` reports, and the charts are drawn.

The ``served`` fixture starts the service; the tests only need its base URL, a page at
``/``, debit pages at ``/debits/{id}`` and Prometheus text at ``/metrics``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from support import HOSTILE, Page, ThreadWriter, chromium, needs_chromium, png_pixels, serving

from statemachine import Engine, ManualClock
from statemachine.charts import COLOURS
from statemachine.operations import prometheus_text
from statemachine.replay import BatchedReplay, replay_logs
from statemachine.service.page import debit_page, operator_page
from statemachine.spec import bundled_path

EXAMPLE = bundled_path("examples", "car-loans-month.jsonl")


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example month replayed into SQLite, with delivery receipts for its notices (one in
    nine undelivered) and a stuck debit whose id is hostile markup."""
    path = tmp_path_factory.mktemp("book") / "debits.sqlite"
    with Engine.open(path, clock=ManualClock(), synchronous="OFF") as engine:
        replay_logs(BatchedReplay(engine, batch_size=500), [EXAMPLE])
    with Engine.open(path, synchronous="OFF") as engine:
        sent = [(n, n.sent_at) for n in engine.notices() if n.status == "sent"]
        for number, (notice, at) in enumerate(sent):
            assert at is not None
            assert notice.channel is not None
            status = "undelivered" if number % 9 == 0 else "delivered"
            engine.record_receipt(
                notice.notice_id, notice.channel, status, at + timedelta(minutes=3)
            )
        engine.apply({"event_id": "x-1", "debit_id": HOSTILE, "type": "submitted",
                      "occurred_at": "2026-03-20T10:00:00+00:00"})  # fmt: skip
    return path


async def metrics(request: Request) -> Response:
    text = await request.app.state.writer.read(lambda engine: prometheus_text(engine.metrics()))
    return PlainTextResponse(text)


@pytest.fixture(scope="module")
def served(database: Path) -> Iterator[str]:
    """The base URL of a service showing ``database``: a real uvicorn server on a free port
    of 127.0.0.1 whose engine is reached only through the writer, as in the service."""
    app = Starlette(
        routes=[
            Route("/", operator_page),
            Route("/debits/{debit_id:path}", debit_page),
            Route("/metrics", metrics),
        ]
    )
    with Engine.open(database) as engine:
        app.state.writer = ThreadWriter(engine)
        with serving(app) as url:
            yield url


def gauge(text: str, name: str) -> float:
    found = re.search(rf"^statemachine_{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"no statemachine_{name} in /metrics"
    return float(found.group(1))


def test_the_page_and_each_debits_page_are_served(served: str) -> None:
    with httpx.Client(base_url=served) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert client.get("/?by=hour").status_code == 200
        wrong = client.get("/?by=week")
        assert (wrong.status_code, wrong.text) == (400, "by: expected one of hour, day, got 'week'")
        href = f"/debits/{quote(HOSTILE, safe='')}"
        assert (href, HOSTILE) in Page(page.text).links
        debit = client.get(href)
        assert debit.status_code == 200
        assert "<h1>Debit &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in debit.text
        assert client.get("/debits/nobody").status_code == 404


@needs_chromium
def test_chromium_shows_the_figures_that_metrics_reports(served: str, tmp_path: Path) -> None:
    figures = Page(chromium(f"{served}/", tmp_path)).figures
    text = httpx.get(f"{served}/metrics").text
    assert float(figures["success-rate"]) == gauge(text, "success_rate")
    assert 0.9 < gauge(text, "success_rate") < 0.95  # 365 of 400 debits with an outcome
    assert float(figures["delivery-rate"]) == gauge(text, "delivery_rate")
    for name in ("stuck", "conflicts", "misinformed", "needs_review"):
        assert float(figures[name.replace("_", "-")]) == gauge(text, name), name
    assert gauge(text, "stuck") == 1  # the hostile debit


@needs_chromium
def test_chromium_draws_the_success_and_delivery_charts(served: str, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    chromium(f"{served}/", tmp_path, screenshot=shot, size="1000,900")
    pixels = png_pixels(shot.read_bytes())
    total = sum(pixels.values())
    assert total == 1000 * 900
    assert pixels[(255, 255, 255)] < 0.95 * total  # not a blank page
    # The columns of the success chart (green) and of the delivery chart (blue).
    assert pixels[rgb(COLOURS[0])] > 2000
    assert pixels[rgb(COLOURS[2])] > 2000
