"""Operations: Prometheus exposition of ``engine.metrics()`` and alerts on configured bounds.

>>> from statemachine import Engine
>>> metrics = Engine.in_memory().metrics()
>>> "statemachine_debits" in prometheus_text(metrics)
True
>>> [a.rule.name for a in check_alerts(metrics, [AlertRule("no-debits", "debits", below=1)])]
['no-debits']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final

import attrs
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from .engine import Metrics

_VALUES: Final = (
    "events",
    "debits",
    "conflicts",
    "needs_review",
    "stuck",
    "success_rate",
    "delivery_rate",
)


def prometheus_text(metrics: Metrics, prefix: str = "statemachine") -> str:
    """The metrics in Prometheus' text exposition format."""
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
    gauge("conflicts", "Events refused as contradicting a stronger fact.").set(metrics.conflicts)
    sources = gauge(
        "unknown_source_events", "Events from sources the spec does not name.", ["source"]
    )
    for source, count in metrics.unknown_sources.items():
        sources.labels(source).set(count)
    if metrics.success_rate is not None:
        gauge("success_rate", "Collected debits among debits with an outcome.").set(
            metrics.success_rate
        )
    if metrics.delivery_rate is not None:
        gauge("delivery_rate", "Sent notices among notices whose delivery ended.").set(
            metrics.delivery_rate
        )
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
