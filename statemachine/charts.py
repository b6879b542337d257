"""Charts as inline SVG, for pages that fetch nothing: the replay report and the operator's
page. A bar per item (:func:`bar_chart`), or a column per time bucket showing a rate
(:func:`rate_chart`).

>>> bar_chart("Debits", {"succeeded": 3, "failed": 1}).count("<rect")
2
>>> rate_chart("Success rate", [("03-05", 0.75, 4), ("03-06", None, 0)]).count("<rect")
1
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

COLOURS = ("#2f7d4f", "#b8412c", "#3a6ea5", "#c7932b", "#7a5195", "#5c5c5c")


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
        fill = colour or COLOURS[number % len(COLOURS)]
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


def rate_chart(
    title: str,
    buckets: Sequence[tuple[str, float | None, int]],
    colour: str = COLOURS[0],
    width: int = 560,
    height: int = 190,
    caption: str = "",
) -> str:
    """A column per time bucket, as high as its rate (0 to 100 %), in ``colour``, with
    ``caption`` (text) under it.

    ``buckets`` are ``(label, rate, measured)``, oldest first: a rate of None (nothing to
    measure) leaves the slot empty. Each column's tooltip gives its label, rate and count;
    the first, middle and last labels are written under the axis.
    """
    left, top, bottom = 44, 26, height - 22
    plot = width - left - 8
    slot = plot / max(len(buckets), 1)
    parts = [
        f'<text x="0" y="14" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for share in (0, 0.5, 1):
        y = bottom - share * (bottom - top)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - 8}" y2="{y:.1f}" stroke="#ccc"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
            f"{share:.0%}</text>"
        )
    marks = {0, len(buckets) // 2, len(buckets) - 1}
    for number, (label, rate, measured) in enumerate(buckets):
        x = left + number * slot
        if rate is not None:
            y = min(bottom - rate * (bottom - top), bottom - 2)  # a rate of 0 still shows
            tip = f"{label}: {rate:.1%} of {measured}"
            parts.append(
                f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{max(slot - 2, 1):.1f}" '
                f'height="{bottom - y:.1f}" fill="{colour}"><title>{escape(tip)}</title></rect>'
            )
        if number in marks:  # the first and last flush with the ends, so none is cut off
            anchor, at = ("start", x) if number == 0 else ("end", x + slot)
            if 0 < number < len(buckets) - 1:
                anchor, at = "middle", x + slot / 2
            parts.append(
                f'<text x="{at:.1f}" y="{height - 6}" font-size="11" '
                f'text-anchor="{anchor}">{escape(label)}</text>'
            )
    under = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}">{"".join(parts)}</svg>{under}</figure>'
    )
