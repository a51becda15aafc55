"""Antenna pattern against the 3GPP formula's defining points."""

from __future__ import annotations

import numpy as np
import pytest

from telcoplan.coverage.antenna import azimuth_deg, sector_attenuation


def test_bearings():
    assert azimuth_deg(np.array([0.0, 1, 0, -1]), np.array([1.0, 0, -1, 0])).tolist() == [
        0,
        90,
        180,
        270,
    ]


def test_omni_is_flat():
    a = sector_attenuation(np.linspace(0, 359, 50), np.zeros(50), azimuth=None)
    assert np.all(a == 0)


def test_sector_horizontal_points():
    a = sector_attenuation(
        np.array([120.0, 120 + 32.5, 120 - 32.5, 300.0, 120 + 65]), np.zeros(5), azimuth=120.0
    )
    assert a[0] == 0
    assert a[1] == pytest.approx(-3.0)
    assert a[2] == pytest.approx(-3.0)
    assert a[3] == pytest.approx(-30.0)  # back lobe capped at A_m
    assert a[4] == pytest.approx(-12.0)  # 12 (65/65)^2


def test_azimuth_wraps_around_north():
    a = sector_attenuation(np.array([350.0, 10.0]), np.zeros(2), azimuth=0.0)
    assert a[0] == pytest.approx(a[1])
    assert a[0] == pytest.approx(-12 * (10 / 65) ** 2)


def test_vertical_tilt_and_cap():
    a = sector_attenuation(np.zeros(3), np.array([6.0, 11.0, 80.0]), azimuth=0.0, tilt=6.0)
    assert a[0] == 0
    assert a[1] == pytest.approx(-3.0)  # 5° off the tilt = half the 10° beamwidth
    assert a[2] == pytest.approx(-20.0)  # side-lobe level
    back = sector_attenuation(np.array([180.0]), np.array([80.0]), azimuth=0.0, tilt=6.0)
    assert back[0] == pytest.approx(-30.0)  # total capped at A_m
