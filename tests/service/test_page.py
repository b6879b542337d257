"""The operator's page and a debit's page as HTML: the figures are the metrics', the debits
link to their pages, contacts are masked, and nothing a debit id holds escapes as markup."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote, unquote

from hypothesis import assume, given
from hypothesis import strategies as st
from support import HOSTILE, T0, Page, ev

from statemachine import Engine, ManualClock, RecordingSender
from statemachine.errors import InvalidEvent
from statemachine.inquiry import Inquiry
from statemachine.operations import prometheus_text
from statemachine.precedence import Verdict
from statemachine.service.page import render_debit, render_page

PHONE = "+8613800001234"
CUSTOMER = {"customer": {"locale": "en", "contact": {"sms": PHONE, "push": "device-token-77"}}}
NOW = T0 + timedelta(days=4)


def book() -> Engine:
    """A small book with something in every table of the page."""
    clock = ManualClock(T0)
    engine = Engine.in_memory(clock=clock)
    engine.apply(ev("created", -60, debit_id="told-wrong", data=CUSTOMER))
    engine.apply(ev("failed", 0, debit_id="told-wrong"))
    engine.apply(ev("succeeded", 0, debit_id="paid"))
    engine.apply(ev("succeeded", 0, debit_id="returned", source="settlement"))
    engine.apply(ev("failed", 5, debit_id="returned", event_id="late-report"))  # a conflict
    engine.apply(ev("submitted", 0, debit_id="quiet"))  # stuck by NOW
    engine.apply(ev("failed", 0, debit_id="twice"))
    engine.apply(ev("retried", 1, debit_id="twice", attempt=2))
    engine.apply(ev("succeeded", 2, debit_id="twice", attempt=2))
    engine.apply(ev("succeeded", 3, debit_id="twice", attempt=1))  # a late success: review
    clock.advance_to(T0 + timedelta(hours=1))
    sms = RecordingSender("sms")
    for notice in engine.dispatch_due([sms]):
        engine.record_receipt(notice.notice_id, "sms", "delivered", T0 + timedelta(hours=1))
    # Told "failed", then collected after all: a correction waits, the customer is misinformed.
    engine.apply(ev("succeeded", 90, debit_id="told-wrong", source="settlement"))
    return engine


def test_the_figures_are_the_metrics_and_the_prometheus_text() -> None:
    engine = book()
    metrics = engine.metrics(now=NOW)
    assert (metrics.stuck, metrics.misinformed, metrics.needs_review, metrics.conflicts) == (
        1, 1, 1, 1,
    )  # fmt: skip
    figures = Page(render_page(engine, now=NOW)).figures
    assert figures["success-rate"] == repr(metrics.success_rate)
    assert figures["delivery-rate"] == repr(metrics.delivery_rate) == "1.0"
    assert figures["delivery-rate-sms"] == repr(metrics.delivery_rates["sms"])
    for key in ("debits", "events", "conflicts", "stuck", "misinformed", "undelivered"):
        assert figures[key] == str(getattr(metrics, key)), key
    assert figures["needs-review"] == str(metrics.needs_review)
    text = prometheus_text(metrics)
    assert f"statemachine_success_rate {figures['success-rate']}\n" in text
    assert f"statemachine_stuck {float(figures['stuck'])}\n" in text


def test_an_empty_book_shows_no_rates_and_empty_tables() -> None:
    page = render_page(Engine.in_memory(), now=NOW)
    assert Page(page).figures["success-rate"] == ""
    assert "No delivery receipts yet" in page
    assert "<h2>Recent conflicts, latest first (0)</h2>" in page


def test_every_debit_on_the_page_links_to_its_own_page() -> None:
    engine = book()
    page = Page(render_page(engine, now=NOW))
    linked = {text: href for href, text in page.links if href.startswith("/debits/")}
    # Stuck, misinformed, needing review, in conflict, with a notice waiting.
    assert {"quiet", "told-wrong", "twice", "returned"} <= set(linked)
    for debit_id, href in linked.items():
        assert unquote(href.removeprefix("/debits/")) == debit_id
        assert f"<h1>Debit {debit_id}</h1>" in (render_debit(engine, debit_id) or "")


def test_contact_details_are_masked_on_both_pages() -> None:
    engine = book()
    page, debit = render_page(engine, now=NOW), render_debit(engine, "told-wrong") or ""
    for html in (page, debit):
        assert "sms +86******1234" in html
        assert "push dev******n-77" in html
        assert PHONE not in html
        assert "device-token-77" not in html
    assert "failed (attempt 1), 2026-03-05 11:00:00Z on sms" in page  # what the customer was told


def test_stuck_debits_show_their_last_inquiry() -> None:
    engine = book()
    engine.apply(ev("submitted", 0, debit_id="asked"))
    engine.apply(ev("submitted", 0, debit_id="failing"))
    answers = {
        "asked": Inquiry(
            "asked", NOW, "submitted", Verdict.APPLIED, None, NOW + timedelta(hours=4)
        ),
        "failing": Inquiry(
            "failing", NOW, None, None, "gateway timed out", NOW + timedelta(hours=1)
        ),
    }
    asked: list[list[str]] = []

    def last_inquiries(ids: list[str]) -> dict[str, Inquiry]:
        asked.append(ids)
        return {d: answers[d] for d in ids if d in answers}

    page = render_page(engine, now=NOW, last_inquiries=last_inquiries, limit=2)
    assert asked == [["asked", "failing"]]  # the rows shown, not every stuck debit
    assert "2026-03-09 10:00:00Z: answered submitted" in page
    assert "2026-03-09 10:00:00Z: error: gateway timed out; next 2026-03-09 11:00:00Z" in page
    assert "Stuck in submitted with no news for 3 days (3, the first 2 shown)" in page
    assert "not asked" in render_page(engine, now=NOW)


def test_the_success_chart_has_a_column_per_bucket_with_data() -> None:
    engine = Engine.in_memory()
    engine.apply(ev("succeeded", 0, debit_id="a"))
    engine.apply(ev("failed", 10, debit_id="b"))
    engine.apply(ev("succeeded", 60 * 24 * 2, debit_id="c"))
    page = render_page(engine, now=NOW, width=timedelta(days=1), buckets=5)
    tips = re.findall(r'fill="#2f7d4f"><title>([^<]*)</title>', page)
    assert tips == ["2026-03-05: 50.0% of 2", "2026-03-07: 100.0% of 1"]
    hourly = render_page(engine, now=NOW, width=timedelta(hours=1), buckets=72)
    assert re.findall(r'fill="#2f7d4f"><title>([^<]*)</title>', hourly)[0] == (
        "03-05 10:00: 50.0% of 2"
    )


@given(debit_id=st.one_of(st.just(HOSTILE), st.text(min_size=1, max_size=30)))
def test_whatever_a_debit_id_holds_it_is_text_and_its_link_leads_back_to_it(
    debit_id: str,
) -> None:
    try:
        event = ev("submitted", 0, debit_id=debit_id)
    except InvalidEvent:
        assume(False)
    engine = Engine.in_memory()
    engine.apply(event)
    for html in (render_page(engine, now=NOW), render_debit(engine, debit_id) or ""):
        page = Page(html)
        assert page.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p",
                             "a", "section", "div", "span", "small", "data", "figure", "figcaption", "svg",
                             "text", "line", "rect", "table", "thead", "tbody", "tr", "th", "td"}  # fmt: skip
    links = Page(render_page(engine, now=NOW)).links
    assert (f"/debits/{quote(debit_id, safe='')}", debit_id) in links


def test_a_debit_no_event_named_has_no_page() -> None:
    assert render_debit(book(), "nobody") is None
