"""Shared loader: read a vector file, validate it against its schema, coerce column types."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from telcoplan.errors import LayerValidationError, Problem, did_you_mean
from telcoplan.gis.postgis import is_database_url
from telcoplan.gis.vector import has_shape, read_vector
from telcoplan.layers._schema import LayerSchema

log = logging.getLogger(__name__)

__all__ = ["coerce", "load_layer"]


def coerce(
    schema: LayerSchema, gdf: gpd.GeoDataFrame, *, set_index: bool = True
) -> gpd.GeoDataFrame:
    """Return a copy with schema columns converted to their types (and the id as index)."""
    out = schema.apply_aliases(gdf).copy()
    for c in schema.columns:
        if c.name not in out.columns:
            if c.default is not None:
                out[c.name] = c.default
            continue
        if c.kind == "float":
            out[c.name] = pd.to_numeric(out[c.name], errors="coerce").astype("float64")
        elif c.kind == "int":
            out[c.name] = pd.to_numeric(out[c.name], errors="coerce").astype("Int64")
        elif c.kind == "bool":
            out[c.name] = out[c.name].map(_to_bool).astype("boolean")
        else:
            out[c.name] = _text(out[c.name], c.choices)
    if set_index and schema.id_column and schema.id_column in out.columns:
        out = out.set_index(schema.id_column, drop=True)
    return out


def _text(values: pd.Series, choices: Iterable[str] | None) -> pd.Series:
    """A text column stripped, and its choices (if any) in the schema's spelling ("4g" and
    "Primary" become "4G", "primary"); missing values stay missing."""
    raw = values.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(raw, skipna=False) == "string":
        # only text (the usual case): the values and dtype of the general path below, without
        # a missing-value test per row
        text = [v.strip() for v in raw]
        if not choices:
            return pd.Series(text, index=values.index, dtype=object)
        spelling = {v.upper(): v for v in choices}
        return pd.Series([spelling.get(v.upper(), v) for v in text], index=values.index)
    out = values.map(lambda v: v if pd.isna(v) else str(v).strip()).astype(object)
    if choices:
        spelling = {v.upper(): v for v in choices}
        out = out.map(lambda v: spelling.get(v.upper(), v) if isinstance(v, str) else v)
    return out


def _to_bool(v: object) -> object:
    from telcoplan.layers._schema import BOOL_TEXT

    if v is None or (isinstance(v, float) and np.isnan(v)):
        return pd.NA
    return BOOL_TEXT.get(str(v).strip().lower(), pd.NA)


def load_layer(
    schema: LayerSchema,
    path: str | os.PathLike,
    *,
    crs: str | None = None,
    layer: str | None = None,
    study_area: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    set_index: bool = True,
    clip: bool = False,
    columns: Mapping[str, str] | None = None,
    values: Mapping[str, Mapping[str, str]] | None = None,
    ids: str = "file",
    reach_m: float | Callable[[gpd.GeoDataFrame], np.ndarray] | None = None,
    reach_name: str = "reach",
    sql: str | None = None,
) -> gpd.GeoDataFrame:
    """Read ``path``, validate it against ``schema`` (every problem at once), coerce types.

    ``path`` may also be a PostGIS database, ``postgresql://user@host/dbname`` (the password
    from ``PGPASSWORD`` or ``~/.pgpass``, never in the URL), with ``layer`` its table
    (``schema.table``) or ``sql`` a query (``SELECT …``), read by
    :func:`telcoplan.gis.postgis.read_postgis`: problems then name rows by the table's primary
    key (``gid=17``), and the layer's ``attrs["postgis"]`` records the source and a SHA-256
    of its rows.

    ``columns`` maps the schema's column names to the file's (``{"site_id": "CellID"}``): the
    file's columns are renamed before anything else, so messages use the schema's names.
    ``values`` then translates the values of schema columns (``{"road_class": {"Quốc Gia":
    "trunk"}}``; text compared after trimming spaces; values not listed are kept as they are).
    With ``ids="generate"`` the id column is made from the file's row numbers
    (``roads-1``, ``roads-2``, …; the file's own id column, if any, is kept as
    ``file_<id column>``): for layers whose id only labels features.

    With ``clip`` (and a ``study_area``), features lying wholly outside the study area are left
    out — with a warning saying how many — instead of being reported; lines and polygons
    crossing its edge are cut at it (points are inside or left out); a feature whose cut part
    has no length (or area) left, e.g. a line touching the edge, is left out too.

    With ``reach_m`` (and a ``study_area``; without ``clip``), features outside the study area
    but at most ``reach_m`` metres from it are kept, and farther ones left out, each group
    counted in a warning (``reach_m``: one distance, or a function of the layer as read giving
    one per feature; ``reach_name`` names it in the warnings, e.g. "coverage radius").

    When *every* feature would be left out, that is one error naming the likely CRS mistake.
    Row numbers in messages stay those of the file.

    Raises
    ------
    telcoplan.errors.InputFileError
        The file is missing or unreadable.
    telcoplan.errors.LayerValidationError
        The layer breaks its contract; the message lists every problem with row ids.
    telcoplan.errors.DatabaseError
        The database cannot be reached or read.
    """
    record = keys = None
    if is_database_url(path):
        from telcoplan.gis.postgis import read_postgis, row_keys

        if (layer is None) == (sql is None):
            raise ValueError("a postgresql:// source needs either layer= (its table) or sql=")
        gdf = read_postgis(str(path), table=layer, sql=sql, crs=crs)
        record = dict(gdf.attrs["postgis"])
        source = record["source"]
        keys = row_keys(gdf)
    elif sql is not None:
        raise ValueError("sql= reads from a database: give a postgresql:// URL as path")
    else:
        gdf = read_vector(path, layer=layer, crs=crs)
        source = str(path)
    try:
        out = _checked(
            schema, gdf, source, study_area=study_area, set_index=set_index, clip=clip,
            columns=columns, values=values, ids=ids, reach_m=reach_m, reach_name=reach_name,
        )  # fmt: skip
    except LayerValidationError as exc:
        if record is None:
            raise
        raise LayerValidationError(
            exc.source, exc.layer, schema.keyed(exc.problems, keys)
        ) from None
    if record is not None:
        out.attrs["postgis"] = record
    return out


def _checked(
    schema: LayerSchema,
    gdf: gpd.GeoDataFrame,
    path: str,
    *,
    study_area: gpd.GeoSeries | gpd.GeoDataFrame | None,
    set_index: bool,
    clip: bool,
    columns: Mapping[str, str] | None,
    values: Mapping[str, Mapping[str, str]] | None,
    ids: str,
    reach_m: float | Callable[[gpd.GeoDataFrame], np.ndarray] | None,
    reach_name: str,
) -> gpd.GeoDataFrame:
    """The layer ``gdf`` read from ``path`` (a file, or a database's label) mapped,
    validated, left out or clipped as :func:`load_layer` says, and coerced."""
    if columns:
        gdf = _rename(schema, gdf, columns, path)
    if ids == "generate":
        gdf = _generate_ids(schema, gdf)
    elif ids != "file":
        raise ValueError(f"ids must be 'file' or 'generate', got {ids!r}")
    if values:
        gdf = _translate(schema, gdf, values, path)
    if study_area is None or (not clip and reach_m is None):
        schema.validate(gdf, source=str(path), study_area=study_area)
        return coerce(schema, gdf, set_index=set_index)
    drop = schema.outside(gdf, study_area)
    near = np.zeros(len(gdf), dtype=bool)
    dist = np.full(len(gdf), np.nan)
    if not clip and drop.any():  # reach: the features outside but near enough are kept
        reach = np.broadcast_to(
            np.asarray(reach_m(gdf) if callable(reach_m) else reach_m, dtype=float), len(gdf)
        )
        dist = schema.distance_m(gdf, study_area)
        near = drop & (dist <= np.where(np.isfinite(reach), reach, np.inf))
        drop = drop & ~near
    geoms = gdf.geometry
    usable = has_shape(geoms)
    if drop.any() and drop.sum() == usable.sum():
        # nothing would be left: one message, not one per feature (a CRS mistake, likely)
        what = (
            "lie outside the study area, so `clip` would leave none"
            if clip
            else f"lie farther from the study area than their {reach_name}, so none would be kept"
        )
        raise LayerValidationError(
            str(path),
            schema.name,
            [Problem(None, "geometry", schema.placement_message(gdf[drop], study_area, what=what))],
        )
    n = len(gdf)
    if near.any():
        log.warning(
            "%s: %d of %d %s features lie outside the study area but within their %s of it "
            "(up to %s away): kept, they serve its edge",
            path, int(near.sum()), n, schema.name, reach_name, _metres(np.nanmax(dist[near])),
        )  # fmt: skip
    if drop.any() and not clip:
        far = dist[drop]
        span = (
            _metres(np.nanmin(far))
            if np.nanmin(far) == np.nanmax(far)
            else f"{_metres(np.nanmin(far))} to {_metres(np.nanmax(far))}"
        )
        log.warning(
            "%s: %d of %d %s features lie farther from the study area than their %s "
            "(%s away) and are left out",
            path, int(drop.sum()), n, schema.name, reach_name, span,
        )  # fmt: skip
    elif drop.any():
        log.warning(
            "%s: %d of %d %s features lie outside the study area and are left out (clip)",
            path, int(drop.sum()), n, schema.name,
        )  # fmt: skip
    # the kept rows are checked on their own (duplicates among them, every problem at once),
    # then their problems are numbered as in the file
    rows = np.flatnonzero(~drop)
    kept = gdf.iloc[rows]
    found = [
        replace(p, row=None if p.row is None else int(rows[p.row - 1]) + 1)
        for p in schema.problems(kept, study_area=study_area, report_outside=False)
    ]
    if found:
        raise LayerValidationError(str(path), schema.name, found)
    if clip:
        kept = _clip(schema, kept, study_area, path)
    return coerce(schema, kept, set_index=set_index)


def _metres(d: float) -> str:
    return f"{d:,.0f} m" if np.isfinite(d) else "an unknown distance"


def _generate_ids(schema: LayerSchema, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``gdf`` with its id column made from the row numbers (``roads-1`` …); the file's own
    ids, if any, kept as ``file_<id column>``."""
    col = schema.id_column
    if col is None:
        return gdf
    out = gdf.rename(columns={col: f"file_{col}"}) if col in gdf.columns else gdf.copy()
    out[col] = [f"{schema.name}-{i}" for i in range(1, len(out) + 1)]
    return out


def _clip(
    schema: LayerSchema, gdf: gpd.GeoDataFrame, study_area: gpd.GeoSeries | gpd.GeoDataFrame, path
) -> gpd.GeoDataFrame:
    """Lines and polygons of ``gdf`` cut at the study area (features within it kept as they
    are); features whose cut part is empty are left out, counted in a warning."""
    if schema.geometry == "Point" or not len(gdf):
        return gdf
    dim = 1 if schema.geometry == "LineString" else 2
    area = shapely.union_all(study_area.to_crs(gdf.crs).geometry.to_numpy())
    geoms = gdf.geometry.to_numpy()
    cross = ~shapely.within(geoms, area)
    if not cross.any():
        return gdf
    cut = np.empty(int(cross.sum()), dtype=object)
    cut[:] = [_parts_of_dimension(g, dim) for g in shapely.intersection(geoms[cross], area)]
    new = geoms.copy()
    new[cross] = cut
    empty = np.zeros(len(gdf), dtype=bool)
    empty[cross] = shapely.is_missing(cut) | shapely.is_empty(cut)
    log.warning(
        "%s: %d %s features crossing the study area's edge are cut at it (clip)",
        path, int(cross.sum() - empty.sum()), schema.name,
    )  # fmt: skip
    if empty.any():
        log.warning(
            "%s: %d %s features only touch the study area's edge (nothing left inside once "
            "cut) and are left out (clip)",
            path, int(empty.sum()), schema.name,
        )  # fmt: skip
    out = gdf.set_geometry(gpd.GeoSeries(new, index=gdf.index, crs=gdf.crs))
    return out[~empty]


def _parts_of_dimension(g: shapely.Geometry, dim: int) -> shapely.Geometry | None:
    """The parts of ``g`` of dimension ``dim`` (1 lines, 2 polygons) as one (multi-)geometry,
    or None (a line cut at a polygon may also leave points where it touches its edge)."""
    parts, todo = [], [g]
    while todo:
        h = todo.pop()
        if h is None or h.is_empty:
            continue
        if shapely.get_type_id(h) in (4, 5, 6, 7):  # multi-part or collection
            todo.extend(reversed(shapely.get_parts(h).tolist()))
        elif shapely.get_dimensions(h) == dim:
            parts.append(h)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return shapely.MultiLineString(parts) if dim == 1 else shapely.MultiPolygon(parts)


def _rename(
    schema: LayerSchema, gdf: gpd.GeoDataFrame, columns: Mapping[str, str], path
) -> gpd.GeoDataFrame:
    """The file's columns renamed to the schema's names given in ``columns``; every unknown
    schema name and absent file column is reported at once."""
    names = {c.name for c in schema.columns}
    problems = [
        Problem(None, str(k), f"{k!r} is not a column of the {schema.name} layer"
                f"{did_you_mean(str(k), [c.name for c in schema.columns])}; choose among "
                f"{', '.join(c.name for c in schema.columns)}")
        for k in columns if k not in names
    ]  # fmt: skip
    present = [str(c) for c in gdf.columns.drop(gdf.geometry.name)]
    problems += [
        Problem(None, str(v), f"column {v!r} (given for {k!r}) is not in the file"
                f"{did_you_mean(str(v), present)}; columns present: {', '.join(present)}")
        for k, v in columns.items() if k in names and v not in gdf.columns
    ]  # fmt: skip
    if problems:
        raise LayerValidationError(str(path), schema.name, problems)
    # the file's own column of a schema name it maps elsewhere would shadow the mapped one
    shadowed = [k for k, v in columns.items() if k in gdf.columns and k != v]
    out = gdf.drop(columns=shadowed)
    return out.rename(columns={v: k for k, v in columns.items()})


def _translate(
    schema: LayerSchema, gdf: gpd.GeoDataFrame, values: Mapping[str, Mapping[str, str]], path
) -> gpd.GeoDataFrame:
    """``gdf`` with the values of schema columns translated by ``values``."""
    names = {c.name for c in schema.columns}
    bad = [k for k in values if k not in names or k not in gdf.columns]
    if bad:
        raise LayerValidationError(
            str(path),
            schema.name,
            [
                Problem(None, str(k), f"values are given for {k!r}, which is not a column of "
                        f"the {schema.name} layer in this file")
                for k in bad
            ],
        )  # fmt: skip
    out = gdf.copy()
    for col, table in values.items():
        lookup = {str(a).strip(): b for a, b in table.items()}
        out[col] = out[col].map(
            lambda v, t=lookup: t.get(str(v).strip(), v) if not pd.isna(v) else v
        )
    return out


_LOAD_DOC = """Read and validate a {name} file (GeoPackage, GeoJSON, Shapefile, FlatGeobuf, GeoParquet, CSV).

    Parameters
    ----------
    path
        The file. CSV needs ``lon``/``lat`` columns (WGS 84), or ``x``/``y`` plus ``crs``.
        Or a PostGIS database, ``postgresql://user@host/dbname`` (the password from
        ``PGPASSWORD`` or ``~/.pgpass``, never in the URL), with ``layer`` or ``sql``.
    crs
        CRS of CSV ``x``/``y`` columns, or the CRS to assign to a file that has none.
    layer
        Layer name inside a multi-layer GeoPackage; a database's table (``schema.table``).
    sql
        With a database: a query (``SELECT …``) whose rows are the layer.
    study_area
        Polygons of the study area; features outside it are reported.
    clip
        Leave out the features lying wholly outside ``study_area`` (with a warning) instead of
        reporting them, and cut lines and polygons at its edge (every feature outside is one
        error: a CRS mistake, likely).
    columns
        The file's name of schema columns, e.g. ``{{"site_id": "CellID"}}`` (renamed on reading).
    values
        Translations of a column's values, e.g. ``{{"road_class": {{"Quốc Gia": "trunk"}}}}``.
    ids
        ``"file"`` (the file's ids, unique) or ``"generate"`` (ids from the row numbers, for a
        file whose ids are missing or repeat; its own kept as ``file_<id column>``).
    reach_m, reach_name
        Without ``clip``: features outside ``study_area`` but within ``reach_m`` metres of it
        (a number, or a function of the layer giving one per feature) are kept, farther ones
        left out, each with a warning naming ``reach_name``.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns coerced to their schema types{index}.

    Raises
    ------
    telcoplan.errors.InputFileError
        The file is missing or unreadable.
    telcoplan.errors.LayerValidationError
        Listing every problem of the layer with its row number and id.
    """

_VALIDATE_DOC = """Validate an in-memory {name} layer; return a type-coerced copy (the input is unchanged).

    Raises :class:`telcoplan.errors.LayerValidationError` listing every problem.
    """


def layer_api(schema: LayerSchema, *, set_index: bool = True):
    """Build the ``load_<layer>`` and ``validate_<layer>`` functions of a vector layer."""

    def load(
        path: str | os.PathLike,
        *,
        crs: str | None = None,
        layer: str | None = None,
        study_area: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
        clip: bool = False,
        columns: Mapping[str, str] | None = None,
        values: Mapping[str, Mapping[str, str]] | None = None,
        ids: str = "file",
        reach_m: float | Callable[[gpd.GeoDataFrame], np.ndarray] | None = None,
        reach_name: str = "reach",
        sql: str | None = None,
    ) -> gpd.GeoDataFrame:
        return load_layer(
            schema, path, crs=crs, layer=layer, study_area=study_area, set_index=set_index,
            clip=clip, columns=columns, values=values, ids=ids, reach_m=reach_m,
            reach_name=reach_name, sql=sql,
        )  # fmt: skip

    def validate(
        gdf: gpd.GeoDataFrame,
        *,
        source: str = f"<{schema.name}>",
        study_area: gpd.GeoSeries | gpd.GeoDataFrame | None = None,
    ) -> gpd.GeoDataFrame:
        schema.validate(gdf, source=source, study_area=study_area)
        return coerce(schema, gdf, set_index=set_index)

    index = f", indexed by ``{schema.id_column}``" if set_index and schema.id_column else ""
    for fn, verb, doc in ((load, "load", _LOAD_DOC), (validate, "validate", _VALIDATE_DOC)):
        fn.__name__ = fn.__qualname__ = f"{verb}_{schema.name}"
        fn.__module__ = f"telcoplan.layers.{schema.name}"
        fn.__doc__ = doc.format(name=schema.name, index=index)
    return load, validate
