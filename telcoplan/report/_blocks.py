"""What the report's section modules share: the :class:`Context`, tables and cell formatting.

Table cells that are not :class:`Safe` are escaped by :func:`html_table`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from telcoplan.outputs import COVERAGE_KEYS, OPERATOR_PALETTE
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

__all__ = [
    "Context",
    "as_mapping",
    "column_label",
    "fmt_value",
    "frame_rows",
    "html_table",
    "key_values",
    "operators",
    "pct_of",
    "records_table",
    "table_cell",
]

_NUM_CLASS = ' class="num"'

#: Keys of ``summary["coverage"]`` that are not operators.
_COVERAGE_NON_OPERATORS = COVERAGE_KEYS


class Context:
    """What the section builders share."""

    def __init__(
        self,
        summary: Mapping[str, Any],
        currency: str,
        operators: list[str],
        *,
        population_source: str = "",
        site_costs: Mapping[str, float] | None = None,
    ):
        self.summary = summary
        self.currency = currency
        self.operators = operators
        #: where the persons come from (plain text, escaped by the sections)
        self.population_source = population_source
        #: the sites stage's cost table (USD by kind of site), when the report stage knows it
        self.site_costs = dict(site_costs or {})
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

    def persons_basis(self) -> Safe:
        """``persons; <source>`` for inside the parentheses of a population figure's caption."""
        if not self.population_source:
            return esc("persons")
        return esc(f"persons; {self.population_source}")


def as_mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (absent or malformed summary parts)."""
    return value if isinstance(value, Mapping) else {}


def operators(summary: Mapping[str, Any], areas: pd.DataFrame | None) -> list[str]:
    """Operator names, in the order of the summary's coverage figures, then of the area table."""
    ops = [
        str(k)
        for k, v in as_mapping(summary.get("coverage")).items()
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


def table_cell(value: object) -> str:
    """A table cell: :class:`Safe` HTML as is, anything else escaped (missing values as a dash)."""
    return value if isinstance(value, Safe) else esc(MISSING if is_missing(value) else value)


def html_table(
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
            f"<{tag}{_NUM_CLASS if i in num else ''}>{table_cell(c)}</{tag}>"
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


def pct_of(part: object, whole: object) -> float | None:
    """``100 * part / whole`` (%), or None when either is missing or ``whole`` ≤ 0."""
    p, w = number(part), number(whole)
    if p is None or w is None or w <= 0:
        return None
    return 100.0 * p / w


def frame_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Records of a (Geo)DataFrame without its geometry; a meaningful index becomes ``id``."""
    df = pd.DataFrame(frame)
    geom = [c for c in df.columns if str(c) == "geometry" or str(df[c].dtype) == "geometry"]
    df = df.drop(columns=geom)
    if not isinstance(df.index, pd.RangeIndex) or df.index.name is not None:
        name = str(df.index.name) if df.index.name is not None else "id"
        if name not in df.columns:
            df = df.reset_index(names=name)
    return df.to_dict(orient="records")


def fmt_value(column: str, value: object, ctx: Context) -> Safe:
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
    if col.endswith("_usd"):
        return fmt_money(v, "USD")
    if "cost" in col:
        return ctx.money(v)
    if "population" in col or col.startswith(("covered", "persons")):
        return fmt_count(v)
    if v.is_integer():
        return fmt_num(v, 0)
    return fmt_num(v, 2)


def key_values(items: Mapping[str, Any], ctx: Context) -> str:
    """Scalar entries of a mapping as a two-column table (keys humanised, values formatted)."""
    rows = [
        (esc(column_label(str(k))), fmt_value(str(k), v, ctx))
        for k, v in items.items()
        if not isinstance(v, Mapping | list | tuple)
    ]
    return html_table(("", "Value"), rows, numeric=(1,)) if rows else ""


#: Column headings of generic tables; other columns read as their name without underscores.
_LABELS = {
    "poi_id": "POI",
    "site_id": "Site",
    "gap_id": "Gap",
    "id": "Id",
    "required_dbm": "Required level (dBm, in the serving technology's metric)",
    "best_power_dbm": "Best total received power (not the requirement's metric)",
    "best_operator": "Strongest operator (total power)",
    "population_added": "Persons added",
    # each operator's newly covered persons, summed: one person counts once per operator
    "population_gain": "Persons newly covered (summed over operators)",
    "cost_usd": "Cost (USD)",
    "cost_saved": "Saved by sharing masts (USD; vs each operator building its own)",
    "budget_usd": "Budget per operator (USD)",
    "optimality_gap": "Optimality gap (%)",
    "colocated": "Co-location tenancies",
    "selected": "Structures selected",
    "length_km": "Route length",
    "ring_route_length_km": "Route length",
    "new_population": "Persons newly covered",
    "tower_type": "Tower type",
    "dist_tower_m": "Nearest tower",
    "dist_fiber_m": "Nearest fibre",
    "length_m": "Length",
    "area_km2": "Area",
}


def column_label(column: str) -> str:
    """Heading of a generic column."""
    return _LABELS.get(column, column.replace("_", " ").capitalize())


def records_table(records: Sequence[Any], ctx: Context, max_rows: int) -> str:
    """A list of mappings (or plain values) as a table."""
    if not records:
        return ""
    if all(isinstance(r, Mapping) for r in records):
        cols: list[str] = []
        for r in records:
            cols += [str(k) for k in r if str(k) not in cols and str(k) != "geometry"]
        shown = records[:max_rows]
        rows = [[fmt_value(c, r.get(c), ctx) for c in cols] for r in shown]
        numeric = [
            i
            for i, c in enumerate(cols)
            if all(number(r.get(c)) is not None or is_missing(r.get(c)) for r in shown)
        ]
        html_ = html_table([column_label(c) for c in cols], rows, numeric=numeric)
    else:
        shown = records[:max_rows]
        html_ = html_table(("",), [[table_cell(r)] for r in shown])
    if len(records) > len(shown):
        html_ += f'<p class="note">… and {len(records) - len(shown):,} more.</p>'
    return html_
