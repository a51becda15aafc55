"""Empirical and standard propagation models: path loss in dB, broadcasting over numpy arrays.

Models (registry :data:`MODELS`, also the CLI's ``--model`` choices):

- ``"fspl"`` — free space, ITU-R P.525.
- ``"hata"`` — Okumura-Hata, 150–1500 MHz.
- ``"cost231"`` — COST-231 Hata, 1500–2000 MHz.
- ``"3gpp-uma"`` — 3GPP TR 38.901 urban macro (UMa), 0.5–100 GHz.
- ``"3gpp-rma"`` — 3GPP TR 38.901 rural macro (RMa), 0.5–30 GHz.

Environments: ``"urban"`` (small/medium city), ``"metropolitan"`` (large city), ``"suburban"``,
``"rural"`` (open area).

Behaviour outside a model's validity range: the model's formula is applied as is
(extrapolation) and a :class:`ModelValidityWarning` names the parameter and its range;
with ``validity="error"`` a :class:`ModelValidityError` is raised instead, with
``validity="ignore"`` nothing is said. Distances below 1 m are clamped to 1 m so that the
logarithms stay finite (the receiver cannot be inside the antenna).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from telcoplan.errors import TelcoplanError, TelcoplanWarning

__all__ = [
    "ENVIRONMENTS",
    "MODELS",
    "ModelValidityError",
    "ModelValidityWarning",
    "PropagationModel",
    "path_loss",
]

ENVIRONMENTS = ("urban", "metropolitan", "suburban", "rural")
Validity = Literal["warn", "error", "ignore"]
SPEED_OF_LIGHT = 299_792_458.0  # m/s
_MIN_DISTANCE_KM = 1e-3


class ModelValidityWarning(TelcoplanWarning):
    """A propagation model was used outside its documented validity range."""


class ModelValidityError(TelcoplanError, ValueError):
    """A propagation model was used outside its validity range in strict mode."""


@dataclass(frozen=True)
class PropagationModel:
    """A path-loss model and its validity ranges (each ``(min, max)``, inclusive)."""

    name: str
    description: str
    function: Callable[..., np.ndarray]
    freq_mhz: tuple[float, float]
    distance_km: tuple[float, float]
    h_tx_m: tuple[float, float]
    h_rx_m: tuple[float, float]
    reference: str


def _log(x: np.ndarray) -> np.ndarray:
    return np.log10(x)


# ------------------------------------------------------------------------------ free space
def _fspl(f, d, h_tx, h_rx, environment):
    """L = 32.45 + 20 log f + 20 log d (f in MHz, d in km), on the 3D distance."""
    d3 = np.sqrt(d**2 + ((h_tx - h_rx) / 1000.0) ** 2)
    return 32.45 + 20.0 * _log(f) + 20.0 * _log(d3)


# ------------------------------------------------------------------------------ Hata family
def _a_hm(f, h_rx, environment):
    """Mobile-antenna height correction a(h_m) in dB."""
    small = (1.1 * _log(f) - 0.7) * h_rx - (1.56 * _log(f) - 0.8)
    large = np.where(
        f <= 300.0,
        8.29 * _log(1.54 * h_rx) ** 2 - 1.1,
        3.2 * _log(11.75 * h_rx) ** 2 - 4.97,
    )
    return large if environment == "metropolitan" else small


def _open_and_suburban(loss, f, environment):
    if environment == "suburban":
        return loss - 2.0 * _log(f / 28.0) ** 2 - 5.4
    if environment == "rural":
        return loss - 4.78 * _log(f) ** 2 + 18.33 * _log(f) - 40.94
    return loss


def _hata(f, d, h_tx, h_rx, environment):
    urban = (
        69.55
        + 26.16 * _log(f)
        - 13.82 * _log(h_tx)
        - _a_hm(f, h_rx, environment)
        + (44.9 - 6.55 * _log(h_tx)) * _log(d)
    )
    return _open_and_suburban(urban, f, environment)


def _cost231(f, d, h_tx, h_rx, environment):
    c_m = 3.0 if environment == "metropolitan" else 0.0
    urban = (
        46.3
        + 33.9 * _log(f)
        - 13.82 * _log(h_tx)
        - _a_hm(f, h_rx, environment)
        + (44.9 - 6.55 * _log(h_tx)) * _log(d)
        + c_m
    )
    # COST-231 defines no open-area term: the Hata open-area correction is applied for "rural"
    return urban if environment != "rural" else _open_and_suburban(urban, f, "rural")


# ------------------------------------------------------------------------------ 3GPP 38.901
def _uma(f, d, h_tx, h_rx, environment, los=False):
    """TR 38.901 Table 7.4.1-1 UMa; NLOS unless ``los``; h_E = 1 m."""
    fc = f / 1000.0  # GHz
    d2 = d * 1000.0
    d3 = np.sqrt(d2**2 + (h_tx - h_rx) ** 2)
    d_bp = 4.0 * (h_tx - 1.0) * (h_rx - 1.0) * (f * 1e6) / SPEED_OF_LIGHT
    pl1 = 28.0 + 22.0 * _log(d3) + 20.0 * _log(fc)
    pl2 = 28.0 + 40.0 * _log(d3) + 20.0 * _log(fc) - 9.0 * _log(d_bp**2 + (h_tx - h_rx) ** 2)
    pl_los = np.where(d2 <= d_bp, pl1, pl2)
    if los:
        return pl_los
    pl_nlos = 13.54 + 39.08 * _log(d3) + 20.0 * _log(fc) - 0.6 * (h_rx - 1.5)
    return np.maximum(pl_los, pl_nlos)


def _rma(f, d, h_tx, h_rx, environment, los=False, building_h=5.0, street_w=20.0):
    """TR 38.901 Table 7.4.1-1 RMa; NLOS unless ``los``; h = 5 m, W = 20 m."""
    fc = f / 1000.0
    d2 = d * 1000.0
    d3 = np.sqrt(d2**2 + (h_tx - h_rx) ** 2)
    h = building_h
    d_bp = 2.0 * np.pi * h_tx * h_rx * (f * 1e6) / SPEED_OF_LIGHT

    def pl1(dist):
        return (
            20.0 * _log(40.0 * np.pi * dist * fc / 3.0)
            + min(0.03 * h**1.72, 10.0) * _log(dist)
            - min(0.044 * h**1.72, 14.77)
            + 0.002 * _log(h) * dist
        )

    pl2 = pl1(d_bp) + 40.0 * _log(d3 / d_bp)
    pl_los = np.where(d2 <= d_bp, pl1(d3), pl2)
    if los:
        return pl_los
    pl_nlos = (
        161.04
        - 7.1 * _log(street_w)
        + 7.5 * _log(h)
        - (24.37 - 3.7 * (h / h_tx) ** 2) * _log(h_tx)
        + (43.42 - 3.1 * _log(h_tx)) * (_log(d3) - 3.0)
        + 20.0 * _log(fc)
        - (3.2 * _log(11.75 * h_rx) ** 2 - 4.97)
    )
    return np.maximum(pl_los, pl_nlos)


#: Registry of models by name (feeds the CLI's ``--model`` choice).
MODELS: dict[str, PropagationModel] = {
    m.name: m
    for m in (
        PropagationModel(
            "fspl",
            "free space (ITU-R P.525)",
            _fspl,
            (1.0, 1e6),
            (0.0, 1e6),
            (0.0, 1e4),
            (0.0, 1e4),
            "ITU-R P.525-4 (2019)",
        ),
        PropagationModel(
            "hata",
            "Okumura-Hata",
            _hata,
            (150.0, 1500.0),
            (1.0, 20.0),
            (30.0, 200.0),
            (1.0, 10.0),
            "Hata (1980), IEEE Trans. Veh. Technol. 29(3); ITU-R P.529",
        ),
        PropagationModel(
            "cost231",
            "COST-231 Hata",
            _cost231,
            (1500.0, 2000.0),
            (1.0, 20.0),
            (30.0, 200.0),
            (1.0, 10.0),
            "COST Action 231 final report (1999), ch. 4.4",
        ),
        PropagationModel(
            "3gpp-uma",
            "3GPP TR 38.901 urban macro",
            _uma,
            (500.0, 100_000.0),
            (0.01, 5.0),
            (10.0, 150.0),
            (1.5, 22.5),
            "3GPP TR 38.901 v17, Table 7.4.1-1",
        ),
        PropagationModel(
            "3gpp-rma",
            "3GPP TR 38.901 rural macro",
            _rma,
            (500.0, 30_000.0),
            (0.01, 10.0),
            (10.0, 150.0),
            (1.0, 10.0),
            "3GPP TR 38.901 v17, Table 7.4.1-1",
        ),
    )
}


def _check_range(
    name: str, label: str, values: np.ndarray, lo: float, hi: float, validity: Validity
) -> None:
    if validity == "ignore" or values.size == 0:
        return
    vmin, vmax = float(np.min(values)), float(np.max(values))
    if vmin >= lo and vmax <= hi:
        return
    msg = (
        f"{name}: {label} {vmin:g}…{vmax:g} is outside the model's validity range {lo:g}…{hi:g}; "
        "the formula is extrapolated"
    )
    if validity == "error":
        raise ModelValidityError(msg + " (strict mode)")
    warnings.warn(msg, ModelValidityWarning, stacklevel=3)


def path_loss(
    model: str,
    *,
    freq_mhz: float | np.ndarray,
    distance_km: float | np.ndarray,
    h_tx_m: float | np.ndarray,
    h_rx_m: float | np.ndarray = 1.5,
    environment: str = "urban",
    los: bool = False,
    validity: Validity = "warn",
    check_distance: bool = True,
) -> np.ndarray:
    """Path loss in dB of ``model``, broadcasting over array arguments.

    Parameters
    ----------
    model
        A name in :data:`MODELS`.
    freq_mhz
        Carrier frequency (MHz).
    distance_km
        Horizontal (2D) distance between antenna and receiver (km).
    h_tx_m, h_rx_m
        Antenna height above ground of the transmitter (base station) and receiver (m).
    environment
        ``"urban"``, ``"metropolitan"``, ``"suburban"`` or ``"rural"`` (Hata family; the 3GPP
        models describe one environment each and ignore it).
    los
        3GPP models only: line-of-sight formula instead of the (default) NLOS one.
    validity
        ``"warn"`` (default), ``"error"`` (strict) or ``"ignore"`` outside the validity range.
    check_distance
        Whether distances are checked against the validity range (coverage rasters switch it
        off: cells next to the mast are always nearer than a macro model's minimum distance).

    Returns
    -------
    numpy.ndarray
        Path loss (dB), float64, of the broadcast shape of the inputs.

    Notes
    -----
    Free space: L = 32.45 + 20 log f + 20 log d (ITU-R P.525 writes 32.4), on the 3D distance.
    Okumura-Hata (urban): L = 69.55 + 26.16 log f − 13.82 log h_b − a(h_m)
    + (44.9 − 6.55 log h_b) log d, with a(h_m) = (1.1 log f − 0.7) h_m − (1.56 log f − 0.8)
    (small/medium city) or 3.2 (log 11.75 h_m)² − 4.97 (large city, f > 300 MHz;
    8.29 (log 1.54 h_m)² − 1.1 below); suburban: L − 2 (log(f/28))² − 5.4; open area:
    L − 4.78 (log f)² + 18.33 log f − 40.94. Check value: 900 MHz, h_b 30 m, h_m 1.5 m, urban
    → 126.40 dB at 1 km, 161.63 dB at 10 km.
    COST-231 Hata: L = 46.3 + 33.9 log f − 13.82 log h_b − a(h_m) + (44.9 − 6.55 log h_b) log d
    + C_m, C_m = 3 dB for "metropolitan", else 0 dB.
    3GPP TR 38.901 Table 7.4.1-1: UMa LOS PL1 = 28 + 22 log d_3D + 20 log f_c, PL2 = 28 + 40 log
    d_3D + 20 log f_c − 9 log(d'_BP² + (h_BS − h_UT)²), d'_BP = 4 h'_BS h'_UT f_c / c with
    h' = h − 1 m; NLOS = max(LOS, 13.54 + 39.08 log d_3D + 20 log f_c − 0.6 (h_UT − 1.5)).
    RMa as in the table with h = 5 m, W = 20 m, d_BP = 2π h_BS h_UT f_c / c; PL2 uses PL1
    evaluated at d_BP.
    """
    try:
        spec = MODELS[model]
    except KeyError:
        raise ValueError(
            f"unknown propagation model {model!r}; choose one of {', '.join(MODELS)}"
        ) from None
    if environment not in ENVIRONMENTS:
        raise ValueError(
            f"unknown environment {environment!r}; choose one of {', '.join(ENVIRONMENTS)}"
        )
    f = np.asarray(freq_mhz, dtype=np.float64)
    d = np.asarray(distance_km, dtype=np.float64)
    h_tx = np.asarray(h_tx_m, dtype=np.float64)
    h_rx = np.asarray(h_rx_m, dtype=np.float64)
    for label, arr in (
        ("frequency (MHz)", f),
        ("antenna height (m)", h_tx),
        ("receiver height (m)", h_rx),
    ):
        if np.any(~np.isfinite(arr)) or np.any(arr <= 0):
            raise ValueError(f"{model}: {label} must be positive and finite")
    if np.any(~np.isfinite(d)) or np.any(d < 0):
        raise ValueError(f"{model}: distance (km) must be non-negative and finite")
    _check_range(model, "frequency (MHz)", f, *spec.freq_mhz, validity)
    _check_range(model, "antenna height (m)", h_tx, *spec.h_tx_m, validity)
    _check_range(model, "receiver height (m)", h_rx, *spec.h_rx_m, validity)
    if check_distance:
        _check_range(model, "distance (km)", d, *spec.distance_km, validity)
    d = np.maximum(d, _MIN_DISTANCE_KM)
    kwargs = {"los": los} if model.startswith("3gpp") else {}
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(spec.function(f, d, h_tx, h_rx, environment, **kwargs), dtype=np.float64)
