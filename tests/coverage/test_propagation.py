"""Propagation models against textbook values, independent scalar formulas and properties."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telcoplan.coverage.propagation import (
    MODELS,
    ModelValidityError,
    ModelValidityWarning,
    path_loss,
)

C = 299_792_458.0


@pytest.mark.parametrize(("d_km", "expected"), [(1.0, 126.40), (10.0, 161.63)])
def test_hata_urban_textbook(d_km, expected):
    """REFERENCES: urban, 900 MHz, h_b 30 m, h_m 1.5 m -> 126.40 dB at 1 km, 161.63 dB at 10 km."""
    got = path_loss("hata", freq_mhz=900, distance_km=d_km, h_tx_m=30, h_rx_m=1.5)
    assert got == pytest.approx(expected, abs=0.01)


def test_fspl_known_points():
    # 2.4 GHz at 1 km: 32.45 + 67.60 + 0 = 100.05 dB; 900 MHz at 10 km: 32.45 + 59.08 + 20 = 111.53 dB
    assert path_loss(
        "fspl", freq_mhz=2400, distance_km=1.0, h_tx_m=1.5, h_rx_m=1.5
    ) == pytest.approx(100.05, abs=0.01)
    assert path_loss(
        "fspl", freq_mhz=900, distance_km=10.0, h_tx_m=1.5, h_rx_m=1.5
    ) == pytest.approx(111.53, abs=0.01)
    # and equal to (4 pi d f / c)^2 from first principles
    d, f = 3_000.0, 1.8e9
    assert path_loss("fspl", freq_mhz=1800, distance_km=3.0, h_tx_m=2, h_rx_m=2) == pytest.approx(
        20 * math.log10(4 * math.pi * d * f / C), abs=0.01
    )


def _hata_ref(f, d, hb, hm, env):
    lf, lh = math.log10(f), math.log10(hb)
    if env == "metropolitan":
        a = 3.2 * math.log10(11.75 * hm) ** 2 - 4.97
    else:
        a = (1.1 * lf - 0.7) * hm - (1.56 * lf - 0.8)
    urban = 69.55 + 26.16 * lf - 13.82 * lh - a + (44.9 - 6.55 * lh) * math.log10(d)
    return {
        "urban": urban,
        "metropolitan": urban,
        "suburban": urban - 2 * math.log10(f / 28) ** 2 - 5.4,
        "rural": urban - 4.78 * lf**2 + 18.33 * lf - 40.94,
    }[env]


@pytest.mark.parametrize("env", ["urban", "metropolitan", "suburban", "rural"])
def test_hata_environments(env):
    for f, d, hb, hm in [(900, 2.0, 40, 1.5), (450, 15.0, 100, 3.0), (1400, 1.0, 30, 1.0)]:
        assert path_loss(
            "hata", freq_mhz=f, distance_km=d, h_tx_m=hb, h_rx_m=hm, environment=env
        ) == pytest.approx(_hata_ref(f, d, hb, hm, env), abs=1e-9)


def test_hata_ordering_urban_suburban_rural():
    kw = {"freq_mhz": 900, "distance_km": 5.0, "h_tx_m": 30}
    u, s, r = (path_loss("hata", environment=e, **kw) for e in ("urban", "suburban", "rural"))
    assert u > s > r
    # textbook: suburban correction at 900 MHz = 2 (log 900/28)^2 + 5.4 = 9.94 dB; open area 4.78 (log 900)^2 - 18.33 log 900 + 40.94 = 28.51 dB
    assert u - s == pytest.approx(9.94, abs=0.01)
    assert u - r == pytest.approx(28.51, abs=0.01)


def test_cost231_values():
    # 1800 MHz, h_b 30 m, h_m 1.5 m, 1 km, medium city:
    # 46.3 + 33.9*3.25527 - 13.82*1.47712 - a(1.5) ; a = (1.1*3.25527-0.7)*1.5-(1.56*3.25527-0.8) = 0.0430 -> 136.20 dB
    expected = (
        46.3
        + 33.9 * math.log10(1800)
        - 13.82 * math.log10(30)
        - ((1.1 * math.log10(1800) - 0.7) * 1.5 - (1.56 * math.log10(1800) - 0.8))
    )
    assert expected == pytest.approx(136.20, abs=0.01)
    assert path_loss("cost231", freq_mhz=1800, distance_km=1.0, h_tx_m=30) == pytest.approx(
        expected, abs=1e-9
    )
    metro = path_loss(
        "cost231", freq_mhz=1800, distance_km=1.0, h_tx_m=30, environment="metropolitan"
    )
    a_large = 3.2 * math.log10(11.75 * 1.5) ** 2 - 4.97
    a_small = (1.1 * math.log10(1800) - 0.7) * 1.5 - (1.56 * math.log10(1800) - 0.8)
    assert metro == pytest.approx(expected + 3.0 + a_small - a_large, abs=1e-9)


def _uma_ref(fc_ghz, d2, hbs, hut, los):
    d3 = math.hypot(d2, hbs - hut)
    dbp = 4 * (hbs - 1) * (hut - 1) * fc_ghz * 1e9 / C
    pl1 = 28 + 22 * math.log10(d3) + 20 * math.log10(fc_ghz)
    pl2 = (
        28
        + 40 * math.log10(d3)
        + 20 * math.log10(fc_ghz)
        - 9 * math.log10(dbp**2 + (hbs - hut) ** 2)
    )
    plos = pl1 if d2 <= dbp else pl2
    if los:
        return plos
    return max(plos, 13.54 + 39.08 * math.log10(d3) + 20 * math.log10(fc_ghz) - 0.6 * (hut - 1.5))


def _rma_ref(fc_ghz, d2, hbs, hut, los, h=5.0, w=20.0):
    d3 = math.hypot(d2, hbs - hut)
    dbp = 2 * math.pi * hbs * hut * fc_ghz * 1e9 / C

    def pl1(x):
        return (
            20 * math.log10(40 * math.pi * x * fc_ghz / 3)
            + min(0.03 * h**1.72, 10) * math.log10(x)
            - min(0.044 * h**1.72, 14.77)
            + 0.002 * math.log10(h) * x
        )

    plos = pl1(d3) if d2 <= dbp else pl1(dbp) + 40 * math.log10(d3 / dbp)
    if los:
        return plos
    nlos = (
        161.04
        - 7.1 * math.log10(w)
        + 7.5 * math.log10(h)
        - (24.37 - 3.7 * (h / hbs) ** 2) * math.log10(hbs)
        + (43.42 - 3.1 * math.log10(hbs)) * (math.log10(d3) - 3)
        + 20 * math.log10(fc_ghz)
        - (3.2 * math.log10(11.75 * hut) ** 2 - 4.97)
    )
    return max(plos, nlos)


@pytest.mark.parametrize("los", [True, False])
@pytest.mark.parametrize("d2", [20.0, 150.0, 800.0, 3000.0])
def test_3gpp_against_scalar_reference(los, d2):
    assert path_loss(
        "3gpp-uma", freq_mhz=3500, distance_km=d2 / 1000, h_tx_m=25, h_rx_m=1.5, los=los
    ) == pytest.approx(_uma_ref(3.5, d2, 25, 1.5, los), abs=1e-9)
    assert path_loss(
        "3gpp-rma", freq_mhz=700, distance_km=d2 / 1000, h_tx_m=35, h_rx_m=1.5, los=los
    ) == pytest.approx(_rma_ref(0.7, d2, 35, 1.5, los), abs=1e-9)


def test_broadcasting_shapes():
    d = np.linspace(1, 20, 7)[:, None]
    f = np.array([[900.0, 1800.0]])
    out = path_loss("hata", freq_mhz=f, distance_km=d, h_tx_m=30, validity="ignore")
    assert out.shape == (7, 2)
    assert out.dtype == np.float64


def test_validity_warning_and_strict():
    with pytest.warns(ModelValidityWarning, match="frequency"):
        path_loss("hata", freq_mhz=2600, distance_km=2.0, h_tx_m=30)
    with pytest.raises(ModelValidityError, match="strict"):
        path_loss("hata", freq_mhz=2600, distance_km=2.0, h_tx_m=30, validity="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path_loss("hata", freq_mhz=900, distance_km=0.2, h_tx_m=30, check_distance=False)
        path_loss("hata", freq_mhz=2600, distance_km=2.0, h_tx_m=30, validity="ignore")


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown propagation model"):
        path_loss("okumura", freq_mhz=900, distance_km=1, h_tx_m=30)
    with pytest.raises(ValueError, match="environment"):
        path_loss("hata", freq_mhz=900, distance_km=1, h_tx_m=30, environment="jungle")
    with pytest.raises(ValueError, match="distance"):
        path_loss("hata", freq_mhz=900, distance_km=-1, h_tx_m=30)


def test_zero_distance_is_finite():
    for name in MODELS:
        assert np.isfinite(
            path_loss(name, freq_mhz=1800, distance_km=0.0, h_tx_m=30, validity="ignore")
        )


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(sorted(MODELS)),
    env=st.sampled_from(["urban", "metropolitan", "suburban", "rural"]),
    f=st.floats(200, 6000),
    h=st.floats(10, 150),
    d1=st.floats(0.01, 20),
    step=st.floats(0.001, 10),
)
def test_more_distance_never_lowers_loss(model, env, f, h, d1, step):
    kw = {"freq_mhz": f, "h_tx_m": h, "h_rx_m": 1.5, "environment": env, "validity": "ignore"}
    assert (
        path_loss(model, distance_km=d1 + step, **kw)
        >= path_loss(model, distance_km=d1, **kw) - 1e-9
    )


def test_path_loss_is_importable_from_the_package():
    from telcoplan.coverage import path_loss as exported
    from telcoplan.coverage.propagation import path_loss as defined

    assert exported is defined
    assert exported("hata", freq_mhz=900, distance_km=1, h_tx_m=30) == pytest.approx(
        126.4, abs=0.05
    )
