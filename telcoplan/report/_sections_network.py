"""Report sections about what to build: coverage gaps and POIs, proposed sites, backbone."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from telcoplan.report._basis import (
    metric_name,
    not_covered,
    service_generation,
    trench_cost_basis,
    without_service,
)
from telcoplan.report._blocks import (
    Context,
    as_mapping,
    column_label,
    fmt_value,
    frame_rows,
    html_table,
    key_values,
    pct_of,
    records_table,
)
from telcoplan.report._format import (
    MISSING,
    Safe,
    esc,
    fmt_count,
    fmt_km,
    fmt_km2,
    fmt_m,
    fmt_money,
    fmt_num,
    fmt_pct,
    is_missing,
    number,
)
from telcoplan.report._svg import Series, bar_chart

__all__ = [
    "backbone_section",
    "gaps_section",
    "review_section",
    "sites_section",
]

_JOINT_COLOUR = "#2ca02c"
_SEPARATE_COLOUR = "#d62728"


def gaps_section(
    ctx: Context,
    gaps: pd.DataFrame | None,
    pois: pd.DataFrame | None,
    top: int,
    max_rows: int,
) -> str:
    """Coverage gaps (the ``top`` largest), persons out of reach, single-operator areas, POIs."""
    g = as_mapping(ctx.summary.get("gaps"))
    if not g and gaps is None and pois is None:
        return ""
    out = []
    nc = not_covered(ctx.summary)
    generation = service_generation(ctx.summary)
    if number(g.get("count")) is not None:
        out.append(
            f"<p>{fmt_count(g['count'])} ranked coverage gaps — populated places no operator "
            + (
                f"covers with {esc(generation)} or better (older generations' coverage is not "
                "counted as service here: <code>stages.gaps.technology</code>)"
                if generation
                else "covers"
            )
            + f" — with {fmt_count(g.get('population'))} persons over "
            f"{fmt_km2(g.get('area_km2'))}.</p>"
        )
    if nc is not None:
        out.append(_reconciliation(nc, g, without_service(ctx.summary)))
    limit = as_mapping(as_mapping(ctx.summary.get("coverage")).get("limit"))
    # (why coverage ends is told of any technology's coverage: not of a generation's gaps)
    if limit and generation is None:
        far = number(limit.get("population_not_covered_distance"))
        terrain = number(limit.get("population_not_covered_terrain"))
        if nc is not None and far is not None and terrain is not None:
            # whole persons that add up to the total shown above
            far_shown = nc.total - round(terrain)
            out.append(
                f"<p>Why they are not covered: {fmt_count(far_shown)} persons are too far "
                f"from every site, {fmt_count(round(terrain))} are behind terrain that blocks "
                f"the signal (together the {fmt_count(nc.total)} not covered).</p>"
            )
        else:
            out.append(
                "<p>Persons not covered because they are too far from every site: "
                f"{fmt_count(far)}; because terrain blocks the signal: {fmt_count(terrain)}.</p>"
            )
        dem_pct, no_dem = (
            number(limit.get("dem_cells_pct")),
            number(limit.get("population_without_dem")),
        )
        if dem_pct is not None and dem_pct < 99.95:
            out.append(
                f'<p class="note">The DEM covers {dem_pct:.0f}% of the grid; terrain is not '
                f"modelled on the rest (flat earth), where {fmt_count(no_dem)} persons live: "
                "coverage there is the model's over flat ground, and nobody there is counted "
                "behind terrain. A DEM covering the whole study area (e.g. SRTM tiles merged) "
                "fills it in.</p>"
            )
    if gaps is not None:
        recs = frame_rows(gaps)
        for r in recs:
            r.setdefault("gap_id", r.get("id"))
        recs.sort(key=lambda r: -(number(r.get("population")) or 0.0))
    else:
        recs = [dict(r) for r in g.get("largest") or [] if isinstance(r, Mapping)]
    if recs and top > 0:
        shown = recs[:top]
        has_fiber = any(number(r.get("dist_fiber_m")) is not None for r in shown)
        has_areas = any(_gap_areas(r) for r in shown)
        header = ["Rank", "Gap", "Population (persons)", "Area", "Nearest tower"]
        header += ["Nearest fibre"] if has_fiber else []
        header += ["In the areas (most of it first)"] if has_areas else []
        rows = []
        for i, r in enumerate(shown, start=1):
            rank = r.get("rank") if number(r.get("rank")) is not None else i
            row = [
                fmt_count(rank),
                esc(MISSING if is_missing(r.get("gap_id")) else r.get("gap_id")),
                fmt_count(r.get("population")),
                fmt_km2(r.get("area_km2")),
                fmt_m(r.get("dist_tower_m")),
            ]
            if has_fiber:
                row.append(fmt_m(r.get("dist_fiber_m")))
            if has_areas:
                names = _gap_areas(r)
                more = f" (+{len(names) - 3:,} more)" if len(names) > 3 else ""
                row.append(esc("; ".join(names[:3]) + more))
            rows.append(row)
        what = f"The {len(shown):,} largest gaps" if len(recs) > len(shown) else "Ranked gaps"
        out.append(
            f"<h3>{what}, by population</h3>"
            + html_table(header, rows, numeric=(0, 2, 3, 4, 5))
            + '<p class="note">Distances are edge to edge, from the gap to the nearest existing '
            + ("tower and fibre route.</p>" if has_fiber else "tower.</p>")
        )
        if len(recs) > len(shown):
            out.append(f'<p class="note">… and {len(recs) - len(shown):,} smaller gaps.</p>')
    single = as_mapping(g.get("single_operator"))
    if single:
        out.append("<h3>Covered by one operator only</h3>")
        out.append(
            "<p>Persons who have a signal from exactly one operator: no choice and no fallback.</p>"
        )
        out.append(
            html_table(
                ("Operator", "Persons covered by this operator only"),
                [[esc(op), fmt_count(v)] for op, v in single.items()],
                numeric=(1,),
            )
        )
    out.append(_pois_part(ctx, g, pois, max_rows))
    return "\n".join(p for p in out if p)


def _gap_areas(r: Mapping[str, Any]) -> list[str]:
    """A gap's areas: a list (``summary.json``) or "; "-joined (``gaps.gpkg``)."""
    v = r.get("areas")
    if isinstance(v, str):
        return [n for n in v.split("; ") if n]
    return [str(n) for n in v] if isinstance(v, list) else []


def _reconciliation(nc: Any, g: Mapping[str, Any], label: str) -> str:
    """The table that reconciles the persons not covered: in ranked gaps + scattered."""
    nco = as_mapping(g.get("not_covered"))
    rows: list[list[object]] = [
        [
            "In ranked coverage gaps (listed below)",
            Safe(f"{fmt_count(nc.gap_count)} gap{'' if nc.gap_count == 1 else 's'}")
            if nc.gap_count is not None
            else MISSING,
            fmt_count(nc.in_gaps),
        ]
    ]
    if nc.small is not None:
        below = fmt_num(nc.small_below, 0 if float(nc.small_below or 0).is_integer() else 1)
        dens = fmt_num(nc.sparse_below, 0 if float(nc.sparse_below or 0).is_integer() else 1)
        rows.append(
            [
                Safe(f"Scattered: uncovered pockets of fewer than {below} persons"),
                Safe(f"{fmt_count(nc.small_count)} pocket{'' if nc.small_count == 1 else 's'}"),
                fmt_count(nc.small),
            ]
        )
        rows.append(
            [
                Safe(
                    f"Scattered: uncovered cells sparser than {dens} persons/km²"
                    + (f" ({fmt_km2(nc.sparse_km2)})" if nc.sparse_km2 is not None else "")
                ),
                Safe(f"{fmt_count(nc.sparse_cells)} cell{'' if nc.sparse_cells == 1 else 's'}"),
                fmt_count(nc.sparse),
            ]
        )
    else:
        rows.append(
            [
                "Scattered: pockets below the gaps' minimum size or density",
                MISSING,
                fmt_count(nc.scattered),
            ]
        )
    total = [label, "", fmt_count(nc.total)]
    note = (
        "Not covered = in ranked gaps + scattered. A gap is ranked when it holds at least "
        "<code>min_population</code> persons in cells of at least "
        "<code>min_density_per_km2</code> (gaps stage parameters)"
    )
    if nco:
        note += "; the rest is scattered"
    return (
        '<div id="not-covered"><h3>Persons not covered, reconciled</h3>'
        + html_table(("", "Count", "Persons"), rows, numeric=(1, 2), total=total)
        + f'<p class="note">{note}.</p></div>'
    )


def _pois_part(ctx: Context, g: Mapping[str, Any], pois: pd.DataFrame | None, max_rows: int) -> str:
    """POIs served at their required level, and a table of the unserved ones: the best level
    in the serving technology's metric beside the requirement in the same metric, the margin,
    the operator and technology; total received power only as a last, secondary column."""
    p = as_mapping(g.get("pois"))
    unserved: list[dict[str, Any]] = []
    count = p.get("count")
    served = p.get("served")
    if pois is not None:
        recs = frame_rows(pois)
        if recs and "served" in recs[0]:
            unserved = [
                r for r in recs if not is_missing(r.get("served")) and not bool(r["served"])
            ]
            count = len(recs)
            served = len(recs) - len(unserved)
    if number(count) is None:
        return ""
    out = [
        "<h3>Points of interest</h3>",
        f"<p>{fmt_count(served)} of {fmt_count(count)} POIs (schools, clinics, ward offices …) "
        "get their required signal level from at least one operator.</p>",
    ]
    if unserved and "margin_db" in unserved[0]:
        unserved.sort(key=lambda r: number(r.get("margin_db")) or -math.inf)
        out.append(
            "<p>Unserved POIs. Levels are in the serving technology's own metric — RxLev (2G), "
            "RSCP (3G), RSRP (4G), SS-RSRP (5G) — and the requirement is in the same metric "
            "(the POI's <code>required_dbm</code>, else the coverage threshold). Margin = best "
            "level − required: negative is the shortfall. Total received power (all "
            "carriers, not comparable with the requirement) is given for reference.</p>"
        )
        out.append(_unserved_table(unserved, max_rows))
    elif unserved:
        cols = [
            c
            for c in (
                "poi_id",
                "id",
                "name",
                "category",
                "required_dbm",
                "best_operator",
                "best_power_dbm",
            )
            if c in unserved[0]
        ]
        if "poi_id" in cols and "id" in cols:
            cols.remove("id")
        out.append(
            '<p>Unserved POIs. <span class="note">This run\'s POI table predates the levels '
            "in the technology's metric (rerun the gaps stage): total received power is not "
            "comparable with the requirement.</span></p>"
        )
        out.append(records_table([{c: r.get(c) for c in cols} for r in unserved], ctx, max_rows))
    elif p.get("unserved"):
        ids = [str(i) for i in p["unserved"]]
        out.append("<p>Unserved POIs: " + ", ".join(esc(i) for i in ids) + ".</p>")
    return "\n".join(out)


def _level(value: object, metric: object) -> Safe:
    """``-97.2 dBm RSRP`` (the metric named in the cell, so it reads right when copied)."""
    if number(value) is None:
        return Safe(MISSING)
    unit = "dBm" if is_missing(metric) or not str(metric) else f"dBm {metric}"
    return fmt_num(value, 1, unit)


def _unserved_table(unserved: list[dict[str, Any]], max_rows: int) -> str:
    shown = unserved[:max_rows]
    rows = []
    for r in shown:
        pid = r.get("poi_id", r.get("id"))
        metric = r.get("level_metric")
        if is_missing(metric) or not str(metric):
            metric = metric_name(r.get("level_technology"))
        has_signal = number(r.get("level_dbm")) is not None
        op, tech = r.get("level_operator"), r.get("level_technology")
        serving = (
            esc(f"{op} ({tech})" if not is_missing(tech) and str(tech) else op)
            if has_signal and not is_missing(op)
            else Safe("no signal")
        )
        margin = number(r.get("margin_db"))
        rows.append(
            [
                esc(MISSING if is_missing(pid) else pid),
                esc(MISSING if is_missing(r.get("name")) else r.get("name")),
                esc(MISSING if is_missing(r.get("category")) else r.get("category")),
                serving,
                Safe(f'<span class="level">{_level(r.get("level_dbm"), metric)}</span>'),
                Safe(
                    f'<span class="required">'
                    f"{_level(r.get('required_level_dbm'), metric if has_signal else None)}"
                    "</span>"
                ),
                fmt_num(margin, 1, "dB") if margin is not None else Safe(MISSING),
                fmt_num(r.get("best_power_dbm"), 1, "dBm"),
            ]
        )
    html_ = html_table(
        (
            "POI",
            "Name",
            "Category",
            "Serving operator (technology)",
            "Best level",
            "Required (same metric)",
            "Margin (best − required)",
            "Total received power",
        ),
        rows,
        numeric=(4, 5, 6, 7),
        cls="unserved-pois",
    )
    if len(unserved) > len(shown):
        html_ += f'<p class="note">… and {len(unserved) - len(shown):,} more.</p>'
    return html_


def sites_section(ctx: Context, sites: pd.DataFrame | None, max_rows: int) -> str:
    """Key figures of the sites stage and the proposed sites as a table."""
    s = as_mapping(ctx.summary.get("sites"))
    recs = frame_rows(sites) if sites is not None else []
    if not s and not recs:
        return ""
    out = []
    # the sites stage counts money in USD (cost_usd, budget_usd) whatever the report's currency
    usd = Context(ctx.summary, "USD", ctx.operators, population_source=ctx.population_source)
    basis = _site_cost_basis(ctx, as_mapping(s.get("parameters")))
    if basis:
        out.append(f'<p class="note" id="site-costs">{basis}</p>')
    figures = {k: v for k, v in s.items() if k != "parameters"}
    if figures:
        out.append(key_values(figures, usd))
        for k, v in figures.items():
            if isinstance(v, list) and v:
                out.append(f"<h3>{esc(str(k).replace('_', ' ').capitalize())}</h3>")
                out.append(records_table(v, usd, max_rows))
    if recs:
        recs = [{k: v for k, v in r.items() if k != "source"} for r in recs]
        out.append(f"<h3>Proposed sites ({len(recs):,})</h3>")
        out.append(records_table(recs, usd, max_rows))
    return "\n".join(p for p in out if p)


def _site_cost_basis(ctx: Context, params: Mapping[str, Any]) -> str:
    """Which costs the sites stage used: the candidates' own, else its table by kind (USD)."""
    overrides = as_mapping(params.get("cost_usd"))
    table = {**ctx.site_costs, **{str(k): v for k, v in overrides.items()}}
    text = (
        f"Persons newly covered: {ctx.persons_basis()}. Costs in USD: a candidate's own "
        "<code>cost</code> where its file gives one, else the sites stage's cost table per site"
    )
    if table:
        text += (
            " ("
            + ", ".join(
                f"{'tenancy on an existing mast' if k == 'colocation' else esc(str(k).replace('_', ' '))}"
                f" {fmt_money(v, 'USD')}"
                for k, v in table.items()
                if number(v) is not None
            )
            + (
                "; plan overrides: " + ", ".join(esc(k) for k in overrides)
                if overrides
                else "; telcoplan's defaults"
            )
            + ")"
        )
    return text + "; a shared new build costs its mast plus a tenancy per further operator."


#: The site review's table in the report: (column, heading); the CSV has every column.
_REVIEW_COLUMNS = (
    ("candidate_id", "Proposal"),
    ("name", "Name"),
    ("operator", "Operator"),
    ("population_new", "Persons newly covered"),
    ("population_own_overlap", "Already covered by its operator"),
    ("own_overlap_pct", "Own overlap"),
    ("population_other_overlap", "Covered by other operators"),
    ("hosts", "Existing towers within the co-location radius"),
    ("zoning_allowed", "Zoning"),
    ("dist_road_m", "Nearest road"),
    ("dist_fiber_m", "Nearest fibre"),
)


def review_section(ctx: Context, review: pd.DataFrame | None, max_rows: int) -> str:
    """The site review (``telcoplan sites review``) when the run folder has one: what each
    proposal adds, most persons first."""
    if review is None or not len(review):
        return ""
    recs = frame_rows(review)
    recs.sort(key=lambda r: -(number(r.get("population_new")) or 0.0))
    hosts = sum(1 for r in recs if (number(r.get("host_count")) or 0) > 0)
    zoned = [r.get("zoning_allowed") for r in recs if not is_missing(r.get("zoning_allowed"))]
    figures: dict[str, Any] = {
        "proposals": len(recs),
        "population_newly_covered": sum(number(r.get("population_new")) or 0.0 for r in recs),
        "population_already_covered_by_the_proposing_operator": sum(
            number(r.get("population_own_overlap")) or 0.0 for r in recs
        ),
        "proposals_an_existing_tower_could_host": hosts,
    }
    if zoned:
        figures["proposals_refused_by_zoning"] = sum(1 for v in zoned if not _truthy(v))
    out = [
        '<p class="note">Each proposal judged against the run\'s coverage: persons it would newly '
        "cover for its operator, persons in its footprint its operator already covers "
        "(cannibalisation) or other operators cover, and existing towers within the "
        "co-location radius that could host it instead. Footprints may overlap, so the "
        "persons newly covered by several proposals are not a sum to build on. Every column "
        "is in the review's CSV.</p>",
        key_values(figures, ctx),
    ]
    cols = [(c, h) for c, h in _REVIEW_COLUMNS if any(c in r for r in recs)]
    shown = recs[:max_rows]
    rows = []
    for r in shown:
        cells = []
        for c, _ in cols:
            v = r.get(c)
            if c == "zoning_allowed":
                reason = r.get("zoning_reason")
                cells.append(
                    esc(
                        MISSING
                        if is_missing(v)
                        else "allowed"
                        if _truthy(v)
                        else f"refused: {reason}"
                        if not is_missing(reason) and str(reason)
                        else "refused"
                    )
                )
            elif c == "hosts":
                cells.append(esc(v if not is_missing(v) and str(v) else "none"))
            else:
                cells.append(fmt_value(c, v, ctx))
        rows.append(cells)
    numeric = [i for i, (c, _) in enumerate(cols) if c.startswith(("population_", "own_", "dist_"))]
    out.append(html_table([h for _, h in cols], rows, numeric=numeric))
    if len(recs) > len(shown):
        out.append(f'<p class="note">… and {len(recs) - len(shown):,} more.</p>')
    return "\n".join(out)


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "1.0")


def backbone_section(ctx: Context, links: pd.DataFrame | None) -> str:
    """Separate vs joint build (km, cost, saving), each operator's share (proportional and
    Shapley), ring protection, and the links by plan and status."""
    bb = as_mapping(ctx.summary.get("backbone"))
    if not bb and links is None:
        return ""
    money = ctx.money
    out = []
    n_sites, n_shared = bb.get("sites"), bb.get("shared_sites")
    greenfield = bb.get("mode") == "greenfield"
    if number(n_sites) is not None:
        text = f"<p>Links {'joining' if greenfield else 'connecting'} {fmt_count(n_sites)} physical sites"
        if number(n_shared) is not None:
            text += f" ({fmt_count(n_shared)} shared by several operators)"
        if greenfield:
            out.append(
                text + ". <strong>Greenfield plan</strong>: no existing fibre was given, so "
                "every link is a new trench. Building alone, each operator joins its own sites "
                "to each other; building jointly, the operators dig one shared trench network "
                "that joins each operator's sites.</p>"
            )
        else:
            out.append(
                text + " to the fibre network: each operator building alone, and all operators "
                "building one shared trench network.</p>"
            )
    pieces = bb.get("road_pieces")
    if isinstance(pieces, Mapping) and (number(pieces.get("before")) or 0) > 1:
        joined, apart = number(pieces.get("links")) or 0, number(pieces.get("apart"))
        text = (
            f'<p class="note">The roads fall into {fmt_count(pieces["before"])} pieces that '
            "do not meet (a clipped road file, or main roads without the streets between them)."
        )
        if joined:
            text += (
                f" {fmt_count(joined)} straight off-road trench{'es' if joined != 1 else ''} "
                f"({fmt_km((number(pieces.get('length_m')) or 0.0) / 1000.0)} in all, the longest "
                f"{fmt_count(round(number(pieces.get('longest_m')) or 0))} m) "
                f"join{'s' if joined == 1 else ''} them, "
                "costed per metre as road class <code>off-road</code>; a road layer with the "
                "streets between them gives truer routes."
            )
        if apart is not None and apart > 1:
            text += (
                f" {fmt_count(apart)} pieces stay farther apart than "
                "<code>stages.backbone.join_pieces_m</code>: sites on the smaller ones may be "
                "left out."
            )
        out.append(text + "</p>")
    left_out = [r for r in bb.get("left_out") or [] if isinstance(r, Mapping)]
    if left_out:
        out.append(
            f"<p>{fmt_count(len(left_out))} site{'s' if len(left_out) != 1 else ''} cannot be "
            "connected in every plan and "
            f"{'are' if len(left_out) != 1 else 'is'} left out of both the joint and the "
            "separate plans, so that both serve the same sites:</p>"
        )
        out.append(
            html_table(
                ("Site", "Reason"),
                [[esc(r.get("site_id")), esc(r.get("reason"))] for r in left_out],
            )
        )
    nofiber = bb.get("operators_without_fiber")
    if isinstance(nofiber, list) and nofiber and not greenfield:
        out.append(
            '<p class="note">Without any fibre to start from: '
            + ", ".join(esc(o) for o in nofiber)
            + " (their sites are only joined to each other when building alone).</p>"
        )
    km_sep, km_joint = bb.get("length_km_separate"), bb.get("length_km_joint")
    c_sep, c_joint = bb.get("cost_separate"), bb.get("cost_joint")
    if any(number(v) is not None for v in (km_sep, km_joint, c_sep, c_joint)):
        ksep, kjoint, csep, cjoint = map(number, (km_sep, km_joint, c_sep, c_joint))
        dkm = ksep - kjoint if ksep is not None and kjoint is not None else None
        dcost = csep - cjoint if csep is not None and cjoint is not None else None
        saving = bb.get("savings_pct")
        if number(saving) is None:
            saving = pct_of(dcost, csep)
        rows = [
            ["Each operator builds alone (sum)", fmt_km(ksep), money(csep)],
            ["Joint build (shared trenches)", fmt_km(kjoint), money(cjoint)],
        ]
        total = [
            "Saving",
            fmt_km(dkm),
            Safe(f"{money(dcost)} ({fmt_pct(saving)} of the separate-build cost)"),
        ]
        header = ["", "Route length (links)", f"Cost ({esc(ctx.currency)})"]
        t_sep, t_joint = number(bb.get("trench_km_separate")), number(bb.get("trench_km_joint"))
        if t_sep is not None or t_joint is not None:
            header.insert(2, "New trench to dig")
            rows[0].insert(2, fmt_km(t_sep))
            rows[1].insert(2, fmt_km(t_joint))
            total.insert(
                2, fmt_km(t_sep - t_joint if t_sep is not None and t_joint is not None else None)
            )
        out.append(html_table(header, rows, numeric=range(1, len(header)), total=total))
        off = number(bb.get("off_road_km_joint"))
        if off is not None and kjoint and off >= 0.2 * kjoint:
            longest = number(bb.get("longest_access_m"))
            out.append(
                f'<p class="note">{fmt_km(off)} of the joint route '
                f"({fmt_pct(100.0 * off / kjoint)}) are straight lines off the roads: the "
                "sites' access drops to the nearest road"
                + (f" (the longest {fmt_km(longest / 1000.0)})" if longest else "")
                + " and the trenches joining road pieces. The road layer lacks the streets "
                "that reach these sites: add them (e.g. OpenStreetMap's roads) for routes a "
                "crew could follow and costs to build on.</p>"
            )
        out.append(f'<p class="note" id="backbone-basis">{_backbone_basis(ctx)}</p>')
        if csep is not None and cjoint is not None:
            out.append(
                bar_chart(
                    [("Separate (sum)", [csep]), ("Joint", [cjoint])],
                    [Series("cost", _JOINT_COLOUR)],
                    row_colours=[_SEPARATE_COLOUR, _JOINT_COLOUR],
                    fmt=money,
                    title="Backbone cost: separate vs joint build",
                    chart_id="backbone-cost",
                )
            )
    sep = as_mapping(bb.get("separate"))
    prop = as_mapping(bb.get("share_proportional"))
    shap = as_mapping(bb.get("share_shapley"))
    ops = list(dict.fromkeys([*map(str, sep), *map(str, prop), *map(str, shap)]))
    if ops:
        rows = []
        for op in ops:
            alone = as_mapping(sep.get(op))
            share = number(shap.get(op))
            if share is None:
                share = number(prop.get(op))
            cost_alone = number(alone.get("cost"))
            rows.append(
                [
                    esc(op),
                    fmt_km(alone.get("length_km")),
                    money(cost_alone),
                    money(prop.get(op)),
                    money(shap.get(op)),
                    fmt_pct(
                        pct_of(cost_alone - share, cost_alone)
                        if share is not None and cost_alone is not None
                        else None
                    ),
                ]
            )
        out.append("<h3>Each operator's share of the joint cost</h3>")
        out.append(
            "<p><em>Proportional</em>: each shared link's cost is split among the operators "
            "that use it. <em>Shapley</em>: each operator pays its average added cost over "
            "every order in which the operators could join (a fair split of the saving).</p>"
        )
        out.append(
            html_table(
                (
                    "Operator",
                    "Alone: route length",
                    "Alone: cost",
                    "Proportional share",
                    "Shapley share",
                    "Saving vs alone",
                ),
                rows,
                numeric=(1, 2, 3, 4, 5),
            )
        )
        series = [
            Series("alone", "#9e9e9e"),
            Series("proportional share", "#6baed6"),
            Series("Shapley share", "#08519c"),
        ]
        groups = [
            (op, [as_mapping(sep.get(op)).get("cost"), prop.get(op), shap.get(op)]) for op in ops
        ]
        present = [k for k in range(3) if any(number(v[k]) is not None for _, v in groups)]
        out.append(
            bar_chart(
                [(op, [v[k] for k in present]) for op, v in groups],
                [series[k] for k in present],
                fmt=money,
                title="Backbone cost per operator: alone vs share of the joint build",
                chart_id="backbone-shares",
            )
        )
    for key in ("ring", "rings", "resilience", "protection"):
        ring = bb.get(key)
        if isinstance(ring, Mapping) and ring:
            out.append("<h3>Ring protection</h3>")
            out.append("<p>Protected sites stay connected after any single link is cut.</p>")
            out.append(
                key_values(
                    {
                        ("ring_route_length_km" if k == "length_km" else k): v
                        for k, v in ring.items()
                        if k != "parameters"
                    },
                    ctx,
                )
            )
            for k, v in ring.items():
                if k == "parameters" or not v:
                    continue
                if isinstance(v, list):
                    out.append(f"<h4>{esc(column_label(str(k)))}</h4>")
                    out.append(records_table(v, ctx, 200))
                elif isinstance(v, Mapping):
                    out.append(f"<h4>{esc(column_label(str(k)))}</h4>")
                    head = ("Site", "Reason") if "unprotected" in str(k) else ("", "Value")
                    out.append(
                        html_table(
                            head, [[esc(a), fmt_value(str(a), b, ctx)] for a, b in v.items()]
                        )
                    )
            break
    if links is not None and len(links):
        out.append(_links_part(ctx, links))
    return "\n".join(p for p in out if p)


def _links_part(ctx: Context, links: pd.DataFrame) -> str:
    """Backbone links by plan and status, and joint trench length by number of users."""
    df = pd.DataFrame(links).drop(columns=["geometry"], errors="ignore")
    if "length_m" not in df.columns:
        return ""
    keys = [c for c in ("plan", "status") if c in df.columns]
    if "ring" in df.columns:
        keys.append("ring")
    out = ["<h3>Links</h3>"]
    if keys:
        agg = df.assign(_n=1, _cost=df["cost"] if "cost" in df.columns else float("nan"))
        grouped = agg.groupby(keys, sort=True, dropna=False)[["_n", "length_m", "_cost"]].sum(
            min_count=1
        )
        rows = []
        for idx, r in grouped.iterrows():
            labels = idx if isinstance(idx, tuple) else (idx,)
            rows.append(
                [
                    *(esc(v) for v in labels),
                    fmt_count(r["_n"]),
                    fmt_km(r["length_m"] / 1000.0),
                    ctx.money(r["_cost"]),
                ]
            )
        out.append(
            html_table(
                [k.capitalize() for k in keys]
                + ["Links", "Route length", f"Cost ({esc(ctx.currency)})"],
                rows,
                numeric=range(len(keys), len(keys) + 3),
            )
        )
    if {"plan", "operators"} <= set(df.columns):
        joint = df[df["plan"].astype(str) == "joint"]
        if len(joint):
            # counted once per distinct text (a national run: 154,000 links, a few dozen texts)
            codes, texts = pd.factorize(joint["operators"].fillna("").astype(str))
            counts = [len([o for o in s.split(";") if o.strip()]) for s in texts]
            users = pd.Series(np.asarray(counts, dtype="int64")[codes], index=joint.index)
            by = joint.assign(_users=users).groupby("_users")["length_m"].sum()
            rows = [
                [f"{int(n)} operator{'s' if n != 1 else ''}", fmt_km(km / 1000.0)]
                for n, km in by.items()
            ]
            out.append(
                "<p>Joint network: route length of its links by number of operators using them.</p>"
            )
            out.append(html_table(("Used by", "Route length"), rows, numeric=(1,)))
    return "\n".join(out)


def _backbone_basis(ctx: Context) -> str:
    """What the backbone's km and costs mean, and the cost table behind them."""
    table, overrides = trench_cost_basis(ctx.summary)
    params = as_mapping(as_mapping(ctx.summary.get("backbone")).get("parameters"))
    cur = esc(ctx.currency)
    text = (
        "Route length: the length of the links, over new trenches and over existing fibre "
        "reused or leased; new trench: the part that must be dug. Costs in "
        f"{cur}: trench cost per metre by road class ("
        + ", ".join(f"{esc(k)} {fmt_num(v, 0)}" for k, v in table.items())
        + f" {cur}/m; "
        + (
            "plan overrides: " + ", ".join(esc(k) for k in overrides)
            if overrides
            else "telcoplan's default table, in USD"
        )
        + ")"
    )
    own, lease = number(params.get("own_fiber_factor")), number(params.get("lease_factor"))
    if own is not None:
        text += f"; an operator's own fibre reused at {fmt_pct(100 * own, 0)} of the trench cost"
    if lease is not None:
        text += f", other operators' fibre leased at {fmt_pct(100 * lease, 0)} of it"
    elif "lease_factor" in params:
        text += ", no leasing (every operator digs where it has no fibre)"
    return text + "."
