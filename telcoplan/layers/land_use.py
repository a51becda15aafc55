"""The land-use (clutter) layer: a class per place, from a raster of codes or from polygons.

Contract:

- **raster**: one band of class codes (numbers), any CRS, nodata where there is no class. A
  ``code,name`` CSV (:func:`read_clutter_table`) may name the codes; without one the code
  itself names the class (:func:`code_text`: ``10``, not ``10.0``).
- **polygons** (GeoPackage, GeoJSON, … — e.g. OpenStreetMap ``landuse``): a column holds
  each polygon's class name (``residential``, ``forest``; numbers name their class as a
  raster's codes do: ``10``); polygons whose class is empty are left out. Where polygons
  overlap (land-use polygons nest), the smallest wins, whatever the file's order.

Both give the same thing: per cell (or per point) a code, NaN where there is no class, and the
class name of each code. The coverage stage and ``telcoplan calibrate`` name classes alike, so a
calibration's clutter offsets apply to the plan's land-use layer by name.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.errors import InputFileError, LayerValidationError, Problem
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import MemoryRaster
from telcoplan.gis.vector import has_shape

__all__ = [
    "RASTER_SUFFIXES",
    "clutter_names",
    "code_text",
    "is_raster",
    "land_use_at_points",
    "land_use_on_grid",
    "read_clutter_table",
]

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".asc")


def is_raster(path: str | os.PathLike | MemoryRaster | gpd.GeoDataFrame) -> bool:
    """Whether a land-use source is a raster: a :class:`MemoryRaster` (e.g. read from PostGIS)
    or a file with a raster suffix (a GeoDataFrame holds polygons)."""
    if isinstance(path, MemoryRaster):
        return True
    if isinstance(path, gpd.GeoDataFrame):
        return False
    return Path(path).suffix.lower() in RASTER_SUFFIXES


# ------------------------------------------------------------------------------ class names
def code_text(value: float) -> str:
    """The class name a land-use code gets without a class table: ``10`` (not ``10.0``) for a
    whole number, else the shortest ``%g`` form; ``nan`` for NaN."""
    if not math.isfinite(value):
        return "nan"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def clutter_names(table: pd.DataFrame, *, source: str = "<land-use classes>") -> dict[float, str]:
    """The class table of a land-use raster: ``{code: name}`` from columns ``code``, ``name``.

    Parameters
    ----------
    table
        One row per raster code (e.g. a CSV read as text); column names are matched without
        case and surrounding spaces. Two codes may share a name (they form one class).
    source
        Name of the table in error messages (e.g. the file path).

    Returns
    -------
    dict of float to str
        Class name of each code (the ``names`` that clutter labels and offsets take).

    Raises
    ------
    telcoplan.errors.LayerValidationError
        A column is missing, or codes are not numbers, names are empty, or one code has two
        names (every problem, with its row).
    """
    columns = {str(c).strip().lower(): c for c in table.columns}
    absent = [c for c in ("code", "name") if c not in columns]
    if absent:
        raise LayerValidationError(
            source,
            "land-use classes",
            [
                Problem(
                    None,
                    c,
                    f"required column {c!r} is missing (columns: "
                    f"{', '.join(map(str, table.columns))}); the table has the columns code,name",
                )
                for c in absent
            ],
        )
    problems: list[Problem] = []
    out: dict[float, str] = {}
    codes = table[columns["code"]].astype(str).str.strip()
    names = table[columns["name"]].fillna("").astype(str).str.strip()
    for i, (code, name) in enumerate(zip(codes, names, strict=True)):
        row = i + 1
        value = float(pd.to_numeric(code, errors="coerce"))
        if not math.isfinite(value):
            problems.append(Problem(row, "code", f"code {code!r} is not a number"))
        elif not name:
            problems.append(Problem(row, "name", f"code {code} has an empty name"))
        elif value in out and out[value] != name:
            problems.append(
                Problem(row, "code", f"code {code} is named twice ({out[value]!r} and {name!r})")
            )
        else:
            out[value] = name
    if problems:
        raise LayerValidationError(source, "land-use classes", problems)
    return out


def read_clutter_table(path: Any) -> dict[float, str]:
    """:func:`clutter_names` of a ``code,name`` CSV file (a land-use raster's class table)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(f"{path}: not a readable code,name CSV ({exc})") from None
    return clutter_names(table, source=str(path))


# ------------------------------------------------------------------------------ layer


def _problem(path: object, column: str | None, message: str) -> LayerValidationError:
    return LayerValidationError(_name(path), "land_use", [Problem(None, column, message)])


def _name(source: object) -> str:
    """What messages call a land-use source: its file, or the table or query it was read from."""
    if isinstance(source, gpd.GeoDataFrame):
        return str((source.attrs.get("postgis") or {}).get("source", "<land-use polygons>"))
    return str(source)


def _polygons(
    path: Path | gpd.GeoDataFrame,
    column: str | None,
    *,
    crs: str | None = None,
    layer: str | None = None,
) -> tuple[gpd.GeoDataFrame, dict[float, str]]:
    """The classed polygons (column ``code``, 1-based in class-name order) and code → name, of
    a file or of polygons already read (e.g. from PostGIS: ``read_postgis``).

    Polygons without a class are left out. The rest are ordered largest first, so that where
    polygons overlap — land-use polygons nest, e.g. a park inside a residential area — the
    smaller, more specific one is the later and wins, whatever the file's order.
    """
    from telcoplan.errors import CRSError
    from telcoplan.gis.vector import read_vector

    if not column:
        raise _problem(
            path,
            None,
            "land-use polygons need the column that holds their class: give `column:` in "
            "the plan (e.g. landuse) or --land-use-column",
        )
    gdf = path if isinstance(path, gpd.GeoDataFrame) else read_vector(path, crs=crs, layer=layer)
    if gdf.crs is None:
        raise CRSError(
            f"{_name(path)}: the land-use polygons have no CRS; save the file with one (e.g. "
            "EPSG:4326) or give it in the plan (`crs:`)"
        )
    if column not in gdf.columns or column == gdf.geometry.name:
        raise _problem(
            path,
            column,
            f"class column {column!r} is missing; the layer has "
            f"{', '.join(map(str, gdf.columns.drop(gdf.geometry.name)))}",
        )
    values = gdf[column]
    if pd.api.types.is_numeric_dtype(values):  # codes name their class as a raster's do: "10"
        text = values.map(lambda v: None if pd.isna(v) else code_text(float(v)))
    else:
        text = values.astype("string").str.strip()
    text = text.astype("string")
    keep = (text.notna() & (text != "")).to_numpy(dtype=bool)
    keep &= has_shape(gdf.geometry)
    gdf = gdf.loc[keep, [gdf.geometry.name]].assign(name=text[keep].astype(str).to_numpy())
    kinds = set(gdf.geometry.geom_type)
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise _problem(
            path,
            "geometry",
            f"land-use features with a class must be polygons, found {', '.join(sorted(kinds))}",
        )
    if len(gdf):
        local = gdf.to_crs(gdf.estimate_utm_crs()) if gdf.crs.is_geographic else gdf
        gdf = gdf.iloc[np.argsort(-local.area.to_numpy(), kind="stable")]
    names = sorted(set(gdf["name"]))
    code = {name: float(i + 1) for i, name in enumerate(names)}
    gdf = gdf.assign(code=gdf["name"].map(code).astype(np.float64))
    return gdf.reset_index(drop=True), {v: k for k, v in code.items()}


def _no_column_for_rasters(path: object, column: str | None) -> None:
    if column is not None:
        raise InputFileError(
            f"{_name(path)}: a class column only applies to land-use polygons; a raster's codes are "
            "named by a code,name table (`classes:`, --land-use-classes)"
        )


def land_use_on_grid(
    path: str | os.PathLike | MemoryRaster | gpd.GeoDataFrame,
    grid: GridSpec,
    *,
    column: str | None = None,
    classes: str | os.PathLike | None = None,
    crs: str | None = None,
    layer: str | None = None,
) -> tuple[np.ndarray, dict[float, str] | None]:
    """Class code per cell of ``grid`` (NaN: no class) and the names of the codes.

    A raster is read by nearest cell; polygons give each cell the class of the smallest polygon
    that contains its centre. ``path`` is a file, a raster held in memory (a PostGIS raster:
    :func:`telcoplan.gis.postgis_raster.read_postgis_raster`) or polygons already read (a
    PostGIS table: :func:`telcoplan.gis.postgis.read_postgis`). Raises a clean error when no
    cell of the grid has a class.
    """
    p = path if isinstance(path, MemoryRaster | gpd.GeoDataFrame) else Path(path)
    if is_raster(p):
        from telcoplan.gis.raster import read_raster_on_grid

        _no_column_for_rasters(p, column)
        codes = read_raster_on_grid(p, grid, resampling="nearest")
        names = None if classes is None else read_clutter_table(classes)
    else:
        from telcoplan.gis.zonal import label_polygons

        if classes is not None:
            raise InputFileError(
                f"{classes}: a class table only names a raster's codes; polygons carry their "
                "class names in a column (`column:`)"
            )
        gdf, names = _polygons(p, column, crs=crs, layer=layer)
        codes = np.full(grid.shape, np.nan)
        if len(gdf):
            labels = label_polygons(gdf.to_crs(grid.crs), grid)
            inside = labels >= 0
            codes[inside] = gdf["code"].to_numpy()[labels[inside]]
    if not np.isfinite(codes).any():
        raise _problem(p, None, "no class over the study area; check its extent and CRS")
    return codes, names


def land_use_at_points(
    path: str | os.PathLike,
    points: gpd.GeoDataFrame,
    *,
    column: str | None = None,
    classes: str | os.PathLike | None = None,
) -> tuple[np.ndarray, dict[float, str] | None]:
    """Class code at each point (NaN: outside the layer or no class) and the names of the codes.

    A raster is read at the cell containing each point; with polygons, a point takes the class of
    the smallest polygon containing it (or touching it, on an edge).
    """
    p = Path(path)
    if is_raster(p):
        _no_column_for_rasters(p, column)
        names = None if classes is None else read_clutter_table(classes)
        return _sample_raster(p, points), names
    if classes is not None:
        raise InputFileError(
            f"{classes}: a class table only names a raster's codes; polygons carry their "
            "class names in a column (--land-use-column)"
        )
    gdf, names = _polygons(p, column)
    pts = points.geometry.to_crs(gdf.crs).reset_index(drop=True)
    out = np.full(len(pts), np.nan)
    if not len(gdf):
        return out, names
    # a point on an edge belongs to the polygons it touches (as a cell centre does when the
    # grid is rasterized); the later (smaller) polygon wins, as on the grid
    hit = gpd.sjoin(
        gpd.GeoDataFrame(geometry=pts), gdf[["code", gdf.geometry.name]], predicate="intersects"
    )
    if len(hit):
        last = hit.reset_index().sort_values("index_right").groupby("index")["code"].last()
        out[last.index.to_numpy()] = last.to_numpy()
    return out, names


def _sample_raster(path: Path, points: gpd.GeoDataFrame) -> np.ndarray:
    """Band 1 of a raster (any CRS) at each point, nearest cell; NaN outside it or on nodata."""
    import rasterio
    import rasterio.windows

    from telcoplan.errors import CRSError

    try:
        src = rasterio.open(path)
    except (rasterio.errors.RasterioIOError, rasterio.errors.RasterioError) as exc:
        raise InputFileError(f"{path}: not a readable raster ({exc})") from None
    with src:
        if src.crs is None:
            raise CRSError(
                f"{path}: raster has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:4326)"
            )
        geoms = points.geometry.to_crs(src.crs)
        x, y = geoms.x.to_numpy(), geoms.y.to_numpy()
        inv = ~src.transform
        col = np.floor(inv.a * x + inv.b * y + inv.c)
        row = np.floor(inv.d * x + inv.e * y + inv.f)
        inside = np.isfinite(col) & np.isfinite(row)
        inside &= (col >= 0) & (col < src.width) & (row >= 0) & (row < src.height)
        out = np.full(len(x), np.nan)
        if inside.any():
            # one window over the points: a drive test covers a small part of a land-use map
            r0, r1 = int(row[inside].min()), int(row[inside].max()) + 1
            c0, c1 = int(col[inside].min()), int(col[inside].max()) + 1
            window = rasterio.windows.Window(c0, r0, c1 - c0, r1 - r0)
            try:
                data = src.read(1, window=window, masked=True)
            except rasterio.errors.RasterioIOError as exc:
                raise InputFileError(f"{path}: cannot read the raster's data ({exc})") from None
            values = np.ma.filled(data.astype("float64"), np.nan)
            out[inside] = values[row[inside].astype(int) - r0, col[inside].astype(int) - c0]
    return out
