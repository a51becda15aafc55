"""Grouping OpenCelliD cells into operator sites: the towers layer.

:func:`cells_to_sites` clusters each operator's cells (single linkage, :func:`single_linkage`)
and gives the sites the radio parameters OpenCelliD lacks, from :class:`ImportDefaults`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer

from telcoplan.errors import LayerValidationError
from telcoplan.gis.crs import utm_crs_for
from telcoplan.layers._cells_csv import (
    CELLS_LAYER,
    RADIO_TECHNOLOGY,
    canonical_columns,
    missing_columns,
    parse_cells,
)
from telcoplan.layers._operator_table import load_operator_table
from telcoplan.layers.schemas import TECHNOLOGIES

__all__ = [
    "DEFAULT_EIRP_DBM",
    "DEFAULT_FREQUENCY_MHZ",
    "DEFAULT_HEIGHT_M",
    "DEFAULT_SITE_RADIUS_M",
    "TECHNOLOGY_CHOICES",
    "ImportDefaults",
    "cells_to_sites",
    "single_linkage",
]

# the public module's logger: warnings keep the name users filter on
log = logging.getLogger("telcoplan.layers.opencellid")

#: Values of the ``technology=`` argument of :func:`cells_to_sites` (also for a CLI choice).
TECHNOLOGY_CHOICES: tuple[str, ...] = ("best", "all", *TECHNOLOGIES)

#: Cells of one operator whose positions are within this distance (m) of each other, directly
#: or through a chain of such cells (single linkage), form one site. See :func:`cells_to_sites`.
DEFAULT_SITE_RADIUS_M = 50.0

#: Assumed carrier frequency (MHz) per technology: the bands most used in Vietnam
#: (GSM 900, UMTS band 1 at 2100, LTE band 3 at 1800, NR n78 at 3500).
DEFAULT_FREQUENCY_MHZ: Mapping[str, float] = MappingProxyType(
    {"2G": 900.0, "3G": 2100.0, "4G": 1800.0, "5G": 3500.0}
)

#: Assumed antenna height above ground (m) of a macro site.
DEFAULT_HEIGHT_M = 30.0

#: Assumed EIRP (dBm) per technology, antenna gain included: a macro sector with 20-40 W
#: (43-46 dBm) of transmit power, ~15-18 dBi of antenna gain and ~2-3 dB of feeder loss.
DEFAULT_EIRP_DBM: Mapping[str, float] = MappingProxyType(
    {"2G": 58.0, "3G": 58.0, "4G": 60.0, "5G": 62.0}
)

_SOURCE_NAME = "OpenCelliD"
#: Columns :func:`cells_to_sites` needs in its input frame.
_SITES_REQUIRED = ("radio", "mcc", "net", "lon", "lat")

_OUTPUT_COLUMNS = (
    "site_id",
    "operator",
    "technology",
    "frequency_mhz",
    "height_m",
    "eirp_dbm",
    "name",
    "n_cells",
    "technologies",
    "mcc",
    "mnc",
    "area",
    "samples",
    "source",
)


# ----------------------------------------------------------------------------- defaults
@dataclass(frozen=True)
class ImportDefaults:
    """Radio parameters that OpenCelliD does not provide, and the site grouping distance.

    Every value is an assumption, not a measurement: replace them with the operators' data
    when you have it. A dictionary may name only some technologies; the others keep their
    default values, e.g. ``ImportDefaults(frequency_mhz={"4G": 2600.0})``.

    Attributes
    ----------
    frequency_mhz : dict of str to float
        Carrier frequency (MHz) per technology ("2G", "3G", "4G", "5G"); defaults in
        :data:`DEFAULT_FREQUENCY_MHZ`.
    height_m : float
        Antenna height above ground (m) of every site; default :data:`DEFAULT_HEIGHT_M`.
    eirp_dbm : dict of str to float
        EIRP (dBm, antenna gain included) per technology; defaults in :data:`DEFAULT_EIRP_DBM`.
    site_radius_m : float
        Single-linkage distance (m) for grouping cells into sites; default
        :data:`DEFAULT_SITE_RADIUS_M`. 0 groups only cells at identical positions.

    Raises
    ------
    ValueError
        For an unknown technology or a value outside the towers schema's range
        (frequency 100-100,000 MHz, height 0-500 m, EIRP -30-90 dBm, radius ≥ 0 m).
    """

    frequency_mhz: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FREQUENCY_MHZ))
    height_m: float = DEFAULT_HEIGHT_M
    eirp_dbm: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EIRP_DBM))
    site_radius_m: float = DEFAULT_SITE_RADIUS_M

    def __post_init__(self) -> None:
        freq = _complete(
            self.frequency_mhz, DEFAULT_FREQUENCY_MHZ, "frequency_mhz", 100.0, 100_000.0, "MHz"
        )
        eirp = _complete(self.eirp_dbm, DEFAULT_EIRP_DBM, "eirp_dbm", -30.0, 90.0, "dBm")
        height = _number(self.height_m, "height_m")
        if not 0.0 < height <= 500.0:
            raise ValueError(
                f"height_m={self.height_m!r} m is out of range; give a height > 0 and ≤ 500 m"
            )
        radius = _number(self.site_radius_m, "site_radius_m")
        if radius < 0.0:
            raise ValueError(
                f"site_radius_m={self.site_radius_m!r} m is negative; give a distance ≥ 0 m"
            )
        object.__setattr__(self, "frequency_mhz", freq)
        object.__setattr__(self, "eirp_dbm", eirp)
        object.__setattr__(self, "height_m", height)
        object.__setattr__(self, "site_radius_m", radius)


def _number(value: object, name: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(out):
        raise ValueError(f"{name}={value!r} is not a finite number")
    return out


def _complete(
    given: Mapping[str, float],
    default: Mapping[str, float],
    name: str,
    lo: float,
    hi: float,
    unit: str,
) -> dict[str, float]:
    unknown = sorted(set(given) - set(TECHNOLOGIES))
    if unknown:
        raise ValueError(
            f"{name} has unknown technologies {unknown}; use keys among {', '.join(TECHNOLOGIES)}"
        )
    out = dict(default)
    for tech, value in given.items():
        v = _number(value, f"{name}[{tech!r}]")
        if not lo <= v <= hi:
            raise ValueError(
                f"{name}[{tech!r}]={value!r} {unit} is out of range ({lo:g}-{hi:g} {unit})"
            )
        out[tech] = v
    return out


# ----------------------------------------------------------------------------- sites
def cells_to_sites(
    cells: pd.DataFrame,
    *,
    operators: Mapping[tuple[int, int], str] | None = None,
    defaults: ImportDefaults | None = None,
    technology: str = "best",
) -> gpd.GeoDataFrame:
    """Group OpenCelliD cells into operator sites and give them radio parameters.

    Parameters
    ----------
    cells
        One row per cell, as returned by :func:`read_opencellid_csv`; needs the columns
        ``radio, mcc, net, lon, lat`` (``area``, ``cell`` and ``samples`` are used when
        present). Text values are accepted and checked like the file reader does; rows in
        problems are 1-based positions in ``cells``. Not modified.
    operators
        ``{(mcc, mnc): name}`` entries that override or extend the packaged table
        (:func:`load_operator_table`; pass ``load_operator_table("my.csv")`` to use your own
        CSV). A network found in neither is named ``f"MCC{mcc}-MNC{mnc:02d}"`` and logged as
        a warning.
    defaults
        Assumed radio parameters and the grouping distance; :class:`ImportDefaults` () when
        None.
    technology
        Which rows to return (:data:`TECHNOLOGY_CHOICES`):

        - ``"best"`` (default): one row per site, for its most recent technology
          (5G > 4G > 3G > 2G) — one tower per mast, e.g. for best-coverage studies.
        - ``"all"``: one row per site and technology present at it (a mast with GSM and LTE
          cells gives a 2G and a 4G row at the same point) — for per-technology coverage.
        - ``"2G"``, ``"3G"``, ``"4G"`` or ``"5G"``: the rows of that technology only.

        Sites are formed from all of an operator's cells in every case, so a site keeps its
        number (and its ``site_id``) whatever is chosen.

    Returns
    -------
    geopandas.GeoDataFrame
        Points in EPSG:4326 with the :data:`~telcoplan.layers.schemas.TOWERS` columns

        - ``site_id``: ``f"{operator}-{n:05d}-{technology}"``, e.g. ``"Viettel-00012-4G"``
          (operator name reduced to letters and digits; n numbers the operator's sites from
          west to east, from 1);
        - ``operator``, ``technology``, ``frequency_mhz`` (MHz), ``height_m`` (m),
          ``eirp_dbm`` (dBm) from ``defaults``; ``name`` (``"Viettel site 00012"``);

        and the extra columns ``n_cells`` (cells of this technology at the site),
        ``technologies`` (all technologies at the site, e.g. ``"2G,4G"``), ``mcc``, ``mnc``
        and ``area`` (LAC/TAC; the most frequent among the row's cells, smallest on ties;
        ``area`` is <NA> when ``cells`` has none), ``samples`` (sum over the row's cells) and
        ``source`` (``"OpenCelliD"``). Sorted by operator, technology, then longitude and
        latitude; default RangeIndex. Empty (with these columns) when ``cells`` is.

    Raises
    ------
    LayerValidationError
        ``cells`` lacks a required column or has bad values (every problem listed).
    ValueError
        ``technology`` is not one of :data:`TECHNOLOGY_CHOICES`.

    Notes
    -----
    **Site rule.** Two cells of the same operator belong to the same site when their
    positions are at most ``defaults.site_radius_m`` (default 50 m) apart, directly or
    through a chain of such cells (single-linkage clustering; the sites are the connected
    components of the "within the radius" graph). The sectors and carriers of one mast
    (typically 3 sectors × 1-3 technologies) are separate cells in OpenCelliD, and their
    positions are estimates averaged from phone measurements that scatter by tens of
    metres around the mast, while macro masts of one operator in a dense city are rarely
    closer than 150-300 m. 50 m merges the first without merging the second; raise it for
    noisy rural data, lower it in very dense networks. Operators are never merged: shared
    masts are found later, by the sharing analysis.

    Distances are computed in the UTM zone of the centre of each operator's cells
    (:func:`~telcoplan.gis.crs.utm_crs_for`), with a k-d tree (``scipy.spatial.cKDTree``
    ``query_pairs``) and ``scipy.sparse.csgraph.connected_components``: O(n log n) plus the
    number of close pairs (100,000 cells take a couple of seconds).

    **Site position** is the mean of its cells' projected positions weighted by their number
    of measurements (``samples``; a cell with 0 or no samples weighs like one sample), back
    in longitude / latitude.

    **Radio parameters** (frequency, antenna height, EIRP) are not in OpenCelliD; they come
    from ``defaults`` and are assumptions to be replaced by operator data. The output is
    the same whatever the order of the input rows.

    References: OpenCelliD database format, https://wiki.opencellid.org/wiki/Database_format;
    column meanings, https://community.opencellid.org/t/186.
    """
    if technology not in TECHNOLOGY_CHOICES:
        raise ValueError(f"technology={technology!r} is not one of {', '.join(TECHNOLOGY_CHOICES)}")
    defaults = ImportDefaults() if defaults is None else defaults
    table = load_operator_table()
    if operators is not None:
        table.update({(int(m), int(n)): str(name) for (m, n), name in operators.items()})

    frame = canonical_columns(cells)
    problems = missing_columns(frame.columns, _SITES_REQUIRED, cells.columns, header=False)
    parsed, row_problems = parse_cells(frame, np.arange(1, len(frame) + 1))
    problems += row_problems
    if problems:
        raise LayerValidationError("<cells>", CELLS_LAYER, problems)
    if len(parsed) == 0:
        return _empty_sites()

    work = pd.DataFrame(
        {
            "technology": pd.Series(parsed["radio"]).map(dict(RADIO_TECHNOLOGY)).to_numpy(),
            "mcc": parsed["mcc"].to_numpy(),
            "mnc": parsed["net"].to_numpy(),
            "area": parsed["area"].to_numpy() if "area" in parsed else np.full(len(parsed), -1),
            "cell": parsed["cell"].to_numpy() if "cell" in parsed else np.full(len(parsed), -1),
            "samples": parsed["samples"].to_numpy()
            if "samples" in parsed
            else np.zeros(len(parsed), np.int64),
            "lon": parsed["lon"].to_numpy(),
            "lat": parsed["lat"].to_numpy(),
        }
    )
    work["operator"] = _operator_names(work["mcc"].to_numpy(), work["mnc"].to_numpy(), table)
    # a canonical order makes every later step independent of the input's row order
    work = work.sort_values(
        ["operator", "lon", "lat", "mcc", "mnc", "area", "cell", "technology", "samples"],
        kind="mergesort",
    ).reset_index(drop=True)

    sites = _cluster_sites(work, defaults.site_radius_m)  # also sets work["site"]
    rows = _site_technology_rows(work)
    if technology == "best":
        rows = rows.sort_values(["site", "technology"])
        older = rows[rows.duplicated("site", keep="last")]  # a newer technology at the site
        rows = rows.drop_duplicates("site", keep="last")
        if len(older):
            counts = older.groupby("technology")["n_cells"].agg(["size", "sum"])
            log.warning(
                "%d of %d sites also carry older technologies, modelled only by their newest "
                "(%s): telcoplan import-cells --technology all (technology='all') models each, "
                "e.g. for the coverage by generation (2G+, 3G+ …); an older technology's "
                "coverage then counts as service, unless the plan's gaps stage says which "
                "(stages.gaps.technology: 4G)",
                older["site"].nunique(),
                rows["site"].nunique(),
                ", ".join(
                    f"{t} at {int(n)} sites, {int(c)} cells" for t, (n, c) in counts.iterrows()
                ),
            )
    elif technology != "all":
        rows = rows[rows["technology"] == technology]
    if rows.empty:
        return _empty_sites()

    rows = rows.merge(sites, on="site", how="left", validate="many_to_one")
    rows = rows.sort_values(["operator", "technology", "lon", "lat", "n"], kind="mergesort")
    return _towers_frame(rows, defaults, has_area="area" in parsed)


def _towers_frame(
    rows: pd.DataFrame, defaults: ImportDefaults, *, has_area: bool
) -> gpd.GeoDataFrame:
    """The output layer from the (site, technology) rows joined with their sites."""
    tech = rows["technology"].to_numpy(dtype=object)
    operator = rows["operator"].to_numpy(dtype=object)
    slug = rows["slug"].to_numpy(dtype=object)
    number = rows["n"].to_numpy(dtype=np.int64).tolist()
    area = rows["area"].to_numpy(dtype=np.int64)
    out = pd.DataFrame(
        {
            "site_id": [f"{s}-{n:05d}-{t}" for s, n, t in zip(slug, number, tech, strict=True)],
            "operator": operator,
            "technology": tech,
            "frequency_mhz": np.array([defaults.frequency_mhz[t] for t in tech], dtype=float),
            "height_m": np.full(len(rows), defaults.height_m),
            "eirp_dbm": np.array([defaults.eirp_dbm[t] for t in tech], dtype=float),
            "name": [f"{o} site {n:05d}" for o, n in zip(operator, number, strict=True)],
            "n_cells": rows["n_cells"].to_numpy(dtype=np.int64),
            "technologies": rows["technologies"].to_numpy(dtype=object),
            "mcc": rows["mcc"].to_numpy(dtype=np.int64),
            "mnc": rows["mnc"].to_numpy(dtype=np.int64),
            "area": pd.array(area, dtype="Int64")
            if has_area
            else pd.array([None] * len(rows), dtype="Int64"),
            "samples": rows["samples"].to_numpy(dtype=np.int64),
            "source": _SOURCE_NAME,
        }
    )
    geometry = gpd.points_from_xy(rows["lon"].to_numpy(), rows["lat"].to_numpy(), crs="EPSG:4326")
    return gpd.GeoDataFrame(out, geometry=geometry, crs="EPSG:4326")


def _operator_names(
    mcc: np.ndarray, mnc: np.ndarray, table: Mapping[tuple[int, int], str]
) -> np.ndarray:
    plmn, inverse, counts = np.unique(
        np.column_stack([mcc, mnc]), axis=0, return_inverse=True, return_counts=True
    )
    names = []
    for (m, n), count in zip(plmn.tolist(), counts.tolist(), strict=True):
        name = table.get((m, n))
        if name is None:
            name = f"MCC{m}-MNC{n:02d}"
            log.warning(
                "OpenCelliD import: no operator name for MCC %d / MNC %02d (%d cells); "
                "calling it %r. "
                "Name it with operators={(%d, %d): 'Name'} or an operator CSV.",
                m,
                n,
                count,
                name,
                m,
                n,
            )
        names.append(name)
    return np.asarray(names, dtype=object)[inverse.ravel()]


def single_linkage(xy: np.ndarray, radius_m: float) -> np.ndarray:
    """Single-linkage cluster labels of projected points (m): 0, 1, … in order of first point.

    Two points are linked when at most ``radius_m`` apart; clusters are the connected
    components of that graph. Identical points are merged before the k-d tree is built.
    """
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    unique, inverse = np.unique(xy, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    m = len(unique)
    pairs = cKDTree(unique).query_pairs(radius_m, output_type="ndarray")
    graph = coo_array(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(m, m)
    )
    _, component = connected_components(graph, directed=False)
    labels = component[inverse]
    _, first = np.unique(labels, return_index=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[labels]


def _cluster_sites(work: pd.DataFrame, radius_m: float) -> pd.DataFrame:
    """Cluster each operator's cells; set ``work["site"]``; return one row per site."""
    site = np.empty(len(work), dtype=np.int64)
    parts = []
    offset = 0
    for operator, idx in work.groupby("operator", sort=True).indices.items():
        lon = work["lon"].to_numpy()[idx]
        lat = work["lat"].to_numpy()[idx]
        centre_lon = (lon.min() + lon.max()) / 2.0
        centre_lat = min(max((lat.min() + lat.max()) / 2.0, -80.0), 84.0)
        crs = utm_crs_for(float(centre_lon), float(centre_lat))
        x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
        labels = single_linkage(np.column_stack([x, y]), radius_m)
        k = int(labels.max()) + 1
        weight = np.maximum(work["samples"].to_numpy()[idx], 1).astype(float)
        total = np.bincount(labels, weight, minlength=k)
        cx = np.bincount(labels, weight * x, minlength=k) / total
        cy = np.bincount(labels, weight * y, minlength=k) / total
        slon, slat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(cx, cy)
        site[idx] = offset + labels
        parts.append(
            pd.DataFrame(
                {
                    "site": offset + np.arange(k),
                    "operator": operator,
                    "lon": np.asarray(slon, dtype=float),
                    "lat": np.asarray(slat, dtype=float),
                }
            )
        )
        offset += k
    work["site"] = site
    sites = pd.concat(parts, ignore_index=True)
    slugs = {o: re.sub(r"[^0-9A-Za-z]+", "", o) or "operator" for o in work["operator"].unique()}
    sites["slug"] = sites["operator"].map(slugs)
    # number sites from 1 per id prefix, west to east (ties: south to north, then first cell)
    sites = sites.sort_values(["slug", "operator", "lon", "lat", "site"], kind="mergesort")
    sites["n"] = sites.groupby("slug", sort=False).cumcount() + 1
    # technologies present at each site, as a bit mask over TECHNOLOGIES, then as text
    bit = (
        work["technology"]
        .map({t: 1 << k for k, t in enumerate(TECHNOLOGIES)})
        .to_numpy(dtype=np.int64)
    )
    mask = np.zeros(offset, dtype=np.int64)
    np.bitwise_or.at(mask, site, bit)
    names = [
        ",".join(t for k, t in enumerate(TECHNOLOGIES) if m >> k & 1)
        for m in range(1 << len(TECHNOLOGIES))
    ]
    sites["technologies"] = np.asarray(names, dtype=object)[mask[sites["site"].to_numpy()]]
    return sites.reset_index(drop=True)


def _site_technology_rows(work: pd.DataFrame) -> pd.DataFrame:
    """One row per (site, technology): cell count, summed samples, majority PLMN and area."""
    keys = ["site", "technology"]
    rows = (
        work.groupby(keys, sort=True)
        .agg(n_cells=("lon", "size"), samples=("samples", "sum"))
        .reset_index()
    )
    for cols in (["mcc", "mnc"], ["area"]):
        counts = work.groupby([*keys, *cols], sort=True).size().rename("count").reset_index()
        counts = counts.sort_values(
            [*keys, "count", *cols],
            ascending=[True, True, False, *[True] * len(cols)],
            kind="mergesort",
        )
        rows = rows.merge(
            counts.drop_duplicates(keys)[[*keys, *cols]], on=keys, how="left", validate="one_to_one"
        )
    return rows


def _empty_sites() -> gpd.GeoDataFrame:
    dtypes = {
        "site_id": object,
        "operator": object,
        "technology": object,
        "frequency_mhz": float,
        "height_m": float,
        "eirp_dbm": float,
        "name": object,
        "n_cells": np.int64,
        "technologies": object,
        "mcc": np.int64,
        "mnc": np.int64,
        "area": "Int64",
        "samples": np.int64,
        "source": object,
    }
    frame = pd.DataFrame({c: pd.Series([], dtype=dtypes[c]) for c in _OUTPUT_COLUMNS})
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs="EPSG:4326"), crs="EPSG:4326")
