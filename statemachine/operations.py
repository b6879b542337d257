"""Operations: metrics, stuck debits, P6 verification, misinformed customers, Prometheus
exposition and alerts on configured bounds. Stuck debits are asked about in ``inquiry.py``.

The engine's ``metrics``, ``stuck``, ``verify`` and ``misinformed`` call these.

>>> from statemachine import Engine
>>> metrics = Engine.in_memory().metrics()
>>> "statemachine_debits" in prometheus_text(metrics)
True
>>> [a.rule.name for a in check_alerts(metrics, [AlertRule("no-debits", "debits", below=1)])]
['no-debits']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

import attrs

from .events import FAILED, REVERSED, SUCCEEDED, Event
from .notices import last_told, matches
from .precedence import Verdict, fold
from .receipts import ReceiptStatus, delivery_rate
from .records import Debit, Notice, NoticeStatus
from .spec import Spec

if TYPE_CHECKING:
    from prometheus_client import Gauge

    from .stores.base import StoreAdapter


@attrs.frozen
class Metrics:
    """Counts for operations: ``engine.metrics()``."""

    events_by_verdict: dict[str, int]
    debits_by_state: dict[str, int]
    notices_by_status: dict[str, int]
    needs_review: int
    unknown_sources: dict[str, int]
    stuck: int = 0
    misinformed: int = 0  # customers whose last notice no longer states the outcome (N6)
    # channel -> {delivered, undelivered, expired} -> sends, from receipts (N8)
    deliveries: dict[str, dict[str, int]] = attrs.field(factory=dict)
    # Inquiries of stuck debits: asked, answered with an event, and those whose asking raised.
    inquiries_asked: int = 0
    inquiries_answered: int = 0
    inquiry_errors: int = 0
    succeeded_states: frozenset[str] = frozenset({SUCCEEDED})
    outcome_states: frozenset[str] = frozenset({SUCCEEDED, FAILED, REVERSED})

    @property
    def events(self) -> int:
        """Every stored arrival, whatever its verdict."""
        return sum(self.events_by_verdict.values())

    @property
    def debits(self) -> int:
        """Every debit the store holds."""
        return sum(self.debits_by_state.values())

    @property
    def conflicts(self) -> int:
        """Events refused as contradicting a stronger fact."""
        return self.events_by_verdict.get(Verdict.CONFLICT, 0)

    @property
    def success_rate(self) -> float | None:
        """Debits collected (succeeded) among debits with an outcome."""
        finished = sum(self.debits_by_state.get(s, 0) for s in self.outcome_states)
        won = sum(self.debits_by_state.get(s, 0) for s in self.succeeded_states)
        return won / finished if finished else None

    @property
    def delivery_rate(self) -> float | None:
        """Sends delivered, from receipts (N8): delivered / (delivered + undelivered +
        expired) over every channel; a send (a notice on a channel) without a receipt does
        not count. None while no receipt has come."""
        total: dict[str, int] = {}
        for counts in self.deliveries.values():
            for status, count in counts.items():
                total[status] = total.get(status, 0) + count
        return delivery_rate(total)

    @property
    def delivery_rates(self) -> dict[str, float | None]:
        """:attr:`delivery_rate` per channel."""
        return {channel: delivery_rate(counts) for channel, counts in self.deliveries.items()}

    @property
    def acceptance_rate(self) -> float | None:
        """Notices a channel accepted among notices whose dispatch ended: what the providers'
        APIs answered, which is not delivery (see :attr:`delivery_rate`)."""
        accepted = sum(self.notices_by_status.get(s, 0) for s in _ACCEPTED)
        ended = accepted + self.notices_by_status.get(NoticeStatus.FAILED, 0)
        return accepted / ended if ended else None

    @property
    def undelivered(self) -> int:
        """Notices undelivered on every channel tried."""
        return self.notices_by_status.get(NoticeStatus.UNDELIVERED, 0)


_ACCEPTED: Final = (NoticeStatus.SENT, NoticeStatus.DELIVERED, NoticeStatus.UNDELIVERED)


def metrics(store: StoreAdapter, spec: Spec, stuck: int) -> Metrics:
    """The store's counts as :class:`Metrics`; ``stuck`` is the number of stuck debits."""
    counts = store.counts()
    unknown = {s: n for s, n in counts.sources.items() if s not in spec.authorities}
    inquiries = store.inquiry_counts()
    return Metrics(
        counts.verdicts,
        counts.states,
        counts.notices,
        counts.needs_review,
        unknown,
        stuck,
        store.misinformed_count(spec.outcomes),
        store.deliveries(),
        inquiries_asked=inquiries["asked"],
        inquiries_answered=inquiries["answered"],
        inquiry_errors=inquiries["errors"],
        succeeded_states=frozenset({spec.state_after(SUCCEEDED)}),
        outcome_states=spec.outcomes,
    )


def stuck(store: StoreAdapter, spec: Spec, before: datetime) -> list[tuple[str, datetime]]:
    """Debits submitted (the spec's state after ``submitted``) whose latest news is older than
    ``before``: listed for inquiry, never failed automatically. Oldest first."""
    return store.stuck(spec.in_flight, before)


def facts(store: StoreAdapter, debit_id: str) -> list[Event]:
    """The debit's accepted events, in arrival order."""
    return [
        stored.event
        for stored in store.history(debit_id)
        if stored.event is not None and stored.verdict not in (Verdict.DUPLICATE, Verdict.INVALID)
    ]


def verify(store: StoreAdapter, spec: Spec) -> list[str]:
    """P6 for every debit: the debits whose live state differs from a rebuild, described."""
    problems = []
    for debit_id in store.debit_ids():
        live = store.debit(debit_id)
        accepted = facts(store, debit_id)
        rebuilt = fold(accepted, spec)
        assert live is not None
        if (live.state, live.attempt, live.needs_review, live.version) != (
            rebuilt.state,
            rebuilt.attempt,
            rebuilt.needs_review,
            len(accepted),
        ):
            problems.append(
                f"{debit_id}: live {live.state}@{live.attempt} review={live.needs_review} "
                f"version {live.version}, rebuilt {rebuilt.state}@{rebuilt.attempt} "
                f"review={rebuilt.needs_review} version {len(accepted)}"
            )
    return problems


def misinformed(store: StoreAdapter, spec: Spec) -> list[tuple[str, Notice, Debit]]:
    """Debits whose customer's last notice no longer states the outcome, with that notice."""
    found = []
    for debit_id in store.debit_ids():
        record = store.debit(debit_id)
        assert record is not None
        told = last_told(record.notices.values())
        if told is not None and not matches(told, record) and record.state in spec.outcomes:
            found.append((debit_id, told, record.snapshot()))
    return found


_VALUES: Final = (
    "events",
    "debits",
    "conflicts",
    "needs_review",
    "stuck",
    "misinformed",
    "success_rate",
    "delivery_rate",
    "acceptance_rate",
    "undelivered",
    "inquiries_asked",
    "inquiries_answered",
    "inquiry_errors",
)


def prometheus_text(metrics: Metrics, prefix: str = "statemachine") -> str:
    """The metrics in Prometheus' text exposition format."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest  # for operators only

    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(f"{prefix}_{name}", doc, list(labels), registry=registry)

    events = gauge("events", "Stored events by verdict.", ["verdict"])
    for verdict, count in metrics.events_by_verdict.items():
        events.labels(verdict).set(count)
    debits = gauge("debits", "Debits by state.", ["state"])
    for state, count in metrics.debits_by_state.items():
        debits.labels(state).set(count)
    notices = gauge("notices", "Notices by status.", ["status"])
    for status, count in metrics.notices_by_status.items():
        notices.labels(status).set(count)
    gauge("needs_review", "Debits flagged for review.").set(metrics.needs_review)
    gauge("stuck", "Debits in submitted past the inquiry threshold.").set(metrics.stuck)
    gauge("inquiries_asked", "Inquiries of stuck debits asked.").set(metrics.inquiries_asked)
    gauge("inquiries_answered", "Inquiries answered with an event.").set(metrics.inquiries_answered)
    gauge("inquiry_errors", "Inquiries whose asking raised.").set(metrics.inquiry_errors)
    gauge("conflicts", "Events refused as contradicting a stronger fact.").set(metrics.conflicts)
    gauge("misinformed", "Customers whose last notice no longer states the debit's outcome.").set(
        metrics.misinformed
    )
    sources = gauge(
        "unknown_source_events", "Events from sources the spec does not name.", ["source"]
    )
    for source, count in metrics.unknown_sources.items():
        sources.labels(source).set(count)
    if metrics.success_rate is not None:
        gauge("success_rate", "Collected debits among debits with an outcome.").set(
            metrics.success_rate
        )
    gauge("undelivered", "Notices undelivered on every channel tried.").set(metrics.undelivered)
    sends = gauge("deliveries", "Sends (a notice on a channel) by receipt outcome.",
                  ["channel", "outcome"])  # fmt: skip
    for channel, counts in metrics.deliveries.items():
        for status in ReceiptStatus:
            sends.labels(channel, status.value).set(counts.get(status, 0))
    rates = gauge("channel_delivery_rate", "Delivered sends among sends with a receipt or "
                  "whose wait expired, per channel.", ["channel"])  # fmt: skip
    for channel, value in metrics.delivery_rates.items():
        if value is not None:
            rates.labels(channel).set(value)
    if metrics.delivery_rate is not None:
        gauge(
            "delivery_rate",
            "Delivered sends among sends with a receipt or whose wait expired (N8).",
        ).set(metrics.delivery_rate)
    if metrics.acceptance_rate is not None:
        gauge(
            "acceptance_rate", "Notices a channel accepted among those whose dispatch ended."
        ).set(metrics.acceptance_rate)
    return generate_latest(registry).decode()


@attrs.frozen
class AlertRule:
    """Fires when ``metric`` (a :class:`Metrics` attribute) is above or below a bound."""

    name: str
    metric: str = attrs.field()
    above: float | None = None
    below: float | None = None

    @metric.validator
    def _known(self, _: object, value: str) -> None:
        if value not in _VALUES:
            raise ValueError(
                f"alert {self.name!r}: metric {value!r} is not one of {', '.join(_VALUES)}"
            )

    def __attrs_post_init__(self) -> None:
        if self.above is None and self.below is None:
            raise ValueError(f"alert {self.name!r} needs a bound: above=... or below=...")


@attrs.frozen
class Alert:
    """A rule that fired, with the value that crossed its bound."""

    rule: AlertRule
    value: float

    def __str__(self) -> str:
        bound = (
            f"above {self.rule.above}"
            if self.rule.above is not None
            else f"below {self.rule.below}"
        )
        return f"{self.rule.name}: {self.rule.metric} is {self.value:g}, {bound}"


DEFAULT_RULES: Final = (
    AlertRule("debits-stuck", "stuck", above=0),
    AlertRule("debits-need-review", "needs_review", above=0),
    AlertRule("customers-misinformed", "misinformed", above=0),
    AlertRule("notices-undelivered", "delivery_rate", below=0.95),
)


def check_alerts(
    metrics: Metrics,
    rules: Iterable[AlertRule] = DEFAULT_RULES,
    on_alert: Callable[[Alert], None] | None = None,
) -> list[Alert]:
    """The alerts that fire for ``metrics``; each is also handed to ``on_alert`` if given."""
    fired = []
    for rule in rules:
        value = getattr(metrics, rule.metric)
        if value is None:
            continue  # a rate with nothing to measure yet
        if (rule.above is not None and value > rule.above) or (
            rule.below is not None and value < rule.below
        ):
            alert = Alert(rule, float(value))
            fired.append(alert)
            if on_alert is not None:
                on_alert(alert)
    return fired
