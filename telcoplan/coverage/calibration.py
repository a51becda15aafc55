"""Propagation-model calibration against drive-test measurements.

A calibration corrects a standard model's path loss with a linear term in the logarithm of the
distance — the two parameters of every log-distance model, its intercept and its slope —
and optionally a constant offset per clutter (land-use) class:

    L_cal(d) = L_model(d) + a + b log10(d / 1 km) [+ c_k for clutter class k].

The parameters are fitted by least squares to the residuals *measured − predicted* of a set
of measurements (``site_id``, ``rssi_dbm``, optional ``freq_mhz``; the contract is
:data:`telcoplan.layers.schemas.MEASUREMENTS`), and stored as a small frozen value object,
:class:`Calibration`, that round-trips through a JSON-serialisable dict.

Received power follows the coverage convention (:mod:`telcoplan.coverage.bestserver`):
P_rx = EIRP − L_path(d) [− L_terrain] + A(φ, θ), with EIRP including the antenna's maximum gain
and A the 3GPP sector-pattern attenuation (≤ 0 dB) of towers that have an azimuth and/or a tilt.

With a DEM (``dem=`` on a :class:`~telcoplan.gis.grid.GridSpec`) the prediction includes
terrain exactly as the coverage kernel (:mod:`telcoplan.coverage._kernel_terrain`) does: the antennas
stand on the ground of the cell that contains them, the depression angle of the pattern uses
those absolute heights, and the knife-edge diffraction loss of the tower → measurement profile
(:func:`telcoplan.coverage.terrain.path_terrain_loss`, Earth curvature k = 4/3) is added when
the terrain obstructs the direct ray (clearance > 0). The fitted a, b (and c_k) then correct
the residual of that terrain-aware prediction, and the calibration records that it was fitted
with terrain (:attr:`Calibration.terrain`, :attr:`Calibration.diffraction`), so that coverage
runs can check they apply it the same way.

Clutter classes usually come from a categorical land-use raster (or polygons) sampled at each
measurement; :func:`clutter_labels` turns the sampled codes into class names, measurements
where the land use has no class becoming the class ``unclassified``
(:data:`telcoplan.coverage.clutter.UNCLASSIFIED`), fitted like any other.

Per-site offsets (``site_shrinkage=``) add one intercept offset u_s per serving site, shrunk
towards the common intercept by a ridge penalty λ (a site with n_s measurements keeps about
n_s / (n_s + λ) of its mean residual; the offsets sum to 0; see
:mod:`telcoplan.coverage._offsets`). The coverage stage applies them as a
shift of each tower's EIRP (:func:`apply_site_offsets`). Which corrections generalise — and the
error a planner should quote — is decided by cross-validation
(:mod:`telcoplan.coverage.crossval`), recorded in :attr:`Calibration.cv`.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.coverage._offsets import correction, make_design, solve
from telcoplan.coverage.clutter import (
    UNCLASSIFIED,
    ClutterGrid,
    clutter_labels,
    clutter_offset_grid,
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
from telcoplan.gis.grid import GridSpec

__all__ = [
    "MIN_MEASUREMENTS",
    "UNCLASSIFIED",
    "Calibration",
    "ClutterGrid",
    "apply_site_offsets",
    "calibrate",
    "clutter_labels",
    "clutter_offset_grid",
    "predict_rssi",
]

log = logging.getLogger(__name__)

#: Fewest measurements :func:`calibrate` accepts (two parameters and one degree of freedom).
MIN_MEASUREMENTS = 3
#: Farthest a measurement may lie from its serving site (km): beyond, a site_id or coordinate
#: mistake is far likelier than a real link (macro cells reach 35 km at most, GSM's timing limit)
MAX_DISTANCE_KM = 100.0
#: Distances are clamped to 1 m before taking logarithms, as :func:`path_loss` does (km).
_MIN_DISTANCE_KM = 1e-3


# ------------------------------------------------------------------------------ value object
@dataclass(frozen=True)
class Calibration:
    """A fitted correction of a propagation model, with its goodness of fit.

    Attributes
    ----------
    model : str
        Name of the corrected model in :data:`telcoplan.coverage.propagation.MODELS`.
    environment : str
        Environment the model was evaluated for (towers' own ``environment`` column wins).
    intercept_offset_db : float
        a: loss added at 1 km (dB).
    slope_offset_db_per_decade : float
        b: loss added per decade of distance (dB/decade).
    clutter_offsets_db : dict of str to float
        c_k: loss added in clutter class k (dB), relative to the reference class (the most
        frequent class of the fit), whose offset is 0 dB. Empty when fitted without clutter.
    n_measurements : int
        Measurements used in the fit.
    rmse_db_before, rmse_db_after : float
        Root-mean-square of measured − predicted power (dB) with the model as is, and with
        the calibration applied.
    mean_error_db_before, mean_error_db_after : float
        Mean of measured − predicted power (dB); positive = the model is pessimistic. After the
        fit it is 0 up to rounding (least squares with an intercept removes the mean), so the
        informative numbers are the bias before and the validation set's mean error.
        ``to_dict`` also writes ``mean_error_db``: the model's bias before calibration.
    validation_rmse_db, validation_mean_error_db : float or None
        RMS and mean (measured − predicted, dB) error of the calibrated model on an independent
        validation set, if given.
    terrain : bool
        Whether the predictions the parameters correct included terrain (a DEM): antenna heights
        above the local ground and knife-edge diffraction over obstructed paths. A coverage run
        should apply the calibration with terrain on exactly when this is true.
    diffraction : str or None
        Diffraction method of the terrain-aware fit (``"bullington"``, ``"deygout"`` or
        ``"epstein-peterson"``); None without terrain.
    terrain_resolution_m : float or None
        Cell size (m) of the grid the DEM was sampled on; None without terrain.
    site_offsets_db : dict of str to float
        u_s: loss added on the paths of serving site s (dB), relative to the common intercept
        and shrunk towards it (see ``site_shrinkage``; they sum to 0). Empty when fitted without
        per-site offsets; sites it does not name get 0 dB (the common fit).
    site_shrinkage : float or None
        λ, the ridge penalty of the site offsets (in measurements: a site with n_s measurements
        keeps about n_s / (n_s + λ) of its mean residual); None without site offsets.
    cv : dict or None
        The cross-validation that chose this configuration (:mod:`telcoplan.coverage.crossval`):
        ``folds``, ``mode``, ``block_m``, ``seed``, ``chosen`` (the configuration),
        ``cv_rmse_db`` and ``cv_mean_error_db`` (its out-of-fold errors: the validation error
        to quote) and ``candidates`` (every configuration's CV RMSE and mean error). None when
        fitted without cross-validation.
    """

    model: str
    environment: str
    intercept_offset_db: float
    slope_offset_db_per_decade: float
    clutter_offsets_db: dict[str, float] = field(hash=False)
    n_measurements: int
    rmse_db_before: float
    rmse_db_after: float
    mean_error_db_before: float
    mean_error_db_after: float
    validation_rmse_db: float | None = None
    terrain: bool = False
    diffraction: str | None = None
    terrain_resolution_m: float | None = None
    validation_mean_error_db: float | None = None
    site_offsets_db: dict[str, float] = field(default_factory=dict, hash=False)
    site_shrinkage: float | None = None
    cv: dict[str, Any] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        # private copies, so that the caller's dicts cannot change a frozen object
        offsets = {str(k): float(v) for k, v in dict(self.clutter_offsets_db).items()}
        object.__setattr__(self, "clutter_offsets_db", offsets)
        sites = {str(k): float(v) for k, v in dict(self.site_offsets_db).items()}
        object.__setattr__(self, "site_offsets_db", sites)
        if self.cv is not None:
            object.__setattr__(self, "cv", copy.deepcopy(dict(self.cv)))
        if self.terrain and self.diffraction not in DIFFRACTION_NAMES:
            raise ValueError(
                f"a calibration fitted with terrain needs its diffraction method (one of "
                f"{', '.join(DIFFRACTION_NAMES)}), got {self.diffraction!r}"
            )

    @property
    def cv_rmse_db(self) -> float | None:
        """The chosen configuration's cross-validated RMS error (dB), or None without CV."""
        return None if self.cv is None else float(self.cv["cv_rmse_db"])

    # -------------------------------------------------------------------------- applying
    def apply(
        self,
        loss_db: float | np.ndarray,
        distance_km: float | np.ndarray,
        clutter: Sequence[Any] | np.ndarray | None = None,
        sites: Sequence[Any] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Calibrated path loss (dB), broadcasting over the arguments.

        Parameters
        ----------
        loss_db
            Path loss of :attr:`model` (dB).
        distance_km
            Horizontal distance (km) at which ``loss_db`` was computed; clamped to 1 m.
        clutter
            Clutter class label of each value (compared as strings), broadcastable to
            ``loss_db``; only for calibrations fitted with clutter classes. ``None`` applies
            the reference class (offset 0 dB).
        sites
            Serving site id of each value (compared as strings), broadcastable to ``loss_db``;
            adds :attr:`site_offsets_db` (0 dB for sites it does not name). ``None`` adds none.

        Returns
        -------
        numpy.ndarray
            L + a + b log10(d) (+ c_k) (+ u_s), float64 (dB).

        Raises
        ------
        ValueError
            ``clutter`` is given but the calibration has no clutter offsets, or it holds
            classes the calibration does not know.
        """
        loss = np.asarray(loss_db, dtype=np.float64)
        d = np.maximum(np.asarray(distance_km, dtype=np.float64), _MIN_DISTANCE_KM)
        out = loss + self.intercept_offset_db + self.slope_offset_db_per_decade * np.log10(d)
        if sites is not None and self.site_offsets_db:
            keys = _labels(sites, "sites")
            lookup_site = np.vectorize(
                lambda k: self.site_offsets_db.get(k, 0.0), otypes=[np.float64]
            )
            out = out + (lookup_site(keys) if keys.size else 0.0)
        if clutter is None:
            return np.asarray(out, dtype=np.float64)
        if not self.clutter_offsets_db:
            raise ValueError(
                "clutter classes were given, but this calibration was fitted without them; "
                "calibrate again with clutter= or leave clutter out"
            )
        labels = _labels(clutter, "clutter")
        unknown = sorted(set(labels.ravel()) - set(self.clutter_offsets_db))
        if unknown:
            raise ValueError(
                f"unknown clutter class(es) {', '.join(map(repr, unknown))}; this calibration "
                f"knows {', '.join(map(repr, sorted(self.clutter_offsets_db)))}"
            )
        lookup = np.vectorize(self.clutter_offsets_db.__getitem__, otypes=[np.float64])
        return np.asarray(out + lookup(labels), dtype=np.float64)

    # -------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """A plain dict of built-in types (``json.dumps`` serialises it as is)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                value = copy.deepcopy(value)
            elif isinstance(value, bool | np.bool_):
                value = bool(value)
            elif isinstance(value, float | np.floating):
                value = float(value)
            elif isinstance(value, int | np.integer):
                value = int(value)
            out[f.name] = value
        # the model's bias, which the calibration removes (after the fit the mean error is 0 by
        # construction); a derived key, which from_dict ignores
        out["mean_error_db"] = out.get("mean_error_db_before")
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Rebuild a calibration from :meth:`to_dict` output (e.g. a parsed ``params.json``).

        Raises
        ------
        telcoplan.errors.PlanError
            Keys are missing or unknown, values have the wrong type, or the model,
            environment or diffraction method is not known.

        Notes
        -----
        ``validation_rmse_db``, ``validation_mean_error_db``, ``terrain``, ``diffraction``,
        ``terrain_resolution_m``, ``site_offsets_db``, ``site_shrinkage`` and ``cv`` are
        optional: a ``params.json`` written before terrain-aware fits existed reads as fitted
        without terrain (which it was), one written before cross-validation as fitted without
        per-site offsets and without CV.
        """
        if not isinstance(data, Mapping):
            raise PlanError(f"a calibration must be a JSON object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        optional = (
            "validation_rmse_db",
            "validation_mean_error_db",
            "terrain",
            "diffraction",
            "terrain_resolution_m",
            "site_offsets_db",
            "site_shrinkage",
            "cv",
        )
        required = [f.name for f in fields(cls) if f.name not in optional]
        missing = [k for k in required if k not in data]
        unknown = sorted(set(data) - set(names) - {"mean_error_db"})  # a derived key
        problems = []
        if missing:
            problems.append(f"missing key(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown key(s) {', '.join(unknown)}")
        if problems:
            raise PlanError(
                f"malformed calibration: {'; '.join(problems)}; expected the keys "
                f"{', '.join(names)} as written by Calibration.to_dict()"
            )
        if data["model"] not in MODELS:
            raise PlanError(
                f"calibration of unknown model {data['model']!r}; known: {', '.join(MODELS)}"
            )
        if data["environment"] not in ENVIRONMENTS:
            raise PlanError(
                f"calibration for unknown environment {data['environment']!r}; known: "
                f"{', '.join(ENVIRONMENTS)}"
            )
        terrain = data.get("terrain", False)
        diffraction = data.get("diffraction")
        resolution = data.get("terrain_resolution_m")
        if not isinstance(terrain, bool):
            raise PlanError(
                f"malformed calibration: terrain must be true or false, got {terrain!r}"
            )
        if terrain and diffraction not in DIFFRACTION_NAMES:
            raise PlanError(
                f"calibration fitted with terrain by unknown diffraction method {diffraction!r}; "
                f"known: {', '.join(DIFFRACTION_NAMES)}"
            )
        cv = data.get("cv")
        if cv is not None and not (
            isinstance(cv, Mapping) and {"folds", "mode", "chosen", "cv_rmse_db"} <= set(cv)
        ):
            raise PlanError(
                "malformed calibration: cv must be an object with folds, mode, chosen and "
                "cv_rmse_db, as telcoplan calibrate --cv writes it"
            )
        try:
            offsets = data["clutter_offsets_db"]
            if not isinstance(offsets, Mapping):
                raise TypeError("clutter_offsets_db must be an object of class -> dB")
            site_offsets = data.get("site_offsets_db") or {}
            if not isinstance(site_offsets, Mapping):
                raise TypeError("site_offsets_db must be an object of site_id -> dB")
            shrinkage = data.get("site_shrinkage")
            validation = data.get("validation_rmse_db")
            vmean = data.get("validation_mean_error_db")
            return cls(
                model=str(data["model"]),
                environment=str(data["environment"]),
                intercept_offset_db=float(data["intercept_offset_db"]),
                slope_offset_db_per_decade=float(data["slope_offset_db_per_decade"]),
                clutter_offsets_db={str(k): float(v) for k, v in offsets.items()},
                n_measurements=int(data["n_measurements"]),
                rmse_db_before=float(data["rmse_db_before"]),
                rmse_db_after=float(data["rmse_db_after"]),
                mean_error_db_before=float(data["mean_error_db_before"]),
                mean_error_db_after=float(data["mean_error_db_after"]),
                validation_rmse_db=None if validation is None else float(validation),
                validation_mean_error_db=None if vmean is None else float(vmean),
                terrain=terrain,
                diffraction=str(diffraction) if terrain else None,
                terrain_resolution_m=None
                if not terrain or resolution is None
                else float(resolution),
                site_offsets_db={str(k): float(v) for k, v in site_offsets.items()},
                site_shrinkage=None if shrinkage is None else float(shrinkage),
                cv=None if cv is None else dict(cv),
            )
        except (TypeError, ValueError) as exc:
            raise PlanError(f"malformed calibration: {exc}") from None


# ------------------------------------------------------------------------------ prediction
def predict_rssi(
    towers: gpd.GeoDataFrame,
    measurements: gpd.GeoDataFrame,
    *,
    model: str = "hata",
    environment: str = "urban",
    h_rx_m: float = 1.5,
    calibration: Calibration | None = None,
    clutter: Sequence[Any] | np.ndarray | None = None,
    dem: np.ndarray | None = None,
    grid: GridSpec | None = None,
    diffraction: str = "bullington",
    source: str = "<measurements>",
    dem_source: str = "<dem>",
) -> np.ndarray:
    """Received power (dBm) predicted at each measurement from its serving tower.

    Parameters
    ----------
    towers
        Towers layer (index ``site_id``, or a ``site_id`` column), any CRS; columns
        ``frequency_mhz`` (MHz), ``height_m`` (m), ``eirp_dbm`` (dBm); optional
        ``azimuth_deg``, ``beamwidth_deg``, ``tilt_deg`` (sector pattern) and ``environment``.
    measurements
        Measurements layer (points, any CRS) with ``site_id`` and optional ``freq_mhz`` (MHz).
    model
        Propagation model name in :data:`telcoplan.coverage.propagation.MODELS`.
    environment
        Default environment (a tower's own ``environment`` value wins, as in coverage).
    h_rx_m
        Receiver height above ground (m).
    calibration
        Correction applied to the model's loss; its ``model`` and ``environment`` must match.
        Its per-site offsets apply by the measurements' ``site_id``.
    clutter
        Clutter class label per measurement (only with a calibration that has clutter offsets).
    dem, grid
        Ground elevation (m above sea level, NaN for voids, as
        :func:`telcoplan.layers.dem.load_dem` gives) on ``grid``, a projected grid that contains
        every measurement and every serving tower. Without a DEM: flat earth.
    diffraction
        Knife-edge method with a DEM: ``"bullington"`` (default, as the coverage stage),
        ``"deygout"`` or ``"epstein-peterson"``.
    source, dem_source
        Names of the measurements and of the DEM in error messages (e.g. the file paths).

    Returns
    -------
    numpy.ndarray
        float64 (n,): predicted received power (dBm), in the measurements' row order.

    Raises
    ------
    telcoplan.errors.LayerValidationError
        Measurements refer to sites missing from the towers layer (every bad row listed) or
        have no point geometry.
        A DEM is given and some measurements or serving towers lie outside its grid or on its
        voids (how many, and the first rows).
    telcoplan.errors.CRSError
        A layer has no CRS.

    Notes
    -----
    P = EIRP − L(f, d, h_tx, h_rx) [− a − b log10 d − c_k] [− L_terrain] + A(φ, θ), with f the
    measurement's
    ``freq_mhz`` where given (else the tower's ``frequency_mhz``), d the horizontal distance (km)
    in the measurements' CRS if it is projected, else in the local UTM zone of their centre, h_tx the tower's ``height_m`` and A the
    3GPP TR 36.814 sector attenuation (:func:`telcoplan.coverage.antenna.sector_attenuation`)
    for towers with an azimuth or a tilt, at the depression angle atan((h_tx − h_rx) / d).
    Distances outside the model's validity range are not warned about; frequencies and
    heights are.
    """
    _check_model(model, environment)
    if calibration is not None and (
        calibration.model != model or calibration.environment != environment
    ):
        raise ValueError(
            f"the calibration is for model {calibration.model!r} in a {calibration.environment!r} "
            f"environment, but {model!r} / {environment!r} was asked for; pass "
            f"model={calibration.model!r}, environment={calibration.environment!r}"
        )
    if clutter is not None and calibration is None:
        raise ValueError("clutter classes only apply with a calibration; pass calibration=")
    if calibration is not None and calibration.terrain != (dem is not None):
        log.warning(
            "the calibration was fitted %s terrain but is applied %s a DEM; its offsets "
            "correct a different prediction",
            "with" if calibration.terrain else "without",
            "with" if dem is not None else "without",
        )
    problems = check_measurements(towers, measurements, need_rssi=False)
    if problems:
        raise LayerValidationError(source, "measurements", problems)
    labels = None if clutter is None else _clutter_per_row(clutter, len(measurements))
    terrain = MeasurementTerrain.make(dem, grid, diffraction, dem_source)
    geo = measurement_geometry(towers, measurements, model, environment, h_rx_m, terrain, source)
    loss = geo.loss_db
    if calibration is not None:
        sites = site_keys(measurements) if calibration.site_offsets_db else None
        loss = calibration.apply(loss, geo.distance_km, labels, sites)
    return geo.eirp_dbm - loss - geo.terrain_db + geo.pattern_db


# ------------------------------------------------------------------------------ calibration
def calibrate(
    towers: gpd.GeoDataFrame,
    measurements: gpd.GeoDataFrame,
    *,
    model: str = "hata",
    environment: str = "urban",
    h_rx_m: float = 1.5,
    clutter: Sequence[Any] | np.ndarray | None = None,
    validation: gpd.GeoDataFrame | None = None,
    validation_clutter: Sequence[Any] | np.ndarray | None = None,
    dem: np.ndarray | None = None,
    grid: GridSpec | None = None,
    diffraction: str = "bullington",
    source: str = "<measurements>",
    validation_source: str = "<validation>",
    dem_source: str = "<dem>",
    site_shrinkage: float | None = None,
) -> Calibration:
    """Fit a model's intercept and distance slope (and clutter offsets) to measurements.

    Parameters
    ----------
    towers
        Towers layer (see :func:`predict_rssi`).
    measurements
        Measurements layer with ``site_id``, ``rssi_dbm`` (dBm), optional ``freq_mhz`` (MHz);
        at least :data:`MIN_MEASUREMENTS` rows, at two or more distances.
    model, environment, h_rx_m
        Propagation model name, environment, receiver height (m) (see :func:`predict_rssi`).
    clutter
        Clutter class label per measurement (any hashable; compared as strings). Fits one
        offset per class, relative to the most frequent class (ties: the first in sort order).
        The result always has an offset for :data:`UNCLASSIFIED` (places without a land-use
        class): fitted when measurements have it, else 0 dB (the reference's).
    validation
        An independent measurements layer on which the calibrated model's RMS error is reported.
    validation_clutter
        Clutter labels of ``validation``; required when ``clutter`` is given with it. Every
        class but :data:`UNCLASSIFIED` must occur in ``clutter`` too.
    dem, grid, diffraction
        Terrain (see :func:`predict_rssi`): with a DEM the parameters correct the residual of
        the terrain-aware prediction, and the result records ``terrain=True`` and the method.
        ``grid`` must contain the measurements, the validation measurements and their towers.
    source, validation_source, dem_source
        Names of the layers and of the DEM in error messages (e.g. file paths).
    site_shrinkage
        λ > 0: also fit one intercept offset per serving site, shrunk towards the common
        intercept by the ridge penalty λ (see :mod:`telcoplan.coverage._offsets`); None: no site
        offsets.

    Returns
    -------
    Calibration

    Raises
    ------
    telcoplan.errors.LayerValidationError
        Unknown ``site_id`` values, missing ``rssi_dbm`` values or geometries (every bad row
        listed), fewer than :data:`MIN_MEASUREMENTS` measurements, measurements that cannot
        determine the parameters (e.g. all at the same distance), validation measurements in
        clutter classes the fit has not seen, or (with a DEM) measurements or towers outside the
        DEM's grid or on its voids.

    Notes
    -----
    With r_i = P_measured,i − P_predicted,i (dB) the residuals of the uncorrected model, the
    parameters minimise Σ (r_i + a + b log10 d_i + c_k(i))² (ordinary least squares,
    :func:`numpy.linalg.lstsq`), i.e. the calibrated loss is L + a + b log10(d / 1 km) + c_k.
    This is the usual drive-test tuning of the intercept and distance-slope terms of a
    log-distance model such as Okumura-Hata (Hata 1980). With Gaussian errors of standard
    deviation σ the fitted a and b have standard errors σ √diag((XᵀX)⁻¹) and the RMS error
    after calibration estimates σ.
    """
    _check_model(model, environment)
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
                    f"{n} measurement{'s' if n != 1 else ''} given; a calibration fits an "
                    f"intercept and a slope and needs at least {MIN_MEASUREMENTS}, at "
                    "different distances from their towers",
                )
            ],
        )
    labels = None if clutter is None else _clutter_per_row(clutter, n)
    if validation is not None and labels is not None and validation_clutter is None:
        raise ValueError(
            "the calibration is fitted with clutter classes: pass validation_clutter= "
            "(one class label per validation measurement) as well"
        )
    terrain = MeasurementTerrain.make(dem, grid, diffraction, dem_source)
    vlabels = None
    if validation is not None:
        # every problem of the validation set is found before the (possibly long) fit
        vproblems = check_measurements(towers, validation, need_rssi=True)
        if vproblems:
            raise LayerValidationError(validation_source, "measurements", vproblems)
        if labels is not None:
            vlabels = _clutter_per_row(validation_clutter, len(validation))
            unseen = [
                Problem(
                    i + 1,
                    "clutter",
                    f"clutter class {c!r} does not occur in the calibration measurements "
                    f"(their classes: {', '.join(map(repr, sorted(set(labels))))}); its offset "
                    "cannot be fitted",
                )
                for i, c in enumerate(vlabels)
                if c not in set(labels) and c != UNCLASSIFIED
            ]
            if unseen:
                raise LayerValidationError(validation_source, "measurements", unseen)

    geo = measurement_geometry(towers, measurements, model, environment, h_rx_m, terrain, source)
    far = np.flatnonzero(geo.distance_km > MAX_DISTANCE_KM)
    if len(far):
        raise LayerValidationError(
            source,
            "measurements",
            [
                Problem(
                    None,
                    "geometry",
                    f"{len(far)} measurement(s) lie more than {MAX_DISTANCE_KM:g} km from their "
                    f"serving site (rows {format_rows(far)}): no cell reaches that far; check their "
                    "site_id and their coordinates (lon/lat order, CRS)",
                )
            ],
        )
    measured = pd.to_numeric(measurements["rssi_dbm"]).to_numpy(dtype=np.float64)
    residual = measured - geo.predicted_dbm

    # design matrix: the correction a + b log10 d + c_k + u_s is added to the loss, so it is
    # subtracted from the power, and r ≈ −(X β + Z u)
    log_d = np.log10(np.maximum(geo.distance_km, _MIN_DISTANCE_KM))
    keys = site_keys(measurements) if site_shrinkage is not None else None
    design = make_design(log_d, labels, keys)
    beta, u, full_rank = solve(design, -residual, shrinkage=site_shrinkage)
    if not full_rank:
        raise LayerValidationError(
            source,
            "measurements",
            [
                Problem(
                    None,
                    None,
                    f"the {n} measurements cannot determine the {design.x.shape[1]} parameters "
                    f"({', '.join(design.names)}): they need at least two different distances "
                    "from their towers, spread in every clutter class",
                )
            ],
        )
    after = residual + correction(design, beta, u)
    offsets: dict[str, float] = {}
    if labels is not None:
        offsets = dict.fromkeys(sorted({*design.classes, UNCLASSIFIED}), 0.0)
        fitted = design.fitted_classes
        offsets.update({c: float(v) for c, v in zip(fitted, beta[2:], strict=True)})
    result = Calibration(
        model=model,
        environment=environment,
        intercept_offset_db=float(beta[0]),
        slope_offset_db_per_decade=float(beta[1]),
        clutter_offsets_db=offsets,
        n_measurements=n,
        rmse_db_before=_rms(residual),
        rmse_db_after=_rms(after),
        mean_error_db_before=float(np.mean(residual)),
        mean_error_db_after=float(np.mean(after)),
        terrain=terrain is not None,
        diffraction=None if terrain is None else diffraction,
        terrain_resolution_m=None if terrain is None else terrain.grid.resolution,
        site_offsets_db={k: float(v) for k, v in zip(design.sites, u, strict=True)},
        site_shrinkage=site_shrinkage,
    )
    if validation is not None:
        vpred = predict_rssi(
            towers,
            validation,
            model=model,
            environment=environment,
            h_rx_m=h_rx_m,
            calibration=result,
            clutter=vlabels,
            dem=dem,
            grid=grid,
            diffraction=diffraction,
            source=validation_source,
            dem_source=dem_source,
        )
        verr = pd.to_numeric(validation["rssi_dbm"]).to_numpy(dtype=np.float64) - vpred
        result = replace(
            result, validation_rmse_db=_rms(verr), validation_mean_error_db=float(np.mean(verr))
        )
    log.info(
        "calibrated %s (%s%s) on %d measurements: a = %+.2f dB, b = %+.2f dB/decade, "
        "RMSE %.2f -> %.2f dB%s",
        model,
        environment,
        "" if terrain is None else f", terrain with {diffraction} diffraction",
        n,
        result.intercept_offset_db,
        result.slope_offset_db_per_decade,
        result.rmse_db_before,
        result.rmse_db_after,
        ""
        if result.validation_rmse_db is None
        else f", validation RMSE {result.validation_rmse_db:.2f} dB",
    )
    return result


# ------------------------------------------------------------------------------ coverage
def apply_site_offsets(towers: gpd.GeoDataFrame, calibration: Calibration) -> gpd.GeoDataFrame:
    """The towers with each site's calibration offset taken off its EIRP, for the coverage kernel.

    Parameters
    ----------
    towers
        Towers layer indexed by ``site_id`` (as :func:`telcoplan.layers.towers.load_towers`
        gives it), with ``eirp_dbm`` (dBm). Not modified.
    calibration
        A calibration; its :attr:`~Calibration.site_offsets_db` u_s (dB, added to the loss of
        site s's paths) become EIRP − u_s. Sites it does not name keep their EIRP (u = 0 dB,
        the prior mean of the shrunk offsets).

    Returns
    -------
    geopandas.GeoDataFrame
        A copy (same index, CRS and columns); the input itself when there are no site offsets.

    Notes
    -----
    A per-site constant on the loss is a per-site constant on the received power, everywhere
    that site serves, so shifting the EIRP gives the kernel exactly the calibrated powers and
    keeps the best-server choice consistent with them.
    """
    if not calibration.site_offsets_db:
        return towers
    keys = towers.index.map(str) if "site_id" not in towers.columns else towers["site_id"]
    shift = np.array([calibration.site_offsets_db.get(str(k), 0.0) for k in keys], dtype=np.float64)
    out = towers.copy()
    out["eirp_dbm"] = pd.to_numeric(out["eirp_dbm"]).to_numpy(dtype=np.float64) - shift
    matched = int(np.count_nonzero([str(k) in calibration.site_offsets_db for k in keys]))
    log.info(
        "per-site calibration offsets applied to %d of %d towers (the others: 0 dB)",
        matched,
        len(towers),
    )
    return out


# ------------------------------------------------------------------------------ helpers
def _rms(x: np.ndarray) -> float:
    return float(math.sqrt(float(np.mean(np.square(x))))) if len(x) else math.nan


def _check_model(model: str, environment: str) -> None:
    if model not in MODELS:
        raise ValueError(f"unknown propagation model {model!r}; choose one of {', '.join(MODELS)}")
    if environment not in ENVIRONMENTS:
        raise ValueError(
            f"unknown environment {environment!r}; choose one of {', '.join(ENVIRONMENTS)}"
        )


def _labels(values: Sequence[Any] | np.ndarray, name: str) -> np.ndarray:
    """Class labels as an object array of strings; missing labels are an error."""
    arr = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else values, dtype=object)
    missing = pd.isna(arr)
    if np.any(missing):
        rows = (np.flatnonzero(missing.ravel()) + 1).tolist()
        raise ValueError(f"{name}: class labels missing at row(s) {rows[:20]}")
    return np.vectorize(str, otypes=[object])(arr) if arr.size else arr


def _clutter_per_row(clutter: Sequence[Any] | np.ndarray, n: int) -> np.ndarray:
    labels = _labels(clutter, "clutter")
    if labels.shape != (n,):
        raise ValueError(
            f"clutter must hold one class label per measurement ({n}); got shape {labels.shape}"
        )
    return labels
