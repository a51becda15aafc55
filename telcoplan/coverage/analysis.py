"""Coverage per operator, and population covered per area (ITU SDG 9.c.1 conventions).

The serving tower of an operator at a cell is the one with the largest **margin** over its own
technology's threshold (``telcoplan.coverage.thresholds``): margin = P + offset(tech) −
threshold(tech). A cell is covered by an operator when that margin is ≥ 0. The operator's signal
raster holds the total received power P of that serving carrier (dBm).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.coverage.bestserver import BestServerJob, prepare_best_server
from telcoplan.coverage.thresholds import Thresholds
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.zonal import label_polygons, zonal_sum_masks

__all__ = [
    "CoverageJob",
    "CoverageResult",
    "ServingPower",
    "compute_coverage",
    "coverage_and_population",
    "population_covered",
    "prepare_coverage",
    "technology_rank",
]

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
    power_dbm : numpy.ndarray or ServingPower
        float32 (n_ops, H, W): total received power of the serving carrier (NaN: no signal);
        from :func:`compute_coverage` a :class:`ServingPower`, computed from ``margin_db`` and
        ``server`` when indexed (the same bits, 4 bytes a cell less to hold).
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
    power_dbm: np.ndarray | ServingPower
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
        return self.covered.sum(axis=0, dtype=np.uint8)  # no int64 temporary

    @property
    def covered_any(self) -> np.ndarray:
        return self.covered.any(axis=0)


class ServingPower:
    """The serving carrier's total received power (dBm, float32; NaN where no tower serves),
    ``margin`` + the serving tower's power ``threshold``, computed when indexed: ``p[i]`` (one
    operator's raster), ``p[i][rows, cols]``, ``p[:, rows, cols]``, ``np.asarray(p)``. The same
    float32 sums as ``margin + threshold[server]`` in numpy (without its temporaries), and no
    third (n_ops, H, W) raster held beside the margin and the server (1.4 → 1.0 GB on a
    national grid)."""

    def __init__(self, margin: np.ndarray, server: np.ndarray, threshold: np.ndarray) -> None:
        self.margin, self.server, self.threshold = margin, server, threshold

    shape = property(lambda self: self.margin.shape)
    dtype = property(lambda self: self.margin.dtype)
    ndim = property(lambda self: self.margin.ndim)

    def __len__(self) -> int:
        return len(self.margin)

    def __getitem__(self, key: Any) -> np.ndarray:
        from telcoplan.coverage._kernel import serving_power_flat

        margin = np.asarray(self.margin[key], dtype=np.float32)
        server = np.asarray(self.server[key])
        power = np.empty(margin.shape, dtype=np.float32)
        flat = [np.ascontiguousarray(a).reshape(-1) for a in (margin, server)]
        serving_power_flat(*flat, self.threshold, power.reshape(-1))
        return power if power.ndim else power[()]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if copy is False:  # (numpy 2's protocol: no view of a computed array)
            raise ValueError("the serving power is computed when read: it needs a copy")
        power = self[...]
        return power if dtype is None else power.astype(dtype, copy=False)


def prepare_coverage(
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
) -> CoverageJob:
    """Everything :func:`compute_coverage` prepares before the kernels run, for the whole grid.

    ``towers`` must be validated (index ``site_id``) and in ``grid.crs``; the frame is not
    modified. ``thresholds`` (default :class:`Thresholds`) per technology; ``model``,
    ``environment``, ``h_rx_m``, ``max_radius_km``, ``validity``, ``tile_size``,
    ``calibration``, ``dem``, ``diffraction`` and ``clutter_db`` as
    :func:`telcoplan.coverage.bestserver.prepare_best_server`'s. With a ``dem`` (ground
    elevation on ``grid``, m) paths whose line of sight the terrain obstructs lose their
    diffraction loss (``diffraction`` method), and :attr:`CoverageResult.limit` tells, for
    every uncovered cell, whether distance or terrain ends the coverage (whether some tower
    covers it on flat earth). ``clutter_db`` (dB per cell, e.g. a calibration's clutter offsets
    on a land-use raster) is added to the loss of every path ending in the cell, with and
    without terrain.
    """
    thr = thresholds or Thresholds()
    tech = (
        towers["technology"].astype(str).str.upper().to_numpy()
        if len(towers)
        else np.array([], dtype=object)
    )
    # the best server by margin: each tower's EIRP less its technology's threshold (on power)
    power_thr = np.array([thr.power_threshold(t) for t in tech], dtype=np.float64)
    shifted = towers.copy()
    shifted["eirp_dbm"] = towers["eirp_dbm"].to_numpy(dtype=np.float64) - power_thr
    job = prepare_best_server(
        shifted,
        grid,
        model=model,
        environment=environment,
        h_rx_m=h_rx_m,
        max_radius_km=max_radius_km,
        group_by="operator",
        floor_dbm=MARGIN_FLOOR_DB,
        tile_size=tile_size,
        validity=validity,
        calibration=calibration,
        dem=dem,
        diffraction=diffraction,
        clutter_db=clutter_db,
        coverage_rank=np.array([technology_rank(t) for t in tech], dtype=np.int64),
        coverage_dbm=0.0,
    )
    return CoverageJob(job, power_thr.astype(np.float32), thr)


@dataclass(frozen=True, eq=False)
class CoverageJob:
    """A coverage computation prepared for the whole grid (:func:`prepare_coverage`).

    Attributes
    ----------
    signal : telcoplan.coverage.bestserver.BestServerJob
        The best server by margin per operator (towers' EIRP less their threshold), with the
        generations and, with a DEM, the flat-earth coverage.
    power_threshold : numpy.ndarray
        float32 per tower: its technology's threshold on total received power (dBm).
    thresholds : Thresholds
    """

    signal: BestServerJob
    power_threshold: np.ndarray
    thresholds: Thresholds

    def compute(self, *, client: Any = None) -> CoverageResult:
        """The coverage of the whole grid: in this process, or with a ``client`` block by
        block on its cluster (the same bits)."""
        log.info(
            "coverage: best server per operator, generations%s%s",
            " and flat earth" * self.signal.use_dem,
            " on a cluster" * (client is not None),
        )
        if client is not None and self.signal.n_towers:
            return self._on_cluster(client, None)[0]
        job = self.signal
        sig = job.block(0, job.grid.height, 0, job.grid.width, progress_label=_LABEL)
        flat = sig.flat_covered if job.do_flat else None
        full = _BlockCoverage.of(sig.power, sig.server, sig.best_rank, flat)
        return self._result(full)

    def _result(self, full: _BlockCoverage) -> CoverageResult:
        """The :class:`CoverageResult` of the whole grid's rasters."""
        return CoverageResult(
            grid=self.signal.grid,
            operators=self.signal.groups,
            power_dbm=ServingPower(full.margin, full.server, self.power_threshold),
            margin_db=full.margin,
            server=full.server,
            covered=full.covered,
            best_technology=full.best_rank,
            site_ids=self.signal.site_ids,
            thresholds=self.thresholds,
            limit=full.limit,
        )

    def _on_cluster(self, client: Any, zones: tuple[np.ndarray, np.ndarray, int] | None):
        """The coverage (and with ``zones``, the population table's zonal sums, one row per
        column of :func:`_zonal_columns`) block by block on ``client``'s cluster."""
        from telcoplan.coverage.tiled import map_blocks
        from telcoplan.gis.cluster_io import Exchange

        job = self.signal
        labels, pop, n_areas = zones if zones is not None else (None, None, 0)
        sums: dict[tuple[int, int, int, int], np.ndarray] = {}
        # workers sharing this machine's files write their blocks into the rasters themselves
        # (no copy here); others send them back
        exchange = Exchange.open(client)
        try:
            full, out = (
                _BlockCoverage.shared(job, exchange)
                if exchange is not None
                else (_BlockCoverage.empty(job), None)
            )
            inputs = _ClusterInputs(job, labels, pop, n_areas, out)
            for block, got in map_blocks(
                client, inputs, _coverage_task, job.grid.shape, job.tile_size, _LABEL, exchange
            ):
                if out is None:
                    full.place_result(got, block)
                if got.sums is not None:
                    sums[block] = got.sums
        finally:
            if exchange is not None:
                exchange.close()  # the rasters stay mapped here
        table_sums = None
        if zones is not None:  # the blocks' partial sums added in the blocks' order
            table_sums = np.zeros((_n_columns(len(job.groups)), n_areas))
            for block in sorted(sums):
                table_sums += sums[block]
        return self._result(full), table_sums


_LABEL = "best server per operator"


def compute_coverage(
    towers: gpd.GeoDataFrame, grid: GridSpec, *, client: Any = None, **options: Any
) -> CoverageResult:
    """Per-operator coverage of ``towers`` on ``grid`` (see the module docstring).

    ``options``: :func:`prepare_coverage`'s (``thresholds``, ``model``, ``dem``, …). With a
    ``client`` (a ``distributed.Client``) the grid is computed block by block on its cluster
    (:mod:`telcoplan.coverage.tiled`), the same rasters to the bit.

    One kernel run computes everything, from the same tiles and tower candidates: the best
    server by margin per operator, the highest generation with a margin ≥ 0 (each tower
    carries its generation) and, with a DEM, the flat-earth coverage.
    """
    return prepare_coverage(towers, grid, **options).compute(client=client)


def coverage_and_population(
    towers: gpd.GeoDataFrame,
    grid: GridSpec,
    population: np.ndarray,
    areas: gpd.GeoDataFrame,
    *,
    client: Any = None,
    **options: Any,
) -> tuple[CoverageResult, pd.DataFrame]:
    """:func:`compute_coverage` and :func:`population_covered` in one call.

    Without a ``client``: exactly those two calls, one after the other. With a ``client`` (a
    ``distributed.Client``), both are computed block by block on its cluster: the areas are
    labelled on the grid once, here; the labels, the population and the prepared towers are
    scattered once to every worker; each task computes a block's coverage and its per-area
    partial sums, which are added here in the blocks' order (the rasters travel once, and the
    population is conserved as :func:`population_covered` checks). The rasters are the
    in-process run's to the bit; the sums agree to float rounding (~1e-12 relative: the cells
    are added block by block).

    ``options``: :func:`prepare_coverage`'s.
    """
    pop = _checked_population(population, grid)  # checked before the long part
    job = prepare_coverage(towers, grid, **options)
    if client is None or not job.signal.n_towers:
        coverage = job.compute()
        return coverage, population_covered(coverage, population, areas)
    log.info(
        "coverage: best server per operator, generations%s and population per area on a cluster",
        " and flat earth" * job.signal.use_dem,
    )
    labels = label_polygons(areas, grid)
    # the labels in the smallest integers that hold them: fewer bytes to send to each worker
    small = np.int8 if len(areas) < 127 else np.int16 if len(areas) < 32767 else np.int32
    coverage, sums = job._on_cluster(client, (labels.astype(small), pop, len(areas)))
    return coverage, _population_table(sums, areas.index, coverage.operators)


class _BlockCoverage(NamedTuple):
    """The coverage rasters of a block of tiles, or of the whole grid."""

    margin: np.ndarray
    server: np.ndarray
    covered: np.ndarray
    best_rank: np.ndarray
    limit: np.ndarray | None

    @classmethod
    def of(
        cls,
        margin: np.ndarray,
        server: np.ndarray,
        best_rank: np.ndarray,
        flat: np.ndarray | None = None,
    ) -> _BlockCoverage:
        """From the best server by margin: covered (margin ≥ 0; NaN: not covered) and, with
        ``flat`` (the flat-earth coverage, with a DEM), the coverage limit. (The serving power
        is computed from the margin and the server when read: :class:`ServingPower`.)"""
        covered = margin >= 0.0
        limit = None if flat is None else _limit(covered.any(axis=0), flat)
        return cls(margin, server, covered, best_rank, limit)

    @classmethod
    def shared(cls, job: BestServerJob, exchange: Any) -> tuple[_BlockCoverage, _BlockCoverage]:
        """Rasters of the whole grid shared with the workers of ``exchange`` (a
        :class:`~telcoplan.gis.cluster_io.Exchange`), as :meth:`empty` shapes them; and their
        handles, which the tasks open (:meth:`open`)."""
        made = [None if a is None else exchange.array(a.shape, a.dtype) for a in cls.empty(job)]
        arrays = cls(*(None if m is None else m[0] for m in made))
        return arrays, cls(*(None if m is None else m[1] for m in made))

    def open(self) -> _BlockCoverage:
        """(on a worker) The shared rasters of these handles (:meth:`shared`)."""
        return _BlockCoverage(*(None if h is None else h.open() for h in self))

    def place(self, part: _BlockCoverage, block: tuple[int, int, int, int]) -> None:
        """A block's rasters (``part``) copied into these (the whole grid's)."""
        r0, r1, c0, c1 = block
        for whole, piece in zip(self, part, strict=True):
            if whole is not None:
                whole[..., r0:r1, c0:c1] = piece

    @classmethod
    def empty(cls, job: BestServerJob) -> _BlockCoverage:
        """Uninitialised rasters of the whole grid (every block is copied in)."""
        sig = job.empty_block()
        shape = sig.power.shape
        limit = np.empty(shape[1:], dtype=np.uint8) if job.do_flat else None
        return cls(sig.power, sig.server, np.empty(shape, bool), sig.best_rank, limit)

    def place_result(self, got: _BlockResult, block: tuple[int, int, int, int]) -> None:
        """A task's result into these rasters (the whole grid's): its rasters copied, the
        covered cells computed from them in place."""
        r0, r1, c0, c1 = block
        self.margin[:, r0:r1, c0:c1] = got.margin
        self.server[:, r0:r1, c0:c1] = got.server
        self.best_rank[r0:r1, c0:c1] = got.best_rank
        if self.limit is not None:
            self.limit[r0:r1, c0:c1] = got.limit
        np.greater_equal(got.margin, 0.0, out=self.covered[:, r0:r1, c0:c1])  # NaN: not covered


def _limit(covered_any: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """:attr:`CoverageResult.limit` from the cells some operator covers and the flat-earth
    coverage."""
    return np.where(
        covered_any, LIMIT_COVERED, np.where(flat, LIMIT_TERRAIN, LIMIT_DISTANCE)
    ).astype(np.uint8)


class _BlockResult(NamedTuple):
    """What a cluster's task sends back: a block's margin, server, generation and limit
    rasters (the covered cells are computed from them by the caller: fewer bytes to send; None
    when the task wrote them into shared rasters), and its per-area partial sums
    (:func:`_zonal_columns`)."""

    margin: np.ndarray | None
    server: np.ndarray | None
    best_rank: np.ndarray | None
    limit: np.ndarray | None
    sums: np.ndarray | None


@dataclass(frozen=True, eq=False)
class _ClusterInputs:
    """What every task of a cluster run needs, sent once: the prepared job and, for the
    population table, the areas' labels and the population (NaN cells count as 0 persons) on
    the whole grid; with ``out``, the handles of the whole grid's shared rasters the tasks
    write into."""

    job: BestServerJob
    labels: np.ndarray | None
    population: np.ndarray | None
    n_areas: int
    out: _BlockCoverage | None = None


def _coverage_task(inputs: _ClusterInputs, block: tuple[int, int, int, int]) -> _BlockResult:
    """A worker's task: a block's coverage rasters and its per-area partial sums."""
    r0, r1, c0, c1 = block
    job = inputs.job
    sig = job.block(r0, r1, c0, c1)
    covered = sig.power >= 0.0  # margin ≥ 0 (NaN: not covered)
    limit = _limit(covered.any(axis=0), sig.flat_covered) if job.do_flat else None
    sums = None
    if inputs.labels is not None:
        sums = _zonal_columns(
            covered,
            sig.best_rank,
            inputs.population[r0:r1, c0:c1],
            inputs.labels[r0:r1, c0:c1],
            inputs.n_areas,
        )
    if inputs.out is not None:  # into the shared rasters: only the sums go back
        part = _BlockCoverage(sig.power, sig.server, covered, sig.best_rank, limit)
        inputs.out.open().place(part, block)
        return _BlockResult(None, None, None, None, sums)
    return _BlockResult(sig.power, sig.server, sig.best_rank, limit, sums)


def population_covered(
    coverage: CoverageResult,
    population: np.ndarray,
    areas: gpd.GeoDataFrame,
    *,
    labels: np.ndarray | None = None,
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

    ``labels``: :func:`telcoplan.gis.zonal.label_polygons` of ``areas`` on the coverage's grid
    when the caller has it already (else computed here).
    """
    pop = _checked_population(population, coverage.grid)
    if labels is None:
        labels = label_polygons(areas, coverage.grid)
    elif labels.shape != coverage.grid.shape:
        raise ValueError(
            f"labels shape {labels.shape} does not match the grid {coverage.grid.shape}"
        )
    sums = _zonal_columns(coverage.covered, coverage.best_technology, pop, labels, len(areas))
    return _population_table(sums, areas.index, coverage.operators)


def _checked_population(population: np.ndarray, grid: GridSpec) -> np.ndarray:
    """The population raster (float64), checked against the grid.

    Not copied (a float64 raster): the zonal sums skip its NaN and ±inf cells themselves
    (:func:`~telcoplan.gis.zonal.zonal_sum_masks`), which count as 0 persons — the sums a copy
    with those cells set to 0 gives, to the bit, without its 8 bytes per cell.
    """
    if np.shape(population) != grid.shape:
        raise ValueError(
            f"population raster shape {np.shape(population)} does not match the grid "
            f"{grid.shape}; read it onto the plan grid (telcoplan.gis.raster.read_raster_on_grid)"
        )
    return np.asarray(population, dtype=np.float64)


def _n_columns(n_operators: int) -> int:
    """Rows of :func:`_zonal_columns`."""
    return 3 + n_operators + len(TECHNOLOGY_ORDER)


def _zonal_columns(
    covered: np.ndarray, best_technology: np.ndarray, pop: np.ndarray, labels: np.ndarray, n: int
) -> np.ndarray:
    """The zonal sums of the population table (n_columns, n areas), in one pass over the cells
    of a block or of the whole grid: the population, the population covered by each operator,
    by any, not by any (summed over the uncovered cells, not taken as the difference:
    conservation is checked), then by each generation or better (:data:`TECHNOLOGY_ORDER`)."""
    return zonal_sum_masks(pop, labels, n, covered, best_technology, len(TECHNOLOGY_ORDER))


def _population_table(
    sums: np.ndarray, index: pd.Index, operators: tuple[str, ...]
) -> pd.DataFrame:
    """The table of :func:`population_covered` from its zonal sums (:func:`_zonal_columns`);
    population conservation checked."""
    out = pd.DataFrame(index=index)
    out["population"] = sums[0]
    per_op = sums[1 : 1 + len(operators)]
    for i, op in enumerate(operators):
        out[f"covered_{op}"] = per_op[i]
    k = 1 + len(operators)
    out["covered_any"] = sums[k]
    out["uncovered_any"] = sums[k + 1]
    _check_conserved(out)
    if len(operators):
        best = per_op.argmax(axis=0)
        out["covered_best_single"] = per_op.max(axis=0)
        out["best_single_operator"] = [operators[b] for b in best]
    else:
        out["covered_best_single"] = 0.0
        out["best_single_operator"] = None
    for j, t in enumerate(TECHNOLOGY_ORDER):
        out[f"covered_{t}_plus"] = sums[k + 2 + j]
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
