"""Cross-validation of calibrations: which correction generalises, and the error to quote.

A calibration's RMS error on the measurements it was fitted on flatters it, the more so the
more it can bend (terrain, clutter classes, per-site offsets). :func:`cross_validate` fits every
candidate configuration on k − 1 folds of the measurements and predicts the k-th, so that each
measurement is predicted exactly once by a fit that never saw it; the pooled out-of-fold RMS
error (``cv_rmse_db``) is the validation error a planner should quote.
:func:`calibrate_cv` picks the configuration with the lowest one and fits it on every
measurement, recording the cross-validation in :attr:`Calibration.cv
<telcoplan.coverage.calibration.Calibration.cv>`.

Folds (:func:`fold_ids`, deterministic for a ``seed``):

- ``random``: measurements shuffled and dealt into k folds of equal size (± 1);
- ``spatial``: measurements grouped by square blocks of ``block_m`` metres (in their projected
  CRS, or the local UTM zone), whole blocks dealt into folds — neighbouring measurements share
  their errors (shadowing is correlated over tens to hundreds of metres), so random folds leak
  and are optimistic (Roberts et al. 2017, "Cross-validation strategies for data with temporal,
  spatial, hierarchical, or phylogenetic structure", *Ecography* 40(8));
- ``site``: grouped by serving site: the error at a site the fit never saw.

Candidates (:class:`Candidate`): the asked-for model and the other models valid at the
measurements' frequencies; without and (with a DEM) with terrain, for every diffraction method;
without and (with clutter labels) with clutter offsets; without and with per-site offsets
shrunk by each λ of :data:`SHRINKAGE_GRID`. The terrain losses are computed once per method and
every fit is linear least squares, so many candidates cost little more than one.

Choosing the best of many candidates by their CV error makes that error slightly optimistic
(the winner's luck); with a few dozen candidates and hundreds of measurements the effect is
small next to the differences between configurations, and a nested cross-validation would
multiply the run time by k.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.coverage._offsets import correction, make_design, solve
from telcoplan.coverage.calibration import (
    MAX_DISTANCE_KM,
    MIN_MEASUREMENTS,
    Calibration,
    calibrate,
)
from telcoplan.coverage.drive_test import (
    DIFFRACTION_NAMES,
    MeasurementTerrain,
    check_measurements,
    format_rows,
    measurement_geometry,
    site_keys,
)
from telcoplan.coverage.propagation import ENVIRONMENTS, MODELS
from telcoplan.errors import LayerValidationError, PlanError, Problem
from telcoplan.gis.crs import to_projected, utm_crs_for
from telcoplan.gis.grid import GridSpec

__all__ = [
    "CV_MODES",
    "DEFAULT_BLOCK_M",
    "SHRINKAGE_GRID",
    "Candidate",
    "CandidateScore",
    "CrossValidation",
    "calibrate_cv",
    "candidate_models",
    "cross_validate",
    "fold_ids",
]

log = logging.getLogger(__name__)

#: Ways of dealing measurements into folds (see the module notes).
CV_MODES = ("random", "spatial", "site")
#: Side of the square blocks of spatial folds (m).
DEFAULT_BLOCK_M = 1000.0
#: λ tried for per-site offsets (in measurements: a site with n_s measurements keeps about
#: n_s / (n_s + λ) of its mean residual).
SHRINKAGE_GRID = (1.0, 4.0, 16.0, 64.0, 256.0)
_MIN_DISTANCE_KM = 1e-3


# ------------------------------------------------------------------------------ folds
def fold_ids(
    n: int,
    folds: int,
    mode: str = "random",
    *,
    seed: int = 0,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    sites: Sequence[Any] | np.ndarray | None = None,
    block_m: float = DEFAULT_BLOCK_M,
) -> np.ndarray:
    """The fold (0 … folds − 1) of each of ``n`` measurements.

    Parameters
    ----------
    n
        Number of measurements.
    folds
        k ≥ 2.
    mode
        ``"random"``, ``"spatial"`` (needs ``x``, ``y``: projected coordinates, m) or ``"site"``
        (needs ``sites``: the serving site of each measurement).
    seed
        Seed of the shuffle (numpy ``default_rng``): the same seed gives the same folds.
    block_m
        Side of the spatial blocks (m), anchored at the CRS's origin.

    Returns
    -------
    numpy.ndarray
        int64 (n,). Every measurement is in exactly one fold, every fold holds at least one.
        Groups (blocks, sites) are never split: they are shuffled, then dealt largest first to
        the fold with the fewest measurements so far, so fold sizes stay close.

    Raises
    ------
    telcoplan.errors.PlanError
        ``folds`` < 2, more folds than measurements (or than groups), an unknown mode.
    """
    if mode not in CV_MODES:
        raise PlanError(f"unknown cross-validation mode {mode!r}; choose one of {CV_MODES}")
    if folds < 2:
        raise PlanError(f"cross-validation needs at least 2 folds, got {folds}")
    if folds > n:
        raise PlanError(
            f"{folds} cross-validation folds asked for {n} measurements: every fold needs at "
            f"least one; choose at most {n} folds (5 or 10 are usual)"
        )
    rng = np.random.default_rng(seed)
    if mode == "random":
        out = np.empty(n, dtype=np.int64)
        out[rng.permutation(n)] = np.arange(n) % folds
        return out
    if mode == "spatial":
        if x is None or y is None:
            raise ValueError("spatial folds need the measurements' projected x and y (m)")
        if not (block_m > 0 and math.isfinite(block_m)):
            raise PlanError(f"the spatial block size must be positive (m), got {block_m!r}")
        bx = np.floor(np.asarray(x, dtype=np.float64) / block_m).astype(np.int64)
        by = np.floor(np.asarray(y, dtype=np.float64) / block_m).astype(np.int64)
        _, group = np.unique(np.column_stack([bx, by]), axis=0, return_inverse=True)
        what = f"block(s) of {block_m:g} m"
    else:
        if sites is None:
            raise ValueError("site folds need the serving site of each measurement")
        _, group = np.unique(np.asarray(sites, dtype=str), return_inverse=True)
        what = "serving site(s)"
    group = np.asarray(group).ravel()
    n_groups = int(group.max()) + 1 if n else 0
    if n_groups < folds:
        hint = "smaller blocks or " if mode == "spatial" else ""
        raise PlanError(
            f"{folds} {mode} cross-validation folds need at least {folds} groups, but the "
            f"measurements fall in {n_groups} {what}; use {hint}fewer folds (or random folds)"
        )
    sizes = np.bincount(group, minlength=n_groups)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros(folds, dtype=np.int64)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    return fold_of_group[group]


# ------------------------------------------------------------------------------ candidates
@dataclass(frozen=True)
class Candidate:
    """One calibration configuration that cross-validation compares."""

    model: str
    terrain: bool = False
    diffraction: str | None = None
    clutter: bool = False
    site_shrinkage: float | None = None

    @property
    def name(self) -> str:
        """E.g. ``hata``, ``hata+terrain(deygout)+clutter+sites(λ=4)``."""
        parts = [self.model]
        if self.terrain:
            parts.append(f"terrain({self.diffraction})")
        if self.clutter:
            parts.append("clutter")
        if self.site_shrinkage is not None:
            parts.append(f"sites(λ={self.site_shrinkage:g})")
        return "+".join(parts)

    @property
    def complexity(self) -> tuple[int, float]:
        """(corrections beyond a + b log d, 1 / λ): smaller is simpler."""
        extra = int(self.terrain) + int(self.clutter) + int(self.site_shrinkage is not None)
        return extra, 0.0 if self.site_shrinkage is None else 1.0 / self.site_shrinkage

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "terrain": self.terrain,
            "diffraction": self.diffraction,
            "clutter": self.clutter,
            "site_offsets": self.site_shrinkage is not None,
            "site_shrinkage": self.site_shrinkage,
        }


@dataclass(frozen=True)
class CandidateScore:
    """A candidate's out-of-fold errors (measured − predicted, dB)."""

    candidate: Candidate
    rmse_db: float
    mean_error_db: float
    fold_rmse_db: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return self.candidate.to_dict() | {
            "cv_rmse_db": self.rmse_db,
            "cv_mean_error_db": self.mean_error_db,
            "fold_rmse_db": list(self.fold_rmse_db),
        }


@dataclass(frozen=True)
class CrossValidation:
    """Every candidate's cross-validated errors, in the order they were tried."""

    folds: int
    mode: str
    block_m: float | None
    seed: int
    n_measurements: int
    scores: tuple[CandidateScore, ...]

    @property
    def best(self) -> CandidateScore:
        """The lowest CV RMSE; on a tie (within 1e-9 dB) the simplest — fewest corrections,
        then the strongest shrinkage — then the first tried."""
        low = min(s.rmse_db for s in self.scores)
        tied = [s for s in self.scores if s.rmse_db <= low + 1e-9 * max(1.0, abs(low))]
        return min(tied, key=lambda s: s.candidate.complexity)

    def to_dict(self) -> dict[str, Any]:
        """The ``cv`` object of ``params.json``."""
        best = self.best
        return {
            "folds": self.folds,
            "mode": self.mode,
            "block_m": self.block_m,
            "seed": self.seed,
            "n_measurements": self.n_measurements,
            "chosen": best.candidate.to_dict(),
            "cv_rmse_db": best.rmse_db,
            "cv_mean_error_db": best.mean_error_db,
            "candidates": [s.to_dict() for s in self.scores],
        }

    def table(self) -> str:
        """The candidates, best first, as a text table (for logs and the command line)."""
        width = max(len(s.candidate.name) for s in self.scores)
        lines = [f"{'configuration':<{width}}  CV RMSE  mean error (dB)"]
        for s in sorted(self.scores, key=lambda s: s.rmse_db):
            mark = "  <- chosen" if s is self.best else ""
            lines.append(
                f"{s.candidate.name:<{width}}  {s.rmse_db:7.2f}  {s.mean_error_db:+10.2f}{mark}"
            )
        return "\n".join(lines)


def candidate_models(model: str, freq_mhz: np.ndarray) -> tuple[str, ...]:
    """``model`` first, then every other model whose frequency range holds all of ``freq_mhz``."""
    f = np.asarray(freq_mhz, dtype=np.float64)
    f = f[np.isfinite(f)]
    lo, hi = (float(f.min()), float(f.max())) if f.size else (math.nan, math.nan)
    others = [
        m
        for m, spec in MODELS.items()
        if m != model and spec.freq_mhz[0] <= lo and hi <= spec.freq_mhz[1]
    ]
    return (model, *others)


# ------------------------------------------------------------------------------ the CV
def cross_validate(
    towers: gpd.GeoDataFrame,
    measurements: gpd.GeoDataFrame,
    *,
    folds: int = 5,
    mode: str = "spatial",
    block_m: float = DEFAULT_BLOCK_M,
    seed: int = 0,
    model: str = "hata",
    environment: str = "urban",
    h_rx_m: float = 1.5,
    clutter: Sequence[Any] | np.ndarray | None = None,
    dem: np.ndarray | None = None,
    grid: GridSpec | None = None,
    models: Sequence[str] | None = None,
    diffractions: Sequence[str] = DIFFRACTION_NAMES,
    shrinkage: Sequence[float] = SHRINKAGE_GRID,
    source: str = "<measurements>",
    dem_source: str = "<dem>",
) -> CrossValidation:
    """k-fold cross-validation of every candidate calibration of ``measurements``.

    Parameters
    ----------
    towers, measurements, model, environment, h_rx_m, clutter, dem, grid
        As for :func:`telcoplan.coverage.calibration.calibrate`; ``model`` is tried first.
    folds, mode, block_m, seed
        The folds (:func:`fold_ids`).
    models
        Models to try; default :func:`candidate_models` (those valid at the frequencies).
        Models other than ``model`` are evaluated without validity warnings.
    diffractions
        Diffraction methods tried with terrain (with a DEM).
    shrinkage
        λ values tried for per-site offsets (empty: none); tried with two or more sites.
    source, dem_source
        Names in error messages.

    Returns
    -------
    CrossValidation

    Raises
    ------
    telcoplan.errors.LayerValidationError
        As :func:`calibrate` (bad rows, too few measurements, measurements off the DEM, …).
    telcoplan.errors.PlanError
        Folds that cannot be made (see :func:`fold_ids`).

    Notes
    -----
    For each candidate, fold f's measurements are predicted by the fit on the others
    (:mod:`telcoplan.coverage._offsets`); a clutter class or a site missing from the training
    folds gets 0 dB there (the reference class, the prior mean), as a coverage run gives
    classes and sites its calibration never saw. CV RMSE = √(mean of the n squared out-of-fold
    errors), pooled over the folds; the mean error is their mean.
    """
    if model not in MODELS:
        raise ValueError(f"unknown propagation model {model!r}; choose one of {', '.join(MODELS)}")
    if environment not in ENVIRONMENTS:
        raise ValueError(
            f"unknown environment {environment!r}; choose one of {', '.join(ENVIRONMENTS)}"
        )
    problems = check_measurements(towers, measurements, need_rssi=True)
    if problems:
        raise LayerValidationError(source, "measurements", problems)
    n = len(measurements)
    if n < MIN_MEASUREMENTS:
        raise LayerValidationError(
            source,
            "measurements",
            [
                Problem(
                    None,
                    None,
                    f"{n} measurements given; a calibration needs at least {MIN_MEASUREMENTS}",
                )
            ],
        )
    labels = None
    if clutter is not None:
        labels = np.array([str(v) for v in np.asarray(clutter, dtype=object).ravel()], dtype=object)
        if labels.shape != (n,):
            raise ValueError(f"clutter must hold one class label per measurement ({n})")
    keys = site_keys(measurements)
    x, y = _projected_xy(measurements, grid if dem is not None else None)
    fold = fold_ids(n, folds, mode, seed=seed, x=x, y=y, sites=keys, block_m=block_m)

    base = measurement_geometry(towers, measurements, model, environment, h_rx_m, None, source)
    far = np.flatnonzero(base.distance_km > MAX_DISTANCE_KM)
    if len(far):
        raise LayerValidationError(
            source,
            "measurements",
            [
                Problem(
                    None,
                    "geometry",
                    f"{len(far)} measurement(s) lie more than "
                    f"{MAX_DISTANCE_KM:g} km from their serving site (rows {format_rows(far)}); "
                    "check their site_id and coordinates",
                )
            ],
        )
    tried = list(models) if models is not None else list(candidate_models(model, base.freq_mhz))
    if model not in tried:
        tried.insert(0, model)
    loss = {model: base.loss_db}
    for m in tried:
        if m not in loss:
            loss[m] = measurement_geometry(
                towers, measurements, m, environment, h_rx_m, None, source, validity="ignore"
            ).loss_db
    # terrain: (pattern, diffraction loss) per method, the same for every model
    variants: list[tuple[str | None, np.ndarray, np.ndarray]] = [
        (None, base.pattern_db, base.terrain_db)
    ]
    if dem is not None:
        for method in diffractions:
            terrain = MeasurementTerrain.make(dem, grid, method, dem_source)
            geo = measurement_geometry(
                towers, measurements, model, environment, h_rx_m, terrain, source
            )
            variants.append((method, geo.pattern_db, geo.terrain_db))

    measured = pd.to_numeric(measurements["rssi_dbm"]).to_numpy(dtype=np.float64)
    log_d = np.log10(np.maximum(base.distance_km, _MIN_DISTANCE_KM))
    designs = {False: make_design(log_d, None, keys)}
    if labels is not None and len(set(labels)) > 1:
        designs[True] = make_design(log_d, labels, keys)
    elif labels is not None:
        log.info("every measurement is in clutter class %r: no clutter offsets to try", labels[0])
    n_sites = len(designs[False].sites)
    lambdas: list[float | None] = [None, *([float(v) for v in shrinkage] if n_sites > 1 else [])]
    masks = [(fold != f, fold == f) for f in range(folds)]

    scores: list[CandidateScore] = []
    for m in tried:
        for method, pattern, terrain_db in variants:
            residual = measured - (base.eirp_dbm - loss[m] - terrain_db + pattern)
            for with_clutter, design in designs.items():
                for lam in lambdas:
                    err = np.empty(n)
                    for train, test in masks:
                        beta, u, _ = solve(design, -residual, rows=train, shrinkage=lam)
                        err[test] = residual[test] + correction(design, beta, u, rows=test)
                    cand = Candidate(m, method is not None, method, with_clutter, lam)
                    scores.append(
                        CandidateScore(
                            cand,
                            _rms(err),
                            float(np.mean(err)),
                            tuple(_rms(err[test]) for _, test in masks),
                        )
                    )
    result = CrossValidation(
        folds, mode, float(block_m) if mode == "spatial" else None, int(seed), n, tuple(scores)
    )
    log.info(
        "%d-fold %s cross-validation of %d configurations on %d measurements:\n%s",
        folds,
        mode,
        len(scores),
        n,
        result.table(),
    )
    return result


def calibrate_cv(
    towers: gpd.GeoDataFrame,
    measurements: gpd.GeoDataFrame,
    *,
    folds: int = 5,
    mode: str = "spatial",
    block_m: float = DEFAULT_BLOCK_M,
    seed: int = 0,
    model: str = "hata",
    environment: str = "urban",
    h_rx_m: float = 1.5,
    clutter: Sequence[Any] | np.ndarray | None = None,
    validation: gpd.GeoDataFrame | None = None,
    validation_clutter: Sequence[Any] | np.ndarray | None = None,
    dem: np.ndarray | None = None,
    grid: GridSpec | None = None,
    diffraction: str = "bullington",
    models: Sequence[str] | None = None,
    diffractions: Sequence[str] = DIFFRACTION_NAMES,
    shrinkage: Sequence[float] = SHRINKAGE_GRID,
    source: str = "<measurements>",
    validation_source: str = "<validation>",
    dem_source: str = "<dem>",
) -> Calibration:
    """Cross-validate the candidates, then fit the best on every measurement.

    Parameters are those of :func:`cross_validate` and
    :func:`telcoplan.coverage.calibration.calibrate` (``diffraction`` is only the method of a
    terrain fit when none is chosen, i.e. never used when terrain wins).

    Returns
    -------
    Calibration
        The chosen configuration fitted on all measurements, with :attr:`Calibration.cv` set
        (``cv_rmse_db``: the error to quote) and, with ``validation``, its errors there.
    """
    cv = cross_validate(
        towers,
        measurements,
        folds=folds,
        mode=mode,
        block_m=block_m,
        seed=seed,
        model=model,
        environment=environment,
        h_rx_m=h_rx_m,
        clutter=clutter,
        dem=dem,
        grid=grid,
        models=models,
        diffractions=diffractions,
        shrinkage=shrinkage,
        source=source,
        dem_source=dem_source,
    )
    best = cv.best.candidate
    cal = calibrate(
        towers,
        measurements,
        model=best.model,
        environment=environment,
        h_rx_m=h_rx_m,
        clutter=clutter if best.clutter else None,
        validation=validation,
        validation_clutter=validation_clutter if best.clutter else None,
        dem=dem if best.terrain else None,
        grid=grid if best.terrain else None,
        diffraction=best.diffraction or diffraction,
        source=source,
        validation_source=validation_source,
        dem_source=dem_source,
        site_shrinkage=best.site_shrinkage,
    )
    log.info(
        "chosen by %d-fold %s cross-validation: %s, CV RMSE %.2f dB (the validation error to "
        "quote; fit RMSE %.2f dB)",
        folds,
        mode,
        best.name,
        cv.best.rmse_db,
        cal.rmse_db_after,
    )
    return replace(cal, cv=cv.to_dict())


# ------------------------------------------------------------------------------ helpers
def _rms(x: np.ndarray) -> float:
    return float(math.sqrt(float(np.mean(np.square(x))))) if len(x) else math.nan


def _projected_xy(
    measurements: gpd.GeoDataFrame, grid: GridSpec | None
) -> tuple[np.ndarray, np.ndarray]:
    """The measurements' coordinates (m) in the CRS the prediction uses (see drive_test)."""
    if grid is not None:
        crs = grid.crs
    elif measurements.crs.is_projected:
        crs = measurements.crs
    else:
        xmin, ymin, xmax, ymax = measurements.geometry.to_crs("EPSG:4326").total_bounds
        crs = utm_crs_for((xmin + xmax) / 2.0, (ymin + ymax) / 2.0)
    pts = to_projected(gpd.GeoDataFrame(geometry=measurements.geometry.copy()), crs).geometry
    return pts.x.to_numpy(), pts.y.to_numpy()
