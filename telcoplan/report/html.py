""":data:`~telcoplan.outputs.REPORT`: the plan as one self-contained HTML page for planners and operators.

The page holds headline figures, coverage per operator and per area, coverage gaps, proposed
sites, the backbone (separate vs joint build, each operator's share), the plan's figure and the
run's provenance. It is a single UTF-8 file: inline CSS, charts as inline SVG, the figure as a
``data:`` URI; no script and no reference to anything outside the file, so it opens offline
and can be e-mailed.

Every section is optional and appears only when its data are present, so the report works for
a plan that ran only some stages. Every text that comes from input files (area, operator,
tower, POI names, ids, parameters) is HTML-escaped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from telcoplan import outputs
from telcoplan.gis.atomic import atomic_path, check_writable, final_path
from telcoplan.report import _sections as sec
from telcoplan.report._basis import population_basis
from telcoplan.report._format import esc

if TYPE_CHECKING:
    import geopandas as gpd

__all__ = [
    "TABLES",
    "attribute_table",
    "load_outputs",
    "render_report",
    "report_from_outputs",
    "write_report",
]

log = logging.getLogger(__name__)

#: File name of the report in a plan's output folder.


_CSS = """
:root { --ink: #1b1f24; --muted: #5b6470; --rule: #d9dee4; --band: #f4f6f8; --accent: #08519c; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif;
  color: var(--ink); margin: 0 auto; max-width: 1100px; padding: 0 24px 48px; }
header { border-bottom: 3px solid var(--accent); padding: 20px 0 10px; margin-bottom: 12px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin: 32px 0 8px; border-bottom: 1px solid var(--rule); padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 20px 0 6px; }
.sub, .note, figcaption { color: var(--muted); }
.note { font-size: 0.9em; }
.banner { background: #fff3cd; border: 1px solid #e0b300; padding: 10px 14px; margin: 12px 0;
  font-weight: 600; }
nav ul { list-style: none; padding: 0; margin: 8px 0; display: flex; flex-wrap: wrap; gap: 6px 16px; }
nav a { color: var(--accent); text-decoration: none; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; }
.card { background: var(--band); border-radius: 6px; padding: 12px 14px; }
.card .label { color: var(--muted); font-size: 0.85em; text-transform: uppercase; letter-spacing: 0.03em; }
.card .value { font-size: 1.6em; font-weight: 650; white-space: nowrap; }
.card .detail { color: var(--muted); font-size: 0.9em; }
.card .value small { font-size: 0.5em; font-weight: 500; color: var(--muted); }
table.unserved-pois .level, table.unserved-pois .required { white-space: nowrap; }
table { border-collapse: collapse; margin: 8px 0 4px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--rule); text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; }
td.num { white-space: nowrap; }
td:first-child { white-space: nowrap; }
tr.total td { font-weight: 600; border-top: 2px solid var(--rule); }
code { font-size: 0.85em; word-break: break-all; }
pre { background: var(--band); padding: 10px; overflow-x: auto; font-size: 0.85em; }
svg.chart { display: block; max-width: 100%; height: auto; margin: 6px 0 10px; }
svg.chart { font-size: 12px; }
svg.chart text { fill: var(--ink); }
svg.chart text.value { fill: var(--muted); }
figure { margin: 8px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--rule); }
footer { margin-top: 40px; color: var(--muted); font-size: 0.85em; border-top: 1px solid var(--rule);
  padding-top: 8px; }
@media print { nav { display: none; } h2 { break-after: avoid; } }
"""


# ============================================================================== public API
def render_report(
    summary: Mapping[str, Any],
    *,
    areas: pd.DataFrame | None = None,
    gaps: pd.DataFrame | None = None,
    pois: pd.DataFrame | None = None,
    sites: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    review: pd.DataFrame | None = None,
    figure_png: bytes | None = None,
    title: str | None = None,
    top_gaps: int = 20,
    max_rows: int = 200,
    currency: str = "USD",
    population_source: str | None = None,
    site_costs: Mapping[str, float] | None = None,
) -> str:
    """The HTML report of a plan run, as text.

    Parameters
    ----------
    summary
        The run's :data:`~telcoplan.outputs.SUMMARY` content (:func:`telcoplan.plan.run_plan`'s return value).
        Sections appear only for the keys present: ``coverage``, ``gaps``, ``sites``,
        ``backbone``, ``provenance``.
    areas
        Population covered per area and operator (:data:`~telcoplan.outputs.COVERAGE` layer ``areas``: ``name``,
        ``population``, ``covered_<operator>``, ``covered_any``, optional ``urban``,
        ``best_single_operator``). Default: the per-area figures of ``summary``.
    gaps
        Ranked coverage gaps (:data:`~telcoplan.outputs.GAPS` layer ``gaps``: ``gap_id`` column or index,
        ``population``, ``area_km2``, ``dist_tower_m``, ``dist_fiber_m``). Default: the largest
        gaps listed in ``summary``.
    pois
        POI service check (:data:`~telcoplan.outputs.GAPS` layer ``pois``); the unserved POIs are listed.
    sites
        Proposed sites, any columns (:data:`~telcoplan.outputs.SITES`); shown as a table.
    links
        Backbone links (:data:`~telcoplan.outputs.BACKBONE` layer ``links``: ``plan``, ``status``, ``operators``,
        ``length_m`` in m, ``cost``), summarised by plan and status.
    review
        A site review (:data:`~telcoplan.outputs.REVIEW` layer ``review``, from ``telcoplan
        sites review``): the "Site review" section, proposals ranked by persons newly covered.
    figure_png
        A PNG image of the plan (e.g. from ``telcoplan.maps``), embedded as a ``data:`` URI.
    title
        Page title; default ``"telcoplan report — <plan name>"``.
    top_gaps
        How many gaps to list (largest first).
    max_rows
        Longest table of sites or POIs; the rest is counted, not listed.
    currency
        Currency of the backbone's costs (its default trench cost table is in USD); the sites
        stage's costs are always USD.
    population_source
        What the persons are, e.g. ``"2019 census"``; stated before the population file (or
        the areas' column) the run read, wherever the report gives persons.
    site_costs
        The sites stage's default cost table (USD by kind of site), stated as the basis of the
        sites' costs with the plan's overrides from ``summary``.

    Returns
    -------
    str
        A complete HTML document (encode it as UTF-8; it declares ``<meta charset="utf-8">``).

    Raises
    ------
    TypeError, ValueError
        When ``figure_png`` is not the bytes of a PNG image.
    """
    figure = sec.figure_section(figure_png)
    plan_name = summary.get("plan")
    page_title = title if title is not None else sec.default_title(plan_name)
    ctx = sec.Context(
        summary,
        currency,
        sec.operators(summary, areas),
        population_source=population_basis(summary, population_source),
        site_costs=site_costs,
    )
    sections = [
        ("headline", "Key figures", sec.headline_section(ctx)),
        ("figure", "Map", figure),
        ("coverage", "Coverage", sec.coverage_section(ctx)),
        ("areas", "Areas", sec.areas_section(ctx, areas)),
        ("gaps", "Gaps", sec.gaps_section(ctx, gaps, pois, top_gaps, max_rows)),
        ("sites", "Proposed sites", sec.sites_section(ctx, sites, max_rows)),
        ("review", "Site review", sec.review_section(ctx, review, max_rows)),
        ("backbone", "Backbone", sec.backbone_section(ctx, links)),
        ("provenance", "Provenance", sec.provenance_section(ctx)),
    ]
    sections = [(sid, name, body) for sid, name, body in sections if body]
    from telcoplan import __version__

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="telcoplan {esc(__version__)}">',
        f"<title>{esc(page_title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{esc(page_title)}</h1>",
        sec.subtitle(summary),
        "</header>",
    ]
    if summary.get("synthetic"):
        parts.append(
            '<p class="banner" id="synthetic">SYNTHETIC DATA — this plan was run on the built-in '
            "demo scenario, generated by telcoplan and modelled on Đà Nẵng. It is not real data "
            "and must not be used for decisions.</p>"
        )
    if len(sections) > 1:
        parts.append(
            "<nav><ul>"
            + "".join(f'<li><a href="#{sid}">{esc(name)}</a></li>' for sid, name, _ in sections)
            + "</ul></nav>"
        )
    for sid, name, body in sections:
        parts.append(f'<section id="{sid}">\n<h2>{esc(name)}</h2>\n{body}\n</section>')
    parts += [
        _footer(summary, ctx, __version__),
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _footer(summary: Mapping[str, Any], ctx: sec.Context, version: str) -> str:
    """The units and bases of the page's figures, for those the page has."""
    bits = [
        "Population figures are persons"
        + (f" ({esc(ctx.population_source)})" if ctx.population_source else "")
        + "; percentages are of the study area's population unless the table says of the "
        "area's or of the class's"
    ]
    if summary.get("coverage") or summary.get("gaps"):
        bits.append(
            "signal levels are dBm in the technology's metric (RxLev 2G, RSCP 3G, RSRP 4G, "
            "SS-RSRP 5G)"
        )
    if summary.get("backbone"):
        bits.append(f"backbone costs in {esc(ctx.currency)}, lengths in km of route or of trench")
    if summary.get("sites"):
        bits.append("the sites' costs in USD")
    return f"<footer>Generated by telcoplan {esc(version)}. {'; '.join(bits)}.</footer>"


def write_report(
    path: str | os.PathLike,
    summary: Mapping[str, Any],
    *,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Render the report (see :func:`render_report` for ``options``) and write it atomically.

    The page is rendered before anything is written, and written to a temporary name that is
    renamed into place, so a failure never leaves a partial ``path``.

    Raises
    ------
    telcoplan.errors.OutputExistsError
        When ``path`` exists and ``overwrite`` is False (checked before rendering).
    """
    check_writable(path, overwrite)
    text = render_report(summary, **options)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
    log.info("report: %s", final_path(path))
    return Path(path)


#: The report's attribute tables: keyword of :func:`render_report` → output layer
#: (:data:`telcoplan.outputs.LAYERS`).
TABLES: dict[str, str] = {
    "areas": "areas",
    "gaps": "gaps",
    "pois": "pois",
    "sites": "sites",
    "links": "backbone",
    "review": "review",
}


def load_outputs(
    out_dir: str | os.PathLike,
    *,
    summary: Mapping[str, Any] | None = None,
    layers: Mapping[str, gpd.GeoDataFrame | None] | None = None,
) -> dict[str, Any]:
    """The report's data from a plan's output folder, as keyword arguments of :func:`render_report`.

    Reads :data:`~telcoplan.outputs.SUMMARY` (unless ``summary`` is given) and, when present, the attribute tables (no geometry) of
    :data:`~telcoplan.outputs.COVERAGE` layer ``areas``, :data:`~telcoplan.outputs.GAPS` layers ``gaps`` and ``pois``,
    :data:`~telcoplan.outputs.SITES` layer ``sites`` (or its first layer), :data:`~telcoplan.outputs.BACKBONE` layer ``links`` and
    a site review's :data:`~telcoplan.outputs.REVIEW` layer ``review``.

    ``layers`` holds output layers (by :data:`~telcoplan.outputs.LAYERS` name) that the caller
    has read already with :func:`telcoplan.outputs.read_layer` (None: the run did not write
    it): their tables are taken from them (:func:`attribute_table`) instead of reading the
    files again (the report stage reads the layers once for the figure and the tables).

    Raises
    ------
    telcoplan.errors.InputFileError
        When :data:`~telcoplan.outputs.SUMMARY` is missing or not valid JSON.
    """
    out = Path(out_dir)
    if summary is None:
        summary = outputs.read_summary(out / outputs.SUMMARY)
    data: dict[str, Any] = {"summary": summary}
    for key, name in TABLES.items():
        if layers is not None and name in layers:
            layer = layers[name]
            frame = None if layer is None else attribute_table(out, name, layer)
        else:
            frame = outputs.read_table(out, name)
        if frame is not None:
            data[key] = frame
    return data


def attribute_table(out_dir: str | os.PathLike, name: str, layer: gpd.GeoDataFrame) -> pd.DataFrame:
    """The attribute table :func:`telcoplan.outputs.read_table` gives of output layer ``name``
    in ``out_dir``, from ``layer``, the layer :func:`telcoplan.outputs.read_layer` read: the id
    column it made the index back in place, the geometry dropped.

    The columns are put in the order of the GeoPackage's fields (read from its metadata, not
    its rows); when that is not the layer's own (a file whose only layer has another name) or
    the columns differ from the fields, the table is read from the file instead.
    """
    import pyogrio

    index = outputs.LAYERS[name][2]
    frame = layer.reset_index() if index is not None and layer.index.name == index else layer
    table = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    path = Path(out_dir) / outputs.LAYERS[name][0]
    try:
        fields = [str(f) for f in pyogrio.read_info(path, layer=outputs.LAYERS[name][1])["fields"]]
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
        fields = None
    if fields is None or sorted(fields) != sorted(map(str, table.columns)):
        log.debug("report: %s of %s read again for its table", name, path)
        return outputs.read_table(out_dir, name)
    return table if list(table.columns) == fields else table[fields]


def report_from_outputs(
    out_dir: str | os.PathLike,
    path: str | os.PathLike | None = None,
    *,
    summary: Mapping[str, Any] | None = None,
    figure_png: bytes | str | os.PathLike | None = None,
    overwrite: bool = False,
    tables: Mapping[str, Any] | None = None,
    **options: Any,
) -> Path:
    """Write the report of the plan outputs in ``out_dir``; return its path.

    Parameters
    ----------
    out_dir
        A plan's output folder (or the plan's staging folder): :data:`~telcoplan.outputs.SUMMARY` and the
        GeoPackages (see :func:`load_outputs`).
    path
        Where to write; default ``out_dir`` / :data:`~telcoplan.outputs.REPORT`.
    summary
        Use this summary instead of reading ``out_dir`` / :data:`~telcoplan.outputs.SUMMARY` (for a plan stage that has
        not written it yet).
    figure_png
        The plan's figure: PNG bytes or the path of a PNG file.
    overwrite
        Replace an existing report.
    tables
        What :func:`load_outputs` gives for ``out_dir`` and ``summary``, when the caller has
        read it already (the report stage reads it while the figure is drawn).
    **options
        Further options of :func:`render_report` (``title``, ``top_gaps``, ``currency``, …).
    """
    out = Path(out_dir)
    target = Path(path) if path is not None else out / outputs.REPORT
    check_writable(target, overwrite)
    data = dict(tables) if tables is not None else load_outputs(out, summary=summary)
    if figure_png is not None and not isinstance(figure_png, bytes | bytearray):
        figure_png = Path(figure_png).read_bytes()
    return write_report(target, overwrite=overwrite, figure_png=figure_png, **data, **options)
