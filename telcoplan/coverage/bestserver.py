"""Best-server rasters: the strongest received power per operator and the site that gives it.

Convention: powers are **total received power** at the receiver in dBm,
P_rx = EIRP − L_path(d) + A(φ, θ), with EIRP including the antenna's maximum gain and A the
pattern attenuation (≤ 0 dB). Thresholds (``telcoplan.coverage.thresholds``) are stated on the
same quantity.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.coverage.antenna import PHI_3DB_DEG
from telcoplan.coverage.propagation import MODELS, path_loss
from telcoplan.errors import CRSError
from telcoplan.gis.crs import crs_name, same_crs
from telcoplan.gis.grid import GridSpec

__all__ = ["DEFAULT_RADIUS_KM", "SignalResult", "auto_models", "best_server", "default_radius_km"]

log = logging.getLogger(__name__)

#: Default maximum radius of a tower by band: (upper frequency bound in MHz, radius in km).
DEFAULT_RADIUS_KM: tuple[tuple[float, float], ...] = (
    (1000.0, 15.0),  # 700/800/900 MHz
    (2200.0, 10.0),  # 1800/2100 MHz
    (3000.0, 8.0),  # 2600 MHz
    (math.inf, 5.0),  # 3.5 GHz and up
)
_LOG_LINEAR = ("hata", "cost231")
_TABLE_STEP = 1e-3  # decades of distance between path-loss table samples
_PROGRESS_S = 5.0  # seconds between progress messages of a long run
_PROGRESS_MIN_LEFT_S = 1.0  # no message when less than this is left


def default_radius_km(freq_mhz: np.ndarray) -> np.ndarray:
    """Default per-tower maximum radius (km) from the carrier frequency (see DEFAULT_RADIUS_KM)."""
    f = np.asarray(freq_mhz, dtype=float)
    out = np.empty_like(f)
    done = np.zeros(f.shape, dtype=bool)
    for upper, radius in DEFAULT_RADIUS_KM:
        sel = ~done & (f <= upper)
        out[sel] = radius
        done |= sel
    return out


@dataclass(frozen=True)
class SignalResult:
    """Best-server rasters on a grid, one layer per group (operator).

    Attributes
    ----------
    grid : GridSpec
    groups : tuple of str
        Group (operator) names, the first axis of the arrays.
    power_dbm : numpy.ndarray
        float32 (n_groups, H, W): best received power (dBm); NaN where no tower of the group
        reaches the cell or the power is below ``floor_dbm``.
    server : numpy.ndarray
        int32 (n_groups, H, W): position of the serving tower in ``site_ids``; −1 where none.
    site_ids : numpy.ndarray
        The towers' ids (their index), in the order ``server`` refers to.
    towers_evaluated : int
        Tower-tile evaluations the kernel performed (a measure of the pruning's effect).
    best_rank : numpy.ndarray or None
        int8 (H, W), with ``coverage_rank`` only: the highest rank among the towers whose
        power (less the clutter) reaches ``coverage_dbm`` at the cell, −1 where none does.
    flat_covered : numpy.ndarray or None
        bool (H, W), with ``coverage_rank`` and a DEM only: whether some tower's power reaches
        ``coverage_dbm`` at the cell on flat earth (no diffraction loss; the antenna's
        depression from the heights above the receiver) — the flat-earth run's answer.
    """

    grid: GridSpec
    groups: tuple[str, ...]
    power_dbm: np.ndarray
    server: np.ndarray
    site_ids: np.ndarray
    towers_evaluated: int = 0
    best_rank: np.ndarray | None = None
    flat_covered: np.ndarray | None = None

    def group(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(power_dbm, server) of one group."""
        i = self.groups.index(name)
        return self.power_dbm[i], self.server[i]

    def server_ids(self, name: str) -> np.ndarray:
        """Serving site id per cell for one group (object array, None where unserved)."""
        _, srv = self.group(name)
        ids = np.empty(srv.shape, dtype=object)
        ok = srv >= 0
        ids[ok] = self.site_ids[srv[ok]]
        return ids


def _column(towers: gpd.GeoDataFrame, name: str, default: float) -> np.ndarray:
    if name not in towers.columns:
        return np.full(len(towers), default, dtype=np.float64)
    return pd.to_numeric(towers[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def auto_models(freq_mhz: np.ndarray, environment: Sequence[str]) -> np.ndarray:
    """The ``"auto"`` model choice per tower: each band gets the model made for it.

    Okumura-Hata up to 1500 MHz, COST-231 Hata for 1500–2000 MHz, and above 2 GHz the 3GPP
    TR 38.901 model of the environment (UMa for urban/metropolitan, RMa for suburban/rural).
    """
    f = np.asarray(freq_mhz, dtype=float)
    env = np.asarray(environment, dtype=object)
    high = np.where(np.isin(env, ["urban", "metropolitan"]), "3gpp-uma", "3gpp-rma")
    return np.where(f <= 1500.0, "hata", np.where(f <= 2000.0, "cost231", high)).astype(object)


#: Columns of the closed-form coefficients (:func:`_closed_form`), the loss in dB with d3 the 3D
#: distance (m) and q the squared horizontal distance (m², at least 1):
#: max(q ≤ BP2 ? A1 + B1 log10 d3 + C1 d3 : A2 + B2 log10 d3, A3 + B3 log10 d3) + KC log10 √q.
_CLOSED_COLUMNS = ("A1", "B1", "C1", "A2", "B2", "A3", "B3", "DZ2", "BP2", "KC")


def _closed_form(
    model: str, freq: np.ndarray, h_tx: np.ndarray, h_rx: float, calibration
) -> np.ndarray:
    """Per-tower coefficients (n, 10; :data:`_CLOSED_COLUMNS`) of ``model``'s loss in closed form.

    The distance term of the 3GPP TR 38.901 models is piecewise linear in log10 d3D (d3D² =
    d2D² + (h_BS − h_UT)²): the LOS pieces before and after the breakpoint (selected by the
    horizontal distance, as :func:`telcoplan.coverage.propagation.path_loss` does), and NLOS
    = max(LOS, a third line); RMa's first piece also has a term linear in d3D. Free space is
    one line. A calibration (a, b) adds a + b log10(d2D / 1 km) to every piece.

    Notes
    -----
    3GPP TR 38.901 v17 Table 7.4.1-1, as in :mod:`telcoplan.coverage.propagation`:

    - UMa (h_E = 1 m): PL1 = 28 + 22 log d3 + 20 log fc; PL2 = 28 + 40 log d3 + 20 log fc
      − 9 log(d'BP² + Δh²), d'BP = 4 (h_BS − 1)(h_UT − 1) f / c; NLOS 13.54 + 39.08 log d3
      + 20 log fc − 0.6 (h_UT − 1.5);
    - RMa (h = 5 m, W = 20 m): PL1 = 20 log(40π d3 fc / 3) + min(0.03 h^1.72, 10) log d3
      − min(0.044 h^1.72, 14.77) + 0.002 log(h) d3; PL2 = PL1(dBP) + 40 log(d3 / dBP),
      dBP = 2π h_BS h_UT f / c; NLOS 161.04 − 7.1 log W + 7.5 log h − (24.37 − 3.7 (h/h_BS)²)
      log h_BS + (43.42 − 3.1 log h_BS)(log d3 − 3) + 20 log fc − (3.2 (log 11.75 h_UT)² − 4.97);
    - free space (ITU-R P.525): 32.45 + 20 log f(MHz) + 20 log d3(km).
    """
    from telcoplan.coverage.propagation import SPEED_OF_LIGHT

    n = len(freq)
    out = np.zeros((n, len(_CLOSED_COLUMNS)))
    fc = freq / 1000.0  # GHz
    dz = h_tx - h_rx
    out[:, 7] = dz * dz
    out[:, 5] = -np.inf  # no NLOS line
    bp = np.full(n, np.inf)  # no breakpoint: the first piece everywhere
    if model == "fspl":
        out[:, 0] = 32.45 + 20.0 * np.log10(freq) - 60.0  # d in m
        out[:, 1] = 20.0
    elif model == "3gpp-uma":
        bp = 4.0 * (h_tx - 1.0) * (h_rx - 1.0) * (freq * 1e6) / SPEED_OF_LIGHT
        out[:, 0] = 28.0 + 20.0 * np.log10(fc)
        out[:, 1] = 22.0
        out[:, 3] = out[:, 0] - 9.0 * np.log10(bp * bp + dz * dz)
        out[:, 4] = 40.0
        out[:, 5] = 13.54 + 20.0 * np.log10(fc) - 0.6 * (h_rx - 1.5)
        out[:, 6] = 39.08
    elif model == "3gpp-rma":
        h, w = 5.0, 20.0
        bp = 2.0 * np.pi * h_tx * h_rx * (freq * 1e6) / SPEED_OF_LIGHT
        k = min(0.03 * h**1.72, 10.0)
        out[:, 0] = 20.0 * np.log10(40.0 * np.pi * fc / 3.0) - min(0.044 * h**1.72, 14.77)
        out[:, 1] = 20.0 + k
        out[:, 2] = 0.002 * np.log10(h)
        pl1_bp = out[:, 0] + out[:, 1] * np.log10(bp) + out[:, 2] * bp
        out[:, 3] = pl1_bp - 40.0 * np.log10(bp)
        out[:, 4] = 40.0
        b3 = 43.42 - 3.1 * np.log10(h_tx)
        out[:, 5] = (
            161.04
            - 7.1 * np.log10(w)
            + 7.5 * np.log10(h)
            - (24.37 - 3.7 * (h / h_tx) ** 2) * np.log10(h_tx)
            - 3.0 * b3
            + 20.0 * np.log10(fc)
            - (3.2 * np.log10(11.75 * h_rx) ** 2 - 4.97)
        )
        out[:, 6] = b3
    else:
        raise ValueError(f"no closed form for {model!r}")
    # the first piece up to the breakpoint (horizontal distance ≥ 1 m: none below 1 m)
    out[:, 8] = np.where(bp >= 1.0, bp * bp, -1.0)
    if calibration is not None:  # + a + b (log10 d2D − 3), on every piece
        a, b = calibration
        out[:, [0, 3, 5]] += a - 3.0 * b
        out[:, 9] = b
    return out


def _model_parameters(
    models: np.ndarray,
    freq: np.ndarray,
    h_tx: np.ndarray,
    h_rx: float,
    environment: Sequence[str],
    radius_m: np.ndarray,
    validity: str,
    calibration: tuple[float, float] | None = None,
    tabulate: bool = False,
):
    """Per-tower path-loss parameters for the kernels: ``kind`` 0 (log-linear, the Hata family:
    ``coef_a``, ``coef_b``) or 1 (closed form, :func:`_closed_form`; with ``tabulate`` also
    tables for the terrain kernel, ``table_id`` and ``tables``)."""
    n = len(freq)
    kind = np.zeros(n, dtype=np.int8)
    coef_a = np.zeros(n)
    coef_b = np.zeros(n)
    closed = np.zeros((n, len(_CLOSED_COLUMNS)))
    table_id = np.zeros(n, dtype=np.int64)
    envs = np.asarray(environment, dtype=object)
    n_samples = math.ceil(np.log10(max(float(radius_m.max()), 10.0)) / _TABLE_STEP) + 2
    d_km = 10.0 ** (np.arange(n_samples) * _TABLE_STEP) / 1000.0
    tables: list[np.ndarray] = []
    for model in sorted(pd.unique(models)):  # hashing, not an object sort of every tower
        for env in sorted(pd.unique(envs)):
            sel = (models == model) & (envs == env)
            if not sel.any():
                continue
            kw = {"h_rx_m": h_rx, "environment": env, "validity": validity, "check_distance": False}
            if model in _LOG_LINEAR:
                # L = A + B log10(d_km) exactly: A = L(1 km), B = L(10 km) − L(1 km)
                a = path_loss(model, distance_km=1.0, freq_mhz=freq[sel], h_tx_m=h_tx[sel], **kw)
                coef_a[sel] = a
                kw["validity"] = "ignore"  # checked by the first call
                coef_b[sel] = (
                    path_loss(model, distance_km=10.0, freq_mhz=freq[sel], h_tx_m=h_tx[sel], **kw)
                    - a
                )
                continue
            kind[sel] = 1
            # validity is checked once for the whole group
            path_loss(model, distance_km=1.0, freq_mhz=freq[sel], h_tx_m=h_tx[sel], **kw)
            closed[sel] = _closed_form(model, freq[sel], h_tx[sel], h_rx, calibration)
            if not tabulate:
                continue
            # one table per distinct (frequency, height to 1 cm): with continuous heights this
            # bounds the table count; 1 cm changes a 3GPP loss by < 0.002 dB
            keys = pd.MultiIndex.from_arrays([freq[sel], np.round(h_tx[sel], 2)])
            codes, uniques = pd.factorize(keys)
            table_id[sel] = codes + len(tables)
            kw["validity"] = "ignore"
            f_u = np.array([f for f, _ in uniques], dtype=np.float64)[:, None]
            h_u = np.array([h for _, h in uniques], dtype=np.float64)[:, None]
            # one broadcast call for all the distinct towers (a row each), in blocks of rows
            for i in range(0, len(uniques), 256):
                block = path_loss(
                    model,
                    freq_mhz=f_u[i : i + 256],
                    distance_km=d_km,
                    h_tx_m=h_u[i : i + 256],
                    **kw,
                )
                tables += list(block.astype(np.float32))
    stacked = np.vstack(tables) if tables else np.zeros((1, 2), dtype=np.float32)
    if calibration is not None:
        # L_cal = L + a + b log10(d_km); the tables are sampled at log10(d_m) = k * step
        a, b = calibration
        coef_a += a
        coef_b += b
        stacked = (stacked + a + b * (np.arange(stacked.shape[1]) * _TABLE_STEP - 3.0)).astype(
            np.float32
        )
    return kind, coef_a, coef_b, closed, table_id, stacked


def best_server(
    towers: gpd.GeoDataFrame,
    grid: GridSpec,
    *,
    model: str = "hata",
    environment: str = "urban",
    h_rx_m: float = 1.5,
    max_radius_km: float | None = None,
    group_by: str | Sequence[str] = "operator",
    floor_dbm: float = -150.0,
    tile_size: int = 32,
    validity: str = "warn",
    calibration: tuple[float, float] | None = None,
    dem: np.ndarray | None = None,
    diffraction: str = "bullington",
    clutter_db: np.ndarray | None = None,
    progress_label: str = "best server",
    coverage_rank: np.ndarray | None = None,
    coverage_dbm: float = 0.0,
) -> SignalResult:
    """Best received power and serving site per group (operator) on every cell of ``grid``.

    Parameters
    ----------
    towers
        Validated towers (index = ``site_id``) in ``grid.crs``; columns ``frequency_mhz``,
        ``height_m``, ``eirp_dbm``, the grouping column(s); optional ``azimuth_deg``,
        ``beamwidth_deg``, ``tilt_deg`` (sector pattern), ``max_radius_km`` and ``environment``.
    grid
        The plan grid (projected CRS, metres).
    model, environment, h_rx_m
        Propagation model (:data:`telcoplan.coverage.propagation.MODELS`, or ``"auto"`` to
        pick one per tower by band, see :func:`auto_models`), default environment
        (a tower's own ``environment`` column wins), receiver height (m).
    max_radius_km
        Radius beyond which a tower is not computed; default per band (:data:`DEFAULT_RADIUS_KM`)
        unless the tower has a ``max_radius_km`` value.
    group_by
        Column(s) whose values define the groups, e.g. ``"operator"`` or
        ``["operator", "technology"]`` (group names are then ``"Viettel/4G"``).
    floor_dbm
        Powers below this (dBm) are not recorded (NaN); also the pruning floor.
    tile_size
        Cells per tile side; memory stays bounded by the outputs plus a few tiles.
    calibration
        ``(a, b)``: add a + b log10(d_km) dB to every path loss (from ``telcoplan calibrate``).
    dem
        Ground elevation (m) on ``grid`` (NaN = 0 m). With it, every path also loses its
        knife-edge diffraction loss over the terrain profile (Earth curvature k = 4/3), and
        antenna heights are taken above the ground at the tower.
    diffraction
        ``"bullington"`` (default: one equivalent edge, ITU-R P.452; safest on smooth hills),
        ``"deygout"`` or ``"epstein-peterson"`` (ITU-R P.526).
    clutter_db
        Loss (dB) added to every path that ends in a cell, per cell of ``grid`` (e.g. the
        clutter offsets of a calibration on a land-use raster,
        :func:`telcoplan.coverage.calibration.clutter_offset_grid`); NaN = 0. It is the same
        for every tower at a cell, so it changes the power there, not the serving site.
    progress_label
        How the progress messages of a long run (every few seconds, with an estimate of the
        time left) name the computation.
    coverage_rank
        Optional rank per tower (integers 0–127, e.g. the technology generation): the result
        then also holds :attr:`SignalResult.best_rank`, the highest rank among the towers whose
        power less the clutter is ≥ ``coverage_dbm`` (dBm) at each cell, and with a ``dem``
        :attr:`SignalResult.flat_covered`, whether some tower reaches that level on flat
        earth. They come from the same kernel run and tile candidates as the powers (the
        kernel skips a tower only when it can change none of the outputs), equal to the
        outputs of separate runs: ``best_server(towers of rank r, floor_dbm=coverage_dbm)``
        per rank, and a run without the DEM.
    coverage_dbm
        The coverage level (dBm) of ``coverage_rank``.

    Returns
    -------
    SignalResult

    Notes
    -----
    The kernels (:mod:`telcoplan.coverage._kernel` on flat earth,
    :mod:`telcoplan.coverage._kernel_terrain` with a DEM) are exact: they return the same
    maximum as evaluating every tower at every cell within its radius, but prune towers per tile
    with an upper bound on the power they can deliver there. Hata-family losses are evaluated
    from their exact form A + B log10(d). On flat earth, the 3GPP models and free space are
    evaluated in closed form (:func:`_closed_form`: pieces linear in log10 d3D, RMa's term
    linear in d3D, the breakpoint decided per run of cells), in float32 (≈ 1e-4 dB). With a
    DEM they are read from float32 tables sampled every 0.001 decade of distance, one per
    distinct frequency and height (to 1 cm), interpolated linearly (error < 0.005 dB).
    """
    if model not in MODELS and model != "auto":
        raise ValueError(
            f"unknown propagation model {model!r}; choose auto or one of {', '.join(MODELS)}"
        )
    if towers.crs is None or not same_crs(towers.crs, grid.crs):
        raise CRSError(
            f"towers are in {crs_name(towers.crs)} but the grid is in {crs_name(grid.crs)}; "
            "reproject them with .to_crs(grid.crs) first"
        )
    groups, group = _group_labels(towers, group_by)
    n = len(towers)
    tx = towers.geometry.x.to_numpy(dtype=np.float64)
    ty = towers.geometry.y.to_numpy(dtype=np.float64)
    freq = _column(towers, "frequency_mhz", np.nan)
    h_tx = _column(towers, "height_m", np.nan)
    eirp = _column(towers, "eirp_dbm", np.nan)
    radius_km = (
        default_radius_km(freq) if max_radius_km is None else np.full(n, float(max_radius_km))
    )
    if max_radius_km is None and "max_radius_km" in towers.columns:
        own = _column(towers, "max_radius_km", np.nan)
        radius_km = np.where(np.isfinite(own), own, radius_km)
    radius_m = radius_km * 1000.0
    azimuth = _column(towers, "azimuth_deg", np.nan)
    beam = _column(towers, "beamwidth_deg", np.nan)
    beam = np.where(np.isfinite(beam), beam, PHI_3DB_DEG)
    tilt = _column(towers, "tilt_deg", np.nan)
    env = (
        towers["environment"].fillna(environment).astype(str).to_numpy()
        if "environment" in towers.columns
        else np.full(n, environment, dtype=object)
    )
    dh = h_tx - h_rx_m
    clutter = None
    kernel_floor = float(floor_dbm)
    if clutter_db is not None:
        clutter = np.nan_to_num(np.asarray(clutter_db, dtype=np.float32), nan=0.0)
        if clutter.shape != grid.shape:
            raise ValueError(f"clutter_db shape {clutter.shape} does not match grid {grid.shape}")
        # a negative offset (a gain) can lift a power that was below the floor above it
        kernel_floor -= max(0.0, -float(clutter.min(initial=0.0)))

    nrows, ncols = grid.shape
    use_dem = dem is not None
    # float32 outputs written by the kernels directly: the peak memory is the outputs plus a few
    # tiles, 8 bytes per cell and group (both kernels write every cell: no initial fill)
    shape = (len(groups), nrows, ncols)
    if n:
        power = np.empty(shape, dtype=np.float32)
        server = np.empty(shape, dtype=np.int32)
    else:
        power = np.full(shape, np.nan, dtype=np.float32)
        server = np.full(shape, -1, dtype=np.int32)
    do_rank = coverage_rank is not None
    do_flat = do_rank and use_dem
    rank = np.zeros(n, dtype=np.int32)
    if do_rank:
        rank = np.asarray(coverage_rank)
        if rank.shape != (n,) or (n and (rank.min() < 0 or rank.max() > 127)):
            raise ValueError("coverage_rank must hold one integer 0–127 per tower")
        rank = rank.astype(np.int32)
    # the kernels write every cell of the rasters they are given (dummies otherwise)
    best_rank = np.full((nrows, ncols) if do_rank else (1, 1), -1, dtype=np.int8)
    flat_covered = np.zeros((nrows, ncols) if do_flat else (1, 1), dtype=np.bool_)
    # a tower whose power is below this covers no cell, whatever the clutter's gains
    rank_floor = float(coverage_dbm)
    if clutter is not None:
        rank_floor -= max(0.0, -float(clutter.min(initial=0.0)))
    use_clutter = clutter is not None
    clutter_arr = clutter if use_clutter else np.zeros((1, 1), dtype=np.float32)
    evaluated = 0
    if n:
        models = auto_models(freq, env) if model == "auto" else np.full(n, model, dtype=object)
        kind, coef_a, coef_b, closed, table_id, tables = _model_parameters(
            models, freq, h_tx, h_rx_m, env, radius_m, validity, calibration, tabulate=use_dem
        )
        t = grid.transform
        tile_r0, tile_c0 = _tile_origins(grid, tile_size)
        from telcoplan.coverage._kernel_common import tower_buckets

        # towers in square buckets of a quarter of the largest radius (at least a tile): a
        # tile's candidates are read from the buckets within that radius of it (both kernels).
        # Only the towers that may reach the grid are put in buckets, over the grid's extent
        # plus that radius: the buckets stay about as many as the tiles, whatever the towers
        r_max = float(radius_m.max())
        bsize = max(r_max / 4.0, tile_size * grid.resolution)
        gx0, gy0, gx1, gy1 = grid.bounds
        xmin, ymin = gx0 - r_max, gy0 - r_max
        nbx = int((gx1 + r_max - xmin) // bsize) + 1
        nby = int((gy1 + r_max - ymin) // bsize) + 1
        near = np.flatnonzero(
            (tx >= xmin) & (tx <= gx1 + r_max) & (ty >= ymin) & (ty <= gy1 + r_max)
        )
        b_ptr, b_sub = tower_buckets(tx[near], ty[near], xmin, ymin, bsize, nbx, nby)
        b_ids = near[b_sub]
        if use_dem:
            from telcoplan.coverage.profile import DIFFRACTION_METHODS

            if dem.shape != grid.shape:
                raise ValueError(f"dem shape {dem.shape} does not match grid shape {grid.shape}")
            if diffraction not in DIFFRACTION_METHODS:
                raise ValueError(
                    f"unknown diffraction method {diffraction!r}; choose one of {', '.join(DIFFRACTION_METHODS)}"
                )
            from telcoplan.coverage.visibility import BLOCK, block_max

            dem_arr = np.ascontiguousarray(np.nan_to_num(dem, nan=0.0), dtype=np.float64)
            # float32 when that is exact (any DEM read from an integer or float32 raster): half
            # the kernel's memory traffic, the same float64 arithmetic and results
            dem32 = dem_arr.astype(np.float32)
            dem_arr = dem32 if np.array_equal(dem32, dem_arr) else dem_arr
            bmax = block_max(dem_arr, BLOCK)
            h_abs_tx = _ground_at(dem_arr, grid, tx, ty) + h_tx
            method_code = DIFFRACTION_METHODS[diffraction]
            from telcoplan.coverage._kernel_terrain import best_server_terrain_kernel

            wavelength = 299_792_458.0 / (freq * 1e6)

            def run_tiles(r0, c0, done):
                best_server_terrain_kernel(
                    r0, c0, tile_size, float(t.c), float(t.f), float(t.a), nrows, ncols,
                    tx, ty, eirp, group, rank, radius_m, dh, azimuth, beam, tilt,
                    kind, coef_a, coef_b, closed, table_id, tables, _TABLE_STEP,
                    b_ptr, b_ids, xmin, ymin, bsize, nbx, nby,
                    len(groups), kernel_floor,
                    dem_arr, bmax, True, h_abs_tx, float(h_rx_m), wavelength, method_code,
                    clutter_arr, use_clutter, do_rank, do_flat, rank_floor, float(coverage_dbm),
                    power, server, best_rank, flat_covered, done,
                )  # fmt: skip

        else:
            from telcoplan.coverage._kernel import best_server_flat_kernel

            def run_tiles(r0, c0, done):
                best_server_flat_kernel(
                    r0, c0, tile_size, float(t.c), float(t.f), float(t.a), nrows, ncols,
                    tx, ty, eirp, group, rank, radius_m, dh, azimuth, beam, tilt,
                    kind, coef_a, coef_b, closed,
                    b_ptr, b_ids, xmin, ymin, bsize, nbx, nby,
                    len(groups), kernel_floor, float(floor_dbm), clutter_arr, use_clutter,
                    do_rank, rank_floor, float(coverage_dbm),
                    power, server, best_rank, done,
                )  # fmt: skip

        evaluated = _run_watched(tile_r0, tile_c0, run_tiles, progress_label)
    if use_dem or not n:  # the flat kernel applied the clutter and the floor itself
        for g in range(len(groups)):  # one group at a time: no full-size temporaries
            if clutter is not None:
                power[g] -= clutter
            low = ~(power[g] >= floor_dbm)
            server[g][low] = -1
            power[g][low] = np.nan
    return SignalResult(
        grid,
        groups,
        power,
        server,
        towers.index.to_numpy(),
        evaluated,
        best_rank if do_rank else None,
        flat_covered if do_flat else None,
    )


def _run_watched(tile_r0, tile_c0, run, progress_label: str) -> int:
    """Run ``run(r0, c0, done)`` (a kernel, without the GIL) on all the tiles in one call, while
    reporting progress; the tower evaluations the kernel counted.

    ``done`` (int64 per tile, −1 until the kernel finishes the tile, then its tower
    evaluations) is read by a watcher thread every _PROGRESS_S seconds, which logs the share
    done and an estimate of the time left. numba hands the tiles to the threads one at a time
    (dynamic scheduling: tiles differ in cost), and no thread waits at a barrier until the
    call ends (on a machine busy with other work, a descheduled thread makes every barrier
    cost a time slice).
    """
    import threading

    import numba

    n_tiles = len(tile_r0)
    done = np.full(n_tiles, -1, dtype=np.int64)
    finished = threading.Event()
    started = time.perf_counter()

    def watch():
        while not finished.wait(_PROGRESS_S):
            k = int(np.count_nonzero(done >= 0))
            if not k:
                continue
            eta = (time.perf_counter() - started) * (n_tiles - k) / k
            if eta >= _PROGRESS_MIN_LEFT_S:
                log.info(
                    "%s: %d%% of %d tiles, about %.0f s left",
                    progress_label,
                    100 * k // n_tiles,
                    n_tiles,
                    eta,
                )

    watcher = threading.Thread(target=watch, name="telcoplan-progress", daemon=True)
    watcher.start()
    try:
        with numba.parallel_chunksize(1):
            run(tile_r0, tile_c0, done)
    finally:
        finished.set()
        watcher.join()
    return int(done.sum())


def _group_labels(
    towers: pd.DataFrame, group_by: str | Sequence[str]
) -> tuple[tuple[str, ...], np.ndarray]:
    """Sorted group names and each tower's group index (int64) from the ``group_by`` column(s).

    A tower's name is its values as strings joined by ``/`` (``"Viettel/4G"``). Each column is
    factorised once and the names are built only for the distinct combinations of values, so the
    cost is a few vectorised passes rather than one Python join per tower (it was 40 % of a
    national run). A missing value raises a TypeError, as joining it would.
    """
    if not len(towers):
        return (), np.zeros(0, dtype=np.int64)
    sub = towers[[group_by] if isinstance(group_by, str) else list(group_by)]
    key = np.zeros(len(sub), dtype=np.int64)  # combination of values seen so far, 0 .. m-1
    values = []
    for j in range(sub.shape[1]):
        text = sub.iloc[:, j].astype(str)
        if text.isna().any():  # pandas ≥ 3 keeps missing values missing through astype(str)
            row = sub.index[text.isna().to_numpy()][0]
            raise TypeError(
                f"group_by column {sub.columns[j]!r} has a missing value (tower {row!r}); "
                "every tower needs a value to be given a group"
            )
        codes, uniques = pd.factorize(text)
        key, _ = pd.factorize(key * len(uniques) + codes)  # stays < n: no overflow
        values.append(text.to_numpy())
    _, first = np.unique(key, return_index=True)  # a tower of each combination, by key
    names = ["/".join(parts) for parts in zip(*(v[first] for v in values), strict=True)]
    groups = tuple(sorted(set(names)))
    position = {g: i for i, g in enumerate(groups)}
    of_key = np.array([position[name] for name in names], dtype=np.int64)
    return groups, of_key[key]


def _ground_at(dem: np.ndarray, grid: GridSpec, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ground elevation (m) of the cell containing each point (nearest edge cell outside)."""
    r, c = grid.rowcol(x, y)
    r = np.clip(r, 0, grid.height - 1)
    c = np.clip(c, 0, grid.width - 1)
    return dem[r, c].astype(np.float64)


def _tile_origins(grid: GridSpec, tsize: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every tile's first cell (row-major order)."""
    nrows, ncols = grid.shape
    r0s, c0s = np.meshgrid(np.arange(0, nrows, tsize), np.arange(0, ncols, tsize), indexing="ij")
    return r0s.ravel().astype(np.int64), c0s.ravel().astype(np.int64)
