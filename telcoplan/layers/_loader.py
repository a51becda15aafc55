"""Shared loader: read a vector file, validate it against its schema, coerce column types."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.errors import LayerValidationError, Problem
from telcoplan.gis.vector import read_vector
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
            out[c.name] = (
                out[c.name].map(lambda v: v if pd.isna(v) else str(v).strip()).astype(object)
            )
            if c.choices:  # "4g" and "Primary" become the schema's spelling: "4G", "primary"
                spelling = {v.upper(): v for v in c.choices}
                out[c.name] = out[c.name].map(
                    lambda v, sp=spelling: sp.get(v.upper(), v) if isinstance(v, str) else v
                )
    if set_index and schema.id_column and schema.id_column in out.columns:
        out = out.set_index(schema.id_column, drop=True)
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
) -> gpd.GeoDataFrame:
    """Read ``path``, validate it against ``schema`` (every problem at once), coerce types.

    ``columns`` maps the schema's column names to the file's (``{"site_id": "CellID"}``): the
    file's columns are renamed before anything else, so messages use the schema's names.
    ``values`` then translates the values of schema columns (``{"road_class": {"Quốc Gia":
    "trunk"}}``; text compared after trimming spaces; values not listed are kept as they are).

    With ``clip`` (and a ``study_area``), features lying wholly outside the study area are left
    out — with a warning saying how many — instead of being reported; features crossing its
    edge are kept whole (a road network stays connected). When *every* feature lies outside,
    that is one error: the CRS or the coordinates are the likelier fault.
    Row numbers in messages stay those of the file.

    Raises
    ------
    telcoplan.errors.InputFileError
        The file is missing or unreadable.
    telcoplan.errors.LayerValidationError
        The layer breaks its contract; the message lists every problem with row ids.
    """
    gdf = read_vector(path, layer=layer, crs=crs)
    if columns:
        gdf = _rename(schema, gdf, columns, path)
    if values:
        gdf = _translate(schema, gdf, values, path)
    if not clip or study_area is None:
        schema.validate(gdf, source=str(path), study_area=study_area)
        return coerce(schema, gdf, set_index=set_index)
    drop = schema.outside(gdf, study_area)
    geoms = gdf.geometry
    usable = (geoms.notna() & ~geoms.is_empty).to_numpy()
    if drop.any() and drop.sum() == usable.sum():
        # nothing would be left: one message, not one per feature (a CRS mistake, likely)
        raise LayerValidationError(
            str(path),
            schema.name,
            [
                Problem(
                    None,
                    "geometry",
                    f"all {int(drop.sum())} features lie outside the study area, so `clip` would "
                    "leave none: check the layer's CRS and coordinates, or the study area",
                )
            ],
        )
    if drop.any():
        log.warning(
            "%s: %d of %d %s features lie outside the study area and are left out (clip)",
            path,
            int(drop.sum()),
            len(gdf),
            schema.name,
        )
    # the kept rows are checked on their own (duplicates among them, every problem at once),
    # then their problems are numbered as in the file
    rows = np.flatnonzero(~drop)
    kept = gdf.iloc[rows]
    found = [
        replace(p, row=None if p.row is None else int(rows[p.row - 1]) + 1)
        for p in schema.problems(kept, study_area=study_area)
    ]
    if found:
        raise LayerValidationError(str(path), schema.name, found)
    return coerce(schema, kept, set_index=set_index)


def _rename(
    schema: LayerSchema, gdf: gpd.GeoDataFrame, columns: Mapping[str, str], path
) -> gpd.GeoDataFrame:
    """The file's columns renamed to the schema's names given in ``columns``; every unknown
    schema name and absent file column is reported at once."""
    names = {c.name for c in schema.columns}
    problems = [
        Problem(None, str(k), f"{k!r} is not a column of the {schema.name} layer; choose among "
                f"{', '.join(c.name for c in schema.columns)}")
        for k in columns if k not in names
    ]  # fmt: skip
    problems += [
        Problem(None, str(v), f"column {v!r} (given for {k!r}) is not in the file; columns "
                f"present: {', '.join(map(str, gdf.columns.drop(gdf.geometry.name)))}")
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
    crs
        CRS of CSV ``x``/``y`` columns, or the CRS to assign to a file that has none.
    layer
        Layer name inside a multi-layer GeoPackage.
    study_area
        Polygons of the study area; features outside it are reported.
    clip
        Leave out the features lying wholly outside ``study_area`` (with a warning) instead of
        reporting them (every feature outside is one error: a CRS mistake, likely).
    columns
        The file's name of schema columns, e.g. ``{{"site_id": "CellID"}}`` (renamed on reading).
    values
        Translations of a column's values, e.g. ``{{"road_class": {{"Quốc Gia": "trunk"}}}}``.

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
    ) -> gpd.GeoDataFrame:
        return load_layer(
            schema, path, crs=crs, layer=layer, study_area=study_area, set_index=set_index,
            clip=clip, columns=columns, values=values,
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
