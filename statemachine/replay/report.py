"""A self-contained HTML page for a replay: charts and the machine's diagram as inline SVG.

Nothing is fetched: the page opens offline, in a mail attachment or an audit archive.

>>> from statemachine.replay import ReplaySummary
>>> page = html_report(ReplaySummary(), Spec.default())
>>> page.count("<svg"), "stateDiagram-v2" in page
(6, True)
"""

from __future__ import annotations

import math
from collections import defaultdict
from html import escape

from ..charts import bar_chart
from ..spec import Spec
from .summary import ReplaySummary

_KINDS = {  # edge kind -> (stroke, dash)
    "step": ("#222", ""),
    "skip-ahead": ("#777", "5 4"),
    "correction": ("#b8412c", ""),
    "retry": ("#3a6ea5", ""),
    "corroboration": ("#999", "2 3"),
}
_BOX_W, _BOX_H = 112, 40


def state_chart(spec: Spec) -> str:
    """The spec's machine drawn as SVG: states in columns by how many steps lead to them,
    one labelled arrow per (source, dest), coloured by the transition's kind."""
    rank = _ranks(spec)
    columns: dict[int, list[str]] = defaultdict(list)
    for state in spec.states:
        columns[rank[state]].append(state)
    centre: dict[str, tuple[float, float]] = {}
    middle = 100 * max(len(states) for states in columns.values()) + 20
    for column, states in columns.items():
        for row, state in enumerate(states):
            centre[state] = (90 + 210 * column, middle + 200 * (row - (len(states) - 1) / 2))
    labels: dict[tuple[str, str], list[str]] = defaultdict(list)
    kinds: dict[tuple[str, str], str] = {}
    for edge in spec.transitions:
        guard = f" [{edge.guard}]" if edge.guard else ""
        labels[(edge.source, edge.dest)].append(edge.trigger + guard)
        kinds.setdefault((edge.source, edge.dest), edge.kind)
    width = 90 + 210 * max(columns) + 150
    height = max(y for _, y in centre.values()) + 110
    texts_svg: list[str] = []
    parts = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="context-stroke"/></marker></defs>'
    ]
    for (source, dest), texts in labels.items():
        stroke, dash = _KINDS.get(kinds[(source, dest)], ("#222", ""))
        (ax, ay), (bx, by) = centre[source], centre[dest]
        path, (lx, ly) = _edge_path((ax, ay), (bx, by), above=ay <= middle)
        anchor = "middle"
        if abs(by - ay) > abs(bx - ax):  # a steep arrow: its label to the side it bends to
            anchor = "end" if lx < (ax + bx) / 2 else "start"
        parts.append(
            f'<path d="{path}" fill="none" stroke="{stroke}" stroke-width="1.5" '
            f'stroke-dasharray="{dash}" marker-end="url(#arrow)"/>'
        )
        # Labels last, with a white halo, so that no line crosses them.
        texts_svg.append(
            f'<text x="{lx:.0f}" y="{ly:.0f}" font-size="11" fill="{stroke}" stroke="#fff" '
            f'stroke-width="3" paint-order="stroke" text-anchor="{anchor}">'
            f"{escape(', '.join(texts))}</text>"
        )
    parts.extend(texts_svg)
    for state, (x, y) in centre.items():
        bold = ' stroke-width="2.5"' if state == spec.initial else ""
        parts.append(
            f'<rect x="{x - _BOX_W / 2}" y="{y - _BOX_H / 2}" width="{_BOX_W}" height="{_BOX_H}" '
            f'rx="8" fill="#fff" stroke="#222"{bold}/><text x="{x}" y="{y + 5}" font-size="14" '
            f'text-anchor="middle">{escape(state)}</text>'
        )
    legend = " ".join(
        f'<tspan fill="{stroke}">&#9632; {kind}</tspan>' for kind, (stroke, _) in _KINDS.items()
    )
    parts.append(f'<text x="10" y="{height - 12}" font-size="12">{legend}</text>')
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="the {escape(spec.name)} state machine">{"".join(parts)}</svg>'
        "</figure>"
    )


def _ranks(spec: Spec) -> dict[str, int]:
    """Columns: the longest chain of `step` transitions from the initial state (0 if none)."""
    rank = dict.fromkeys(spec.states, 0)
    steps = [
        (e.source, e.dest) for e in spec.transitions if e.kind == "step" and e.source != e.dest
    ]
    for _ in spec.states:  # relax; a cycle of steps stops growing after len(states) rounds
        for source, dest in steps:
            if dest != spec.initial and rank[dest] < rank[source] + 1:
                rank[dest] = min(rank[source] + 1, len(spec.states) - 1)
    return rank


def _edge_path(
    a: tuple[float, float], b: tuple[float, float], above: bool = True
) -> tuple[str, tuple[float, float]]:
    """A curved arrow from box ``a`` to box ``b`` (a loop on its outer side if they are one),
    and where its label goes. Curves bend to their left, so a -> b and b -> a do not overlap;
    long ones bend more, around the boxes between."""
    (ax, ay), (bx, by) = a, b
    if a == b:
        side = -1 if above else 1
        edge = ay + side * _BOX_H / 2
        reach = edge + side * 46
        return (f"M{ax - 18},{edge} C{ax - 40},{reach} {ax + 40},{reach} {ax + 18},{edge}",
                (ax, reach + side * 4 + (0 if above else 8)))  # fmt: skip
    dx, dy = bx - ax, by - ay
    length = math.hypot(dx, dy)
    bend = 24 if length < 260 else 0.3 * length
    cx, cy = (ax + bx) / 2 + dy / length * bend, (ay + by) / 2 - dx / length * bend
    start, end = _exit((ax, ay), (cx, cy)), _exit((bx, by), (cx, cy))
    label = (0.25 * start[0] + 0.5 * cx + 0.25 * end[0], 0.25 * start[1] + 0.5 * cy + 0.25 * end[1])
    path = f"M{start[0]:.1f},{start[1]:.1f} Q{cx:.1f},{cy:.1f} {end[0]:.1f},{end[1]:.1f}"
    return path, (label[0], label[1] - 4)


def _exit(centre: tuple[float, float], toward: tuple[float, float]) -> tuple[float, float]:
    """Where the line from a box's centre toward a point leaves the box."""
    dx, dy = toward[0] - centre[0], toward[1] - centre[1]
    scale = min(
        (_BOX_W / 2) / abs(dx) if dx else math.inf, (_BOX_H / 2) / abs(dy) if dy else math.inf
    )
    return centre[0] + dx * scale, centre[1] + dy * scale


def html_report(summary: ReplaySummary, spec: Spec) -> str:
    """One page: outcomes, verdicts, notices sent against cancelled, notices prevented over
    time, the legacy comparison, the last customer message sent, and the state diagram
    (drawn, with its Mermaid source)."""
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
    example, message = summary.example, ""
    if example is not None:
        template = f", template {example.template_id}" if example.template_id else ""
        message = (
            f"<h2>The last message sent</h2><p>{escape(example.notice_id)} "
            f"({escape(example.locale + template)})</p>"
            f'<blockquote lang="{escape(example.locale)}">{escape(example.text)}</blockquote>'
        )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Replay report</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}figure{{margin:1em 0}}
pre{{background:#f4f4f4;padding:1em;overflow:auto}}</style></head>
<body><h1>Replay report</h1>
<p>{summary.lines} lines read; {sum(summary.states.values())} debits;
{summary.misinformed} customers misinformed (their last notice no longer states the outcome).</p>
{"".join(charts)}
{message}
<h2>Needs review</h2><ul>{review}</ul>
<h2>The debit machine</h2>{state_chart(spec)}
<details><summary>Mermaid source</summary><pre>{escape(spec.diagram())}</pre></details>
</body></html>
"""
