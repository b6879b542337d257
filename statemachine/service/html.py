"""The pieces the service's HTML pages are made of: one layout with inline CSS, tables, links
to a debit's page, times and rates as people read them. Every text is escaped here.

>>> debit_link('loan-42/2026-03"><script>')
'<a href="/debits/loan-42%2F2026-03%22%3E%3Cscript%3E">loan-42/2026-03&quot;&gt;&lt;script&gt;</a>'
>>> percent(0.97312), percent(None)
('97.3 %', '–')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from ..messages import Customer, mask

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#222;background:#fff}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .4em}
.muted{color:#666}.figures{display:flex;flex-wrap:wrap;gap:.6em;margin:1em 0}
.figure{border:1px solid #ddd;border-radius:6px;padding:.5em .8em;min-width:8em}
.figure .label{font-size:.8em;color:#555}.figure data{display:block;font-size:1.5em}
.figure.alert{border-color:#b8412c;background:#fbefec}
.charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}
figcaption{font-size:.8em;color:#666}
table{border-collapse:collapse;font-size:.9em;margin:.3em 0}
th,td{border-bottom:1px solid #e4e4e4;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}a{color:#1d5fa6}
.verdict-applied{color:#2f7d4f}.verdict-conflict,.verdict-invalid{color:#b8412c}
.verdict-parked{color:#c7932b}.verdict-duplicate,.verdict-stale{color:#777}
"""


def document(title: str, body: str, refresh: int | None = None) -> str:
    """A whole page: ``body`` (HTML) under ``title`` (text), refreshing itself every
    ``refresh`` seconds if given. Nothing is fetched: styles are inline, charts inline SVG."""
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width">{meta}'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str = "none") -> str:
    """A table of ``rows`` whose cells are HTML already (escape text with :func:`text`);
    ``empty`` (text) stands in for a table without rows."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text(value: object) -> str:
    """Any value as escaped HTML text; None as a dash."""
    return "–" if value is None else escape(str(value))


def debit_link(debit_id: str | None) -> str:
    """A link to the debit's own page, ``/debits/{id}`` with the id percent-encoded."""
    if debit_id is None:
        return "–"
    return f'<a href="/debits/{quote(debit_id, safe="")}">{escape(debit_id)}</a>'


def when(moment: datetime | None) -> str:
    """A time in UTC to the second, as ``2026-03-05 10:00:00Z``."""
    if moment is None:
        return "–"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def percent(rate: float | None) -> str:
    """A rate as a percentage with one decimal; a dash when there is nothing to measure."""
    return "–" if rate is None else f"{rate:.1%}".replace("%", " %")


def figure(key: str, label: str, value: float | int | None, shown: str, alert: bool = False) -> str:
    """One current figure: a ``<data>`` element whose ``value`` is the exact number (as
    Prometheus writes it; empty when there is none) and ``id`` is ``key``."""
    exact = "" if value is None else repr(value)
    css = "figure alert" if alert else "figure"
    return (
        f'<div class="{css}"><span class="label">{escape(label)}</span>'
        f'<data id="{escape(key)}" value="{escape(exact)}">{escape(shown)}</data></div>'
    )


def contacts(customer: Customer) -> str:
    """The customer's contact per channel, masked (personal data never shows whole)."""
    found = sorted(customer.contact.items())
    return ", ".join(f"{escape(channel)} {escape(mask(c))}" for channel, c in found) or "–"


def counts(values: Mapping[str, int]) -> str:
    """``status 3, other 1`` in key order, or a dash."""
    return ", ".join(f"{escape(k)} {n}" for k, n in sorted(values.items())) or "–"
