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
P_rx = EIRP − L_path(d) + A(φ, θ), with EIRP including the antenna's maximum gain and A the
3GPP sector-pattern attenuation (≤ 0 dB) of towers that have an azimuth and/or a tilt.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.coverage.antenna import azimuth_deg, sector_attenuation
from telcoplan.coverage.propagation import ENVIRONMENTS, MODELS, path_loss
from telcoplan.errors import LayerValidationError, PlanError, Problem
from telcoplan.gis.crs import require_crs, to_projected, utm_crs_for

__all__ = ["MIN_MEASUREMENTS", "Calibration", "calibrate", "predict_rssi"]

log = logging.getLogger(__name__)

#: Fewest measurements :func:`calibrate` accepts (two parameters and one degree of freedom).
MIN_MEASUREMENTS = 3
#: Distances are clamped to 1 m before taking logarithms, as :func:`path_loss` does (km).
_MIN_DISTANCE_KM = 1e-3
#: Ids of the towers layer shown in an unknown-site message.
_SHOW_IDS = 10


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
        Mean of measured − predicted power (dB); positive = the model is pessimistic.
    validation_rmse_db : float or None
        RMS error (dB) of the calibrated model on an independent validation set, if given.
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

    def __post_init__(self) -> None:
        # a private copy, so that the caller's dict cannot change a frozen object
        offsets = {str(k): float(v) for k, v in dict(self.clutter_offsets_db).items()}
        object.__setattr__(self, "clutter_offsets_db", offsets)

    # -------------------------------------------------------------------------- applying
    def apply(
        self,
        loss_db: float | np.ndarray,
        distance_km: float | np.ndarray,
        clutter: Sequence[Any] | np.ndarray | None = None,
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

        Returns
        -------
        numpy.ndarray
            L + a + b log10(d) (+ c_k), float64 (dB).

        Raises
        ------
        ValueError
            ``clutter`` is given but the calibration has no clutter offsets, or it holds
            classes the calibration does not know.
        """
        loss = np.asarray(loss_db, dtype=np.float64)
        d = np.maximum(np.asarray(distance_km, dtype=np.float64), _MIN_DISTANCE_KM)
        out = loss + self.intercept_offset_db + self.slope_offset_db_per_decade * np.log10(d)
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
                value = dict(value)
            elif isinstance(value, float | np.floating):
                value = float(value)
            elif isinstance(value, int | np.integer):
                value = int(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Rebuild a calibration from :meth:`to_dict` output (e.g. a parsed ``params.json``).

        Raises
        ------
        telcoplan.errors.PlanError
            Keys are missing or unknown, values have the wrong type, or the model or
            environment is not known.
        """
        if not isinstance(data, Mapping):
            raise PlanError(f"a calibration must be a JSON object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if f.name != "validation_rmse_db"]
        missing = [k for k in required if k not in data]
        unknown = sorted(set(data) - set(names))
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
        try:
            offsets = data["clutter_offsets_db"]
            if not isinstance(offsets, Mapping):
                raise TypeError("clutter_offsets_db must be an object of class -> dB")
            validation = data.get("validation_rmse_db")
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
            )
        except (TypeError, ValueError) as exc:
            raise PlanError(f"malformed calibration: {exc}") from None


# ------------------------------------------------------------------------------ prediction
@dataclass(frozen=True)
class _Geometry:
    """Per-measurement inputs of the prediction (arrays of length n)."""

    eirp_dbm: np.ndarray
    loss_db: np.ndarray
    pattern_db: np.ndarray
    distance_km: np.ndarray


def predict_rssi(
    towers: gpd.GeoDataFrame,
    measurements: gpd.GeoDataFrame,
    *,
    model: str = "hata",
    environment: str = "urban",
    h_rx_m: float = 1.5,
    calibration: Calibration | None = None,
    clutter: Sequence[Any] | np.ndarray | None = None,
    source: str = "<measurements>",
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
    clutter
        Clutter class label per measurement (only with a calibration that has clutter offsets).
    source
        Name of the measurements in error messages (e.g. the file path).

    Returns
    -------
    numpy.ndarray
        float64 (n,): predicted received power (dBm), in the measurements' row order.

    Raises
    ------
    telcoplan.errors.LayerValidationError
        Measurements refer to sites missing from the towers layer (every bad row listed) or
        have no point geometry.
    telcoplan.errors.CRSError
        A layer has no CRS.

    Notes
    -----
    P = EIRP − L(f, d, h_tx, h_rx) [− a − b log10 d − c_k] + A(φ, θ), with f the measurement's
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
    problems = _check_measurements(towers, measurements, need_rssi=False)
    if problems:
        raise LayerValidationError(source, "measurements", problems)
    labels = None if clutter is None else _clutter_per_row(clutter, len(measurements))
    geo = _geometry(towers, measurements, model, environment, h_rx_m)
    loss = geo.loss_db
    if calibration is not None:
        loss = calibration.apply(loss, geo.distance_km, labels)
    return geo.eirp_dbm - loss + geo.pattern_db


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
    source: str = "<measurements>",
    validation_source: str = "<validation>",
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
    validation
        An independent measurements layer on which the calibrated model's RMS error is reported.
    validation_clutter
        Clutter labels of ``validation``; required when ``clutter`` is given with it.
    source, validation_source
        Names of the two layers in error messages (e.g. file paths).

    Returns
    -------
    Calibration

    Raises
    ------
    telcoplan.errors.LayerValidationError
        Unknown ``site_id`` values, missing ``rssi_dbm`` values or geometries (every bad row
        listed), fewer than :data:`MIN_MEASUREMENTS` measurements, or measurements that cannot
        determine the parameters (e.g. all at the same distance).

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
    problems = _check_measurements(towers, measurements, need_rssi=True)
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

    geo = _geometry(towers, measurements, model, environment, h_rx_m)
    measured = pd.to_numeric(measurements["rssi_dbm"]).to_numpy(dtype=np.float64)
    predicted = geo.eirp_dbm - geo.loss_db + geo.pattern_db
    residual = measured - predicted

    # design matrix: the correction a + b log10 d + c_k is added to the loss, so it is
    # subtracted from the power, and r ≈ −(X β)
    log_d = np.log10(np.maximum(geo.distance_km, _MIN_DISTANCE_KM))
    columns = [np.ones(n), log_d]
    names = ["intercept", "slope"]
    classes: list[str] = []
    reference: str | None = None
    if labels is not None:
        counts = pd.Series(labels).value_counts()
        classes = sorted(counts.index)
        reference = sorted(c for c in classes if counts[c] == counts.max())[0]
        for c in classes:
            if c != reference:
                columns.append((labels == c).astype(np.float64))
                names.append(f"clutter {c!r}")
    x = np.column_stack(columns)
    # a relative cut-off well above rounding: distances equal but for float noise are degenerate
    beta, _, rank, _ = np.linalg.lstsq(x, -residual, rcond=1e-9)
    if rank < x.shape[1]:
        raise LayerValidationError(
            source,
            "measurements",
            [
                Problem(
                    None,
                    None,
                    f"the {n} measurements cannot determine the {x.shape[1]} parameters "
                    f"({', '.join(names)}): they need at least two different distances from "
                    "their towers, spread in every clutter class",
                )
            ],
        )
    after = residual + x @ beta
    offsets: dict[str, float] = {}
    if labels is not None:
        offsets = dict.fromkeys(classes, 0.0)
        fitted = [c for c in classes if c != reference]
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
    )
    if validation is not None:
        vproblems = _check_measurements(towers, validation, need_rssi=True)
        if vproblems:
            raise LayerValidationError(validation_source, "measurements", vproblems)
        vpred = predict_rssi(
            towers,
            validation,
            model=model,
            environment=environment,
            h_rx_m=h_rx_m,
            calibration=result,
            clutter=validation_clutter if labels is not None else None,
            source=validation_source,
        )
        vrmse = _rms(pd.to_numeric(validation["rssi_dbm"]).to_numpy(dtype=np.float64) - vpred)
        result = replace(result, validation_rmse_db=vrmse)
    log.info(
        "calibrated %s (%s) on %d measurements: a = %+.2f dB, b = %+.2f dB/decade, "
        "RMSE %.2f -> %.2f dB%s",
        model,
        environment,
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


def _tower_table(towers: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The towers indexed by ``site_id`` as strings (a view or a new frame; never mutated)."""
    if towers.index.name != "site_id" and "site_id" in towers.columns:
        towers = towers.set_index("site_id")
    if not towers.index.is_unique:
        dup = sorted(map(str, towers.index[towers.index.duplicated()].unique()))
        raise LayerValidationError(
            "<towers>",
            "towers",
            [Problem(None, "site_id", f"site_id {d!r} occurs more than once") for d in dup],
        )
    out = towers.copy()
    out.index = out.index.map(str)
    return out


def _site_keys(measurements: gpd.GeoDataFrame) -> np.ndarray:
    ids = measurements["site_id"].to_numpy(dtype=object)
    return np.array([None if pd.isna(v) else str(v) for v in ids], dtype=object)


def _check_measurements(
    towers: gpd.GeoDataFrame, measurements: gpd.GeoDataFrame, *, need_rssi: bool
) -> list[Problem]:
    """Every problem of the measurements that stops a prediction (or a fit), with rows."""
    require_crs(measurements, "measurements")
    require_crs(towers, "towers")
    problems: list[Problem] = []
    required = ["site_id", *(["rssi_dbm"] if need_rssi else [])]
    absent = [c for c in required if c not in measurements.columns]
    if absent:
        hint = "columns are lon, lat, site_id, rssi_dbm (dBm) and optionally freq_mhz (MHz)"
        return [Problem(None, c, f"required column {c!r} is missing; {hint}") for c in absent]
    known = set(_tower_table(towers).index)
    shown = ", ".join(sorted(known)[:_SHOW_IDS]) + (", …" if len(known) > _SHOW_IDS else "")
    keys = _site_keys(measurements)
    rssi = (
        pd.to_numeric(measurements["rssi_dbm"], errors="coerce").to_numpy(dtype=np.float64)
        if need_rssi
        else None
    )
    geoms = measurements.geometry
    for i, key in enumerate(keys):
        row = i + 1
        if key is None:
            problems.append(Problem(row, "site_id", "site_id is empty; give the serving site"))
        elif key not in known:
            problems.append(
                Problem(
                    row,
                    "site_id",
                    f"site_id {key!r} is not in the towers layer (its ids: {shown}); fix the id "
                    "or add the tower",
                    feature_id=key,
                )
            )
        if rssi is not None and not np.isfinite(rssi[i]):
            problems.append(Problem(row, "rssi_dbm", "rssi_dbm is empty or not a number (dBm)"))
        g = geoms.iloc[i]
        if g is None or g.is_empty or g.geom_type != "Point":
            problems.append(
                Problem(row, "geometry", "the measurement needs a point position (lon, lat)")
            )
    return problems


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


def _geometry(
    towers: gpd.GeoDataFrame,
    measurements: gpd.GeoDataFrame,
    model: str,
    environment: str,
    h_rx_m: float,
) -> _Geometry:
    """EIRP, uncorrected path loss, pattern and distance of every measurement (validated)."""
    n = len(measurements)
    table = _tower_table(towers)
    if n == 0:
        empty = np.empty(0)
        return _Geometry(empty, empty, empty, empty)
    # one metric CRS for both layers: the measurements' own if projected (as to_projected
    # keeps it), else the local UTM zone of their centre
    if measurements.crs.is_projected:
        crs = measurements.crs
    else:
        xmin, ymin, xmax, ymax = measurements.geometry.to_crs("EPSG:4326").total_bounds
        crs = utm_crs_for((xmin + xmax) / 2.0, (ymin + ymax) / 2.0)
    pts = to_projected(gpd.GeoDataFrame(geometry=measurements.geometry.copy()), crs).geometry
    sites = to_projected(gpd.GeoDataFrame(geometry=table.geometry.copy()), crs).geometry
    pos = table.index.get_indexer(_site_keys(measurements))

    def col(name: str, default: float = math.nan) -> np.ndarray:
        if name not in table.columns:
            return np.full(n, default)
        return pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=np.float64)[pos]

    dx = pts.x.to_numpy() - sites.x.to_numpy()[pos]
    dy = pts.y.to_numpy() - sites.y.to_numpy()[pos]
    d_m = np.hypot(dx, dy)
    freq = col("frequency_mhz")
    if "freq_mhz" in measurements.columns:
        own = pd.to_numeric(measurements["freq_mhz"], errors="coerce").to_numpy(dtype=np.float64)
        freq = np.where(np.isfinite(own), own, freq)
    h_tx = col("height_m")
    eirp = col("eirp_dbm")
    env = (
        table["environment"].fillna(environment).astype(str).to_numpy()[pos]
        if "environment" in table.columns
        else np.full(n, environment, dtype=object)
    )
    loss = np.empty(n)
    for e in pd.unique(env):
        sel = env == e
        loss[sel] = path_loss(
            model,
            freq_mhz=freq[sel],
            distance_km=d_m[sel] / 1000.0,
            h_tx_m=h_tx[sel],
            h_rx_m=h_rx_m,
            environment=str(e),
            check_distance=False,
        )
    # antenna pattern, per tower, as the coverage kernel does (omni without azimuth and tilt)
    pattern = np.zeros(n)
    azimuth, beam, tilt = col("azimuth_deg"), col("beamwidth_deg"), col("tilt_deg")
    sectored = np.isfinite(azimuth) | np.isfinite(tilt)
    for t in np.unique(pos[sectored]):
        sel = pos == t
        i = int(np.flatnonzero(sel)[0])
        depression = np.degrees(np.arctan2(h_tx[sel] - h_rx_m, np.maximum(d_m[sel], 1.0)))
        pattern[sel] = sector_attenuation(
            azimuth_deg(dx[sel], dy[sel]),
            depression,
            azimuth=float(azimuth[i]),
            beamwidth=float(beam[i]) if np.isfinite(beam[i]) else None,
            tilt=float(tilt[i]),
        )
    return _Geometry(eirp, loss, pattern, d_m / 1000.0)
