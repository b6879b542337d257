"""A self-contained HTML page for a replay: charts as inline SVG, and the machine's diagram.

>>> from statemachine.replay import ReplaySummary
>>> "<svg" in html_report(ReplaySummary(), "stateDiagram-v2")
True
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from .replay import ReplaySummary

_COLOURS = ("#2f7d4f", "#b8412c", "#3a6ea5", "#c7932b", "#7a5195", "#5c5c5c")


def bar_chart(
    title: str, values: Mapping[str, float], width: int = 520, colour: str | None = None
) -> str:
    """A horizontal bar chart in SVG, one labelled bar per item; one ``colour`` for a series."""
    rows = list(values.items()) or [("none", 0)]
    top = max((v for _, v in rows), default=0) or 1
    height = 30 + 24 * len(rows)
    bars = []
    for number, (label, value) in enumerate(rows):
        y = 24 + 24 * number
        length = int((width - 220) * value / top)
        fill = colour or _COLOURS[number % len(_COLOURS)]
        bars.append(
            f'<text x="0" y="{y + 14}" font-size="13">{escape(label)}</text>'
            f'<rect x="170" y="{y}" width="{length}" height="18" fill="{fill}"/>'
            f'<text x="{176 + length}" y="{y + 14}" font-size="13">{value:g}</text>'
        )
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><text x="0" y="14" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>{"".join(bars)}</svg></figure>'
    )


def html_report(summary: ReplaySummary, diagram: str) -> str:
    """One page: outcomes, verdicts, notices sent against cancelled, notices prevented over
    time, the legacy comparison, and the Mermaid source of the state diagram."""
    sent = sum(n for (_, status), n in summary.notices.items() if status == "sent")
    cancelled = sum(n for (_, status), n in summary.notices.items() if status == "cancelled")
    legacy = len(summary.legacy_failed_but_succeeded)
    engine = len(summary.engine_failed_but_succeeded)
    charts = [
        bar_chart("Debits by final state", dict(sorted(summary.states.items()))),
        bar_chart("Events by verdict", dict(sorted(summary.verdicts.items()))),
        bar_chart("Notices", {"sent": sent, "cancelled as superseded": cancelled}),
        bar_chart(
            "Contradictory notices prevented, by day due", dict(sorted(summary.prevented.items()))
        ),
        bar_chart(
            "Failure notices for attempts that were collected",
            {"legacy notifier": legacy, "engine (each corrected)": engine},
        ),
    ]
    review = "".join(f"<li>{escape(d)}</li>" for d in summary.needs_review[:100]) or "<li>none</li>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Replay report</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}figure{{margin:1em 0}}
pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head>
<body><h1>Replay report</h1>
<p>{summary.lines} lines read; {sum(summary.states.values())} debits.</p>
{"".join(charts)}
<h2>Needs review</h2><ul>{review}</ul>
<h2>The debit machine (Mermaid)</h2><pre class="mermaid">{escape(diagram)}</pre>
</body></html>
"""
