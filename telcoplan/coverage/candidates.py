"""Coverage of candidate (hypothetical) towers: which demand cells each candidate would cover.

The site planner needs, for every candidate site, the set of cells that matter (populated,
not yet covered) that a tower there would cover. This module computes it with **the coverage
stage's engine**, so terrain and diffraction, a calibration's offsets and clutter losses apply
exactly as they do to existing towers: on flat earth
:func:`telcoplan.coverage.bestserver.best_server` with one group per candidate, on windows of
the grid; with terrain the tile kernel's evaluation of one tower, at the demand cells within
each candidate's radius only (:func:`telcoplan.coverage._kernel_terrain.candidate_power_kernel`,
prepared by :func:`telcoplan.coverage.bestserver.prepare_best_server`): the same bits.
"""

from __future__ import annotations

import logging
import math

import geopandas as gpd
import numpy as np
from affine import Affine
from scipy import sparse

from telcoplan._readonly import readonly
from telcoplan.coverage._progress import Progress
from telcoplan.coverage.bestserver import (
    auto_models,
    best_server,
    default_radius_km,
    prepare_best_server,
)
from telcoplan.coverage.propagation import MODELS, path_loss
from telcoplan.coverage.thresholds import METRIC_OFFSET_DB
from telcoplan.gis.grid import GridSpec

__all__ = ["candidate_coverage"]

log = logging.getLogger(__name__)

_GROUP = "_candidate"
_TILE = 32  # best_server's tile size here (cells): windows start on multiples of it
_PAIRS = 1 << 22  # candidate-cell pairs computed at a time with terrain (12 bytes each)
_PROGRESS_S = 10.0  # with terrain: progress logged at most this often (s)


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
        On flat earth, candidates computed per engine call: the peak memory is about
        ``chunk × window cells × 8`` bytes (power float32 and server int32 rasters). With
        terrain the candidates go in chunks of at most 4 M (candidate, cell) pairs of their
        radius' boxes (≈ 50 MB).
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
    On flat earth each chunk of candidates is one :func:`best_server` call grouped by a column
    unique per candidate, so every candidate's raster is its own received power; with terrain
    each candidate is evaluated at the demand cells within its radius, as the terrain kernel
    evaluates a group of that one tower (no grid-sized rasters: a tenth of the time on the
    city demo's 968 candidates). Either way these are the values the coverage stage would
    compute for a tower of these parameters, terrain, calibration and clutter included. The
    result does not depend on ``chunk``.
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
    radius_m = 1000.0 * float(
        max_radius_km
        if max_radius_km is not None
        else default_radius_km(np.array([float(frequency_mhz)]))[0]
    )
    xy = np.column_stack([candidates.geometry.x.to_numpy(), candidates.geometry.y.to_numpy()])
    # candidates in Z order of blocks of a radius: those computed together are near each other
    perm = np.argsort(_z_order(xy, max(radius_m, grid.resolution)), kind="stable")
    engine = {
        "model": model,
        "environment": environment,
        "h_rx_m": h_rx_m,
        "max_radius_km": max_radius_km,
        "group_by": _GROUP,
        "floor_dbm": floor,
        "tile_size": _TILE,
        "validity": "ignore",  # checked once for every candidate above
        "calibration": calibration,
        "diffraction": diffraction,
    }
    if dem is None:
        at, power = _in_windows(towers, grid, demand, perm, xy, radius_m, chunk, clutter_db, engine)
    else:
        at, power = _at_cells(towers, grid, demand, perm, dem, clutter_db, engine)
    # at: (candidate, demand position) of every power ≥ the floor (float32 comparisons)
    shape = (n, len(demand))
    covered = power >= threshold_power_dbm
    cov = _csr(at[0][covered], at[1][covered], None, shape, bool)
    if not return_power:
        return cov
    kept = power >= record
    return cov, _csr(at[0][kept], at[1][kept], power[kept], shape, np.float32)


def _in_windows(towers, grid, demand, perm, xy, radius_m, chunk, clutter_db, engine):
    """Flat earth: chunks of ``chunk`` nearby candidates (``perm``), each one
    :func:`best_server` call on a window of the grid — the chunk's extent plus the radius, plus
    a tile of margin — grouped by candidate. Returns ((candidate, demand position), power) of
    the pairs whose power (float32) is ≥ the floor."""
    rows, cols = np.divmod(demand, grid.width)
    cand, where, powers = [], [], []
    n = len(towers)
    n_chunks = math.ceil(n / chunk)
    for k, start in enumerate(range(0, n, chunk)):
        idx = perm[start : start + chunk]
        r0, c0, sub = _window(grid, xy[idx], radius_m)
        res = best_server(
            towers.iloc[idx],
            sub,
            clutter_db=(
                None
                if clutter_db is None
                else clutter_db[r0 : r0 + sub.height, c0 : c0 + sub.width]
            ),
            progress_label=f"candidate coverage, chunk {k + 1} of {n_chunks}",
            **engine,
        )
        # the demand cells in the window (the others are beyond every candidate's radius)
        inside = np.flatnonzero(
            (rows >= r0) & (rows < r0 + sub.height) & (cols >= c0) & (cols < c0 + sub.width)
        )
        # groups are the candidates' zero-padded positions: the matrix rows
        position = np.array([int(g) for g in res.groups], dtype=np.int64)
        power = res.power_dbm[:, rows[inside] - r0, cols[inside] - c0]
        del res
        with np.errstate(invalid="ignore"):
            i, j = np.nonzero(power >= engine["floor_dbm"])  # NaN below it
        cand.append(position[i])
        where.append(inside[j])
        powers.append(power[i, j])
        log.debug("candidate coverage: chunk %d of %d done", k + 1, n_chunks)
    return _joined(cand, where, powers)


def _at_cells(towers, grid, demand, perm, dem, clutter_db, engine):
    """With terrain: every candidate at the demand cells within its radius only
    (:func:`telcoplan.coverage._kernel_terrain.candidate_power_kernel`, prepared once for the
    whole grid by :func:`prepare_best_server`): the powers the tile kernel gives a group of one
    candidate, bit for bit, without its grid-sized rasters. Candidates in chunks of at most
    :data:`_PAIRS` cells of their radius' boxes. Returns as :func:`_in_windows`."""
    import numba

    from telcoplan.coverage import _kernel_terrain as kt

    if not len(towers) or not len(demand):
        return _joined([], [], [])
    a = prepare_best_server(
        towers, grid, dem=dem, clutter_db=clutter_db, **engine
    ).named_kernel_args()
    order = np.argsort(demand, kind="stable")
    rows, cols = np.divmod(demand[order], grid.width)
    row_ptr = np.searchsorted(rows, np.arange(grid.height + 1)).astype(np.int64)
    cols = readonly(cols.astype(np.int64))
    place = (a["x0"], a["y0"], a["res"], a["tx"], a["ty"])
    room = kt.box_counts(perm, *place, a["radius"], row_ptr, cols)
    keep = np.float32(engine["floor_dbm"])
    cand, where, powers = [], [], []
    ends = np.cumsum(room)  # the boxes' cells up to each candidate
    start = 0
    progress = Progress(log, "candidate coverage", len(perm), "candidates", every=_PROGRESS_S)
    while start < len(perm):
        # as many candidates as fit in _PAIRS cells (at least one)
        done = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, done + _PAIRS, "right")))
        chunk, box = perm[start:stop], room[start:stop]
        offsets = np.concatenate([[0], np.cumsum(box)]).astype(np.int64)
        out_pos = np.empty(offsets[-1], dtype=np.int64)
        out_power = np.empty(offsets[-1], dtype=np.float32)
        count = np.zeros(len(chunk), dtype=np.int64)
        with numba.parallel_chunksize(1):
            kt.candidate_power_kernel(
                readonly(chunk), readonly(offsets), *place, a["eirp"], a["radius"], a["dh"],
                a["azimuth"], a["beam"], a["tilt"], a["kind"], a["coef_a"], a["coef_b"],
                a["table_id"], a["tables"], a["table_step"], a["floor_dbm"], a["dem"], a["bmax"],
                a["h_abs_tx"], a["h_rx"], a["wavelength"], a["method"], a["clutter"],
                a["use_clutter"], readonly(row_ptr), cols, keep, out_pos, out_power, count,
            )  # fmt: skip
        first = np.repeat(offsets[:-1] - np.concatenate([[0], np.cumsum(count)[:-1]]), count)
        sel = np.arange(int(count.sum())) + first
        cand.append(np.repeat(chunk, count))
        where.append(order[out_pos[sel]])
        powers.append(out_power[sel])
        log.debug("candidate coverage: %d of %d candidates done", stop, len(perm))
        progress.update(stop)
        start = stop
    return _joined(cand, where, powers)


def _joined(
    cand: list, where: list, powers: list
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The pieces of :func:`_in_windows` / :func:`_at_cells` as one ((rows, columns), powers)."""
    if not cand:
        empty = np.zeros(0, dtype=np.int64)
        return (empty, empty), np.zeros(0, dtype=np.float32)
    return (np.concatenate(cand), np.concatenate(where)), np.concatenate(powers)


def _z_order(xy: np.ndarray, block: float) -> np.ndarray:
    """Z-order (Morton) key of each point's block of ``block`` m: points near each other in
    space get keys near each other."""
    if not len(xy):
        return np.zeros(0, dtype=np.uint64)
    b = np.floor((xy - xy.min(axis=0)) / block).astype(np.uint64)
    b = np.minimum(b, np.uint64(2**31 - 1))
    key = np.zeros(len(xy), dtype=np.uint64)
    for bit in range(31):
        one = np.uint64(1)
        key |= ((b[:, 0] >> np.uint64(bit)) & one) << np.uint64(2 * bit)
        key |= ((b[:, 1] >> np.uint64(bit)) & one) << np.uint64(2 * bit + 1)
    return key


def _window(grid: GridSpec, xy: np.ndarray, radius_m: float) -> tuple[int, int, GridSpec]:
    """(first row, first column, grid) of the part of ``grid`` within ``radius_m`` of the points
    plus a tile of margin, its first row and column multiples of the kernels' tile size: the
    window's tiles are the grid's, and every cell is computed as on the whole grid."""
    t = grid.transform
    res = grid.resolution
    pad = radius_m + _TILE * res
    c_lo = math.floor((xy[:, 0].min() - pad - t.c) / res)
    c_hi = math.ceil((xy[:, 0].max() + pad - t.c) / res)
    r_lo = math.floor((t.f - xy[:, 1].max() - pad) / res)
    r_hi = math.ceil((t.f - xy[:, 1].min() + pad) / res)
    c0 = max(0, c_lo - c_lo % _TILE)
    r0 = max(0, r_lo - r_lo % _TILE)
    c1 = min(grid.width, max(c_hi, c0 + 1))
    r1 = min(grid.height, max(r_hi, r0 + 1))
    if c0 >= c1 or r0 >= r1:  # every point far off the grid: one cell, reached by none
        c0, r0, c1, r1 = 0, 0, 1, 1
    sub = GridSpec(
        crs=grid.crs,
        transform=Affine(t.a, 0.0, t.c + c0 * t.a, 0.0, t.e, t.f + r0 * t.e),
        width=c1 - c0,
        height=r1 - r0,
        nodata=grid.nodata,
    )
    return r0, c0, sub


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray | None, shape, dtype):
    """A CSR matrix from COO arrays (True where ``values`` is None)."""
    v = np.ones(len(rows), dtype=bool) if values is None else values
    m = sparse.csr_matrix((v.astype(dtype), (rows, cols)), shape=shape, dtype=dtype)
    m.sort_indices()
    return m


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
