"""Coverage per operator, and population covered per area (ITU SDG 9.c.1 conventions).

The serving tower of an operator at a cell is the one with the largest **margin** over its own
technology's threshold (``telcoplan.coverage.thresholds``): margin = P + offset(tech) −
threshold(tech). A cell is covered by an operator when that margin is ≥ 0. The operator's signal
raster holds the total received power P of that serving carrier (dBm).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.coverage.bestserver import best_server
from telcoplan.coverage.thresholds import Thresholds
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.zonal import label_polygons, zonal_sum_labels

__all__ = ["CoverageResult", "compute_coverage", "population_covered", "technology_rank"]

log = logging.getLogger(__name__)

#: Generations in order; "covered by 4G" in SDG 9.c.1 terms means 4G or better (LTE+).
TECHNOLOGY_ORDER = ("2G", "3G", "4G", "5G")
#: Values of :attr:`CoverageResult.limit`.
LIMIT_COVERED, LIMIT_DISTANCE, LIMIT_TERRAIN = 0, 1, 2
#: Cells more than this far (dB) below the threshold are recorded as having no signal.
MARGIN_FLOOR_DB = -60.0


def technology_rank(tech: str) -> int:
    return TECHNOLOGY_ORDER.index(tech)


@dataclass(frozen=True)
class CoverageResult:
    """Coverage rasters on ``grid``.

    Attributes
    ----------
    operators : tuple of str
        First axis of the per-operator arrays.
    power_dbm : numpy.ndarray
        float32 (n_ops, H, W): total received power of the serving carrier (NaN: no signal).
    margin_db : numpy.ndarray
        float32 (n_ops, H, W): serving carrier's margin over its technology threshold (dB).
    server : numpy.ndarray
        int32 (n_ops, H, W): position of the serving tower in ``site_ids`` (−1: none).
    covered : numpy.ndarray
        bool (n_ops, H, W): margin ≥ 0.
    best_technology : numpy.ndarray
        int8 (H, W): highest generation (0=2G … 3=5G) covering the cell by any operator, −1 none.
    limit : numpy.ndarray or None
        uint8 (H, W), with a DEM only: 0 covered by some operator, 1 not covered because of
        distance (not even on flat earth), 2 not covered because of terrain (flat earth would be).
    """

    grid: GridSpec
    operators: tuple[str, ...]
    power_dbm: np.ndarray
    margin_db: np.ndarray
    server: np.ndarray
    covered: np.ndarray
    best_technology: np.ndarray
    site_ids: np.ndarray
    thresholds: Thresholds
    limit: np.ndarray | None = None

    @property
    def operator_count(self) -> np.ndarray:
        """uint8 (H, W): number of operators covering each cell."""
        return self.covered.sum(axis=0).astype(np.uint8)

    @property
    def covered_any(self) -> np.ndarray:
        return self.covered.any(axis=0)


def compute_coverage(
    towers: gpd.GeoDataFrame,
    grid: GridSpec,
    *,
    thresholds: Thresholds | None = None,
    model: str = "auto",
    environment: str = "urban",
    h_rx_m: float = 1.5,
    max_radius_km: float | None = None,
    validity: str = "warn",
    tile_size: int = 32,
    calibration: tuple[float, float] | None = None,
    dem: np.ndarray | None = None,
    diffraction: str = "bullington",
    clutter_db: np.ndarray | None = None,
) -> CoverageResult:
    """Per-operator coverage of ``towers`` on ``grid`` (see the module docstring).

    ``towers`` must be validated (index ``site_id``) and in ``grid.crs``; the frame is not
    modified. With a ``dem`` (ground elevation on ``grid``, m) paths whose line of sight the
    terrain obstructs lose their diffraction loss (``diffraction`` method), and
    :attr:`CoverageResult.limit` tells, for every uncovered cell, whether distance or terrain
    ends the coverage (whether some tower covers it on flat earth). ``clutter_db`` (dB per
    cell, e.g. a calibration's clutter offsets on a land-use raster) is added to the loss of
    every path ending in the cell, with and without terrain.

    One kernel run computes everything, from the same tiles and tower candidates: the best
    server by margin per operator, the highest generation with a margin ≥ 0 (each tower
    carries its generation) and, with a DEM, the flat-earth coverage.
    """
    thr = thresholds or Thresholds()
    tech = (
        towers["technology"].astype(str).str.upper().to_numpy()
        if len(towers)
        else np.array([], dtype=object)
    )
    kw = {
        "model": model,
        "environment": environment,
        "h_rx_m": h_rx_m,
        "max_radius_km": max_radius_km,
        "tile_size": tile_size,
        "calibration": calibration,
        "dem": dem,
        "diffraction": diffraction,
        "clutter_db": clutter_db,
    }
    log.info(
        "coverage: best server per operator, generations%s", " and flat earth" * (dem is not None)
    )
    power, margin, server, covered, groups, site_ids, best_tech, flat = _operator_margins(
        towers, grid, thr, tech, validity, kw | {"progress_label": "best server per operator"}
    )
    limit = None
    if dem is not None:
        limit = np.where(
            covered.any(axis=0), LIMIT_COVERED, np.where(flat, LIMIT_TERRAIN, LIMIT_DISTANCE)
        ).astype(np.uint8)
    return CoverageResult(
        grid=grid,
        operators=groups,
        power_dbm=power,
        margin_db=margin,
        server=server,
        covered=covered,
        best_technology=best_tech,
        site_ids=site_ids,
        thresholds=thr,
        limit=limit,
    )


def _operator_margins(towers, grid, thr, tech, validity, kw):
    """Best server by margin over each tower's technology threshold, per operator; the highest
    generation with a margin ≥ 0 per cell; with a DEM, whether some tower has a margin ≥ 0 on
    flat earth. One kernel run: the three come from the same tiles and candidates."""
    power_thr = np.array([thr.power_threshold(t) for t in tech], dtype=np.float64)
    shifted = towers.copy()
    shifted["eirp_dbm"] = towers["eirp_dbm"].to_numpy(dtype=np.float64) - power_thr
    res = best_server(
        shifted,
        grid,
        group_by="operator",
        floor_dbm=MARGIN_FLOOR_DB,
        validity=validity,
        coverage_rank=np.array([technology_rank(t) for t in tech], dtype=np.int64),
        coverage_dbm=0.0,
        **kw,
    )
    margin = res.power_dbm
    server = res.server
    # power = margin + the serving tower's threshold, covered = margin ≥ 0 (NaN: False)
    from telcoplan.coverage._kernel import serving_power

    power = np.empty_like(margin)
    covered = np.empty(margin.shape, dtype=bool)
    serving_power(margin, server, power_thr.astype(np.float32), power, covered)
    return power, margin, server, covered, res.groups, res.site_ids, res.best_rank, res.flat_covered


def population_covered(
    coverage: CoverageResult,
    population: np.ndarray,
    areas: gpd.GeoDataFrame,
) -> pd.DataFrame:
    """Persons covered per area: per operator, by any operator, by the best single operator.

    Returns one row per area (index = the areas' index) with columns ``population``,
    ``covered_<operator>``, ``covered_any``, ``uncovered_any``, ``covered_best_single``,
    ``best_single_operator``, ``covered_2G_plus`` … ``covered_5G_plus``. ``covered_any`` and
    ``uncovered_any`` are separate zonal sums (over the covered and the uncovered cells); every row
    satisfies ``covered_any + uncovered_any == population`` (population conserved) to float
    tolerance, else a ``RuntimeError`` is raised (a bug, not a data problem). NaN persons count as 0.

    Notes
    -----
    ITU SDG 9.c.1 counts people within range of a mobile signal, by technology; with several
    operators it reports the maximum population covered by one operator, hence
    ``covered_best_single`` (per area, the largest single-operator figure) beside the union.
    """
    labels = label_polygons(areas, coverage.grid)
    n = len(areas)
    pop = np.where(np.isfinite(population), population, 0.0)
    out = pd.DataFrame(index=areas.index)
    out["population"] = zonal_sum_labels(pop, labels, n)
    per_op = np.zeros((len(coverage.operators), n))
    for i, op in enumerate(coverage.operators):
        per_op[i] = zonal_sum_labels(np.where(coverage.covered[i], pop, 0.0), labels, n)
        out[f"covered_{op}"] = per_op[i]
    any_cov = coverage.covered_any
    out["covered_any"] = zonal_sum_labels(np.where(any_cov, pop, 0.0), labels, n)
    # summed over the uncovered cells, not taken as the difference: conservation is checked
    out["uncovered_any"] = zonal_sum_labels(np.where(any_cov, 0.0, pop), labels, n)
    _check_conserved(out)
    if len(coverage.operators):
        best = per_op.argmax(axis=0)
        out["covered_best_single"] = per_op.max(axis=0)
        out["best_single_operator"] = [coverage.operators[b] for b in best]
    else:
        out["covered_best_single"] = 0.0
        out["best_single_operator"] = None
    for k, t in enumerate(TECHNOLOGY_ORDER):
        out[f"covered_{t}_plus"] = zonal_sum_labels(
            np.where(coverage.best_technology >= k, pop, 0.0), labels, n
        )
    return out


def _check_conserved(table: pd.DataFrame) -> None:
    """Raise when ``covered_any + uncovered_any`` differs from ``population`` in some area.

    The three columns are separate zonal sums of the same finite population, so they differ only
    by float rounding (relative 1e-7, absolute 1e-6 persons); anything more is a bug.
    """
    total = table["covered_any"].to_numpy() + table["uncovered_any"].to_numpy()
    pop = table["population"].to_numpy()
    bad = ~np.isclose(total, pop, rtol=1e-7, atol=1e-6)
    if bad.any():
        lines = [
            f"  - area {idx!r}: covered {c:.6f} + uncovered {u:.6f} != population {p:.6f}"
            for idx, c, u, p in zip(
                table.index[bad],
                table["covered_any"].to_numpy()[bad],
                table["uncovered_any"].to_numpy()[bad],
                pop[bad],
                strict=True,
            )
        ]
        raise RuntimeError(
            "population not conserved (a telcoplan bug; please report it):\n" + "\n".join(lines)
        )
