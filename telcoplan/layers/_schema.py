"""Layer schemas and the validator engine shared by every vector layer.

A :class:`LayerSchema` lists a layer's columns (type, unit, range, choices, uniqueness) and
allowed geometry types. :meth:`LayerSchema.problems` collects **every** problem of a
GeoDataFrame with its row number and feature id; :meth:`LayerSchema.validate` raises one
:class:`~telcoplan.errors.LayerValidationError` listing them all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from telcoplan.errors import LayerValidationError, Problem

__all__ = ["Column", "KeyedProblem", "LayerSchema"]

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
class KeyedProblem(Problem):
    """A problem of a database row, named by the row's primary key (``key``: ``gid=17``)
    rather than by a number: a table's rows have no order a number could name."""

    key: str | None = None

    def format(self) -> str:
        if self.key is None:
            return super().format()
        where = [f"primary key {self.key}"]
        if self.feature_id is not None:
            where.append(f"id {self.feature_id!r}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where)}: {self.message}"


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
        report_outside: bool = True,
    ) -> list[Problem]:
        """Every problem of ``gdf`` against this schema (empty list when valid).

        Row numbers are 1-based positions in ``gdf`` (its file order when read with
        :func:`telcoplan.gis.read_vector`). Features outside ``study_area`` are problems
        unless ``report_outside`` is false (the study area still reveals swapped x/y). When
        *every* feature lies in the wrong place (outside the study area, x and y swapped,
        coordinates out of range), that is one problem naming the likely CRS mistake.
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
            missing = raw.isna().to_numpy()
            if not (pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw)):
                # text may spell a missing value (a number's text is never blank or "None";
                # "nan" is NaN): the numeric columns of 100,000 towers as text took 0.4 s
                missing = missing | raw.astype(str).str.strip().isin(_MISSING_TEXT).to_numpy()
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
        problems += self._geometry_problems(gdf, ids, study_area, report_outside)
        order = {c.name: k for k, c in enumerate(self.columns)} | {"geometry": len(self.columns)}
        return sorted(problems, key=lambda p: (p.row or 0, order.get(p.column or "", -1)))

    def validate(
        self,
        gdf: gpd.GeoDataFrame,
        *,
        source: str = "<data>",
        study_area: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
        keys: Sequence[str] | None = None,
    ) -> None:
        """Raise :class:`LayerValidationError` listing every problem, if there is any.

        ``keys`` names each row in the messages instead of its number: a database table's
        primary key (:func:`telcoplan.gis.postgis.row_keys`)."""
        found = self.problems(gdf, study_area=study_area)
        if found:
            raise LayerValidationError(source, self.name, self.keyed(found, keys))

    def keyed(self, problems: Iterable[Problem], keys: Sequence[str] | None) -> list[Problem]:
        """``problems`` with their rows named by ``keys`` (each row's primary key, e.g.
        ``gid=17``; None: the numbers stay); a feature id that the key already shows (the id
        column is the key) is left out."""
        problems = list(problems)
        if keys is None:
            return problems
        out: list[Problem] = []
        for p in problems:
            if p.row is None or not 1 <= p.row <= len(keys):
                out.append(p)
                continue
            key = keys[p.row - 1]
            shown = self.id_column is not None and key.startswith(f"{self.id_column}=")
            fid = None if shown and "," not in key else p.feature_id
            out.append(KeyedProblem(p.row, p.column, p.message, fid, key))
        return out

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

        ok[ok] = _finite(geoms[ok], degrees=geographic)  # and within ±180° / ±90° if geographic
        if not ok.any():
            return mask
        area = shapely.union_all(study_area.to_crs(gdf.crs).geometry.to_numpy())
        shapely.prepare(area)
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
            column = gdf[self.id_column]
            ids = column.to_numpy(dtype=object)  # not per row from Arrow
            missing = column.isna().to_numpy()
            return [None if na else str(v) for v, na in zip(ids, missing, strict=True)]
        return [None] * len(gdf)

    def _geometry_problems(
        self,
        gdf: gpd.GeoDataFrame,
        ids: list[str | None],
        study_area: gpd.GeoSeries | gpd.GeoDataFrame | None,
        report_outside: bool = True,
    ) -> list[Problem]:
        # each check runs on the whole array; messages are made for the few failing rows
        out: list[Problem] = []
        geoms = gdf.geometry.to_numpy()
        allowed = _GEOM_FAMILIES[self.geometry]
        missing = shapely.is_missing(geoms)
        empty = ~missing & shapely.is_empty(geoms)
        type_ids = [_TYPE_IDS[k] for k in allowed]
        wrong = ~missing & ~empty & ~np.isin(shapely.get_type_id(geoms), type_ids)
        usable = ~(missing | empty | wrong)
        invalid = np.zeros(len(geoms), dtype=bool)
        invalid[usable] = ~shapely.is_valid(geoms[usable])
        usable &= ~invalid
        usable[usable] = _finite(geoms[usable])
        for i in np.flatnonzero(~usable).tolist():
            g, pid = geoms[i], ids[i]
            if missing[i]:
                out.append(
                    Problem(
                        i + 1,
                        "geometry",
                        "geometry is missing or cannot be parsed (e.g. a line with one point, an unclosed ring; for CSV: lon/lat empty or not numbers)",
                        pid,
                    )
                )
            elif empty[i]:
                out.append(Problem(i + 1, "geometry", "geometry is empty", pid))
            elif wrong[i]:
                out.append(
                    Problem(
                        i + 1,
                        "geometry",
                        f"geometry is a {g.geom_type}, expected {' or '.join(allowed)}",
                        pid,
                    )
                )
            elif invalid[i]:
                reason = shapely.is_valid_reason(g)
                out.append(
                    Problem(
                        i + 1,
                        "geometry",
                        f"invalid geometry ({reason}); repair it, e.g. with QGIS 'Fix geometries' or shapely.make_valid",
                        pid,
                    )
                )
            else:
                out.append(Problem(i + 1, "geometry", "geometry has non-finite coordinates", pid))
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
            shapely.prepare(area)
        # problems of where features lie (coordinates out of range, swapped, outside the study
        # area): when they concern every feature, the layer's CRS is the likely fault, and they
        # become one message that says so
        rows = np.flatnonzero(usable)
        used = geoms[rows]
        n = len(rows)
        lon_bad, lat_bad, swapped = (np.zeros(n, dtype=bool) for _ in range(3))
        if crs.is_geographic:
            xy, index = shapely.get_coordinates(used, return_index=True)
            ax, ay = np.abs(xy[:, 0]), np.abs(xy[:, 1])
            lat_over = np.bincount(index[ay > 90.0], minlength=n) > 0
            swapped = lat_over & ~(np.bincount(index[ax > 90.0], minlength=n) > 0)
            lon_bad = ~swapped & (np.bincount(index[ax > 180.0], minlength=n) > 0)
            lat_bad = ~swapped & ~lon_bad & lat_over
        inside = np.ones(n, dtype=bool)
        if area is not None:
            ranged = ~(lon_bad | lat_bad)
            inside[ranged] = shapely.intersects(area, used[ranged])
            test = ranged & ~swapped & ~inside
            swapped[test] = shapely.intersects(area_swap, used[test])
        placed: dict[int, Problem] = {}
        for k in np.flatnonzero(lon_bad | lat_bad | swapped).tolist():
            i = int(rows[k])
            xy = shapely.get_coordinates(geoms[i])
            if lon_bad[k]:
                message = f"longitude {xy[np.argmax(np.abs(xy[:, 0])), 0]:g} is outside ±180°; check the coordinates and the CRS"
            elif lat_bad[k]:
                message = f"latitude {xy[:, 1].max():g} is outside ±90°; check the coordinates and the CRS"
            else:
                message = (
                    f"coordinates ({xy[0, 0]:g}, {xy[0, 1]:g}) look like swapped lat/lon: x must be the longitude "
                    "(or easting) and y the latitude (or northing); swap the two columns"
                )
            placed[i] = Problem(i + 1, "geometry", message, ids[i])
        if area is not None and report_outside:
            far = rows[~(lon_bad | lat_bad | swapped) & ~inside]
            dist = _distances_m(area, geoms[far], crs, _projected(study_area))
            for i, d in zip(far.tolist(), dist.tolist(), strict=True):
                placed[i] = Problem(
                    i + 1,
                    "geometry",
                    f"feature lies outside the study area ({_metres(d)} away); remove it, fix "
                    "its coordinates or CRS, or enlarge the study area (study_area_margin_m)",
                    ids[i],
                )
        if len(rows) > 1 and len(placed) == len(rows):
            out.append(
                Problem(None, "geometry", self.placement_message(gdf.iloc[rows], study_area))
            )
        else:
            out += placed.values()
        return out

    def distance_m(
        self, gdf: gpd.GeoDataFrame, study_area: gpd.GeoSeries | gpd.GeoDataFrame
    ) -> np.ndarray:
        """Distance (m) of each feature from the study area: 0 inside or across its edge, NaN
        for a missing, empty or non-finite geometry. In a geographic CRS, distances are taken
        in the local UTM zone of the study area."""
        out = np.full(len(gdf), np.nan)
        if gdf.crs is None or study_area.crs is None or not len(study_area) or not len(gdf):
            return out
        crs = CRS.from_user_input(gdf.crs)
        geoms = gdf.geometry.to_numpy()
        ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
        ok[ok] = _finite(geoms[ok])
        area = shapely.union_all(study_area.to_crs(crs).geometry.to_numpy())
        out[ok] = _distances_m(area, geoms[ok], crs, _projected(study_area))
        return out

    def placement_message(
        self,
        gdf: gpd.GeoDataFrame,
        study_area: gpd.GeoSeries | gpd.GeoDataFrame | None,
        *,
        what: str = "lie outside the study area",
    ) -> str:
        """One message for a layer none of whose features lies where it should, naming the
        likely mistake: projected coordinates read as degrees, degrees read as metres, x and y
        swapped, or another CRS (tried: the study area's UTM zone, WGS 84, Web Mercator).
        ``what`` says what the features do (e.g. ``lie outside the study area, so `clip`
        would leave none``)."""
        geoms = gdf.geometry.to_numpy()
        ok = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
        geoms = geoms[ok]
        n = len(geoms)
        xy = shapely.get_coordinates(geoms)
        xy = xy[np.all(np.isfinite(xy), axis=1)]
        crs = CRS.from_user_input(gdf.crs)
        name = _crs_label(crs)
        eg = f"({xy[0, 0]:g}, {xy[0, 1]:g})" if len(xy) else "(none)"
        area = None
        if study_area is not None and len(study_area) and study_area.crs is not None:
            area = shapely.union_all(study_area.to_crs(crs).geometry.to_numpy())
        guess = _guess_crs(geoms, crs, study_area) if area is not None else None
        read_as = (
            f"; read as {guess}, they fall on the study area: set `crs: {guess}` for the layer "
            "in the plan (--crs on the command line), or save the file with its real CRS"
            if guess
            else "; give the layer its real CRS (`crs:` in the plan, --crs on the command "
            "line), or save the file with it"
        )
        degrees = bool(len(xy)) and bool(
            np.all(np.abs(xy[:, 0]) <= 180.0) and np.all(np.abs(xy[:, 1]) <= 90.0)
        )
        lat_lon = bool(len(xy)) and bool(
            np.all(np.abs(xy[:, 0]) <= 90.0) and np.all(np.abs(xy[:, 1]) <= 180.0)
        )
        swapped = (crs.is_geographic and not degrees and lat_lon) or (
            area is not None and n > 0 and bool(shapely.intersects(_swap_xy(area), geoms).all())
        )
        if swapped:
            return (
                f"all {n} features look like swapped lat/lon, e.g. {eg}: x must be the "
                "longitude (or easting) and y the latitude (or northing); swap the two columns"
            )
        if crs.is_geographic and not degrees:
            return (
                f"all {n} features have coordinates such as {eg}, which are not degrees: the "
                f"file holds projected coordinates (e.g. metres) but is read as {name}" + read_as
            )
        if crs.is_projected and degrees:
            return (
                f"all {n} features have coordinates such as {eg}, which look like degrees "
                f"(lon/lat), but the layer's CRS is {name}, in metres" + read_as
            )
        if area is None:
            return f"all {n} features have coordinates such as {eg}; check the layer's CRS ({name})"
        near = (
            float(np.nanmin(_distances_m(area, geoms, crs, _projected(study_area))))
            if n
            else float("nan")
        )
        return (
            f"all {n} features {what} (the nearest {_metres(near)} away), e.g. {eg} in {name}: "
            "check the layer's CRS and coordinates, or the study area" + (read_as if guess else "")
        )


#: Text that stands for a missing value (after stripping).
_MISSING_TEXT = ["", "nan", "NaN", "None"]

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


def _finite(geoms: np.ndarray, *, degrees: bool = False) -> np.ndarray:
    """Whether all coordinates of each of ``geoms`` are finite (and, with ``degrees``, within
    ±180° in x and ±90° in y)."""
    xy, index = shapely.get_coordinates(geoms, return_index=True)
    good = np.isfinite(xy).all(axis=1)
    if degrees:
        with np.errstate(invalid="ignore"):
            good &= (np.abs(xy[:, 0]) <= 180.0) & (np.abs(xy[:, 1]) <= 90.0)
    return np.bincount(index[~good], minlength=len(geoms)) == 0


def _swap_xy(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, lambda c: c[:, ::-1])


def _metres(d: float) -> str:
    """A distance for a message: ``850 m``, ``12,345 m``, ``1,234 km``."""
    if not np.isfinite(d):
        return "an unknown distance"
    return f"{d:,.0f} m" if d < 100_000 else f"{d / 1000:,.0f} km"


def _crs_label(crs: CRS) -> str:
    auth = crs.to_authority()
    return f"{auth[0]}:{auth[1]} ({crs.name})" if auth else crs.name


def _projected(study_area: gpd.GeoSeries | gpd.GeoDataFrame | None) -> CRS | None:
    """The study area's CRS when it is projected (distances are measured in it), else None."""
    if study_area is None or study_area.crs is None:
        return None
    crs = CRS.from_user_input(study_area.crs)
    return crs if crs.is_projected else None


def _metric(crs: CRS, area: shapely.Geometry) -> tuple[CRS, float]:
    """A metric CRS for distances near ``area`` (given in ``crs``) and the factor to metres:
    ``crs`` itself when projected, else the UTM zone of the area's centre."""
    if crs.is_projected:
        axis = crs.axis_info
        return crs, axis[0].unit_conversion_factor if axis else 1.0
    from telcoplan.gis.crs import utm_crs_for

    c = area.centroid
    lon = float(np.clip(c.x, -180.0, 180.0))
    lat = float(np.clip(c.y, -80.0, 84.0))
    return CRS.from_user_input(utm_crs_for(lon, lat)), 1.0


def _distances_m(
    area: shapely.Geometry, geoms: np.ndarray, crs: CRS, metric: CRS | None = None
) -> np.ndarray:
    """Distance (m) from ``area`` to each of ``geoms``, all in ``crs``, measured in ``metric``
    (a projected CRS; default: ``crs`` when projected, else the area's UTM zone)."""
    if not len(geoms):
        return np.zeros(0)
    factor = 1.0
    if metric is None or metric == crs:
        metric, factor = _metric(crs, area)
    else:
        axis = metric.axis_info
        factor = axis[0].unit_conversion_factor if axis else 1.0
    if metric is crs:
        return shapely.distance(area, geoms) * factor
    from pyproj import Transformer

    t = Transformer.from_crs(crs, metric, always_xy=True)

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    with np.errstate(invalid="ignore"):
        d = shapely.distance(shapely.transform(area, project), shapely.transform(geoms, project))
    return np.where(np.isfinite(d), d * factor, np.inf)


def _guess_crs(
    geoms: np.ndarray, crs: CRS, study_area: gpd.GeoSeries | gpd.GeoDataFrame
) -> str | None:
    """A CRS in which the coordinates of ``geoms`` (declared in ``crs``) fall on the study
    area (most of them within 50 km of it): the study area's own projected CRS, its UTM zone,
    WGS 84 or Web Mercator."""
    from telcoplan.gis.crs import utm_crs_for

    lon0, lat0, lon1, lat1 = study_area.to_crs("EPSG:4326").total_bounds
    candidates = ["EPSG:4326", "EPSG:3857"]
    with contextlib.suppress(ValueError):  # outside the UTM domain
        candidates.insert(0, utm_crs_for((lon0 + lon1) / 2.0, (lat0 + lat1) / 2.0))
    own = CRS.from_user_input(study_area.crs)
    if own.is_projected and own.to_authority():
        candidates.insert(0, ":".join(own.to_authority()))
    for cand in candidates:
        other = CRS.from_user_input(cand)
        if other == crs:
            continue
        try:
            area = shapely.union_all(study_area.to_crs(other).geometry.to_numpy())
            d = _distances_m(area, geoms, other)
        except (ValueError, RuntimeError, shapely.errors.ShapelyError):
            continue  # coordinates that the CRS cannot take: not it
        if len(d) and np.mean(d <= 50_000.0) >= 0.5:
            return cand
    return None


def _dupes(values: Iterable, ok: np.ndarray, col: str, add) -> None:
    seen: dict[object, int] = {}
    for i, (v, good) in enumerate(zip(values, ok, strict=True)):
        if not good:
            continue
        if v in seen:
            add(i, col, f"duplicate value {v!r} (also on row {seen[v] + 1}); ids must be unique")
        else:
            seen[v] = i
