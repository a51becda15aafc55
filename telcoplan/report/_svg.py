"""Inline SVG bar charts for the HTML report: no JavaScript, no external assets.

A chart is a list of groups (one row label each) of bars (one per series). Bar lengths are
proportional to the values: ``width = value / max_value * plot_width``, with ``max_value`` the
chart's scale (100 for percentages, else the largest value). Every bar carries its value in a
``data-value`` attribute and a ``<title>`` tooltip, so the chart can be checked and read
without seeing it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from telcoplan.report._format import esc, number

__all__ = ["Series", "bar_chart"]

_FONT_PX = 12
_VALUE_WIDTH = 110  # room for the value text to the right of the longest bar (px)
_LEGEND_ROW = 22


@dataclass(frozen=True)
class Series:
    """One series of a bar chart: its name (legend) and its fill colour (``#rrggbb``)."""

    name: str
    colour: str


def bar_chart(
    groups: Sequence[tuple[str, Sequence[object]]],
    series: Sequence[Series],
    *,
    fmt: Callable[[object], str],
    title: str,
    chart_id: str,
    max_value: float | None = None,
    row_colours: Sequence[str] | None = None,
    width: int = 720,
    label_width: int = 170,
    bar_height: int = 16,
) -> str:
    """An inline ``<svg>`` of horizontal bars.

    Parameters
    ----------
    groups
        ``(label, values)`` rows; ``values`` has one entry per series (None: no bar).
    series
        Name and colour of each series; a legend is drawn when there are several.
    fmt
        Formats a value for the text beside its bar (must return escaped text).
    title
        Accessible name of the chart (``aria-label`` and ``<title>``).
    chart_id
        Written as ``data-chart`` so tests and style sheets can find the chart.
    max_value
        Value of a full-length bar; default the largest value. Negative values draw no bar.
    row_colours
        With a single series: one colour per group (row) instead of the series' colour.
    width, label_width, bar_height
        Geometry in CSS pixels.
    """
    if row_colours is not None and (len(series) != 1 or len(row_colours) != len(groups)):
        raise ValueError("row_colours needs a single series and one colour per group")
    values = [number(v) for _, vals in groups for v in vals]
    finite = [v for v in values if v is not None]
    scale = max_value if max_value is not None else max(finite, default=0.0)
    plot_width = max(width - label_width - _VALUE_WIDTH, 10)
    legend = len(series) > 1
    top = _LEGEND_ROW if legend else 0
    group_height = bar_height * max(len(series), 1) + 8
    height = top + group_height * len(groups) + 4
    value_font = min(_FONT_PX, bar_height - 2)
    out = [
        f'<svg class="chart" data-chart="{esc(chart_id)}" role="img" aria-label="{esc(title)}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{esc(title)}</title>",
    ]
    if legend:
        x = label_width
        for s in series:
            out.append(
                f'<rect class="key" x="{x}" y="4" width="12" height="12" fill="{esc(s.colour)}"/>'
                f'<text x="{x + 16}" y="14">{esc(s.name)}</text>'
            )
            x += 24 + 7 * len(s.name)
    for g, (label, vals) in enumerate(groups):
        y0 = top + g * group_height + 4
        mid = y0 + bar_height * len(series) / 2 + _FONT_PX / 2 - 2
        out.append(
            f'<text class="label" x="{label_width - 8}" y="{mid:.1f}" text-anchor="end">'
            f"{esc(label)}</text>"
        )
        for k, (s, raw) in enumerate(zip(series, vals, strict=True)):
            v = number(raw)
            if v is None:
                continue
            w = plot_width * max(v, 0.0) / scale if scale > 0 else 0.0
            y = y0 + k * bar_height
            colour = s.colour if row_colours is None else row_colours[g]
            out.append(
                f'<rect class="bar" x="{label_width}" y="{y}" width="{w:.3f}" '
                f'height="{bar_height - 2}" fill="{esc(colour)}" data-value="{v!r}">'
                f"<title>{esc(label)} · {esc(s.name)}: {fmt(v)}</title></rect>"
                f'<text class="value" x="{label_width + w + 4:.3f}" '
                f'y="{y + bar_height - 4}" font-size="{value_font}">{fmt(v)}</text>'
            )
    out.append("</svg>")
    return "".join(out)
