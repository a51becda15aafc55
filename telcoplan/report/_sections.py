"""The sections of the HTML report, each built from the summary and optional tables.

Each ``*_section`` function returns the HTML of its section's body, or ``""`` when its data are
absent (the section is then left out). Text from the inputs goes through :func:`esc` (or a
``fmt_*`` helper) before it reaches the page; table cells that are not :class:`Safe` are
escaped by :func:`table`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

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
from telcoplan.report.summary import COVERAGE_KEYS

__all__ = [
    "Context",
    "areas_section",
    "backbone_section",
    "coverage_section",
    "default_title",
    "figure_section",
    "gaps_section",
    "headline_section",
    "operators",
    "provenance_section",
    "sites_section",
    "subtitle",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Categorical operator colours, the same cycle as the interactive map (sorted names).
OPERATOR_PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#9467bd",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#7f7f7f",
)
_ANY_COLOUR = "#08519c"
_JOINT_COLOUR = "#2ca02c"
_SEPARATE_COLOUR = "#d62728"
_NUM_CLASS = ' class="num"'

#: Keys of ``summary["coverage"]`` that are not operators.
_COVERAGE_NON_OPERATORS = COVERAGE_KEYS


class Context:
    """What the section builders share."""

    def __init__(self, summary: Mapping[str, Any], currency: str, operators: list[str]):
        self.summary = summary
        self.currency = currency
        self.operators = operators
        palette = {
            op: OPERATOR_PALETTE[i % len(OPERATOR_PALETTE)]
            for i, op in enumerate(sorted(set(operators)))
        }
        self.colours = palette

    def colour(self, operator: str) -> str:
        if operator not in self.colours:
            self.colours[operator] = OPERATOR_PALETTE[len(self.colours) % len(OPERATOR_PALETTE)]
        return self.colours[operator]

    def money(self, value: object) -> Safe:
        return fmt_money(value, self.currency)


def _mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (absent or malformed summary parts)."""
    return value if isinstance(value, Mapping) else {}


def operators(summary: Mapping[str, Any], areas: pd.DataFrame | None) -> list[str]:
    """Operator names, in the order of the summary's coverage figures, then of the area table."""
    ops = [
        str(k)
        for k, v in _mapping(summary.get("coverage")).items()
        if k not in _COVERAGE_NON_OPERATORS and isinstance(v, Mapping) and "population_covered" in v
    ]
    if areas is not None:
        for col in areas.columns:
            name = str(col)
            if name.startswith("covered_"):
                op = name[len("covered_") :]
                if op not in ("any", "best_single") and not op.endswith("_plus") and op not in ops:
                    ops.append(op)
    return ops


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
    res = number(_mapping(summary.get("grid")).get("resolution_m"))
    if res is not None:
        bits.append(f"grid {fmt_num(res, 0 if res.is_integer() else 1, 'm')}")
    return f'<p class="sub">{" · ".join(bits)}</p>' if bits else ""


def _cell(value: object) -> str:
    """A table cell: :class:`Safe` HTML as is, anything else escaped (missing values as a dash)."""
    return value if isinstance(value, Safe) else esc(MISSING if is_missing(value) else value)


def _table(
    header: Sequence[object],
    rows: Sequence[Sequence[object]],
    *,
    numeric: Sequence[int] = (),
    total: Sequence[object] | None = None,
    cls: str = "",
) -> str:
    """A table; cells are :class:`Safe` HTML or text to escape. ``numeric``: right-aligned columns."""
    num = set(numeric)

    def row(cells: Sequence[object], tag: str = "td", extra: str = "") -> str:
        tds = "".join(
            f"<{tag}{_NUM_CLASS if i in num else ''}>{_cell(c)}</{tag}>"
            for i, c in enumerate(cells)
        )
        return f"<tr{extra}>{tds}</tr>"

    body = [row(r) for r in rows]
    if total is not None:
        body.append(row(total, extra=' class="total"'))
    cls_attr = f' class="{esc(cls)}"' if cls else ""
    return (
        f"<table{cls_attr}><thead>{row(header, 'th')}</thead><tbody>{''.join(body)}</tbody></table>"
    )


def _pct_of(part: object, whole: object) -> float | None:
    """``100 * part / whole`` (%), or None when either is missing or ``whole`` ≤ 0."""
    p, w = number(part), number(whole)
    if p is None or w is None or w <= 0:
        return None
    return 100.0 * p / w


def _frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Records of a (Geo)DataFrame without its geometry; a meaningful index becomes ``id``."""
    df = pd.DataFrame(frame)
    geom = [c for c in df.columns if str(c) == "geometry" or str(df[c].dtype) == "geometry"]
    df = df.drop(columns=geom)
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        name = str(df.index.name) if df.index.name is not None else "id"
        if name not in df.columns:
            df = df.reset_index(names=name)
    return df.to_dict(orient="records")


def _fmt_value(column: str, value: object, ctx: Context) -> Safe:
    """A table cell of a generic column, formatted by the column's name and the value's type."""
    if is_missing(value):
        return Safe(MISSING)
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return esc("yes" if value else "no")
    v = number(value)
    if v is None:
        return esc(value)
    col = column.lower()
    if col.endswith("_km2"):
        return fmt_km2(v)
    if col.endswith("_km"):
        return fmt_km(v)
    if col.endswith("_m"):
        return fmt_m(v)
    if col.endswith("_dbm"):
        return fmt_num(v, 1, "dBm")
    if col.endswith(("_pct", "_percent")):
        return fmt_pct(v)
    if "cost" in col:
        return ctx.money(v)
    if "population" in col or col.startswith(("covered", "persons")):
        return fmt_count(v)
    if v.is_integer():
        return fmt_num(v, 0)
    return fmt_num(v, 2)


def _key_values(items: Mapping[str, Any], ctx: Context) -> str:
    """Scalar entries of a mapping as a two-column table (keys humanised, values formatted)."""
    rows = [
        (esc(_label(str(k))), _fmt_value(str(k), v, ctx))
        for k, v in items.items()
        if not isinstance(v, Mapping | list | tuple)
    ]
    return _table(("", "Value"), rows, numeric=(1,)) if rows else ""


#: Column headings of generic tables; other columns read as their name without underscores.
_LABELS = {
    "poi_id": "POI",
    "site_id": "Site",
    "gap_id": "Gap",
    "id": "Id",
    "required_dbm": "Required level (technology metric: RSRP, RSCP…)",
    "best_power_dbm": "Best total received power",
    "best_operator": "Best operator",
    "population_added": "Persons added",
    "new_population": "Persons newly covered",
    "tower_type": "Tower type",
    "dist_tower_m": "Nearest tower",
    "dist_fiber_m": "Nearest fibre",
    "length_m": "Length",
    "area_km2": "Area",
}


def _label(column: str) -> str:
    """Heading of a generic column."""
    return _LABELS.get(column, column.replace("_", " ").capitalize())


def _records_table(records: Sequence[Any], ctx: Context, max_rows: int) -> str:
    """A list of mappings (or plain values) as a table."""
    if not records:
        return ""
    if all(isinstance(r, Mapping) for r in records):
        cols: list[str] = []
        for r in records:
            cols += [str(k) for k in r if str(k) not in cols and str(k) != "geometry"]
        shown = records[:max_rows]
        rows = [[_fmt_value(c, r.get(c), ctx) for c in cols] for r in shown]
        numeric = [
            i
            for i, c in enumerate(cols)
            if all(number(r.get(c)) is not None or is_missing(r.get(c)) for r in shown)
        ]
        html_ = _table([_label(c) for c in cols], rows, numeric=numeric)
    else:
        shown = records[:max_rows]
        html_ = _table(("",), [[_cell(r)] for r in shown])
    if len(records) > len(shown):
        html_ += f'<p class="note">… and {len(records) - len(shown):,} more.</p>'
    return html_


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
        "<code>map.html</code>).</figcaption></figure>"
    )


def _card(label: str, value: Safe, detail: str = "") -> str:
    """One headline card; ``value`` and ``detail`` are HTML built from escaped parts."""
    d = f'<div class="detail">{detail}</div>' if detail else ""
    return f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{value}</div>{d}</div>'


def headline_section(ctx: Context) -> str:
    """Cards with the key figures: population, coverage, gaps, POIs, sites, backbone saving."""
    s = ctx.summary
    cov, gaps, bb = (
        _mapping(s.get("coverage")),
        _mapping(s.get("gaps")),
        _mapping(s.get("backbone")),
    )
    cards = []
    if number(s.get("population_total")) is not None:
        areas = s.get("areas") if isinstance(s.get("areas"), list) else []
        detail = []
        if areas:
            detail.append(f"{len(areas):,} areas")
        if number(s.get("area_km2_total")) is not None:
            detail.append(fmt_km2(s["area_km2_total"]))
        cards.append(_card("Population", fmt_count(s["population_total"]), " · ".join(detail)))
    anyc = _mapping(cov.get("any"))
    if number(anyc.get("population_pct")) is not None:
        cards.append(
            _card(
                "Covered by any operator",
                fmt_pct(anyc["population_pct"]),
                f"{fmt_count(anyc.get('population_covered'))} persons",
            )
        )
    best = _mapping(cov.get("best_single_operator"))
    if number(best.get("population_pct")) is not None:
        cards.append(
            _card(
                "Best single operator",
                fmt_pct(best["population_pct"]),
                f"{esc(best.get('operator', MISSING))}: "
                f"{fmt_count(best.get('population_covered'))} persons",
            )
        )
    if number(gaps.get("count")) is not None:
        cards.append(
            _card(
                "Coverage gaps",
                fmt_count(gaps["count"]),
                f"{fmt_count(gaps.get('population'))} persons · {fmt_km2(gaps.get('area_km2'))}",
            )
        )
    pois = _mapping(gaps.get("pois"))
    if number(pois.get("count")) is not None:
        cards.append(
            _card(
                "POIs served",
                Safe(f"{fmt_count(pois.get('served'))} / {fmt_count(pois['count'])}"),
                "schools, clinics, ward offices … at their required signal level",
            )
        )
    sites = _mapping(s.get("sites"))
    for key in ("count", "proposed", "n_sites"):
        if number(sites.get(key)) is not None:
            cards.append(_card("Proposed sites", fmt_count(sites[key])))
            break
    if number(bb.get("savings_pct")) is not None:
        cards.append(
            _card(
                "Backbone: joint build saves",
                fmt_pct(bb["savings_pct"]),
                f"{ctx.money(bb.get('cost_joint'))} joint vs "
                f"{ctx.money(bb.get('cost_separate'))} separately",
            )
        )
    return f'<div class="cards">{"".join(cards)}</div>' if cards else ""


def coverage_section(ctx: Context) -> str:
    """Population covered per operator, by any operator and by the best single operator; by
    technology and urban/rural when present; a bar chart of the percentages."""
    cov = _mapping(ctx.summary.get("coverage"))
    if not cov:
        return ""
    total = ctx.summary.get("population_total")
    rows, groups = [], []
    for op in ctx.operators:
        r = _mapping(cov.get(op))
        rows.append(
            [
                esc(op),
                fmt_count(r.get("population_covered")),
                fmt_pct(r.get("population_pct")),
                fmt_km2(r.get("area_km2")),
            ]
        )
        groups.append((op, [r.get("population_pct")]))
    anyc = _mapping(cov.get("any"))
    best = _mapping(cov.get("best_single_operator"))
    out = []
    if anyc:
        rows.append(
            [
                Safe("<strong>Any operator</strong>"),
                fmt_count(anyc.get("population_covered")),
                fmt_pct(anyc.get("population_pct")),
                fmt_km2(anyc.get("area_km2")),
            ]
        )
    if best:
        rows.append(
            [
                Safe(f"Best single operator ({esc(best.get('operator', MISSING))})"),
                fmt_count(best.get("population_covered")),
                fmt_pct(best.get("population_pct")),
                fmt_km2(_mapping(cov.get(str(best.get("operator")))).get("area_km2")),
            ]
        )
    if not rows:
        return ""
    out.append(
        "<p>Population covered per operator (an operator covers a cell where its serving signal "
        "meets the technology's threshold)"
        + (f" out of {fmt_count(total)} persons" if number(total) is not None else "")
        + ".</p>"
    )
    out.append(
        _table(("Operator", "Population covered", "Share", "Area covered"), rows, numeric=(1, 2, 3))
    )
    colours = [ctx.colour(op) for op in ctx.operators]
    if anyc:
        groups.append(("Any operator", [anyc.get("population_pct")]))
        colours.append(_ANY_COLOUR)
    out.append(
        bar_chart(
            groups,
            [Series("population covered", _ANY_COLOUR)],
            row_colours=colours,
            fmt=fmt_pct,
            max_value=100.0,
            title="Population covered per operator (%)",
            chart_id="coverage-operators",
        )
    )
    tech = _mapping(cov.get("by_technology"))
    if tech:
        trows = [
            [
                esc(str(k).replace("_plus", "+").replace("_", " ")),
                fmt_count(_mapping(v).get("population_covered")),
                fmt_pct(_mapping(v).get("population_pct")),
            ]
            for k, v in tech.items()
        ]
        out.append("<h3>By technology (any operator)</h3>")
        out.append(_table(("Technology", "Population covered", "Share"), trows, numeric=(1, 2)))
    fit = _mapping(_mapping(cov.get("parameters")).get("calibration_fit"))
    if fit:
        clutter = _mapping(cov.get("clutter"))
        offsets = _mapping(fit.get("clutter_offsets_db"))
        text = (
            f"Propagation calibrated on {fmt_count(fit.get('n_measurements'))} measurements: "
            f"{fmt_num(fit.get('intercept_offset_db'), 1)} dB at 1 km, "
            f"{fmt_num(fit.get('slope_offset_db_per_decade'), 1)} dB per decade of distance "
            f"(RMS error {fmt_num(fit.get('rmse_db_before'), 1)} → "
            f"{fmt_num(fit.get('rmse_db_after'), 1)} dB)"
        )
        if offsets:
            shares = _mapping(clutter.get("share_pct"))
            listed = ", ".join(
                f"{k} {fmt_num(v, 1)} dB"
                + (f" ({fmt_num(shares[k], 1)} % of cells)" if k in shares else "")
                for k, v in offsets.items()
            )
            text += (
                f"; clutter offsets {'applied' if clutter.get('applied') else 'not applied (no land-use layer)'}: "
                + listed
            )
        out.append(f"<p>{esc(text)}.</p>")
    ur = _mapping(cov.get("urban_rural"))
    if ur:
        # per class: any operator, the best single operator (SDG 9.c.1) and each operator
        ops = [
            op
            for op in ctx.operators
            if any(op in _mapping(_mapping(v).get("operators")) for v in ur.values())
        ]
        urows = []
        for k, v in ur.items():
            v = _mapping(v)
            best = _mapping(v.get("best_single_operator"))
            per_op = _mapping(v.get("operators"))
            urows.append(
                [
                    esc(str(k).capitalize()),
                    fmt_count(v.get("population")),
                    fmt_count(v.get("covered_any")),
                    fmt_pct(_pct_of(v.get("covered_any"), v.get("population"))),
                    Safe(
                        f"{esc(best.get('operator', MISSING))} "
                        f"({esc(fmt_pct(best.get('population_pct')))})"
                    )
                    if best
                    else MISSING,
                    *(fmt_pct(_mapping(per_op.get(op)).get("population_pct")) for op in ops),
                ]
            )
        out.append("<h3>Urban and rural areas</h3>")
        header = ("", "Population", "Covered (any operator)", "Share", "Best single operator")
        numeric = (1, 2, 3, *range(len(header), len(header) + len(ops)))
        out.append(_table((*header, *ops), urows, numeric=numeric))
    return "\n".join(out)


def _area_records(ctx: Context, areas: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Per-area records from the area table, else from the summary's coverage, else its areas."""
    s = ctx.summary
    listed = [a for a in s.get("areas") or [] if isinstance(a, Mapping)]
    km2 = {str(a.get("name")): a.get("area_km2") for a in listed}
    if areas is not None and len(areas):
        recs = _frame_rows(areas)
        for r in recs:
            if "name" not in r:
                r["name"] = r.get("id")
    else:
        recs = [
            dict(a)
            for a in _mapping(s.get("coverage")).get("areas") or []
            if isinstance(a, Mapping)
        ] or [dict(a) for a in listed]
    for r in recs:
        if number(r.get("area_km2")) is None:
            r["area_km2"] = km2.get(str(r.get("name")))
    return recs


def areas_section(ctx: Context, areas: pd.DataFrame | None) -> str:
    """Population and coverage per area and operator (% of the area's population), with totals
    and a grouped bar chart."""
    recs = _area_records(ctx, areas)
    if not recs:
        return ""
    ops = ctx.operators
    has_cov = any(number(r.get("covered_any")) is not None for r in recs)
    has_urban = any("urban" in r and not is_missing(r.get("urban")) for r in recs)
    has_best = any(not is_missing(r.get("best_single_operator")) for r in recs)
    header = ["Area"] + (["Type"] if has_urban else []) + ["Population", "Area", "Density"]
    if has_cov:
        header += ["Any operator", *ops, "Not covered"]
    if has_best:
        header.append("Best single operator")
    rows = []
    for r in recs:
        pop = r.get("population")
        row: list[object] = [esc(r.get("name"))]
        if has_urban:
            u = r.get("urban")
            row.append(MISSING if is_missing(u) else ("urban" if bool(u) else "rural"))
        dens = (
            number(pop) / number(r["area_km2"])
            if number(r.get("area_km2")) and number(pop) is not None
            else None
        )
        row += [fmt_count(pop), fmt_km2(r.get("area_km2")), fmt_num(dens, 0, "/km²")]
        if has_cov:
            uncovered = r.get("uncovered_any")
            covered = number(r.get("covered_any"))
            if number(uncovered) is None and number(pop) is not None and covered is not None:
                uncovered = number(pop) - covered
            row.append(fmt_pct(_pct_of(r.get("covered_any"), pop)))
            row += [fmt_pct(_pct_of(r.get(f"covered_{op}"), pop)) for op in ops]
            row.append(fmt_count(uncovered))
        if has_best:
            row.append(esc(r.get("best_single_operator", MISSING)))
        rows.append(row)
    first_num = 2 if has_urban else 1
    numeric = range(first_num, len(header) - (1 if has_best else 0))
    total = None
    pops = [number(r.get("population")) for r in recs]
    if len(recs) > 1 and all(p is not None for p in pops):
        tot_pop = sum(pops)
        tot_km2 = sum(number(r.get("area_km2")) or 0.0 for r in recs)
        total = ["Total"] + ([""] if has_urban else [])
        total += [
            fmt_count(tot_pop),
            fmt_km2(tot_km2 or None),
            fmt_num(tot_pop / tot_km2 if tot_km2 else None, 0, "/km²"),
        ]
        if has_cov:

            def tot(col: str) -> float:
                return sum(number(r.get(col)) or 0.0 for r in recs)

            total.append(fmt_pct(_pct_of(tot("covered_any"), tot_pop)))
            total += [fmt_pct(_pct_of(tot(f"covered_{op}"), tot_pop)) for op in ops]
            total.append(fmt_count(tot_pop - tot("covered_any")))
        if has_best:
            total.append("")
    out = [
        "<p>Population covered per area: by any operator and by each operator, in % of the "
        "area's population.</p>"
        if has_cov
        else "<p>Population per area.</p>",
        _table(header, rows, numeric=numeric, total=total),
    ]
    if has_cov:
        series = [Series(op, ctx.colour(op)) for op in ops] + [Series("Any operator", _ANY_COLOUR)]
        groups = [
            (
                str(r.get("name")),
                [_pct_of(r.get(f"covered_{op}"), r.get("population")) for op in ops]
                + [_pct_of(r.get("covered_any"), r.get("population"))],
            )
            for r in recs
        ]
        out.append(
            bar_chart(
                groups,
                series,
                fmt=fmt_pct,
                max_value=100.0,
                bar_height=12,
                title="Population covered per area and operator (%)",
                chart_id="coverage-areas",
            )
        )
    return "\n".join(out)


def gaps_section(
    ctx: Context,
    gaps: pd.DataFrame | None,
    pois: pd.DataFrame | None,
    top: int,
    max_rows: int,
) -> str:
    """Coverage gaps (the ``top`` largest), persons out of reach, single-operator areas, POIs."""
    g = _mapping(ctx.summary.get("gaps"))
    if not g and gaps is None and pois is None:
        return ""
    out = []
    if number(g.get("count")) is not None:
        out.append(
            f"<p>{fmt_count(g['count'])} coverage gaps — populated places no operator covers — "
            f"with {fmt_count(g.get('population'))} persons over {fmt_km2(g.get('area_km2'))}.</p>"
        )
    limit = _mapping(_mapping(ctx.summary.get("coverage")).get("limit"))
    if limit:
        out.append(
            "<p>Persons not covered because they are too far from every site: "
            f"{fmt_count(limit.get('population_not_covered_distance'))}; because terrain blocks "
            f"the signal: {fmt_count(limit.get('population_not_covered_terrain'))}.</p>"
        )
    if gaps is not None:
        recs = _frame_rows(gaps)
        for r in recs:
            r.setdefault("gap_id", r.get("id"))
        recs.sort(key=lambda r: -(number(r.get("population")) or 0.0))
    else:
        recs = [dict(r) for r in g.get("largest") or [] if isinstance(r, Mapping)]
    if recs and top > 0:
        shown = recs[:top]
        has_fiber = any(number(r.get("dist_fiber_m")) is not None for r in shown)
        header = ["Rank", "Gap", "Population", "Area", "Nearest tower"]
        header += ["Nearest fibre"] if has_fiber else []
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
            rows.append(row)
        what = f"The {len(shown):,} largest gaps" if len(recs) > len(shown) else "Gaps"
        out.append(
            f"<h3>{what}, by population</h3>"
            + _table(header, rows, numeric=(0, 2, 3, 4, 5))
            + '<p class="note">Distances are edge to edge, from the gap to the nearest existing '
            + ("tower and fibre route.</p>" if has_fiber else "tower.</p>")
        )
        if len(recs) > len(shown):
            out.append(f'<p class="note">… and {len(recs) - len(shown):,} smaller gaps.</p>')
    single = _mapping(g.get("single_operator"))
    if single:
        out.append("<h3>Covered by one operator only</h3>")
        out.append(
            "<p>Persons who have a signal from exactly one operator: no choice and no fallback.</p>"
        )
        out.append(
            _table(
                ("Operator", "Persons"),
                [[esc(op), fmt_count(v)] for op, v in single.items()],
                numeric=(1,),
            )
        )
    out.append(_pois_part(ctx, g, pois, max_rows))
    return "\n".join(p for p in out if p)


def _pois_part(ctx: Context, g: Mapping[str, Any], pois: pd.DataFrame | None, max_rows: int) -> str:
    """POIs served at their required level, and a table of the unserved ones."""
    p = _mapping(g.get("pois"))
    unserved: list[dict[str, Any]] = []
    count = p.get("count")
    served = p.get("served")
    if pois is not None:
        recs = _frame_rows(pois)
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
    if unserved:
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
        out.append("<p>Unserved POIs:</p>")
        out.append(_records_table([{c: r.get(c) for c in cols} for r in unserved], ctx, max_rows))
    elif p.get("unserved"):
        ids = [str(i) for i in p["unserved"]]
        out.append("<p>Unserved POIs: " + ", ".join(esc(i) for i in ids) + ".</p>")
    return "\n".join(out)


def sites_section(ctx: Context, sites: pd.DataFrame | None, max_rows: int) -> str:
    """Key figures of the sites stage and the proposed sites as a table."""
    s = _mapping(ctx.summary.get("sites"))
    recs = _frame_rows(sites) if sites is not None else []
    if not s and not recs:
        return ""
    out = []
    figures = {k: v for k, v in s.items() if k != "parameters"}
    if figures:
        out.append(_key_values(figures, ctx))
        for k, v in figures.items():
            if isinstance(v, list) and v:
                out.append(f"<h3>{esc(str(k).replace('_', ' ').capitalize())}</h3>")
                out.append(_records_table(v, ctx, max_rows))
    if recs:
        recs = [{k: v for k, v in r.items() if k != "source"} for r in recs]
        out.append(f"<h3>Proposed sites ({len(recs):,})</h3>")
        out.append(_records_table(recs, ctx, max_rows))
    return "\n".join(p for p in out if p)


def backbone_section(ctx: Context, links: pd.DataFrame | None) -> str:
    """Separate vs joint build (km, cost, saving), each operator's share (proportional and
    Shapley), ring protection, and the links by plan and status."""
    bb = _mapping(ctx.summary.get("backbone"))
    if not bb and links is None:
        return ""
    money = ctx.money
    out = []
    n_sites, n_shared = bb.get("sites"), bb.get("shared_sites")
    if number(n_sites) is not None:
        text = f"<p>Links connecting {fmt_count(n_sites)} physical sites"
        if number(n_shared) is not None:
            text += f" ({fmt_count(n_shared)} shared by several operators)"
        out.append(
            text + " to the fibre network: each operator building alone, and all operators "
            "building one shared trench network.</p>"
        )
    nofiber = bb.get("operators_without_fiber")
    if isinstance(nofiber, list) and nofiber:
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
            saving = _pct_of(dcost, csep)
        rows = [
            ["Each operator builds alone (sum)", fmt_km(ksep), money(csep)],
            ["Joint build (shared trenches)", fmt_km(kjoint), money(cjoint)],
        ]
        total = ["Saving", fmt_km(dkm), Safe(f"{money(dcost)} ({fmt_pct(saving)})")]
        header = ["", "Length", "Cost"]
        t_sep, t_joint = number(bb.get("trench_km_separate")), number(bb.get("trench_km_joint"))
        if t_sep is not None or t_joint is not None:
            header.insert(2, "New trench")
            rows[0].insert(2, fmt_km(t_sep))
            rows[1].insert(2, fmt_km(t_joint))
            total.insert(
                2, fmt_km(t_sep - t_joint if t_sep is not None and t_joint is not None else None)
            )
        out.append(_table(header, rows, numeric=range(1, len(header)), total=total))
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
    sep = _mapping(bb.get("separate"))
    prop = _mapping(bb.get("share_proportional"))
    shap = _mapping(bb.get("share_shapley"))
    ops = list(dict.fromkeys([*map(str, sep), *map(str, prop), *map(str, shap)]))
    if ops:
        rows = []
        for op in ops:
            alone = _mapping(sep.get(op))
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
                        _pct_of(cost_alone - share, cost_alone)
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
            _table(
                (
                    "Operator",
                    "Alone: length",
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
            (op, [_mapping(sep.get(op)).get("cost"), prop.get(op), shap.get(op)]) for op in ops
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
            out.append(_key_values({k: v for k, v in ring.items() if k != "parameters"}, ctx))
            for k, v in ring.items():
                if k == "parameters" or not v:
                    continue
                if isinstance(v, list):
                    out.append(f"<h4>{esc(_label(str(k)))}</h4>")
                    out.append(_records_table(v, ctx, 200))
                elif isinstance(v, Mapping):
                    out.append(f"<h4>{esc(_label(str(k)))}</h4>")
                    head = ("Site", "Reason") if "unprotected" in str(k) else ("", "Value")
                    out.append(
                        _table(head, [[esc(a), _fmt_value(str(a), b, ctx)] for a, b in v.items()])
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
            _table(
                [k.capitalize() for k in keys] + ["Links", "Length", "Cost"],
                rows,
                numeric=range(len(keys), len(keys) + 3),
            )
        )
    if {"plan", "operators"} <= set(df.columns):
        joint = df[df["plan"].astype(str) == "joint"]
        if len(joint):
            users = (
                joint["operators"]
                .fillna("")
                .astype(str)
                .map(lambda s: len([o for o in s.split(";") if o.strip()]))
            )
            by = joint.assign(_users=users).groupby("_users")["length_m"].sum()
            rows = [
                [f"{int(n)} operator{'s' if n != 1 else ''}", fmt_km(km / 1000.0)]
                for n, km in by.items()
            ]
            out.append("<p>Joint network: trench length by number of operators using it.</p>")
            out.append(_table(("Used by", "Length"), rows, numeric=(1,)))
    return "\n".join(out)


def provenance_section(ctx: Context) -> str:
    """Plan, version, CRS, grid, the inputs with their SHA-256, and the parameters used."""
    s = ctx.summary
    prov = _mapping(s.get("provenance"))
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
    grid = _mapping(s.get("grid"))
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
        out.append(_table(("", "Value"), rows))
    inputs = _mapping(prov.get("inputs"))
    counts = dict(_mapping(s.get("layers")))
    if isinstance(s.get("areas"), list):
        counts.setdefault("areas", len(s["areas"]))
    if inputs:
        irows = []
        for name, ref in inputs.items():
            ref = _mapping(ref)
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
        out.append(_table(("Layer", "File", "Features", "SHA-256"), irows, numeric=(2,)))
    params = [("Plan", prov.get("parameters"))] + [
        (f"{str(k).capitalize()} stage", _mapping(v).get("parameters"))
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
