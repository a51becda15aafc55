"""``telcoplan calibrate`` with --dem and --land-use, end to end through click's CliRunner.

The drive tests are the ridge scenario of ``test_calibration.py`` (known offsets, terrain truth
from the Bullington profile), written as lon/lat CSVs; the DEM and land-use rasters are written
here (the land use in EPSG:4326, to exercise a raster in another CRS than the DEM's).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from telcoplan.cli import cli
from telcoplan.gis.raster import write_raster
from tests.coverage.test_calibration import (
    TO_LONLAT,
    TRUE_A,
    TRUE_B,
    X0,
    Y0,
    ridge_drive_test,
    ridge_scenario,
)

#: Longitude of the land-use class boundary: 2.5 km east of the grid's west edge, as in
#: ridge_drive_test (x < X0 + 2.5 km is "open").
SPLIT_LON = TO_LONLAT.transform(X0 + 2_500.0, Y0 + 2_000.0)[0]


def write_inputs(tmp_path, *, offsets=None, sigma=2.0, seed=3, n=300):
    towers, dem, grid = ridge_scenario()
    meas, _, labels = ridge_drive_test(
        towers, dem, grid, n, seed=seed, offsets=offsets, sigma=sigma
    )
    tw = towers.to_crs("EPSG:4326").reset_index()
    tw.assign(lon=tw.geometry.x, lat=tw.geometry.y).drop(columns="geometry").to_csv(
        tmp_path / "towers.csv", index=False
    )
    pd.DataFrame(
        {
            "lon": meas.geometry.x,
            "lat": meas.geometry.y,
            "site_id": meas["site_id"],
            "rssi_dbm": meas["rssi_dbm"],
        }
    ).to_csv(tmp_path / "drive.csv", index=False)
    write_raster(tmp_path / "dem.tif", dem.astype(np.float32), grid)
    return meas, labels


def write_land_use(path, lon_min, lat_min, lon_max, lat_max, *, nodata_box=None):
    """Codes 1 west of SPLIT_LON, 2 east of it; 0.0001° cells; nodata 0 inside ``nodata_box``."""
    res = 1e-4
    width = int(np.ceil((lon_max - lon_min) / res))
    height = int(np.ceil((lat_max - lat_min) / res))
    lons = lon_min + (np.arange(width) + 0.5) * res
    codes = np.where(lons < SPLIT_LON, 1, 2).astype(np.uint8)[None, :].repeat(height, axis=0)
    if nodata_box is not None:
        r0, r1, c0, c1 = nodata_box
        codes[r0:r1, c0:c1] = 0
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=1, dtype="uint8",
        crs="EPSG:4326", transform=Affine(res, 0.0, lon_min, 0.0, -res, lat_max), nodata=0,
    ) as dst:  # fmt: skip
        dst.write(codes, 1)


def run(*args):
    return CliRunner().invoke(cli, ["calibrate", *map(str, args)])


def test_dem_recovers_offsets_and_beats_the_flat_fit(tmp_path):
    write_inputs(tmp_path)
    base = ["--towers", tmp_path / "towers.csv", "--measurements", tmp_path / "drive.csv"]
    res = run(*base, "--dem", tmp_path / "dem.tif", "--resolution", 20, "-o", tmp_path / "p.json")
    assert res.exit_code == 0, res.output
    params = json.loads((tmp_path / "p.json").read_text())
    printed = json.loads(res.stdout)
    assert params["terrain"] is True
    assert params["diffraction"] == "bullington"
    assert params["terrain_resolution_m"] == 20.0
    assert printed["terrain"] is True
    assert params["intercept_offset_db"] == pytest.approx(TRUE_A, abs=0.6)
    assert params["slope_offset_db_per_decade"] == pytest.approx(TRUE_B, abs=0.8)
    assert params["rmse_db_after"] == pytest.approx(2.0, abs=0.3)

    res = run(*base, "-o", tmp_path / "flat.json")
    assert res.exit_code == 0, res.output
    flat = json.loads((tmp_path / "flat.json").read_text())
    assert flat["terrain"] is False
    assert flat["rmse_db_after"] > 2.5 * params["rmse_db_after"]


def test_land_use_offsets_are_recovered_by_class_name(tmp_path):
    truth = {"open": 0.0, "urban": 7.0}
    write_inputs(tmp_path, offsets=truth, sigma=1.0, seed=4)
    lon0, lat0 = TO_LONLAT.transform(X0 - 500.0, Y0 - 500.0)
    lon1, lat1 = TO_LONLAT.transform(X0 + 10_500.0, Y0 + 4_500.0)
    write_land_use(tmp_path / "lu.tif", lon0, lat0, lon1, lat1)
    (tmp_path / "classes.csv").write_text("code,name\n1,open\n2,urban\n", encoding="utf-8")
    res = run(
        "--towers", tmp_path / "towers.csv", "--measurements", tmp_path / "drive.csv",
        "--dem", tmp_path / "dem.tif", "--resolution", 20,
        "--land-use", tmp_path / "lu.tif", "--land-use-classes", tmp_path / "classes.csv",
        "-o", tmp_path / "p.json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    params = json.loads((tmp_path / "p.json").read_text())
    offsets = params["clutter_offsets_db"]
    assert set(offsets) == {"open", "urban", "unclassified"}
    assert offsets["unclassified"] == 0.0  # no measurement without a class
    assert offsets["urban"] - offsets["open"] == pytest.approx(7.0, abs=0.5)
    assert params["intercept_offset_db"] + offsets["open"] == pytest.approx(TRUE_A, abs=0.8)
    assert params["rmse_db_after"] == pytest.approx(1.0, abs=0.2)
    # without the class table the raster codes name the classes
    res = run(
        "--towers", tmp_path / "towers.csv", "--measurements", tmp_path / "drive.csv",
        "--land-use", tmp_path / "lu.tif", "--validate", tmp_path / "drive.csv",
        "-o", tmp_path / "codes.json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    codes = json.loads((tmp_path / "codes.json").read_text())
    assert set(codes["clutter_offsets_db"]) == {"1", "2", "unclassified"}
    assert codes["validation_rmse_db"] == pytest.approx(codes["rmse_db_after"], abs=1e-9)


def test_land_use_polygons_recover_offsets_by_class_column(tmp_path):
    """The same drive test with the land use as two polygons (OpenStreetMap style, a class
    column): the same offsets, named by the column's values."""
    import geopandas as gpd
    from shapely.geometry import box

    from telcoplan.gis.vector import write_vector

    truth = {"open": 0.0, "urban": 7.0}
    write_inputs(tmp_path, offsets=truth, sigma=1.0, seed=4)
    lon0, lat0 = TO_LONLAT.transform(X0 - 500.0, Y0 - 500.0)
    lon1, lat1 = TO_LONLAT.transform(X0 + 10_500.0, Y0 + 4_500.0)
    write_land_use(tmp_path / "lu.tif", lon0, lat0, lon1, lat1)
    polys = gpd.GeoDataFrame(
        {"landuse": ["open", "residential-urban", None]},
        geometry=[box(lon0, lat0, SPLIT_LON, lat1), box(SPLIT_LON, lat0, lon1, lat1),
                  box(lon0, lat0, lon1, lat1)],  # a polygon without class: left out
        crs="EPSG:4326",
    )  # fmt: skip
    write_vector(tmp_path / "lu.gpkg", polys)
    base = ["--towers", tmp_path / "towers.csv", "--measurements", tmp_path / "drive.csv",
            "--dem", tmp_path / "dem.tif", "--resolution", 20]  # fmt: skip
    res = run(*base, "--land-use", tmp_path / "lu.gpkg", "--land-use-column", "landuse",
              "-o", tmp_path / "poly.json")  # fmt: skip
    assert res.exit_code == 0, res.output
    poly = json.loads((tmp_path / "poly.json").read_text())
    (tmp_path / "classes.csv").write_text("code,name\n1,open\n2,residential-urban\n")
    res = run(*base, "--land-use", tmp_path / "lu.tif", "--land-use-classes",
              tmp_path / "classes.csv", "-o", tmp_path / "raster.json")  # fmt: skip
    assert res.exit_code == 0, res.output
    raster = json.loads((tmp_path / "raster.json").read_text())
    assert set(poly["clutter_offsets_db"]) == {"open", "residential-urban", "unclassified"}
    gap = poly["clutter_offsets_db"]["residential-urban"] - poly["clutter_offsets_db"]["open"]
    assert gap == pytest.approx(7.0, abs=0.5)
    # the raster and the polygons class every measurement alike: the same fit
    for key in ("intercept_offset_db", "slope_offset_db_per_decade", "rmse_db_after"):
        assert poly[key] == pytest.approx(raster[key], abs=1e-9)
    res = run(*base, "--land-use", tmp_path / "lu.gpkg", "-o", tmp_path / "x.json")
    assert_clean_failure(res, "--land-use-column")


def assert_clean_failure(res, *fragments):
    assert res.exit_code == 1, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in res.output, res.output


def test_error_cases_are_one_clean_message(tmp_path):
    write_inputs(tmp_path, n=40)
    base = ["--towers", tmp_path / "towers.csv", "--measurements", tmp_path / "drive.csv"]
    out = ["-o", tmp_path / "p.json"]

    # a DEM covering only the western half: measurements east of it are named
    _, dem, grid = ridge_scenario()
    half = grid.__class__(grid.crs, grid.transform, grid.width // 2, grid.height)
    write_raster(tmp_path / "half.tif", dem[:, : half.width].astype(np.float32), half)
    res = run(*base, "--dem", tmp_path / "half.tif", "--resolution", 20, *out)
    assert_clean_failure(res, "half.tif", "measurements of", "not on the DEM", "no elevation data")

    # codes missing from the class table; a table without the name column
    lon0, lat0 = TO_LONLAT.transform(X0 - 500.0, Y0 - 500.0)
    lon1, lat1 = TO_LONLAT.transform(X0 + 10_500.0, Y0 + 4_500.0)
    write_land_use(tmp_path / "lu.tif", lon0, lat0, lon1, lat1)
    (tmp_path / "classes.csv").write_text("code,name\n1,open\n", encoding="utf-8")
    res = run(
        *base,
        "--land-use",
        tmp_path / "lu.tif",
        "--land-use-classes",
        tmp_path / "classes.csv",
        *out,
    )
    assert_clean_failure(res, "land-use code 2", "has no name in the class table")
    (tmp_path / "bad.csv").write_text("value,label\n1,open\n", encoding="utf-8")
    res = run(
        *base, "--land-use", tmp_path / "lu.tif", "--land-use-classes", tmp_path / "bad.csv", *out
    )
    assert_clean_failure(res, "bad.csv", "'code' is missing")

    # a land-use raster that is not a raster; a measurements CSV without rssi_dbm
    (tmp_path / "junk.tif").write_text("not a raster", encoding="utf-8")
    res = run(*base, "--land-use", tmp_path / "junk.tif", *out)
    assert_clean_failure(res, "junk.tif", "not a readable raster")
    pd.read_csv(tmp_path / "drive.csv").drop(columns="rssi_dbm").to_csv(
        tmp_path / "nor.csv", index=False
    )
    res = run("--towers", tmp_path / "towers.csv", "--measurements", tmp_path / "nor.csv", *out)
    assert_clean_failure(res, "rssi_dbm")
    assert not (tmp_path / "p.json").exists()

    # the class table alone is a usage error
    res = run(*base, "--land-use-classes", tmp_path / "classes.csv", *out)
    assert res.exit_code == 2
    assert "--land-use-classes needs --land-use" in res.output


# ------------------------------------------------------------------------------ --cv, unclassified
def test_land_use_without_a_class_is_unclassified_and_fitted(tmp_path):
    """The raster covers the western 3 km: the measurements east of it (all in the truth's
    "urban", +7 dB) are class `unclassified`, with their offset fitted, and no error; on a
    raster that is all nodata every measurement is `unclassified`."""
    write_inputs(tmp_path, offsets={"open": 0.0, "urban": 7.0}, n=200, sigma=1.0, seed=4)
    lon0, lat0 = TO_LONLAT.transform(X0 - 500.0, Y0 - 500.0)
    lon1, lat1 = TO_LONLAT.transform(X0 + 3_000.0, Y0 + 4_500.0)
    write_land_use(tmp_path / "lu.tif", lon0, lat0, lon1, lat1)
    base = ["--towers", tmp_path / "towers.csv", "--measurements", tmp_path / "drive.csv",
            "--dem", tmp_path / "dem.tif", "--resolution", 20]  # fmt: skip
    res = run(*base, "--land-use", tmp_path / "lu.tif", "-o", tmp_path / "p.json")
    assert res.exit_code == 0, res.output
    offsets = json.loads((tmp_path / "p.json").read_text())["clutter_offsets_db"]
    assert set(offsets) == {"1", "2", "unclassified"}
    assert offsets["unclassified"] - offsets["1"] == pytest.approx(7.0, abs=0.7)
    write_land_use(tmp_path / "void.tif", lon0, lat0, lon1, lat1, nodata_box=(0, 10**6, 0, 10**6))
    res = run(*base, "--land-use", tmp_path / "void.tif", "-o", tmp_path / "q.json")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "q.json").read_text())["clutter_offsets_db"] == {
        "unclassified": 0.0
    }


def test_cv_chooses_a_configuration_and_records_it(tmp_path):
    truth = {"open": 0.0, "urban": 7.0}
    write_inputs(tmp_path, offsets=truth, sigma=1.0, seed=4, n=200)
    lon0, lat0 = TO_LONLAT.transform(X0 - 500.0, Y0 - 500.0)
    lon1, lat1 = TO_LONLAT.transform(X0 + 10_500.0, Y0 + 4_500.0)
    write_land_use(tmp_path / "lu.tif", lon0, lat0, lon1, lat1)
    args = ["--towers", tmp_path / "towers.csv", "--measurements", tmp_path / "drive.csv",
            "--dem", tmp_path / "dem.tif", "--resolution", 20, "--land-use", tmp_path / "lu.tif",
            "--cv", 5, "--cv-mode", "random", "--seed", 3]  # fmt: skip
    res = CliRunner().invoke(cli, ["calibrate", *map(str, [*args, "-o", tmp_path / "p.json"])])
    assert res.exit_code == 0, res.output
    params = json.loads((tmp_path / "p.json").read_text())
    cv = params["cv"]
    assert (cv["folds"], cv["mode"], cv["seed"], cv["block_m"]) == (5, "random", 3, None)
    assert cv["chosen"]["clutter"] is True  # the truth has clutter offsets
    assert cv["cv_rmse_db"] == pytest.approx(1.0, abs=0.3)
    assert cv["cv_rmse_db"] == min(c["cv_rmse_db"] for c in cv["candidates"])
    assert "validation error to quote" in res.output  # (stderr is mixed in by CliRunner)
    printed = json.loads(res.output[res.output.index("{") :])
    assert printed["cv_rmse_db"] == cv["cv_rmse_db"]
    # deterministic with --seed
    res = CliRunner().invoke(cli, ["calibrate", *map(str, [*args, "-o", tmp_path / "q.json"])])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "q.json").read_text() == (tmp_path / "p.json").read_text()


def test_cv_usage_errors_are_clean(tmp_path):
    write_inputs(tmp_path, n=40)
    base = ["--towers", tmp_path / "towers.csv", "--measurements", tmp_path / "drive.csv",
            "-o", tmp_path / "p.json"]  # fmt: skip
    res = run(*base, "--cv", 1)
    assert res.exit_code == 2
    assert "--cv" in res.output
    assert "Traceback" not in res.output
    res = run(*base, "--cv-mode", "site")
    assert res.exit_code == 2
    assert "--cv-mode needs --cv K" in res.output
    res = run(*base, "--cv", 5, "--cv-mode", "site", "--cv-block", 500)
    assert res.exit_code == 2
    assert "--cv-block only applies to --cv-mode spatial" in res.output
    res = run(*base, "--cv", 41)
    assert_clean_failure(res, "41 cross-validation folds asked for 40 measurements")
    res = run(*base, "--cv", 5, "--cv-block", 1e6)
    assert_clean_failure(res, "fall in 1 block(s) of 1e+06 m", "smaller blocks")
    assert not (tmp_path / "p.json").exists()
