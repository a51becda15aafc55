"""Propagation-model calibration against synthetic drive tests with a known truth.

The truth is computed independently of the library: the textbook Okumura-Hata formula written
out below, on distances measured here with pyproj in UTM 49N.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from shapely.geometry import Point

from telcoplan.coverage.calibration import (
    Calibration,
    calibrate,
    clutter_offset_grid,
    predict_rssi,
)
from telcoplan.errors import LayerValidationError, PlanError, TelcoplanError
from telcoplan.gis.grid import GridSpec
from telcoplan.layers.land_use import read_clutter_table
from telcoplan.layers.measurements import load_measurements
from telcoplan.layers.towers import load_towers
from tests.conftest import UTM49, assert_unchanged

TRUE_A = 6.0  # dB at 1 km
TRUE_B = -4.0  # dB/decade
SIGMA = 4.0  # dB
TO_UTM = Transformer.from_crs("EPSG:4326", UTM49, always_xy=True)
TO_LONLAT = Transformer.from_crs(UTM49, "EPSG:4326", always_xy=True)
#: Lower-left tower, near Đà Nẵng (108.2° E): well inside UTM zone 49N, which is therefore the
#: zone the library picks for lon/lat measurements around these towers (m).
X0, Y0 = 200_000.0, 1_770_000.0


def hata_urban(f_mhz, d_km, h_b, h_m=1.5):
    """Okumura-Hata, small/medium city (Hata 1980; ITU-R P.529), written out independently."""
    a_hm = (1.1 * np.log10(f_mhz) - 0.7) * h_m - (1.56 * np.log10(f_mhz) - 0.8)
    return (
        69.55
        + 26.16 * np.log10(f_mhz)
        - 13.82 * np.log10(h_b)
        - a_hm
        + (44.9 - 6.55 * np.log10(h_b)) * np.log10(d_km)
    )


def five_towers() -> gpd.GeoDataFrame:
    """Five omni 900 MHz towers 10 km apart in UTM 49N (index site_id, as load_towers gives)."""
    return gpd.GeoDataFrame(
        {
            "operator": ["Viettel", "Viettel", "VinaPhone", "MobiFone", "Viettel"],
            "technology": ["2G", "3G", "3G", "2G", "4G"],
            "frequency_mhz": [900.0] * 5,
            "height_m": [30.0, 35.0, 40.0, 45.0, 50.0],
            "eirp_dbm": [60.0, 58.0, 61.0, 59.0, 62.0],
        },
        index=pd.Index(["T1", "T2", "T3", "T4", "T5"], name="site_id"),
        geometry=[
            Point(X0 + dx, Y0 + dy)
            for dx, dy in [(0, 0), (10_000, 0), (0, 10_000), (10_000, 10_000), (5_000, 5_000)]
        ],
        crs=UTM49,
    )


def drive_test(towers, n=500, *, seed=0, a=TRUE_A, b=TRUE_B, sigma=SIGMA, offsets=None, p=None):
    """Measurements (EPSG:4326) 0.2–8 km around random towers, from the known truth.

    Returns the measurements, the reference distances (km) and the clutter labels (or None).
    ``offsets`` maps clutter classes to their true offsets (dB), drawn with probabilities ``p``.
    """
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(towers), n)
    r_m = 10.0 ** rng.uniform(np.log10(200.0), np.log10(8000.0), n)
    theta = rng.uniform(0.0, 2.0 * np.pi, n)
    tx = towers.geometry.x.to_numpy()[which]
    ty = towers.geometry.y.to_numpy()[which]
    lon, lat = TO_LONLAT.transform(tx + r_m * np.sin(theta), ty + r_m * np.cos(theta))
    # the reference distance: from the stored lon/lat, measured here in UTM 49N
    x, y = TO_UTM.transform(lon, lat)
    d_km = np.hypot(x - tx, y - ty) / 1000.0
    row = towers.iloc[which]
    loss = hata_urban(900.0, d_km, row["height_m"].to_numpy()) + a + b * np.log10(d_km)
    labels = None
    if offsets is not None:
        names = list(offsets)
        labels = rng.choice(names, n, p=p)
        loss = loss + np.array([offsets[c] for c in labels])
    rssi = row["eirp_dbm"].to_numpy() - loss + rng.normal(0.0, sigma, n) * (sigma > 0)
    meas = gpd.GeoDataFrame(
        {"site_id": towers.index.to_numpy()[which], "rssi_dbm": rssi},
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )
    return meas, d_km, labels


def ols_standard_errors(d_km, rmse, n_params=2):
    """σ √diag((XᵀX)⁻¹) of the intercept and slope, σ estimated with n − p degrees of freedom."""
    x = np.column_stack([np.ones_like(d_km), np.log10(d_km)])
    sigma = rmse * math.sqrt(len(d_km) / (len(d_km) - n_params))
    return sigma * np.sqrt(np.diag(np.linalg.inv(x.T @ x)))


# ------------------------------------------------------------------------------ prediction
def test_predict_rssi_matches_textbook_hata_check_values():
    towers = five_towers().iloc[:1].assign(eirp_dbm=60.0, height_m=30.0)
    meas = gpd.GeoDataFrame(
        {"site_id": ["T1", "T1"], "rssi_dbm": [-70.0, -100.0]},
        geometry=[Point(X0, Y0 + 1000.0), Point(X0, Y0 + 10_000.0)],
        crs=UTM49,
    )
    # 900 MHz, h_b 30 m, h_m 1.5 m, urban: 126.40 dB at 1 km, 161.63 dB at 10 km
    np.testing.assert_allclose(predict_rssi(towers, meas), [60 - 126.40, 60 - 161.63], atol=0.01)


def test_measurement_frequency_overrides_tower_frequency():
    towers = five_towers()
    meas = gpd.GeoDataFrame(
        {"site_id": ["T1", "T1"], "rssi_dbm": [-80.0, -80.0], "freq_mhz": [800.0, np.nan]},
        geometry=[Point(X0 + 2000.0, Y0)] * 2,
        crs=UTM49,
    )
    expected = 60.0 - hata_urban(np.array([800.0, 900.0]), 2.0, 30.0)
    np.testing.assert_allclose(predict_rssi(towers, meas), expected, atol=1e-9)


def test_sector_pattern_applies_only_to_towers_with_azimuth():
    towers = five_towers().assign(azimuth_deg=[0.0, np.nan, np.nan, np.nan, np.nan])
    pts = [Point(X0, Y0 + 1000.0), Point(X0 + 1000.0, Y0), Point(X0 + 11_000.0, Y0)]
    meas = gpd.GeoDataFrame(
        {"site_id": ["T1", "T1", "T2"], "rssi_dbm": [-80.0] * 3}, geometry=pts, crs=UTM49
    )
    got = predict_rssi(towers, meas)
    base = np.array([60.0, 60.0, 58.0]) - hata_urban(900.0, 1.0, np.array([30.0, 30.0, 35.0]))
    # TR 36.814: A_H(90°) = −min(12 (90/65)², 30) dB; boresight and omni: 0 dB
    np.testing.assert_allclose(got - base, [0.0, -12.0 * (90.0 / 65.0) ** 2, 0.0], atol=1e-9)


def test_towers_with_site_id_column_and_projected_measurements_agree():
    towers = five_towers()
    meas, _, _ = drive_test(towers, 50, seed=3)
    a = predict_rssi(towers, meas)
    b = predict_rssi(towers.reset_index(), meas.to_crs(UTM49))
    np.testing.assert_allclose(a, b, atol=1e-6)


# ------------------------------------------------------------------------------ calibration
def test_noiseless_drive_test_is_recovered_exactly():
    towers = five_towers()
    meas, _, _ = drive_test(towers, sigma=0.0)
    cal = calibrate(towers, meas)
    assert cal.intercept_offset_db == pytest.approx(TRUE_A, abs=1e-9)
    assert cal.slope_offset_db_per_decade == pytest.approx(TRUE_B, abs=1e-9)
    assert cal.rmse_db_after == pytest.approx(0.0, abs=1e-9)
    assert cal.mean_error_db_after == pytest.approx(0.0, abs=1e-9)
    assert cal.clutter_offsets_db == {}
    assert cal.n_measurements == 500
    assert (cal.model, cal.environment, cal.validation_rmse_db) == ("hata", "urban", None)
    # the calibrated prediction reproduces the measurements
    np.testing.assert_allclose(
        predict_rssi(towers, meas, calibration=cal), meas["rssi_dbm"], atol=1e-9
    )


def test_noisy_drive_test_recovers_offsets_within_standard_errors():
    towers = five_towers()
    meas, d_km, _ = drive_test(towers, seed=42)
    cal = calibrate(towers, meas)
    se_a, se_b = ols_standard_errors(d_km, cal.rmse_db_after)
    assert se_a < 1.0
    assert se_b < 1.0
    assert abs(cal.intercept_offset_db - TRUE_A) < 3.0 * se_a
    assert abs(cal.slope_offset_db_per_decade - TRUE_B) < 3.0 * se_b
    assert cal.rmse_db_after == pytest.approx(SIGMA, abs=0.5)
    assert cal.rmse_db_before > 1.4 * cal.rmse_db_after
    # the uncorrected model is too optimistic by a + b log10 d on average
    expected_bias = -(TRUE_A + TRUE_B * np.mean(np.log10(d_km)))
    assert cal.mean_error_db_before == pytest.approx(expected_bias, abs=0.6)
    assert cal.mean_error_db_after == pytest.approx(0.0, abs=1e-9)


def test_clutter_offsets_are_recovered_relative_to_the_most_frequent_class():
    towers = five_towers()
    truth = {"open": 0.0, "urban": 8.0, "forest": 3.0}
    meas, _, labels = drive_test(towers, sigma=0.0, offsets=truth, p=[0.5, 0.3, 0.2])
    cal = calibrate(towers, meas, clutter=labels)
    assert cal.intercept_offset_db == pytest.approx(TRUE_A, abs=1e-9)
    assert cal.slope_offset_db_per_decade == pytest.approx(TRUE_B, abs=1e-9)
    # no measurement without a class: "unclassified" gets the reference's 0 dB
    assert cal.clutter_offsets_db == pytest.approx(truth | {"unclassified": 0.0}, abs=1e-9)
    assert cal.rmse_db_after == pytest.approx(0.0, abs=1e-9)
    got = predict_rssi(towers, meas, calibration=cal, clutter=labels)
    np.testing.assert_allclose(got, meas["rssi_dbm"], atol=1e-9)

    # with "urban" the most frequent class, it becomes the reference: a + c_k is unchanged
    meas, _, labels = drive_test(towers, sigma=0.0, offsets=truth, p=[0.2, 0.5, 0.3], seed=1)
    cal = calibrate(towers, meas, clutter=pd.Series(labels))
    assert cal.clutter_offsets_db["urban"] == 0.0
    for c, off in truth.items():
        total = cal.intercept_offset_db + cal.clutter_offsets_db[c]
        assert total == pytest.approx(TRUE_A + off, abs=1e-9)


def test_noisy_clutter_offsets_are_close():
    towers = five_towers()
    truth = {"open": 0.0, "urban": 8.0, "forest": 3.0}
    meas, _, labels = drive_test(towers, seed=7, offsets=truth, p=[0.5, 0.3, 0.2])
    cal = calibrate(towers, meas, clutter=labels)
    assert cal.clutter_offsets_db == pytest.approx(truth | {"unclassified": 0.0}, abs=1.5)
    assert cal.rmse_db_after == pytest.approx(SIGMA, abs=0.5)


def test_validation_rmse_is_reported():
    towers = five_towers()
    meas, _, _ = drive_test(towers, seed=1)
    check, _, _ = drive_test(towers, 300, seed=2)
    cal = calibrate(towers, meas, validation=check)
    assert cal.validation_rmse_db == pytest.approx(SIGMA, abs=0.5)
    uncalibrated = predict_rssi(towers, check)
    assert np.sqrt(np.mean((check["rssi_dbm"] - uncalibrated) ** 2)) > cal.validation_rmse_db + 1
    # the validation mean error is the calibrated model's bias on the validation set: small
    # (noise only) where the uncalibrated model's is not
    calibrated = predict_rssi(towers, check, calibration=cal)
    err = check["rssi_dbm"].to_numpy() - calibrated
    assert cal.validation_mean_error_db == pytest.approx(float(np.mean(err)), abs=1e-9)
    assert abs(cal.validation_mean_error_db) < 0.5 < abs(np.mean(check["rssi_dbm"] - uncalibrated))


def test_validation_with_clutter_needs_its_labels():
    towers = five_towers()
    truth = {"open": 0.0, "urban": 8.0}
    meas, _, labels = drive_test(towers, sigma=0.0, offsets=truth, p=[0.6, 0.4])
    check, _, vlabels = drive_test(towers, 100, sigma=0.0, offsets=truth, p=[0.6, 0.4], seed=5)
    with pytest.raises(ValueError, match="validation_clutter"):
        calibrate(towers, meas, clutter=labels, validation=check)
    cal = calibrate(towers, meas, clutter=labels, validation=check, validation_clutter=vlabels)
    assert cal.validation_rmse_db == pytest.approx(0.0, abs=1e-9)


def test_inputs_are_not_mutated():
    towers = five_towers().assign(azimuth_deg=[0.0, 120.0, np.nan, np.nan, np.nan])
    meas, _, labels = drive_test(towers, 200, offsets={"a": 0.0, "b": 2.0}, p=[0.5, 0.5])
    check, _, vlabels = drive_test(towers, 50, offsets={"a": 0.0, "b": 2.0}, p=[0.5, 0.5], seed=9)
    before = [copy.deepcopy(x) for x in (towers, meas, check)]
    labels_before = labels.copy()
    calibrate(towers, meas, clutter=labels, validation=check, validation_clutter=vlabels)
    for b, a in zip(before, (towers, meas, check), strict=True):
        assert_unchanged(b, a)
    np.testing.assert_array_equal(labels, labels_before)


# ------------------------------------------------------------------------------ value object
def test_apply_formula_and_clutter_lookup():
    cal = Calibration(
        "hata", "urban", 2.0, 3.0, {"open": 0.0, "urban": 5.0}, 10, 8.0, 4.0, -3.0, 0.0, None
    )
    np.testing.assert_allclose(cal.apply(100.0, 10.0), 105.0)
    np.testing.assert_allclose(cal.apply([100.0, 100.0], [0.1, 0.0]), [99.0, 93.0])  # 1 m clamp
    np.testing.assert_allclose(cal.apply([100.0, 100.0], 1.0, ["open", "urban"]), [102.0, 107.0])
    with pytest.raises(ValueError, match="'water'"):
        cal.apply(100.0, 1.0, ["water"])
    plain = Calibration("hata", "urban", 2.0, 3.0, {}, 10, 8.0, 4.0, -3.0, 0.0, None)
    with pytest.raises(ValueError, match="without them"):
        plain.apply(100.0, 1.0, ["open"])


def test_dict_round_trip_is_json_serialisable():
    towers = five_towers()
    meas, _, labels = drive_test(towers, 200, offsets={"open": 0.0, "urban": 8.0}, p=[0.6, 0.4])
    check, _, vlabels = drive_test(towers, 50, offsets={"open": 0.0, "urban": 8.0}, p=[0.6, 0.4])
    cal = calibrate(towers, meas, clutter=labels, validation=check, validation_clutter=vlabels)
    text = json.dumps(cal.to_dict())
    assert json.loads(text)["mean_error_db"] == cal.mean_error_db_before  # the key
    back = Calibration.from_dict(json.loads(text))
    assert back == cal
    assert isinstance(back.validation_rmse_db, float)
    assert isinstance(back.validation_mean_error_db, float)
    plain = calibrate(towers, meas)
    assert Calibration.from_dict(json.loads(json.dumps(plain.to_dict()))) == plain


def test_from_dict_reports_malformed_input():
    good = Calibration("hata", "urban", 1.0, 2.0, {}, 3, 4.0, 5.0, 6.0, 7.0).to_dict()
    bad = {k: v for k, v in good.items() if k != "rmse_db_after"} | {"rmse_after": 1.0}
    with pytest.raises(PlanError, match=r"missing key\(s\) rmse_db_after.*unknown key\(s\) rmse_"):
        Calibration.from_dict(bad)
    with pytest.raises(PlanError, match="unknown model 'okumura'"):
        Calibration.from_dict(good | {"model": "okumura"})
    with pytest.raises(PlanError, match="malformed"):
        Calibration.from_dict(good | {"intercept_offset_db": "six"})


def test_calibration_model_must_match_prediction():
    towers = five_towers()
    meas, _, _ = drive_test(towers, 20, sigma=0.0)
    cal = calibrate(towers, meas)
    with pytest.raises(ValueError, match="model='hata'"):
        predict_rssi(towers, meas, model="fspl", calibration=cal)


# ------------------------------------------------------------------------------ errors
def test_unknown_site_ids_are_reported_all_at_once_with_rows():
    towers = five_towers()
    meas, _, _ = drive_test(towers, 6, sigma=0.0)
    meas["site_id"] = ["T1", "X9", "T2", "T3", "Y7", "T4"]
    with pytest.raises(LayerValidationError) as info:
        calibrate(towers, meas, source="drive.csv")
    err = info.value
    assert isinstance(err, TelcoplanError)
    assert [(p.row, p.column, p.feature_id) for p in err.problems] == [
        (2, "site_id", "X9"),
        (5, "site_id", "Y7"),
    ]
    assert "drive.csv" in str(err)
    assert "'X9' is not in the towers layer" in str(err)
    with pytest.raises(LayerValidationError):
        predict_rssi(towers, meas)


def test_missing_rssi_values_are_reported_with_rows():
    towers = five_towers()
    meas, _, _ = drive_test(towers, 5, sigma=0.0)
    meas.loc[meas.index[3], "rssi_dbm"] = np.nan
    with pytest.raises(LayerValidationError) as info:
        calibrate(towers, meas)
    assert [(p.row, p.column) for p in info.value.problems] == [(4, "rssi_dbm")]


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_measurements_is_a_clear_error(n):
    towers = five_towers()
    meas, _, _ = drive_test(towers, n, sigma=0.0)
    with pytest.raises(LayerValidationError, match="at least 3"):
        calibrate(towers, meas)


def test_measurements_at_one_distance_cannot_fit_a_slope():
    towers = five_towers()
    lon, lat = TO_LONLAT.transform([X0 + 1000.0, X0, X0 - 1000.0], [Y0, Y0 + 1000.0, Y0])
    meas = gpd.GeoDataFrame(
        {"site_id": ["T1"] * 3, "rssi_dbm": [-70.0, -72.0, -68.0]},
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )
    with pytest.raises(LayerValidationError, match="two different distances"):
        calibrate(towers, meas.to_crs(UTM49))


def test_files_loaded_by_the_layer_loaders_calibrate(tmp_path):
    towers = five_towers()
    meas, _, _ = drive_test(towers, 100, sigma=0.0)
    tw = towers.to_crs("EPSG:4326").reset_index()
    pd.DataFrame(
        {
            "site_id": tw["site_id"],
            "operator": tw["operator"],
            "technology": tw["technology"],
            "frequency_mhz": tw["frequency_mhz"],
            "height_m": tw["height_m"],
            "eirp_dbm": tw["eirp_dbm"],
            "lon": tw.geometry.x,
            "lat": tw.geometry.y,
        }
    ).to_csv(tmp_path / "towers.csv", index=False)
    pd.DataFrame(
        {
            "lon": meas.geometry.x,
            "lat": meas.geometry.y,
            "site_id": meas["site_id"],
            "rssi_dbm": meas["rssi_dbm"],
        }
    ).to_csv(tmp_path / "drive.csv", index=False)
    cal = calibrate(load_towers(tmp_path / "towers.csv"), load_measurements(tmp_path / "drive.csv"))
    # CSV text round trip of the coordinates costs well under a millimetre
    assert cal.intercept_offset_db == pytest.approx(TRUE_A, abs=1e-4)
    assert cal.slope_offset_db_per_decade == pytest.approx(TRUE_B, abs=1e-4)


# ------------------------------------------------------------------------------ terrain
RIDGE_X = 5_000.0  # x offset of the ridge's crest from the grid's west edge (m)
RIDGE_H = 80.0  # crest height above the plain (m)
DEM_RES = 20.0  # DEM cell size (m)


def ridge_scenario():
    """A 10 km x 4 km plain (0 m) with a north-south ridge in the middle, two towers (30, 35 m).

    The ridge is a Gaussian bump in x (σ = 60 m, 80 m high) at ``X0 + RIDGE_X``; T1 stands 3 km
    west of it, T2 3 km east. Returns the towers (UTM 49N, index site_id), the DEM array and
    its 20 m grid (origin on a multiple of 20 m, so a grid snapped from other bounds aligns).
    """
    grid = GridSpec.from_bounds((X0, Y0, X0 + 10_000.0, Y0 + 4_000.0), DEM_RES, UTM49)
    xs, _ = grid.cell_centres()
    dem = RIDGE_H * np.exp(-0.5 * ((xs - X0 - RIDGE_X) / 60.0) ** 2)
    dem[dem < 0.01] = 0.0
    towers = gpd.GeoDataFrame(
        {
            "operator": ["Viettel", "MobiFone"],
            "technology": ["4G", "4G"],
            "frequency_mhz": [900.0, 900.0],
            "height_m": [30.0, 35.0],
            "eirp_dbm": [60.0, 58.0],
        },
        index=pd.Index(["T1", "T2"], name="site_id"),
        geometry=[Point(X0 + RIDGE_X - 3000.0, Y0 + 2000.0), Point(X0 + RIDGE_X + 3000, Y0 + 2000)],
        crs=UTM49,
    )
    return towers, dem, grid


def ridge_drive_test(towers, dem, grid, n=300, *, seed=0, sigma=2.0, offsets=None):
    """Measurements on the flat plain (ground 0 m, ≥ 400 m from the crest), with terrain.

    Truth: P = EIRP − Hata(d) − a − b log10 d − L_ridge (+ clutter) + noise, with L_ridge the
    Bullington loss of the profile where the ridge blocks the ray (0 dB in line of sight). As
    both ends stand on 0 m ground, the terrain of the truth depends only on the profile.
    Returns the measurements (EPSG:4326), the terrain losses (dB) and the clutter labels.
    """
    from telcoplan.coverage.terrain import terrain_profile_loss

    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(towers), 4 * n)
    x = rng.uniform(X0 + 100.0, X0 + 9_900.0, 4 * n)
    y = rng.uniform(Y0 + 100.0, Y0 + 3_900.0, 4 * n)
    tx = towers.geometry.x.to_numpy()[which]
    ty = towers.geometry.y.to_numpy()[which]
    d_m = np.hypot(x - tx, y - ty)
    keep = (np.abs(x - X0 - RIDGE_X) > 400.0) & (d_m > 200.0)
    which, x, y, tx, ty, d_m = (v[keep][:n] for v in (which, x, y, tx, ty, d_m))
    row = towers.iloc[which]
    h_b = row["height_m"].to_numpy()
    loss_t, clearance = terrain_profile_loss(
        dem, grid, tx, ty, h_b, x, y, 1.5, 900.0, method="bullington"
    )
    terrain = np.where(clearance > 0.0, loss_t, 0.0)
    d_km = d_m / 1000.0
    loss = hata_urban(900.0, d_km, h_b) + TRUE_A + TRUE_B * np.log10(d_km) + terrain
    labels = None
    if offsets is not None:
        labels = np.where(x < X0 + 2_500.0, "open", "urban")
        loss = loss + np.array([offsets[c] for c in labels])
    rssi = row["eirp_dbm"].to_numpy() - loss + rng.normal(0.0, sigma, len(x)) * (sigma > 0)
    lon, lat = TO_LONLAT.transform(x, y)
    meas = gpd.GeoDataFrame(
        {"site_id": towers.index.to_numpy()[which], "rssi_dbm": rssi},
        geometry=gpd.points_from_xy(lon, lat),
        crs="EPSG:4326",
    )
    return meas, terrain, labels


def test_terrain_prediction_matches_the_coverage_engine_at_cell_centres():
    from telcoplan.coverage.bestserver import best_server

    towers, dem, grid = ridge_scenario()
    towers = towers.assign(azimuth_deg=[90.0, np.nan], tilt_deg=[4.0, np.nan])
    rows = np.array([10, 100, 150, 60, 100, 190])
    cols = np.array([400, 340, 60, 120, 260, 480])
    xs, ys = grid.x_centres()[cols], grid.y_centres()[rows]
    meas = gpd.GeoDataFrame(
        {"site_id": ["T1", "T1", "T2", "T2", "T1", "T2"], "rssi_dbm": -80.0},
        geometry=gpd.points_from_xy(xs, ys),
        crs=UTM49,
    )
    got = predict_rssi(towers, meas, dem=dem, grid=grid)
    for site in ("T1", "T2"):
        res = best_server(
            towers.loc[[site]], grid, model="hata", dem=dem, max_radius_km=15.0, tile_size=16
        )
        sel = (meas["site_id"] == site).to_numpy()
        np.testing.assert_allclose(got[sel], res.power_dbm[0][rows[sel], cols[sel]], atol=0.01)
    # the ridge matters on these paths: behind it the loss is a knife edge of tens of dB
    flat = predict_rssi(towers, meas)
    assert np.max(flat - got) > 10.0
    # a flat DEM reproduces the flat-earth prediction exactly
    zero = predict_rssi(towers, meas, dem=np.zeros(grid.shape), grid=grid)
    np.testing.assert_allclose(zero, flat, atol=1e-9)


def test_ridge_loss_is_close_to_the_textbook_knife_edge():
    # an independent check of the truth: T1 (30 m) → a receiver 3 km east of the crest, straight
    # across; edge height over the ray and ν from ITU-R P.526 (Earth bulge included)
    towers, dem, grid = ridge_scenario()
    d1, d2 = 3000.0, 3000.0
    bulge = d1 * d2 / (2 * (4 / 3) * 6_371_000.0)
    h = RIDGE_H + bulge - (30.0 * d2 + 1.5 * d1) / (d1 + d2)
    lam = 299_792_458.0 / 900e6
    nu = h * math.sqrt(2.0 / lam * (1.0 / d1 + 1.0 / d2))
    j = 6.9 + 20.0 * math.log10(math.sqrt((nu - 0.1) ** 2 + 1.0) + nu - 0.1)
    tx, ty = towers.geometry.x["T1"], towers.geometry.y["T1"]
    meas = gpd.GeoDataFrame(
        {"site_id": ["T1"], "rssi_dbm": [-80.0]},
        geometry=[Point(tx + d1 + d2, ty)],
        crs=UTM49,
    )
    drop = predict_rssi(towers, meas) - predict_rssi(towers, meas, dem=dem, grid=grid)
    assert drop[0] == pytest.approx(j, abs=0.3)


def test_terrain_fit_recovers_offsets_and_beats_the_flat_fit():
    towers, dem, grid = ridge_scenario()
    meas, terrain, _ = ridge_drive_test(towers, dem, grid, seed=3)
    assert (terrain > 5.0).mean() > 0.2  # a good part of the drive test is behind the ridge
    cal = calibrate(towers, meas, dem=dem, grid=grid)
    assert cal.intercept_offset_db == pytest.approx(TRUE_A, abs=0.6)
    assert cal.slope_offset_db_per_decade == pytest.approx(TRUE_B, abs=0.8)
    assert cal.rmse_db_after == pytest.approx(2.0, abs=0.3)
    assert (cal.terrain, cal.diffraction, cal.terrain_resolution_m) == (True, "bullington", 20.0)
    flat = calibrate(towers, meas)
    assert not flat.terrain
    assert flat.diffraction is None
    assert flat.rmse_db_after > 2.5 * cal.rmse_db_after
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back == cal


def test_terrain_fit_with_clutter_and_validation():
    towers, dem, grid = ridge_scenario()
    truth = {"open": 0.0, "urban": 7.0}
    meas, _, labels = ridge_drive_test(towers, dem, grid, seed=4, offsets=truth, sigma=0.0)
    check, _, vlabels = ridge_drive_test(towers, dem, grid, 60, seed=5, offsets=truth, sigma=0.0)
    cal = calibrate(
        towers,
        meas,
        clutter=labels,
        validation=check,
        validation_clutter=vlabels,
        dem=dem,
        grid=grid,
    )
    # "urban" (x > 2.5 km) is the most frequent class, hence the reference: a + c_k is the truth
    assert cal.clutter_offsets_db["urban"] == 0.0
    for c, off in truth.items():
        total = cal.intercept_offset_db + cal.clutter_offsets_db[c]
        assert total == pytest.approx(TRUE_A + off, abs=1e-6)
    assert cal.slope_offset_db_per_decade == pytest.approx(TRUE_B, abs=1e-6)
    assert cal.validation_rmse_db == pytest.approx(0.0, abs=1e-6)


def test_measurements_off_the_dem_are_a_clear_error():
    towers, dem, grid = ridge_scenario()
    meas, _, _ = ridge_drive_test(towers, dem, grid, 20, sigma=0.0)
    small = GridSpec.from_bounds((X0, Y0, X0 + 5_000.0, Y0 + 4_000.0), DEM_RES, UTM49)
    with pytest.raises(LayerValidationError, match=r"of 20 measurements of drive.csv are not on"):
        calibrate(
            towers,
            meas,
            dem=dem[:, : small.width],
            grid=small,
            source="drive.csv",
            dem_source="dem.tif",
        )
    void = dem.copy()
    void[:, 95:106] = np.nan  # T1 (x = 2 km, column 100) stands on a void
    with pytest.raises(LayerValidationError, match=r"serving tower\(s\) are not on the DEM \('T1'"):
        calibrate(towers, meas, dem=void, grid=grid)


def test_old_params_json_reads_as_fitted_without_terrain():
    good = Calibration("hata", "urban", 1.0, 2.0, {}, 3, 4.0, 5.0, 6.0, 7.0).to_dict()
    old = {
        k: v for k, v in good.items() if k not in ("terrain", "diffraction", "terrain_resolution_m")
    }
    cal = Calibration.from_dict(old)
    assert (cal.terrain, cal.diffraction) == (False, None)
    with pytest.raises(PlanError, match="diffraction method 'fresnel'"):
        Calibration.from_dict(good | {"terrain": True, "diffraction": "fresnel"})


# ------------------------------------------------------------------------------ land use
def test_clutter_labels_name_codes_and_report_missing_ones():
    from telcoplan.coverage.calibration import clutter_labels
    from telcoplan.layers.land_use import clutter_names

    codes = np.array([10.0, 20.0, 10.0, 30.0])
    assert clutter_labels(codes).tolist() == ["10", "20", "10", "30"]
    names = clutter_names(pd.DataFrame({"code": ["10", "20", "30"], "name": ["a", "b", "b"]}))
    assert clutter_labels(codes, names).tolist() == ["a", "b", "a", "b"]
    # no class there (outside every polygon, the raster, or on nodata): "unclassified"
    assert clutter_labels(np.array([10.0, np.nan, 10.0, 20.0, np.nan]), names).tolist() == [
        "a", "unclassified", "a", "b", "unclassified",
    ]  # fmt: skip
    with pytest.raises(LayerValidationError, match=r"code 30 under 1 measurement.*rows 4\)"):
        clutter_labels(codes, {10: "a", 20: "b"})
    with pytest.raises(LayerValidationError, match="'name' is missing"):
        clutter_names(pd.DataFrame({"code": ["1"], "label": ["x"]}))
    with pytest.raises(LayerValidationError) as info:
        clutter_names(pd.DataFrame({"code": ["1", "x", "1", "2"], "name": ["a", "b", "c", ""]}))
    assert [(p.row, p.column) for p in info.value.problems] == [
        (2, "code"),
        (3, "code"),
        (4, "name"),
    ]


def test_validation_classes_unseen_in_the_fit_are_reported():
    towers = five_towers()
    meas, _, labels = drive_test(
        towers, 50, sigma=0.0, offsets={"open": 0.0, "urban": 8.0}, p=[0.6, 0.4]
    )
    check, _, _ = drive_test(towers, 3, sigma=0.0, seed=5)
    with pytest.raises(LayerValidationError, match="'water' does not occur") as info:
        calibrate(
            towers,
            meas,
            clutter=labels,
            validation=check,
            validation_clutter=["open", "water", "urban"],
            validation_source="check.csv",
        )
    assert [p.row for p in info.value.problems] == [2]


def test_clutter_offset_grid_maps_codes_through_the_class_table(tmp_path):
    """Codes → names (table, or the code as text) → the fit's offsets; classes the fit never
    saw and nodata cells get 0 dB (the reference class) and are reported by share."""
    cal = Calibration("hata", "urban", 2.0, 3.0, {"open": 0.0, "urban": 7.5, "forest": -2.0},
                      10, 8.0, 4.0, -3.0, 0.0)  # fmt: skip
    (tmp_path / "classes.csv").write_text(
        "code,name\n1,open\n2,urban\n3, urban\n4,forest\n9,water\n"
    )
    names = read_clutter_table(tmp_path / "classes.csv")
    codes = np.array([[1, 2, 3, 4], [9, np.nan, 2, 2]], dtype=float)
    grid = clutter_offset_grid(cal, codes, names)
    assert grid.offset_db.dtype == np.float32
    np.testing.assert_array_equal(grid.offset_db, [[0.0, 7.5, 7.5, -2.0], [0.0, 0.0, 7.5, 7.5]])
    assert grid.share_pct == {"open": 12.5, "urban": 50.0, "forest": 12.5}
    assert grid.unknown_pct == {"water": 12.5}
    assert grid.nodata_pct == 12.5
    # without a table the code names the class ("2", not "2.0")
    by_code = Calibration("hata", "urban", 0.0, 0.0, {"1": 0.0, "2": 5.0}, 10, 8.0, 4.0, 0.0, 0.0)
    np.testing.assert_array_equal(
        clutter_offset_grid(by_code, np.array([1.0, 2.0, 7.0])).offset_db, [0.0, 5.0, 0.0]
    )
    with pytest.raises(ValueError, match="no clutter offsets"):
        clutter_offset_grid(replace(cal, clutter_offsets_db={}), codes, names)
    (tmp_path / "bad.csv").write_text("code,name\nx,open\n")
    with pytest.raises(LayerValidationError, match="not a number"):
        read_clutter_table(tmp_path / "bad.csv")


def test_measurements_far_from_their_site_are_refused():
    """A site_id or lon/lat mistake puts a measurement 1,000 km away: the fit would be nonsense
    (a = +8,000 dB); it is refused with the rows instead."""
    from shapely.affinity import translate

    towers = five_towers()
    meas, _, _ = drive_test(towers, 50, seed=3)
    shift = 10.0 if meas.crs.is_geographic else 1_000_000.0  # 10° of longitude, or 1,000 km
    meas.loc[[4, 9], "geometry"] = [translate(g, shift) for g in meas.geometry.loc[[4, 9]]]
    with pytest.raises(
        LayerValidationError, match=r"2 measurement\(s\) lie more than 100 km.*rows 5, 10"
    ):
        calibrate(towers, meas)
