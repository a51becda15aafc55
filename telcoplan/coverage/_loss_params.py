"""Per-tower path-loss parameters of the best-server kernels: the Hata family as A + B log10 d,
the 3GPP TR 38.901 models and free space in closed form (pieces linear in log10 d3D), and with a
DEM float32 tables in log-distance (:func:`model_parameters`). Used by
:mod:`telcoplan.coverage.bestserver`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from telcoplan.coverage.propagation import SPEED_OF_LIGHT, path_loss

__all__ = ["CLOSED_COLUMNS", "LOG_LINEAR", "TABLE_STEP", "closed_form", "model_parameters"]

LOG_LINEAR = ("hata", "cost231")
TABLE_STEP = 1e-3  # decades of distance between path-loss table samples

#: Columns of the closed-form coefficients (:func:`closed_form`), the loss in dB with d3 the 3D
#: distance (m) and q the squared horizontal distance (m², at least 1):
#: max(q ≤ BP2 ? A1 + B1 log10 d3 + C1 d3 : A2 + B2 log10 d3, A3 + B3 log10 d3) + KC log10 √q.
CLOSED_COLUMNS = ("A1", "B1", "C1", "A2", "B2", "A3", "B3", "DZ2", "BP2", "KC")


def closed_form(
    model: str, freq: np.ndarray, h_tx: np.ndarray, h_rx: float, calibration
) -> np.ndarray:
    """Per-tower coefficients (n, 10; :data:`CLOSED_COLUMNS`) of ``model``'s loss in closed form.

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
    n = len(freq)
    out = np.zeros((n, len(CLOSED_COLUMNS)))
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


def model_parameters(
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
    ``coef_a``, ``coef_b``) or 1 (closed form, :func:`closed_form`; with ``tabulate`` also
    tables for the terrain kernel, ``table_id`` and ``tables``)."""
    n = len(freq)
    kind = np.zeros(n, dtype=np.int8)
    coef_a = np.zeros(n)
    coef_b = np.zeros(n)
    closed = np.zeros((n, len(CLOSED_COLUMNS)))
    table_id = np.zeros(n, dtype=np.int64)
    envs = np.asarray(environment, dtype=object)
    n_samples = math.ceil(np.log10(max(float(radius_m.max()), 10.0)) / TABLE_STEP) + 2
    d_km = 10.0 ** (np.arange(n_samples) * TABLE_STEP) / 1000.0
    tables: list[np.ndarray] = []
    for model in sorted(pd.unique(models)):  # hashing, not an object sort of every tower
        for env in sorted(pd.unique(envs)):
            sel = (models == model) & (envs == env)
            if not sel.any():
                continue
            kw = {"h_rx_m": h_rx, "environment": env, "validity": validity, "check_distance": False}
            if model in LOG_LINEAR:
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
            closed[sel] = closed_form(model, freq[sel], h_tx[sel], h_rx, calibration)
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
        stacked = (stacked + a + b * (np.arange(stacked.shape[1]) * TABLE_STEP - 3.0)).astype(
            np.float32
        )
    return kind, coef_a, coef_b, closed, table_id, stacked
