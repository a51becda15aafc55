"""Report sections about the run itself: title, subtitle, figure and provenance."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from telcoplan import outputs
from telcoplan.report._blocks import Context, as_mapping, html_table
from telcoplan.report._format import MISSING, Safe, esc, fmt_count, fmt_num, is_missing, number

__all__ = [
    "PNG_SIGNATURE",
    "default_title",
    "figure_section",
    "provenance_section",
    "skipped_stages",
    "subtitle",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def default_title(plan_name: object) -> str:
    """The page title: ``telcoplan report — <plan name>``."""
    return "telcoplan report" if is_missing(plan_name) else f"telcoplan report — {plan_name}"


def subtitle(summary: Mapping[str, Any]) -> str:
    """One line under the title: plan name, telcoplan version, CRS and grid resolution."""
    bits = []
    if not is_missing(summary.get("plan")):
        bits.append(f"Plan <strong>{esc(summary['plan'])}</strong>")
    version = summary.get("telcoplan_version", summary.get("version"))
    if not is_missing(version):
        bits.append(f"run with telcoplan {esc(version)}")
    if not is_missing(summary.get("crs")):
        bits.append(f"CRS {esc(summary['crs'])}")
    res = number(as_mapping(summary.get("grid")).get("resolution_m"))
    if res is not None:
        bits.append(f"grid {fmt_num(res, 0 if res.is_integer() else 1, 'm')}")
    line = f'<p class="sub">{" · ".join(bits)}</p>' if bits else ""
    return line + skipped_stages(summary)


def skipped_stages(summary: Mapping[str, Any]) -> str:
    """A note listing the stages that did not run, each with why (``summary["stages"]``)."""
    stages = as_mapping(summary.get("stages"))
    items = [
        f"<li><strong>{esc(name)}</strong>: {esc(as_mapping(v).get('skipped'))}</li>"
        for name, v in stages.items()
        if not is_missing(as_mapping(v).get("skipped"))
    ]
    if not items:
        return ""
    return (
        '<div class="note" id="skipped-stages"><p>Skipped stages:</p>'
        f"<ul>{''.join(items)}</ul></div>"
    )


def figure_section(png: bytes | None) -> str:
    """The plan's figure as an ``<img>`` with a ``data:image/png;base64`` URI (no file beside the page).

    Raises TypeError when ``png`` is not bytes, ValueError when it lacks the PNG signature.
    """
    if png is None:
        return ""
    if not isinstance(png, bytes | bytearray):
        raise TypeError(f"figure_png must be the bytes of a PNG image, got {type(png).__name__}")
    if not bytes(png[:8]) == PNG_SIGNATURE:
        raise ValueError("figure_png is not a PNG image (it lacks the PNG signature)")
    data = base64.b64encode(bytes(png)).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" '
        'alt="Map of the plan: coverage, gaps, sites and backbone">'
        "<figcaption>The plan at a glance (static figure; the interactive map is "
        f"<code>{outputs.MAP}</code>).</figcaption></figure>"
    )


def provenance_section(ctx: Context) -> str:
    """Plan, version, CRS, grid, the inputs with their SHA-256, and the parameters used."""
    s = ctx.summary
    prov = as_mapping(s.get("provenance"))
    out = []
    rows = []
    if not is_missing(s.get("plan")):
        rows.append(["Plan", esc(s["plan"])])
    if not is_missing(prov.get("plan_file")):
        rows.append(["Plan file", Safe(f"<code>{esc(prov['plan_file'])}</code>")])
    version = s.get("telcoplan_version", s.get("version"))
    if not is_missing(version):
        rows.append(["telcoplan version", esc(version)])
    if "synthetic" in s:
        rows.append(["Synthetic data", "yes" if s.get("synthetic") else "no"])
    if not is_missing(s.get("crs")):
        rows.append(["CRS", esc(s["crs"])])
    grid = as_mapping(s.get("grid"))
    if grid:
        rows.append(
            [
                "Grid",
                Safe(
                    f"{fmt_count(grid.get('width'))} × {fmt_count(grid.get('height'))} cells of "
                    f"{fmt_num(grid.get('resolution_m'), 0, 'm')}"
                ),
            ]
        )
    if rows:
        out.append(html_table(("", "Value"), rows))
    inputs = as_mapping(prov.get("inputs"))
    counts = dict(as_mapping(s.get("layers")))
    if isinstance(s.get("areas"), list):
        counts.setdefault("areas", len(s["areas"]))
    if inputs:
        irows = []
        for name, ref in inputs.items():
            ref = as_mapping(ref)
            irows.append(
                [
                    esc(name),
                    Safe(f"<code>{esc(ref.get('path', MISSING))}</code>"),
                    fmt_count(counts.get(name)),
                    Safe(f"<code>{esc(ref.get('sha256', MISSING))}</code>"),
                ]
            )
            for extra in ("weights", "classes"):  # files a layer reads beside its own
                if f"{extra}_path" in ref:
                    irows.append(
                        [
                            esc(f"{name} ({extra})"),
                            Safe(f"<code>{esc(ref[f'{extra}_path'])}</code>"),
                            MISSING,
                            Safe(f"<code>{esc(ref.get(f'{extra}_sha256', MISSING))}</code>"),
                        ]
                    )
        out.append("<h3>Inputs</h3>")
        out.append(html_table(("Layer", "File", "Features", "SHA-256"), irows, numeric=(2,)))
    params = [("Plan", prov.get("parameters"))] + [
        (f"{str(k).capitalize()} stage", as_mapping(v).get("parameters"))
        for k, v in s.items()
        if isinstance(v, Mapping) and k != "provenance"
    ]
    params = [(name, p) for name, p in params if isinstance(p, Mapping) and p]
    if params:
        out.append("<h3>Parameters</h3>")
        for name, p in params:
            text = json.dumps(p, indent=2, ensure_ascii=False, default=str)
            out.append(f"<details><summary>{esc(name)}</summary><pre>{esc(text)}</pre></details>")
    return "\n".join(out)
