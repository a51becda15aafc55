"""OpenCelliD import: crowd-sourced cell positions to a towers layer.

`OpenCelliD <https://opencellid.org>`_ publishes one row per radio *cell* (a sector / carrier
seen by phones), with an estimated position. The planner needs *sites* (masts) with radio
parameters. This module turns the one into the other:

1. :func:`read_opencellid_csv` reads an OpenCelliD CSV export (with or without a header line,
   optionally gzip-compressed) and reports every bad row at once.
2. :func:`load_operator_table` gives the MCC/MNC → operator name table (a table for Vietnam,
   MCC 452, ships with the package in ``layers/data/mcc_mnc.csv``).
3. :func:`cells_to_sites` groups the cells of each operator into sites by single-linkage
   clustering within :data:`DEFAULT_SITE_RADIUS_M` and fills the radio parameters that
   OpenCelliD does not know (frequency, antenna height, EIRP) from documented defaults
   (:class:`ImportDefaults`). The result satisfies the :data:`~telcoplan.layers.schemas.TOWERS`
   schema.

The OpenCelliD cell format (shared with the former Mozilla Location Service) has the columns
``radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal``:
radio technology, Mobile Country Code, Mobile Network Code (for CDMA: system id), location /
tracking area code (for CDMA: network id), cell id, PSC/PCI, position (WGS 84 decimal degrees),
estimated range (m), number of measurements, 0/1 (position given by the operator / computed from
measurements), first and last seen (Unix time, s) and the average signal (dBm, mostly 0).

This module is the public interface; the work is done in ``_cells_csv`` (reading and checking
the cells), ``_operator_table`` (the MCC/MNC table) and ``_cell_sites`` (grouping into sites).
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike

import geopandas as gpd

from telcoplan.layers._cell_sites import (
    DEFAULT_EIRP_DBM,
    DEFAULT_FREQUENCY_MHZ,
    DEFAULT_HEIGHT_M,
    DEFAULT_SITE_RADIUS_M,
    TECHNOLOGY_CHOICES,
    ImportDefaults,
    cells_to_sites,
)
from telcoplan.layers._cells_csv import OPENCELLID_COLUMNS, RADIO_TECHNOLOGY, read_opencellid_csv
from telcoplan.layers._operator_table import load_operator_table

__all__ = [
    "DEFAULT_EIRP_DBM",
    "DEFAULT_FREQUENCY_MHZ",
    "DEFAULT_HEIGHT_M",
    "DEFAULT_SITE_RADIUS_M",
    "OPENCELLID_COLUMNS",
    "RADIO_TECHNOLOGY",
    "TECHNOLOGY_CHOICES",
    "ImportDefaults",
    "cells_to_sites",
    "import_cells",
    "load_operator_table",
    "read_opencellid_csv",
]


def import_cells(
    path: str | PathLike[str],
    *,
    operators_csv: str | PathLike[str] | None = None,
    site_radius_m: float | None = None,
    height_m: float | None = None,
    technology: str = "best",
    frequency_mhz: Mapping[str, float] | None = None,
    eirp_dbm: Mapping[str, float] | None = None,
) -> gpd.GeoDataFrame:
    """Read an OpenCelliD CSV and group its cells into a towers layer (``telcoplan import-cells``).

    ``operators_csv`` (``mcc,mnc,operator``) extends / overrides the packaged MCC/MNC table;
    ``site_radius_m``, ``height_m``, ``frequency_mhz`` and ``eirp_dbm`` (per technology, e.g.
    ``{"4G": 2600.0}``) override the defaults of :class:`ImportDefaults`.
    Bad option values raise :class:`telcoplan.errors.PlanError` (a clean CLI message).
    """
    from telcoplan.errors import PlanError

    overrides: dict[str, float] = {}
    if site_radius_m is not None:
        overrides["site_radius_m"] = site_radius_m
    if height_m is not None:
        overrides["height_m"] = height_m
    if frequency_mhz:
        overrides["frequency_mhz"] = dict(frequency_mhz)
    if eirp_dbm:
        overrides["eirp_dbm"] = dict(eirp_dbm)
    try:
        defaults = ImportDefaults(**overrides)
    except ValueError as exc:
        raise PlanError(f"import-cells: {exc}") from None
    operators = None if operators_csv is None else load_operator_table(operators_csv)
    cells = read_opencellid_csv(path)
    return cells_to_sites(cells, operators=operators, defaults=defaults, technology=technology)
