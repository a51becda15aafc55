"""Report sections about population and coverage: key figures, coverage, areas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from telcoplan.report._basis import (
    not_covered,
    service_generation,
    threshold_basis,
    without_service,
)
from telcoplan.report._blocks import Context, as_mapping, frame_rows, html_table, pct_of
from telcoplan.report._format import (
    MISSING,
    Safe,
    esc,
    fmt_count,
    fmt_km2,
    fmt_money,
    fmt_num,
    fmt_pct,
    is_missing,
    number,
)
from telcoplan.report._svg import Series, bar_chart

__all__ = [
    "areas_section",
    "coverage_section",
    "headline_section",
]

_ANY_COLOUR = "#08519c"


def _card(label: str, value: Safe, detail: str = "") -> str:
    """One headline card; ``value`` and ``detail`` are HTML built from escaped parts."""
    d = f'<div class="detail">{detail}</div>' if detail else ""
    return f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{value}</div>{d}</div>'


def headline_section(ctx: Context) -> str:
    """Cards with the key figures: population, coverage, gaps, POIs, sites, backbone saving;
    each with its unit and basis, then a line saying where the persons come from."""
    s = ctx.summary
    cov, gaps, bb = (
        as_mapping(s.get("coverage")),
        as_mapping(s.get("gaps")),
        as_mapping(s.get("backbone")),
    )
    study = "of the study area's population"
    cards = []
    if number(s.get("population_total")) is not None:
        areas = s.get("areas") if isinstance(s.get("areas"), list) else []
        detail = ["persons"]
        if areas:
            detail.append(f"{len(areas):,} areas")
        if number(s.get("area_km2_total")) is not None:
            detail.append(fmt_km2(s["area_km2_total"]))
        cards.append(_card("Population", fmt_count(s["population_total"]), " · ".join(detail)))
    anyc = as_mapping(cov.get("any"))
    if number(anyc.get("population_pct")) is not None:
        cards.append(
            _card(
                "Covered by any operator",
                fmt_pct(anyc["population_pct"]),
                f"{study}: {fmt_count(anyc.get('population_covered'))} persons",
            )
        )
    best = as_mapping(cov.get("best_single_operator"))
    if number(best.get("population_pct")) is not None:
        cards.append(
            _card(
                "Best single operator",
                fmt_pct(best["population_pct"]),
                f"{study}: {esc(best.get('operator', MISSING))}, "
                f"{fmt_count(best.get('population_covered'))} persons",
            )
        )
    nc = not_covered(s)
    if nc is not None:
        gaps_text = (
            f"{fmt_count(nc.gap_count)} ranked gaps" if nc.gap_count is not None else "ranked gaps"
        )
        cards.append(
            _card(
                without_service(s),
                Safe(f"{fmt_count(nc.total)} <small>persons</small>"),
                f"= {fmt_count(nc.in_gaps)} in {gaps_text}"
                + (f" ({fmt_km2(gaps.get('area_km2'))})" if number(gaps.get("area_km2")) else "")
                + f" + {fmt_count(nc.scattered)} scattered",
            )
        )
    elif number(gaps.get("count")) is not None:
        cards.append(
            _card(
                "Coverage gaps",
                fmt_count(gaps["count"]),
                f"{fmt_count(gaps.get('population'))} persons · {fmt_km2(gaps.get('area_km2'))}",
            )
        )
    pois = as_mapping(gaps.get("pois"))
    if number(pois.get("count")) is not None:
        cards.append(
            _card(
                "POIs served",
                Safe(f"{fmt_count(pois.get('served'))} / {fmt_count(pois['count'])}"),
                "schools, clinics, ward offices … at their required level, in the serving "
                "technology's metric",
            )
        )
    sites = as_mapping(s.get("sites"))
    for key in ("count", "proposed", "n_sites", "selected"):
        if number(sites.get(key)) is not None:
            detail = ""
            new = number(sites.get("new_builds"))
            if new is not None:
                # structures: new masts + existing towers that take new tenants
                detail = (
                    f"= {fmt_count(new)} new masts + "
                    f"{fmt_count(number(sites[key]) - new)} existing towers shared"
                )
                if number(sites.get("cost_usd")) is not None:
                    detail += f"; {fmt_money(sites['cost_usd'], 'USD')}"
            cards.append(_card("Proposed sites", fmt_count(sites[key]), detail))
            break
    if number(bb.get("savings_pct")) is not None:
        detail = (
            f"of the separate-build cost: {ctx.money(bb.get('cost_joint'))} joint vs "
            f"{ctx.money(bb.get('cost_separate'))} separately (trench cost table, see "
            '<a href="#backbone">Backbone</a>)'
        )
        off, joint_km = number(bb.get("off_road_km_joint")), number(bb.get("length_km_joint"))
        if off is not None and joint_km and off >= 0.2 * joint_km:
            # the caveat of the section, where the figure is read
            detail += (
                f"; {fmt_pct(100.0 * off / joint_km)} of the joint route are straight lines "
                "off the roads"
            )
        cards.append(_card("Backbone: joint build saves", fmt_pct(bb["savings_pct"]), detail))
    if not cards:
        return ""
    out = [f'<div class="cards">{"".join(cards)}</div>']
    basis = []
    if ctx.population_source:
        basis.append(f"Persons: {esc(ctx.population_source)}.")
    basis.append("Percentages are of the study area's population unless a row says otherwise.")
    out.append(f'<p class="note" id="basis">{" ".join(basis)}</p>')
    return "\n".join(out)


def coverage_section(ctx: Context) -> str:
    """Population covered per operator, by any operator and by the best single operator; by
    technology and urban/rural when present; a bar chart of the percentages."""
    cov = as_mapping(ctx.summary.get("coverage"))
    if not cov:
        return ""
    total = ctx.summary.get("population_total")
    rows, groups = [], []
    for op in ctx.operators:
        r = as_mapping(cov.get(op))
        rows.append(
            [
                esc(op),
                fmt_count(r.get("population_covered")),
                fmt_pct(r.get("population_pct")),
                fmt_km2(r.get("area_km2")),
            ]
        )
        groups.append((op, [r.get("population_pct")]))
    anyc = as_mapping(cov.get("any"))
    best = as_mapping(cov.get("best_single_operator"))
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
                fmt_km2(as_mapping(cov.get(str(best.get("operator")))).get("area_km2")),
            ]
        )
    if not rows:
        return ""
    thresholds = threshold_basis(ctx.summary)
    rule = "where its serving signal meets its technology's threshold"
    if thresholds:
        rule += (
            ": "
            + ", ".join(f"{name} ≥ {fmt_num(v, 0, 'dBm')} ({tech})" for tech, name, v in thresholds)
            + (
                " — indoor levels, building penetration margin included"
                if as_mapping(as_mapping(cov.get("parameters")).get("thresholds")).get("indoor")
                else ""
            )
        )
    out.append(
        f"<p>Population covered per operator ({ctx.persons_basis()}): an operator covers a "
        f"cell {rule}"
        + (f". Study area: {fmt_count(total)} persons" if number(total) is not None else "")
        + ".</p>"
    )
    out.append(
        html_table(
            (
                "Operator",
                "Population covered (persons)",
                "% of the study area's population",
                "Area covered",
            ),
            rows,
            numeric=(1, 2, 3),
        )
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
    tech = as_mapping(cov.get("by_technology"))
    if tech:
        trows = [
            [
                esc(str(k).replace("_plus", "+").replace("_", " ")),
                fmt_count(as_mapping(v).get("population_covered")),
                fmt_pct(as_mapping(v).get("population_pct")),
            ]
            for k, v in tech.items()
        ]
        out.append("<h3>By technology (any operator)</h3>")
        out.append(
            html_table(
                (
                    "Technology",
                    "Population covered (persons)",
                    "% of the study area's population",
                ),
                trows,
                numeric=(1, 2),
            )
        )
    fit = as_mapping(as_mapping(cov.get("parameters")).get("calibration_fit"))
    if fit:
        clutter = as_mapping(cov.get("clutter"))
        offsets = as_mapping(fit.get("clutter_offsets_db"))
        text = (
            f"Propagation calibrated on {fmt_count(fit.get('n_measurements'))} measurements: "
            f"{fmt_num(fit.get('intercept_offset_db'), 1)} dB at 1 km, "
            f"{fmt_num(fit.get('slope_offset_db_per_decade'), 1)} dB per decade of distance "
            f"(RMS error {fmt_num(fit.get('rmse_db_before'), 1)} → "
            f"{fmt_num(fit.get('rmse_db_after'), 1)} dB)"
        )
        if offsets:
            shares = as_mapping(clutter.get("share_pct"))
            listed = ", ".join(
                f"{k} {fmt_num(v, 1)} dB"
                + (f" ({fmt_num(shares[k], 1)} % of cells)" if k in shares else "")
                for k, v in offsets.items()
            )
            text += (
                f"; clutter offsets {'applied' if clutter.get('applied') else 'not applied (no land-use layer)'}: "
                + listed
            )
        sites = as_mapping(fit.get("site_offsets_db"))
        if sites:
            text += f"; per-site offsets for {fmt_count(len(sites))} sites"
        cv = as_mapping(fit.get("cv"))
        if cv.get("cv_rmse_db") is not None:
            chosen = as_mapping(cv.get("chosen"))
            text += (
                f". Error to quote at a new place: {fmt_num(cv.get('cv_rmse_db'), 1)} dB RMS, "
                f"cross-validated over {fmt_count(cv.get('folds'))} {cv.get('mode', '')} folds "
                f"(the best of {fmt_count(cv.get('candidates'))} configurations: "
                f"{chosen.get('name', MISSING)})"
            )
        elif fit.get("validation_rmse_db") is not None:
            text += (
                f". Error to quote: {fmt_num(fit.get('validation_rmse_db'), 1)} dB RMS on "
                "held-out measurements"
            )
        out.append(f"<p>{esc(text)}.</p>")
    ur = as_mapping(cov.get("urban_rural"))
    if ur:
        # per class: any operator, the best single operator (SDG 9.c.1) and each operator
        ops = [
            op
            for op in ctx.operators
            if any(op in as_mapping(as_mapping(v).get("operators")) for v in ur.values())
        ]
        urows = []
        for k, v in ur.items():
            v = as_mapping(v)
            best = as_mapping(v.get("best_single_operator"))
            per_op = as_mapping(v.get("operators"))
            urows.append(
                [
                    esc(str(k).capitalize()),
                    fmt_count(v.get("population")),
                    fmt_count(v.get("covered_any")),
                    fmt_pct(pct_of(v.get("covered_any"), v.get("population"))),
                    Safe(
                        f"{esc(best.get('operator', MISSING))} "
                        f"({esc(fmt_pct(best.get('population_pct')))})"
                    )
                    if best
                    else MISSING,
                    *(fmt_pct(as_mapping(per_op.get(op)).get("population_pct")) for op in ops),
                ]
            )
        out.append("<h3>Urban and rural areas</h3>")
        out.append(
            '<p class="note">Persons; every percentage is of the population of the row\'s '
            "class (urban or rural), per operator in the last columns.</p>"
        )
        header = (
            "",
            "Population (persons)",
            "Covered by any operator (persons)",
            "% of the class's population",
            "Best single operator",
        )
        numeric = (1, 2, 3, *range(len(header), len(header) + len(ops)))
        out.append(html_table((*header, *ops), urows, numeric=numeric))
    return "\n".join(out)


def _area_records(ctx: Context, areas: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Per-area records from the area table, else from the summary's coverage, else its areas."""
    s = ctx.summary
    listed = [a for a in s.get("areas") or [] if isinstance(a, Mapping)]
    km2 = {str(a.get("name")): a.get("area_km2") for a in listed}
    if areas is not None and len(areas):
        recs = frame_rows(areas)
        for r in recs:
            if "name" not in r:
                r["name"] = r.get("id")
    else:
        recs = [
            dict(a)
            for a in as_mapping(s.get("coverage")).get("areas") or []
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
    header = (
        ["Area"]
        + (["Type"] if has_urban else [])
        + ["Population (persons)", "Area", "Density (persons/km²)"]
    )
    if has_cov:
        header += ["Any operator", *ops, "Not covered (persons)"]
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
        row += [fmt_count(pop), fmt_km2(r.get("area_km2")), fmt_num(dens, 0)]
        if has_cov:
            uncovered = r.get("uncovered_any")
            covered = number(r.get("covered_any"))
            if number(uncovered) is None and number(pop) is not None and covered is not None:
                uncovered = number(pop) - covered
            row.append(fmt_pct(pct_of(r.get("covered_any"), pop)))
            row += [fmt_pct(pct_of(r.get(f"covered_{op}"), pop)) for op in ops]
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
            fmt_num(tot_pop / tot_km2 if tot_km2 else None, 0),
        ]
        if has_cov:

            def tot(col: str) -> float:
                return sum(number(r.get(col)) or 0.0 for r in recs)

            total.append(fmt_pct(pct_of(tot("covered_any"), tot_pop)))
            total += [fmt_pct(pct_of(tot(f"covered_{op}"), tot_pop)) for op in ops]
            total.append(fmt_count(tot_pop - tot("covered_any")))
        if has_best:
            total.append("")
    out = [
        f"<p>Population covered per area ({ctx.persons_basis()}): by any operator and by "
        "each operator, in % of the area's population (not of the study area's).</p>"
        if has_cov
        else f"<p>Population per area ({ctx.persons_basis()}).</p>",
        html_table(header, rows, numeric=numeric, total=total),
    ]
    nc = not_covered(ctx.summary) if has_cov else None
    if nc is not None:
        generation = service_generation(ctx.summary)
        # (the areas' column counts any technology's coverage: comparable without a generation)
        shown = (
            number(tot_pop - tot("covered_any"))
            if total is not None and generation is None
            else None
        )
        text = (
            (f"Without {generation} or better: " if generation else "Not covered: ")
            + f"{fmt_count(nc.total)} persons = {fmt_count(nc.in_gaps)} in "
            + (f"{fmt_count(nc.gap_count)} " if nc.gap_count is not None else "")
            + f"ranked coverage gaps + {fmt_count(nc.scattered)} scattered (see "
            '<a href="#gaps">Gaps</a>).'
        )
        if shown is not None and abs(round(shown) - nc.total) >= 1:
            text += (
                f" The areas' total above, {fmt_count(shown)}, counts only persons inside the "
                "areas."
            )
        out.append(f'<p class="note" id="areas-not-covered">{text}</p>')
    if has_cov:
        series = [Series(op, ctx.colour(op)) for op in ops] + [Series("Any operator", _ANY_COLOUR)]
        groups = [
            (
                str(r.get("name")),
                [pct_of(r.get(f"covered_{op}"), r.get("population")) for op in ops]
                + [pct_of(r.get("covered_any"), r.get("population"))],
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
