"""The operator's page (``GET /``): the book at a glance, refreshing itself.

Success rate and delivery rate per channel over time, the current figures (the numbers
``engine.metrics()`` and ``/metrics`` report), the notices waiting, stuck debits with their
last inquiry, misinformed customers (contacts masked), debits needing review and the latest
conflicts, each debit linking to its history (:func:`render_debit`). One self-contained page:
inline CSS and SVG, nothing fetched.

>>> from statemachine import Engine
>>> page = render_page(Engine.in_memory())
>>> '<data id="success-rate" value="">' in page, '<meta http-equiv="refresh"' in page
(True, True)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from starlette.responses import HTMLResponse, PlainTextResponse, Response

from ..charts import COLOURS, rate_chart
from ..inquiry import Inquiry
from ..operations import Metrics, check_alerts
from ..receipts import delivery_rate
from ..stores.timeline import bucket_start
from .debit import render_debit
from .html import contacts, counts, debit_link, document, figure, percent, table, text, when

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..engine import Engine

__all__ = ["LastInquiries", "debit_page", "operator_page", "render_debit", "render_page"]


LastInquiries = Callable[[list[str]], Mapping[str, Inquiry]]
"""Given debit ids, the last inquiry of each that was asked about (``engine.last_inquiries``)."""

# ?by= on the page: the width of a chart's bucket, and how many buckets it shows.
WIDTHS: Final = {"hour": (timedelta(hours=1), 72), "day": (timedelta(days=1), 92)}


def render_page(
    engine: Engine,
    *,
    now: datetime | None = None,
    width: timedelta = timedelta(days=1),
    limit: int = 50,
    last_inquiries: LastInquiries | None = None,
    buckets: int = 92,
    stuck_after: timedelta = timedelta(days=3),
    refresh: int = 30,
) -> str:
    """The operator's page as HTML, at ``now`` (the engine's clock by default).

    Charts have up to ``buckets`` columns ``width`` wide, ending at the latest with data; each
    table lists its first ``limit`` rows. A debit is stuck once submitted with no news for
    ``stuck_after`` (as ``engine.metrics`` counts it). ``last_inquiries`` gives the stuck
    debits' last inquiries; without it they read "not asked". The page reloads itself every
    ``refresh`` seconds.
    """
    now = engine.clock() if now is None else now
    metrics = engine.metrics(stuck_after, now)
    parts = [
        "<h1>Debits: the operator's page</h1>",
        f'<p class="muted">As of {when(now)}; this page refreshes every {refresh} s. '
        'The same figures as Prometheus text: <a href="/metrics">/metrics</a>.</p>',
        _figures(metrics),
        _charts(engine, metrics, width, buckets, now),
        _waiting(engine, metrics, limit, now),
        _stuck(engine, stuck_after, now, limit, last_inquiries),
        _misinformed(engine, metrics, limit),
        _review(engine, metrics, limit),
        _conflicts(engine, metrics, limit),
    ]
    return document("Debits: the operator's page", "\n".join(parts), refresh=refresh)


def _figures(metrics: Metrics) -> str:
    fired = {alert.rule.metric for alert in check_alerts(metrics)}
    shown = [
        figure("success-rate", "success rate", metrics.success_rate,
               percent(metrics.success_rate)),
        figure("delivery-rate", "delivery rate", metrics.delivery_rate,
               percent(metrics.delivery_rate), "delivery_rate" in fired),
    ]  # fmt: skip
    for channel, rate in sorted(metrics.delivery_rates.items()):
        shown.append(figure(f"delivery-rate-{channel}", f"delivered on {channel}", rate,
                            percent(rate)))  # fmt: skip
    for key, label, value in (
        ("debits", "debits", metrics.debits),
        ("events", "events", metrics.events),
        ("conflicts", "conflicts", metrics.conflicts),
        ("needs-review", "needs review", metrics.needs_review),
        ("stuck", "stuck", metrics.stuck),
        ("misinformed", "misinformed", metrics.misinformed),
        ("undelivered", "undelivered notices", metrics.undelivered),
    ):
        shown.append(figure(key, label, value, str(value), key.replace("-", "_") in fired))
    shown.append(figure("acceptance-rate", "accepted by a channel", metrics.acceptance_rate,
                        percent(metrics.acceptance_rate)))  # fmt: skip
    return (
        f'<section class="figures">{"".join(shown)}</section>'
        f'<p class="muted">Debits by state: {counts(metrics.debits_by_state)}. '
        f"Notices by status: {counts(metrics.notices_by_status)}. "
        f"Events by verdict: {counts(metrics.events_by_verdict)}.</p>"
    )


def _charts(engine: Engine, metrics: Metrics, width: timedelta, buckets: int, now: datetime) -> str:
    outcomes: dict[datetime, list[int]] = defaultdict(lambda: [0, 0])  # bucket -> [won, all]
    for bucket, state, debits in engine.store.outcome_tally(metrics.outcome_states, width):
        outcomes[bucket][0] += debits if state in metrics.succeeded_states else 0
        outcomes[bucket][1] += debits
    sends: dict[str, dict[datetime, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for channel, bucket, outcome, count in engine.store.delivery_tally(width):
        sends[channel][bucket][outcome] = count
    seen = [*outcomes, *(b for by_bucket in sends.values() for b in by_bucket)]
    slots = _window(seen, width, buckets, now)
    label = "%Y-%m-%d" if width >= timedelta(days=1) else "%m-%d %H:%M"
    by = {timedelta(days=1): "by day", timedelta(hours=1): "by hour"}.get(width, f"per {width}")

    def column(
        bucket: datetime, rate: float | None, measured: int
    ) -> tuple[str, float | None, int]:
        return (bucket.strftime(label), rate, measured)

    charts = [
        rate_chart(
            f"Success rate {by}",
            [column(b, won / total if total else None, total)
             for b in slots for won, total in [outcomes.get(b, [0, 0])]],
            COLOURS[0], width=_CHART, caption="Debits with an outcome, by their latest event.",
        )
    ]  # fmt: skip
    for channel in sorted(sends):
        charts.append(
            rate_chart(
                f"Delivery rate on {channel} {by}",
                [column(b, delivery_rate(sends[channel].get(b, {})),
                        sum(sends[channel].get(b, {}).values())) for b in slots],
                COLOURS[2], width=_CHART, caption="Sends, by their latest receipt.",
            )
        )  # fmt: skip
    if not sends:
        charts.append('<p class="muted">No delivery receipts yet: no delivery rate to draw.</p>')
    switch = '<a href="?by=day">by day</a> · <a href="?by=hour">by hour</a>'
    return (
        f'<h2>Over time <small class="muted">({switch})</small></h2>'
        f'<section class="charts">{"".join(charts)}</section>'
    )


_CHART: Final = 640  # a chart's width in pixels
_FEWEST: Final = 14  # buckets a chart shows at least, so that one day is not one wide column


def _window(seen: list[datetime], width: timedelta, buckets: int, now: datetime) -> list[datetime]:
    """The buckets a chart shows: up to ``buckets`` of them, ending at the latest with data
    (``now``'s without any) and starting at the first with data, or earlier to show a few."""
    end = max(seen, default=bucket_start(now, width))
    start = max(min(seen, default=end), end - width * (buckets - 1))
    start = min(start, end - width * (min(buckets, _FEWEST) - 1))
    return [start + width * n for n in range((end - start) // width + 1)]


def _duration(span: timedelta) -> str:
    """``3 days``, ``1 day 6 hours``, ``45 minutes``: a threshold as people say it."""
    minutes = int(span.total_seconds()) // 60
    units = (("day", minutes // 1440), ("hour", minutes // 60 % 24), ("minute", minutes % 60))
    said = [f"{n} {unit}{'s' if n != 1 else ''}" for unit, n in units if n]
    return " ".join(said) or f"{span.total_seconds():g} seconds"


def _heading(title: str, total: int, shown: int) -> str:
    more = f", the first {shown} shown" if shown < total else ""
    return f"<h2>{text(title)} ({total}{more})</h2>"


def _waiting(engine: Engine, metrics: Metrics, limit: int, now: datetime) -> str:
    waiting = engine.store.waiting(limit)
    rows = [
        [when(n.due_at) + (" (due)" if n.due_at <= now else ""), debit_link(n.debit_id),
         text(n.kind), text(n.outcome), text(n.attempt), text(", ".join(n.tried) or None),
         text(n.notice_id)]
        for n in waiting
    ]  # fmt: skip
    total = metrics.notices_by_status.get("queued", 0)
    headers = ("due", "debit", "kind", "outcome", "attempt", "tried", "notice")
    return _heading("Notices waiting, by due time", total, len(rows)) + table(headers, rows)


def _stuck(
    engine: Engine,
    stuck_after: timedelta,
    now: datetime,
    limit: int,
    last_inquiries: LastInquiries | None,
) -> str:
    stuck = engine.stuck(stuck_after, now)
    shown = stuck[:limit]
    asked = last_inquiries([d for d, _ in shown]) if last_inquiries and shown else {}
    rows = [[debit_link(d), when(last), _inquiry(asked.get(d))] for d, last in shown]
    title = f"Stuck in {engine.spec.in_flight} with no news for {_duration(stuck_after)}"
    return _heading(title, len(stuck), len(shown)) + table(
        ("debit", "latest news", "last inquiry"), rows
    )


def _inquiry(inquiry: Inquiry | None) -> str:
    if inquiry is None:
        return "not asked"
    error, answer = inquiry.error, inquiry.answer
    if error is not None:
        said = f"error: {error}"
    elif answer is None:
        said = "no news"
    else:  # the type of the event the gateway answered with
        said = f"answered {answer}"
    again = f"; next {when(inquiry.next_at)}"
    return f"{when(inquiry.asked_at)}: {text(said)}{again}"


def _misinformed(engine: Engine, metrics: Metrics, limit: int) -> str:
    # The count is one query; the list reads every debit, so only when there is one to list.
    found = engine.misinformed()[:limit] if metrics.misinformed else []
    records = engine.store.debits([debit_id for debit_id, _, _ in found])
    words = engine.dispatcher.words
    rows = [
        [debit_link(debit_id),
         text(f"{told.outcome} (attempt {told.attempt}), {when(told.sent_at)} on {told.channel}"),
         text(f"{debit.state} (attempt {debit.attempt})"),
         contacts(words.customer(records.get(debit_id), debit_id))]
        for debit_id, told, debit in found
    ]  # fmt: skip
    return _heading("Misinformed customers: the last notice is not the outcome",
                    metrics.misinformed, len(rows)) + table(
        ("debit", "told", "now", "contact"), rows
    )  # fmt: skip


def _review(engine: Engine, metrics: Metrics, limit: int) -> str:
    ids = engine.store.review_ids()[:limit]
    records = engine.store.debits(ids, events=False)
    rows = [
        [debit_link(d), text(records[d].state), text(records[d].attempt),
         text(records[d].review_reason)]
        for d in ids
        if d in records
    ]  # fmt: skip
    return _heading("Debits needing review", metrics.needs_review, len(rows)) + table(
        ("debit", "state", "attempt", "reason"), rows
    )


def _conflicts(engine: Engine, metrics: Metrics, limit: int) -> str:
    rows = [
        [text(c.seq), debit_link(c.debit_id), text(c.event_id), text(c.type), text(c.attempt),
         text(c.source), when(c.occurred_at), text(c.reason)]
        for c in engine.store.conflicts(limit)
    ]  # fmt: skip
    headers = ("arrival", "debit", "event", "type", "attempt", "source", "occurred", "reason")
    return _heading("Recent conflicts, latest first", metrics.conflicts, len(rows)) + table(
        headers, rows
    )


async def operator_page(request: Request) -> Response:
    """``GET /``: the page, read through the service's writer (``app.state.writer.read``)
    so that it sees only committed work. ``?by=hour`` draws the charts by hour (up to
    72 of them), ``?by=day`` (the default) by day (up to 92)."""
    by = request.query_params.get("by", "day")
    if by not in WIDTHS:
        return PlainTextResponse(f"by: expected one of {', '.join(WIDTHS)}, got {by!r}", 400)
    width, buckets = WIDTHS[by]

    def render(engine: Engine) -> str:
        return render_page(
            engine, width=width, buckets=buckets, last_inquiries=engine.last_inquiries
        )

    return HTMLResponse(await request.app.state.writer.read(render))


async def debit_page(request: Request) -> Response:
    """``GET /debits/{debit_id}`` for a browser: the debit's history as a page, or 404."""
    debit_id = request.path_params["debit_id"]
    page = await request.app.state.writer.read(lambda engine: render_debit(engine, debit_id))
    if page is None:
        return PlainTextResponse(f"no debit {debit_id!r}", 404)
    return HTMLResponse(page)
