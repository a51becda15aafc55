"""Layer schemas and the validator engine shared by every vector layer.

A :class:`LayerSchema` lists a layer's columns (type, unit, range, choices, uniqueness) and
allowed geometry types. :meth:`LayerSchema.problems` collects **every** problem of a
GeoDataFrame with its row number and feature id; :meth:`LayerSchema.validate` raises one
:class:`~telcoplan.errors.LayerValidationError` listing them all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from telcoplan.errors import LayerValidationError, Problem

__all__ = ["Column", "LayerSchema"]

Kind = Literal["str", "float", "int", "bool"]

_GEOM_FAMILIES = {
    "Point": ("Point",),  # a site is one position: MultiPoint is refused
    "LineString": ("LineString", "MultiLineString"),
    "Polygon": ("Polygon", "MultiPolygon"),
}


@dataclass(frozen=True)
class Column:
    """One column of a layer schema.

    ``min``/``max`` bound numeric values (``min_exclusive`` makes the lower bound strict);
    ``choices`` restricts values to a set; ``unique`` forbids duplicates.
    """

    name: str
    kind: Kind
    required: bool = True
    unit: str = ""
    description: str = ""
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[str, ...] | None = None
    unique: bool = False
    default: object = None

    def range_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.min is None and self.max is None:
            return ""
        lo = "" if self.min is None else f"{'>' if self.min_exclusive else '≥'} {self.min:g}"
        hi = "" if self.max is None else f"≤ {self.max:g}"
        return " and ".join(s for s in (lo, hi) if s)


@dataclass(frozen=True)
class LayerSchema:
    """Contract of a vector layer: geometry family, columns, id column."""

    name: str
    geometry: str  # "Point", "LineString" or "Polygon" (multi-part variants accepted)
    columns: tuple[Column, ...]
    description: str = ""
    id_column: str | None = None
    column_aliases: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ docs
    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def doc_table(self) -> str:
        """Markdown table of the schema (used by the README and ``telcoplan validate --schema``)."""
        lines = [
            f"**{self.name}** — {self.geometry} layer. {self.description}",
            "",
            "| column | type | required | unit | allowed | description |",
            "|---|---|---|---|---|---|",
        ]
        for c in self.columns:
            lines.append(
                f"| `{c.name}` | {c.kind} | {'yes' if c.required else 'no'} | {c.unit} | "
                f"{c.range_text()} | {c.description} |"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------- validation
    def problems(
        self,
        gdf: gpd.GeoDataFrame,
        *,
        study_area: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    ) -> list[Problem]:
        """Every problem of ``gdf`` against this schema (empty list when valid).

        Row numbers are 1-based positions in ``gdf`` (its file order when read with
        :func:`telcoplan.gis.read_vector`).
        """
        problems: list[Problem] = []
        gdf = self.apply_aliases(gdf)
        n = len(gdf)
        ids = self._ids(gdf)

        def add(i: int | None, col: str | None, msg: str) -> None:
            problems.append(
                Problem(None if i is None else i + 1, col, msg, None if i is None else ids[i])
            )

        # --- layer-level: CRS and columns
        if gdf.crs is None:
            add(
                None,
                None,
                "the layer has no CRS; save the file with one (e.g. EPSG:4326) or set `crs:` for it in the plan",
            )
        if n == 0:
            add(None, None, "the layer has no features")
        for c in self.columns:
            if c.required and c.name not in gdf.columns:
                add(
                    None,
                    c.name,
                    f"required column is missing ({c.kind}{', ' + c.unit if c.unit else ''}: {c.description}); "
                    f"columns present: {', '.join(map(str, gdf.columns.drop(gdf.geometry.name)))}",
                )

        # --- per column values
        for c in self.columns:
            if c.name not in gdf.columns:
                continue
            raw = gdf[c.name]
            missing = (
                raw.isna().to_numpy()
                | raw.astype(str).str.strip().isin(["", "nan", "NaN", "None"]).to_numpy()
            )
            if c.kind in ("float", "int"):
                values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
                bad_type = ~missing & ~np.isfinite(values)
                for i in np.flatnonzero(bad_type):
                    add(
                        int(i),
                        c.name,
                        f"value {_show(raw.iloc[i])} is not {'finite' if np.isinf(values[i]) else 'a number'} ({c.kind}{', ' + c.unit if c.unit else ''} expected)",
                    )
                nan = missing | (~bad_type & ~np.isfinite(values))
                if c.required:
                    for i in np.flatnonzero(nan):
                        add(
                            int(i),
                            c.name,
                            f"value is missing (NaN or empty); give a {c.kind} in {c.unit or 'the documented unit'}",
                        )
                ok = np.isfinite(values)
                if c.kind == "int":
                    for i in np.flatnonzero(ok & (values != np.round(values))):
                        add(int(i), c.name, f"value {values[i]:g} is not a whole number")
                out = np.zeros(n, dtype=bool)
                if c.min is not None:
                    out |= ok & ((values <= c.min) if c.min_exclusive else (values < c.min))
                if c.max is not None:
                    out |= ok & (values > c.max)
                for i in np.flatnonzero(out):
                    add(
                        int(i),
                        c.name,
                        f"value {values[i]:g} {c.unit} is out of range (expected {c.range_text()} {c.unit})".replace(
                            "  ", " "
                        ),
                    )
                if c.unique:
                    _dupes(values, ok, c.name, add)
            elif c.kind == "bool":
                text = raw.astype(str).str.strip().str.lower()
                bad = ~missing & ~text.isin(list(BOOL_TEXT)).to_numpy()
                for i in np.flatnonzero(bad):
                    add(
                        int(i),
                        c.name,
                        f"value {_show(raw.iloc[i])} is not true/false (use true, false, 1, 0, yes or no)",
                    )
                if c.required:
                    for i in np.flatnonzero(missing):
                        add(int(i), c.name, "value is missing (empty); give true or false")
            else:
                text = raw.astype(str).str.strip()
                if c.required:
                    for i in np.flatnonzero(missing):
                        add(int(i), c.name, "value is missing (empty); every feature needs one")
                if c.choices:
                    allowed = {v.upper() for v in c.choices}
                    for i in np.flatnonzero(~missing & ~text.str.upper().isin(allowed).to_numpy()):
                        add(
                            int(i),
                            c.name,
                            f"value {raw.iloc[i]!r} is not allowed (expected {c.range_text()})",
                        )
                if c.unique:
                    _dupes(text.to_numpy(), ~missing, c.name, add)

        # --- geometry
        problems += self._geometry_problems(gdf, ids, study_area)
        order = {c.name: k for k, c in enumerate(self.columns)} | {"geometry": len(self.columns)}
        return sorted(problems, key=lambda p: (p.row or 0, order.get(p.column or "", -1)))

    def validate(
        self,
        gdf: gpd.GeoDataFrame,
        *,
        source: str = "<data>",
        study_area: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    ) -> None:
        """Raise :class:`LayerValidationError` listing every problem, if there is any."""
        found = self.problems(gdf, study_area=study_area)
        if found:
            raise LayerValidationError(source, self.name, found)

    def outside(
        self, gdf: gpd.GeoDataFrame, study_area: gpd.GeoSeries | gpd.GeoDataFrame
    ) -> np.ndarray:
        """Rows whose geometry lies wholly outside the study area and has nothing else wrong:
        valid, of the layer's geometry type, with finite (and, in a geographic CRS, in-range)
        coordinates, and not inside the area with x and y swapped (which :meth:`problems`
        reports as a coordinate error). False everywhere when the layer or the study area has
        no CRS."""
        mask = np.zeros(len(gdf), dtype=bool)
        if gdf.crs is None or study_area.crs is None or not len(study_area) or not len(gdf):
            return mask
        geoms = gdf.geometry.to_numpy()
        ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms) & shapely.is_valid(geoms)
        ok &= np.isin(
            shapely.get_type_id(geoms), [_TYPE_IDS[k] for k in _GEOM_FAMILIES[self.geometry]]
        )
        geographic = CRS.from_user_input(gdf.crs).is_geographic

        def plausible(g) -> bool:  # finite, and within ±180° / ±90° in a geographic CRS
            xy = shapely.get_coordinates(g)
            if not np.all(np.isfinite(xy)):
                return False
            return not geographic or bool(
                np.all(np.abs(xy[:, 0]) <= 180.0) and np.all(np.abs(xy[:, 1]) <= 90.0)
            )

        ok[ok] = [plausible(g) for g in geoms[ok]]
        if not ok.any():
            return mask
        area = shapely.union_all(study_area.to_crs(gdf.crs).geometry.to_numpy())
        inside = shapely.intersects(area, geoms[ok])
        swapped = shapely.intersects(_swap_xy(area), geoms[ok])
        mask[ok] = ~inside & ~swapped
        return mask

    # ----------------------------------------------------------------- helpers
    def apply_aliases(self, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Rename alias columns (and Shapefile's 10-character truncations) to the schema's names."""
        aliases = {c.name[:10]: c.name for c in self.columns if len(c.name) > 10}
        aliases |= dict(self.column_aliases)
        rename = {a: c for a, c in aliases.items() if a in gdf.columns and c not in gdf.columns}
        return gdf.rename(columns=rename) if rename else gdf

    def _ids(self, gdf: gpd.GeoDataFrame) -> list[str | None]:
        if self.id_column and self.id_column in gdf.columns:
            return [None if pd.isna(v) else str(v) for v in gdf[self.id_column]]
        return [None] * len(gdf)

    def _geometry_problems(
        self,
        gdf: gpd.GeoDataFrame,
        ids: list[str | None],
        study_area: gpd.GeoSeries | gpd.GeoDataFrame | None,
    ) -> list[Problem]:
        out: list[Problem] = []
        geoms = gdf.geometry.to_numpy()
        allowed = _GEOM_FAMILIES[self.geometry]
        usable = np.zeros(len(gdf), dtype=bool)
        for i, g in enumerate(geoms):
            pid = ids[i]
            if g is None:
                out.append(
                    Problem(
                        i + 1,
                        "geometry",
                        "geometry is missing or cannot be parsed (e.g. a line with one point, an unclosed ring; for CSV: lon/lat empty or not numbers)",
                        pid,
                    )
                )
            elif g.is_empty:
                out.append(Problem(i + 1, "geometry", "geometry is empty", pid))
            elif g.geom_type not in allowed:
                out.append(
                    Problem(
                        i + 1,
                        "geometry",
                        f"geometry is a {g.geom_type}, expected {' or '.join(allowed)}",
                        pid,
                    )
                )
            elif not g.is_valid:
                reason = shapely.is_valid_reason(g)
                out.append(
                    Problem(
                        i + 1,
                        "geometry",
                        f"invalid geometry ({reason}); repair it, e.g. with QGIS 'Fix geometries' or shapely.make_valid",
                        pid,
                    )
                )
            elif not np.all(np.isfinite(shapely.get_coordinates(g))):
                out.append(Problem(i + 1, "geometry", "geometry has non-finite coordinates", pid))
            else:
                usable[i] = True
        if gdf.crs is None or not usable.any():
            return out
        crs = CRS.from_user_input(gdf.crs)
        area = None
        if study_area is not None and len(study_area) and study_area.crs is None:
            out.append(
                Problem(
                    None,
                    None,
                    "the study area has no CRS, so features outside it cannot be found; give it one",
                )
            )
        elif study_area is not None and len(study_area):
            area = shapely.union_all(study_area.to_crs(crs).geometry.to_numpy())
            area_swap = _swap_xy(area)
        swapped_rows: set[int] = set()
        for i in np.flatnonzero(usable):
            g = geoms[i]
            xy = shapely.get_coordinates(g)
            looks_swapped = False
            if crs.is_geographic:
                looks_swapped = bool(np.any(np.abs(xy[:, 1]) > 90.0)) and bool(
                    np.all(np.abs(xy[:, 0]) <= 90.0)
                )
                if not looks_swapped and np.any(np.abs(xy[:, 0]) > 180.0):
                    out.append(
                        Problem(
                            i + 1,
                            "geometry",
                            f"longitude {xy[np.argmax(np.abs(xy[:, 0])), 0]:g} is outside ±180°; check the coordinates and the CRS",
                            ids[i],
                        )
                    )
                    continue
                if np.any(np.abs(xy[:, 1]) > 90.0) and not looks_swapped:
                    out.append(
                        Problem(
                            i + 1,
                            "geometry",
                            f"latitude {xy[:, 1].max():g} is outside ±90°; check the coordinates and the CRS",
                            ids[i],
                        )
                    )
                    continue
            if (
                not looks_swapped
                and area is not None
                and not area.intersects(g)
                and area_swap.intersects(g)
            ):
                looks_swapped = True
            if looks_swapped:
                swapped_rows.add(int(i))
                out.append(
                    Problem(
                        i + 1,
                        "geometry",
                        f"coordinates ({xy[0, 0]:g}, {xy[0, 1]:g}) look like swapped lat/lon: x must be the longitude "
                        "(or easting) and y the latitude (or northing); swap the two columns",
                        ids[i],
                    )
                )
        if area is not None:
            for i in np.flatnonzero(usable):
                if int(i) in swapped_rows:
                    continue
                g = geoms[i]
                if not area.intersects(g):
                    d = area.distance(g)
                    unit = "m" if crs.is_projected else "°"
                    out.append(
                        Problem(
                            i + 1,
                            "geometry",
                            f"feature lies outside the study area ({d:.4g} {unit} away); remove it, fix its "
                            "coordinates or CRS, or enlarge the study area",
                            ids[i],
                        )
                    )
        return out


#: Accepted spellings of booleans (lower case), as in QGIS and CSV exports.
BOOL_TEXT = {
    "true": True,
    "false": False,
    "1": True,
    "0": False,
    "1.0": True,
    "0.0": False,
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "t": True,
    "f": False,
}


def _show(value: object) -> str:
    """A value as a user wrote it: 'inf', 'abc', 12.5 — not np.float64(inf)."""
    if isinstance(value, str):
        return repr(value)
    if hasattr(value, "item"):
        value = value.item()
    return repr(value) if not isinstance(value, float) else f"{value:g}"


#: shapely's type ids of the geometry type names
_TYPE_IDS = {
    "Point": 0, "LineString": 1, "LinearRing": 2, "Polygon": 3, "MultiPoint": 4,
    "MultiLineString": 5, "MultiPolygon": 6, "GeometryCollection": 7,
}  # fmt: skip


def _swap_xy(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, lambda c: c[:, ::-1])


def _dupes(values: Iterable, ok: np.ndarray, col: str, add) -> None:
    seen: dict[object, int] = {}
    for i, (v, good) in enumerate(zip(values, ok, strict=True)):
        if not good:
            continue
        if v in seen:
            add(i, col, f"duplicate value {v!r} (also on row {seen[v] + 1}); ids must be unique")
        else:
            seen[v] = i
