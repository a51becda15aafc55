"""Best-server rasters: the strongest received power per operator and the site that gives it.

Convention: powers are **total received power** at the receiver in dBm,
P_rx = EIRP − L_path(d) + A(φ, θ), with EIRP including the antenna's maximum gain and A the
pattern attenuation (≤ 0 dB). Thresholds (``telcoplan.coverage.thresholds``) are stated on the
same quantity.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan._readonly import readonly_arrays
from telcoplan.coverage._loss_params import TABLE_STEP, model_parameters
from telcoplan.coverage._progress import EVERY_S, MIN_LEFT_S, Progress
from telcoplan.coverage.antenna import PHI_3DB_DEG
from telcoplan.coverage.propagation import MODELS
from telcoplan.errors import CRSError
from telcoplan.gis.crs import crs_name, same_crs
from telcoplan.gis.grid import GridSpec

__all__ = [
    "DEFAULT_RADIUS_KM",
    "BestServerJob",
    "SignalBlock",
    "SignalResult",
    "auto_models",
    "best_server",
    "default_radius_km",
    "prepare_best_server",
]

log = logging.getLogger(__name__)

#: Default maximum radius of a tower by band: (upper frequency bound in MHz, radius in km).
DEFAULT_RADIUS_KM: tuple[tuple[float, float], ...] = (
    (1000.0, 15.0),  # 700/800/900 MHz
    (2200.0, 10.0),  # 1800/2100 MHz
    (3000.0, 8.0),  # 2600 MHz
    (math.inf, 5.0),  # 3.5 GHz and up
)
_PROGRESS_S = EVERY_S  # seconds between progress messages of a long run
_PROGRESS_MIN_LEFT_S = MIN_LEFT_S  # no message when less than this is left


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


def best_server(
    towers: gpd.GeoDataFrame,
    grid: GridSpec,
    *,
    progress_label: str = "best server",
    client: Any = None,
    **options: Any,
) -> SignalResult:
    """Best received power and serving site per group (operator) on every cell of ``grid``.

    Parameters
    ----------
    towers, grid, options
        The towers, the grid and the options (``model``, ``environment``, ``h_rx_m``,
        ``max_radius_km``, ``group_by``, ``floor_dbm``, ``tile_size``, ``validity``,
        ``calibration``, ``dem``, ``diffraction``, ``clutter_db``, ``coverage_rank``,
        ``coverage_dbm``) of :func:`prepare_best_server`, which documents them.
    progress_label
        How the progress messages of a long run (every few seconds, with an estimate of the
        time left) name the computation.
    client
        A ``distributed.Client``: the tiles are computed on its cluster, in blocks
        (:func:`telcoplan.coverage.tiled.map_blocks`), with the same result to the bit. None
        (default): in this process, on numba's threads.

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
    evaluated in closed form (:func:`telcoplan.coverage._loss_params.closed_form`: pieces
    linear in log10 d3D, RMa's term linear in d3D, the breakpoint decided per run of cells),
    in float32 (≈ 1e-4 dB). With a
    DEM they are read from float32 tables sampled every 0.001 decade of distance, one per
    distinct frequency and height (to 1 cm), interpolated linearly (error < 0.01 dB: at most
    0.0071 dB measured against ``path_loss``, 3GPP with calibration).

    Every tile is computed alone, from candidates read in buckets of the towers over the whole
    grid and from the whole grid's coordinates, so that a block of tiles (a worker's task)
    gives the same bits as the run over the whole grid.
    """
    return prepare_best_server(towers, grid, **options).signal(
        progress_label=progress_label, client=client
    )


def _signal_task(job: BestServerJob, block: tuple[int, int, int, int]) -> SignalBlock:
    """A worker's task of :func:`best_server` on a cluster: one block of tiles."""
    return job.block(*block)


class SignalBlock(NamedTuple):
    """The kernels' outputs on a block of whole tiles (rows × columns of the grid).

    ``power`` float32 and ``server`` int32 (n_groups, rows, columns) as
    :class:`SignalResult`'s; ``best_rank`` int8 and ``flat_covered`` bool (rows, columns),
    or (1, 1) placeholders when not asked for; ``evaluated`` the tower-tile evaluations.
    """

    power: np.ndarray
    server: np.ndarray
    best_rank: np.ndarray
    flat_covered: np.ndarray
    evaluated: int


@dataclass(frozen=True, eq=False)
class BestServerJob:
    """A best-server computation prepared for the whole grid, ready to compute any block of
    whole tiles (:func:`prepare_best_server`): the towers' parameters, the bucket grid of the
    towers, the DEM (full size), its block maxima and the clutter (full size).

    A block's tiles are the whole grid's tiles and see the same candidates in the same order,
    their cells' coordinates computed from the whole grid's transform: any block gives the
    bits of the whole run on its cells. Picklable (numpy arrays and numbers, the kernels found
    by name), so that a cluster's workers receive it once.
    """

    grid: GridSpec
    groups: tuple[str, ...]
    site_ids: np.ndarray
    tile_size: int
    floor_dbm: float
    do_rank: bool
    do_flat: bool
    clutter: np.ndarray | None
    #: the kernel's arguments between the tiles and the outputs; () without towers
    kernel_args: tuple = ()
    use_dem: bool = False

    @property
    def n_towers(self) -> int:
        return len(self.site_ids)

    @property
    def kernel(self) -> Any:
        """The compiled kernel that computes the job: the terrain kernel with a DEM, else the
        flat one (its arguments: the tiles' corners, :attr:`kernel_args`, the outputs)."""
        if self.use_dem:
            from telcoplan.coverage._kernel_terrain import best_server_terrain_kernel

            return best_server_terrain_kernel
        from telcoplan.coverage._kernel import best_server_flat_kernel

        return best_server_flat_kernel

    def named_kernel_args(self) -> dict[str, Any]:
        """:attr:`kernel_args` by the kernel's parameter names, arrays as read-only views (for
        another kernel that evaluates the same towers, e.g. candidate coverage)."""
        import inspect

        names = list(inspect.signature(self.kernel.py_func).parameters)[2:]  # after the corners
        if self.kernel_args and names[len(self.kernel_args)] != "out_r0":
            raise RuntimeError("the kernel's arguments and prepare_best_server's disagree")
        return dict(zip(names, readonly_arrays(self.kernel_args), strict=False))

    def signal(self, *, progress_label: str = "best server", client: Any = None) -> SignalResult:
        """The whole grid's result: in this process (a watcher thread logs the progress), or
        with a ``client`` block by block on its cluster (:mod:`telcoplan.coverage.tiled`), the
        same bits."""
        height, width = self.grid.shape
        if client is None or not self.n_towers:
            return self.result(self.block(0, height, 0, width, progress_label=progress_label))
        from telcoplan.coverage.tiled import map_blocks

        full = self.empty_block()
        evaluated = 0
        for (r0, _, c0, _), part in map_blocks(
            client, self, _signal_task, self.grid.shape, self.tile_size, progress_label
        ):
            self.place(full, part, r0, c0)
            evaluated += part.evaluated
        return self.result(full._replace(evaluated=evaluated))

    def block(
        self, r0: int, r1: int, c0: int, c1: int, *, progress_label: str | None = None
    ) -> SignalBlock:
        """Compute the tiles of rows ``r0:r1`` and columns ``c0:c1`` of the grid (``r0``,
        ``c0`` multiples of the tile size; ``r1``, ``c1`` too or the grid's edge).

        With ``progress_label``, a watcher thread logs the progress every few seconds (the
        in-process run); numba's threads take the tiles one at a time either way.
        """
        import numba

        ts = self.tile_size
        height, width = self.grid.shape
        if r0 % ts or c0 % ts or (r1 % ts and r1 != height) or (c1 % ts and c1 != width):
            raise ValueError(
                f"block rows {r0}:{r1}, columns {c0}:{c1} is not made of whole tiles of {ts} "
                f"cells of the {height} x {width} grid"
            )
        out = self.empty_block(r1 - r0, c1 - c0, filled=not self.n_towers)
        power, server, best_rank, flat_covered, _ = out
        evaluated = 0
        if self.n_towers:
            r0s, c0s = np.meshgrid(np.arange(r0, r1, ts), np.arange(c0, c1, ts), indexing="ij")
            tile_r0, tile_c0 = r0s.ravel().astype(np.int64), c0s.ravel().astype(np.int64)
            outputs = (r0, c0, power, server, best_rank)
            if self.use_dem:
                outputs = (*outputs, flat_covered)
            kernel = self.kernel
            # inputs read-only whatever their origin (a frame's column, a Dask worker's copy):
            # one compiled signature per kernel (telcoplan._readonly)
            inputs = readonly_arrays(self.kernel_args)

            def run_tiles(tr0, tc0, done):
                kernel(tr0, tc0, *inputs, *outputs, done)

            if progress_label is not None:
                evaluated = _run_watched(tile_r0, tile_c0, run_tiles, progress_label)
            else:
                done = np.full(len(tile_r0), -1, dtype=np.int64)
                with numba.parallel_chunksize(1):
                    run_tiles(tile_r0, tile_c0, done)
                evaluated = int(done.sum())
        if self.use_dem or not self.n_towers:  # the flat kernel applied the clutter and floor
            for g in range(len(self.groups)):  # one group at a time: no full-size temporaries
                if self.clutter is not None:
                    power[g] -= self.clutter[r0:r1, c0:c1]
                low = ~(power[g] >= self.floor_dbm)
                server[g][low] = -1
                power[g][low] = np.nan
        return out._replace(evaluated=evaluated)

    def empty_block(
        self, rows: int | None = None, columns: int | None = None, *, filled: bool = False
    ) -> SignalBlock:
        """Outputs for ``rows`` × ``columns`` cells (default: the grid), uninitialised (the
        kernels write every cell) or, with ``filled``, NaN / −1 (no signal)."""
        height, width = self.grid.shape
        shape = (
            len(self.groups),
            height if rows is None else rows,
            width if columns is None else columns,
        )
        if filled:
            power = np.full(shape, np.nan, dtype=np.float32)
            server = np.full(shape, -1, dtype=np.int32)
        else:
            power = np.empty(shape, dtype=np.float32)
            server = np.empty(shape, dtype=np.int32)
        # the kernels write every cell of the rasters they are given (placeholders otherwise)
        best_rank = np.full(shape[1:] if self.do_rank else (1, 1), -1, dtype=np.int8)
        flat_covered = np.zeros(shape[1:] if self.do_flat else (1, 1), dtype=np.bool_)
        return SignalBlock(power, server, best_rank, flat_covered, 0)

    def place(self, full: SignalBlock, part: SignalBlock, r0: int, c0: int) -> None:
        """Copy a block's outputs (from row ``r0``, column ``c0``) into the grid's."""
        rows, cols = part.power.shape[1:]
        full.power[:, r0 : r0 + rows, c0 : c0 + cols] = part.power
        full.server[:, r0 : r0 + rows, c0 : c0 + cols] = part.server
        if self.do_rank:
            full.best_rank[r0 : r0 + rows, c0 : c0 + cols] = part.best_rank
        if self.do_flat:
            full.flat_covered[r0 : r0 + rows, c0 : c0 + cols] = part.flat_covered

    def result(self, full: SignalBlock) -> SignalResult:
        """The :class:`SignalResult` of the whole grid's outputs."""
        return SignalResult(
            self.grid,
            self.groups,
            full.power,
            full.server,
            self.site_ids,
            full.evaluated,
            full.best_rank if self.do_rank else None,
            full.flat_covered if self.do_flat else None,
        )


def prepare_best_server(
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
    coverage_rank: np.ndarray | None = None,
    coverage_dbm: float = 0.0,
) -> BestServerJob:
    """Everything :func:`best_server` computes before its kernel runs, for the whole grid:
    the towers' parameters, their buckets, the DEM's block maxima; compute the whole grid with
    :meth:`BestServerJob.signal`, or any block of whole tiles with :meth:`BestServerJob.block`.

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
    BestServerJob

    The towers are checked (model, CRS, the models' ranges); the inputs are not modified.
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
    do_rank = coverage_rank is not None
    do_flat = do_rank and use_dem
    rank = np.zeros(n, dtype=np.int32)
    if do_rank:
        rank = np.asarray(coverage_rank)
        if rank.shape != (n,) or (n and (rank.min() < 0 or rank.max() > 127)):
            raise ValueError("coverage_rank must hold one integer 0–127 per tower")
        rank = rank.astype(np.int32)
    # a tower whose power is below this covers no cell, whatever the clutter's gains
    rank_floor = float(coverage_dbm)
    if clutter is not None:
        rank_floor -= max(0.0, -float(clutter.min(initial=0.0)))
    use_clutter = clutter is not None
    clutter_arr = clutter if use_clutter else np.zeros((1, 1), dtype=np.float32)
    kernel_args: tuple = ()
    if n:
        models = auto_models(freq, env) if model == "auto" else np.full(n, model, dtype=object)
        kind, coef_a, coef_b, closed, table_id, tables = model_parameters(
            models, freq, h_tx, h_rx_m, env, radius_m, validity, calibration, tabulate=use_dem
        )
        t = grid.transform
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
            wavelength = 299_792_458.0 / (freq * 1e6)

            kernel_args = (
                tile_size, float(t.c), float(t.f), float(t.a), nrows, ncols,
                tx, ty, eirp, group, rank, radius_m, dh, azimuth, beam, tilt,
                kind, coef_a, coef_b, closed, table_id, tables, TABLE_STEP,
                b_ptr, b_ids, xmin, ymin, bsize, nbx, nby,
                len(groups), kernel_floor,
                dem_arr, bmax, True, h_abs_tx, float(h_rx_m), wavelength, method_code,
                clutter_arr, use_clutter, do_rank, do_flat, rank_floor, float(coverage_dbm),
            )  # fmt: skip
        else:
            kernel_args = (
                tile_size, float(t.c), float(t.f), float(t.a), nrows, ncols,
                tx, ty, eirp, group, rank, radius_m, dh, azimuth, beam, tilt,
                kind, coef_a, coef_b, closed,
                b_ptr, b_ids, xmin, ymin, bsize, nbx, nby,
                len(groups), kernel_floor, float(floor_dbm), clutter_arr, use_clutter,
                do_rank, rank_floor, float(coverage_dbm),
            )  # fmt: skip
    return BestServerJob(
        grid,
        groups,
        towers.index.to_numpy(),
        tile_size,
        float(floor_dbm),
        do_rank,
        do_flat,
        clutter,
        kernel_args,
        use_dem,
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
    # the watcher's wait paces the messages
    progress = Progress(
        log, progress_label, n_tiles, "tiles", every=0.0, min_left=_PROGRESS_MIN_LEFT_S
    )

    def watch():
        while not finished.wait(_PROGRESS_S):
            progress.update(int(np.count_nonzero(done >= 0)))

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
