"""Coverage of candidate (hypothetical) towers: which demand cells each candidate would cover.

The site planner needs, for every candidate site, the set of cells that matter (populated,
not yet covered) that a tower there would cover. This module computes it with **the coverage
stage's engine** — :func:`telcoplan.coverage.bestserver.best_server`, one group per candidate —
so terrain and diffraction, a calibration's offsets and clutter losses apply exactly as they do
to existing towers.
"""

from __future__ import annotations

import logging
import math

import geopandas as gpd
import numpy as np
from scipy import sparse

from telcoplan.coverage.bestserver import auto_models, best_server
from telcoplan.coverage.propagation import MODELS, path_loss
from telcoplan.coverage.thresholds import METRIC_OFFSET_DB
from telcoplan.gis.grid import GridSpec

__all__ = ["candidate_coverage"]

log = logging.getLogger(__name__)

_GROUP = "_candidate"


def candidate_coverage(
    candidates: gpd.GeoDataFrame,
    grid: GridSpec,
    demand: np.ndarray,
    *,
    threshold_power_dbm: float,
    technology: str = "4G",
    frequency_mhz: float = 1800.0,
    height_m: float = 30.0,
    eirp_dbm: float = 60.0,
    model: str = "auto",
    environment: str = "urban",
    h_rx_m: float = 1.5,
    max_radius_km: float | None = None,
    dem: np.ndarray | None = None,
    diffraction: str = "bullington",
    calibration: tuple[float, float] | None = None,
    clutter_db: np.ndarray | None = None,
    chunk: int = 64,
    return_power: bool = False,
    power_floor_dbm: float | None = None,
    validity: str = "warn",
) -> sparse.csr_matrix | tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Which demand cells a tower at each candidate would cover.

    Parameters
    ----------
    candidates
        Candidate sites (points, :mod:`telcoplan.sites.candidates`) in ``grid.crs``, with a
        unique index; an optional ``max_height_m`` column caps a candidate's antenna height.
    grid
        The plan grid.
    demand
        Flat (row-major) indices of the grid cells that matter, e.g. populated cells not yet
        covered: ``np.flatnonzero(population.ravel() > 0 & ~covered.ravel())``. The matrix
        columns follow this order.
    threshold_power_dbm
        Coverage threshold on **total received power** (dBm), e.g.
        ``Thresholds(indoor=...).power_threshold(technology)``: a cell is covered when the
        candidate's power there is ≥ this.
    technology, frequency_mhz, height_m, eirp_dbm
        The radio every candidate would carry: technology, carrier (MHz), antenna height above
        ground (m; a candidate's smaller ``max_height_m`` wins), EIRP incl. antenna gain
        (dBm). Omnidirectional antennas.
    model, environment, h_rx_m, max_radius_km, dem, diffraction, calibration, clutter_db
        As for :func:`~telcoplan.coverage.bestserver.best_server` (and the coverage stage):
        propagation model (``"auto"`` picks by band), environment, receiver height (m), radius
        (km; default by band), ground elevation on ``grid`` (m) for terrain diffraction, the
        diffraction method, a calibration's (intercept, slope) offsets (dB), per-cell clutter
        loss (dB).
    chunk
        Candidates computed per engine call: the peak memory is about
        ``chunk × grid cells × 8`` bytes (power float32 and server int32 rasters).
    return_power
        Also return the power matrix.
    power_floor_dbm
        With ``return_power``: powers are recorded where ≥ this (dBm; default the threshold,
        so the power matrix has the same entries as the coverage matrix).
    validity
        What the propagation model does outside its validity range (e.g. COST-231 Hata below
        30 m masts): ``"warn"`` (once for all candidates), ``"error"`` or ``"ignore"``.

    Returns
    -------
    scipy.sparse.csr_matrix or (csr_matrix, csr_matrix)
        bool (n_candidates × len(demand)): True where the candidate covers the demand cell.
        With ``return_power``, also float32 of the same shape: the candidate's received power
        (dBm) at each demand cell where it is ≥ ``power_floor_dbm``, stored explicitly (a power
        of exactly 0 dBm is stored too; test membership with the sparsity pattern, not
        ``!= 0``).

    Notes
    -----
    Each chunk of candidates is one :func:`best_server` call grouped by a column unique per
    candidate, so every candidate's raster is its own received power — the same values the
    coverage stage would compute for a tower of these parameters, terrain, calibration and
    clutter included. The result does not depend on ``chunk``.
    """
    if technology not in METRIC_OFFSET_DB:
        raise ValueError(
            f"unknown technology {technology!r}; use one of {', '.join(METRIC_OFFSET_DB)}"
        )
    if model not in MODELS and model != "auto":
        raise ValueError(
            f"unknown propagation model {model!r}; choose auto or one of {', '.join(MODELS)}"
        )
    if not math.isfinite(threshold_power_dbm):
        raise ValueError(f"threshold_power_dbm must be a number (dBm), got {threshold_power_dbm}")
    chunk = int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be ≥ 1, got {chunk}")
    if not candidates.index.is_unique:
        raise ValueError("candidates must have a unique index (candidate_id)")
    if len(candidates) and not (candidates.geom_type == "Point").all():
        raise ValueError("candidates must be points")
    cells = grid.width * grid.height
    demand = np.asarray(demand)
    if demand.ndim != 1 or (demand.size and not np.issubdtype(demand.dtype, np.integer)):
        raise ValueError("demand must be a 1-D array of integer cell indices (row-major)")
    demand = demand.astype(np.int64)
    if demand.size and (demand.min() < 0 or demand.max() >= cells):
        raise ValueError(f"demand cell indices must lie in 0 … {cells - 1} (the grid's cells)")
    floor = float(threshold_power_dbm)
    if return_power and power_floor_dbm is not None:
        floor = min(floor, float(power_floor_dbm))
    record = float(threshold_power_dbm if power_floor_dbm is None else power_floor_dbm)

    n = len(candidates)
    height = np.full(n, float(height_m))
    if "max_height_m" in candidates.columns:
        cap = candidates["max_height_m"].to_numpy(dtype=np.float64, na_value=np.nan)
        height = np.where(np.isfinite(cap) & (cap < height), cap, height)
    towers = gpd.GeoDataFrame(
        {
            _GROUP: [f"{k:09d}" for k in range(n)],
            "technology": technology,
            "frequency_mhz": float(frequency_mhz),
            "height_m": height,
            "eirp_dbm": float(eirp_dbm),
        },
        geometry=candidates.geometry.to_numpy(),
        index=candidates.index,
        crs=candidates.crs,
    )
    _check_validity(model, environment, float(frequency_mhz), height, h_rx_m, validity)
    rows, cols = np.divmod(demand, grid.width)
    cov_parts: list[sparse.coo_matrix] = []
    pow_parts: list[sparse.coo_matrix] = []
    n_chunks = math.ceil(n / chunk)
    for k, start in enumerate(range(0, n, chunk)):
        part = towers.iloc[start : start + chunk]
        res = best_server(
            part,
            grid,
            model=model,
            environment=environment,
            h_rx_m=h_rx_m,
            max_radius_km=max_radius_km,
            group_by=_GROUP,
            floor_dbm=floor,
            validity="ignore",  # checked once for every candidate above
            calibration=calibration,
            dem=dem,
            diffraction=diffraction,
            clutter_db=clutter_db,
            progress_label=f"candidate coverage, chunk {k + 1} of {n_chunks}",
        )
        # groups are sorted labels: the zero-padded positions keep the candidates' order
        order = np.array([int(g) for g in res.groups], dtype=np.int64) - start
        power = np.full((len(part), len(demand)), np.nan, dtype=np.float32)
        power[order] = res.power_dbm[:, rows, cols]
        del res
        with np.errstate(invalid="ignore"):
            covered = power >= threshold_power_dbm
        cov_parts.append(sparse.coo_matrix(covered))
        if return_power:
            with np.errstate(invalid="ignore"):
                r, c = np.nonzero(power >= record)
            pow_parts.append(
                sparse.coo_matrix((power[r, c], (r, c)), shape=power.shape, dtype=np.float32)
            )
        log.debug("candidate coverage: chunk %d of %d done", k + 1, n_chunks)
    shape = (n, len(demand))
    cov = (
        sparse.vstack(cov_parts, format="csr", dtype=bool)
        if cov_parts
        else sparse.csr_matrix(shape, dtype=bool)
    )
    if not return_power:
        return cov
    pw = (
        sparse.vstack(pow_parts, format="csr", dtype=np.float32)
        if pow_parts
        else sparse.csr_matrix(shape, dtype=np.float32)
    )
    return cov, pw


def _check_validity(
    model: str, environment: str, freq: float, heights: np.ndarray, h_rx_m: float, validity: str
) -> None:
    """The model's validity range, checked once for every candidate (not once per chunk)."""
    if validity == "ignore" or not len(heights):
        return
    h = np.unique(heights)
    name = str(auto_models(np.array([freq]), [environment])[0]) if model == "auto" else model
    path_loss(
        name,
        freq_mhz=freq,
        distance_km=1.0,
        h_tx_m=h,
        h_rx_m=h_rx_m,
        environment=environment,
        validity=validity,  # type: ignore[arg-type]
        check_distance=False,
    )
