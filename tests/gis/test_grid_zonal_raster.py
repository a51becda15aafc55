"""GridSpec, CRS choice, zonal sums (against brute force), raster round trips and atomic writes."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import Point, Polygon

from telcoplan.errors import CRSError, OutputExistsError
from telcoplan.gis.crs import utm_crs_for
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import (
    read_attribute_table,
    read_raster,
    read_raster_on_grid,
    write_attribute_table,
    write_raster,
)
from telcoplan.gis.zonal import label_polygons, zonal_sum
from tests.conftest import UTM49, X0, Y0, gdal_tool_or_skip


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [
        (108.2, 16.05, "EPSG:32649"),
        (105.85, 21.03, "EPSG:32648"),
        (-0.1, 51.5, "EPSG:32630"),
        (151.2, -33.9, "EPSG:32756"),
        (-180.0, 0.0, "EPSG:32601"),
        (180.0, 10.0, "EPSG:32660"),
    ],
)
def test_utm_zone(lon, lat, epsg):
    assert utm_crs_for(lon, lat) == epsg


def test_grid_from_bounds_snaps_and_covers(grid10):
    assert grid10.shape == (10, 10)
    assert grid10.bounds == (X0, Y0, X0 + 1000, Y0 + 1000)
    g = GridSpec.from_bounds((X0 + 30, Y0 + 30, X0 + 970, Y0 + 1001), 100.0, UTM49)
    assert g.transform.c == X0
    assert g.shape == (11, 10)
    assert g.bounds[3] >= Y0 + 1001
    assert g.bounds[0] <= X0 + 30


def test_grid_rejects_geographic_crs():
    with pytest.raises(CRSError, match="not projected"):
        GridSpec.from_bounds((108.0, 16.0, 108.1, 16.1), 0.001, "EPSG:4326")


def test_rowcol_of_centres(grid10):
    X, Y = grid10.cell_centres()
    r, c = grid10.rowcol(X.ravel(), Y.ravel())
    assert np.array_equal(r.reshape(10, 10), np.repeat(np.arange(10)[:, None], 10, axis=1))
    assert np.array_equal(c.reshape(10, 10), np.repeat(np.arange(10)[None, :], 10, axis=0))


def _brute_zonal(values, grid, polys):
    """Independent reference: point-in-polygon of every cell centre with shapely."""
    X, Y = grid.cell_centres()
    out = np.zeros(len(polys))
    for i, poly in enumerate(polys.geometry):
        for r in range(grid.height):
            for c in range(grid.width):
                if poly.contains(Point(X[r, c], Y[r, c])):
                    out[i] += values[r, c]
    return out


def test_zonal_sum_matches_brute_force(grid10):
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 10, grid10.shape)
    tri = Polygon([(X0 + 20, Y0 + 30), (X0 + 930, Y0 + 80), (X0 + 420, Y0 + 870)])
    odd = Polygon(
        [(X0 + 600, Y0 + 500), (X0 + 990, Y0 + 520), (X0 + 980, Y0 + 990), (X0 + 640, Y0 + 940)]
    )
    polys = gpd.GeoDataFrame(geometry=[tri, odd], crs=UTM49)
    np.testing.assert_allclose(
        zonal_sum(values, grid10, polys), _brute_zonal(values, grid10, polys), rtol=1e-12
    )


def test_zonal_sum_partition_conserves_total(grid10, areas4):
    values = np.arange(100, dtype=float).reshape(10, 10)
    sums = zonal_sum(values, grid10, areas4)
    assert sums.sum() == pytest.approx(values.sum())
    assert sums[0] == pytest.approx(values[5:, :5].sum())  # SW quadrant = bottom-left rows


def test_label_polygons_crs_mismatch(grid10, areas4):
    with pytest.raises(CRSError, match="reproject"):
        label_polygons(areas4.to_crs("EPSG:4326"), grid10)


def test_raster_round_trip_cog(tmp_path, grid10):
    data = np.linspace(0, 1, 100, dtype="float32").reshape(10, 10)
    data[0, 0] = np.nan
    path = write_raster(
        tmp_path / "a.tif",
        np.where(np.isnan(data), grid10.nodata, data).astype("float32"),
        grid10,
        tags={"synthetic": "true"},
    )
    back, g, tags = read_raster(path)
    assert g.same_grid(grid10)
    assert np.isnan(back[0, 0])
    assert np.allclose(back[1:], data[1:])
    assert tags["synthetic"] == "true"
    with rasterio.open(path) as src:
        assert src.profile["compress"].lower() == "deflate"
        assert (
            src.profile.get("tiled", False)
            or src.block_shapes[0][0] < src.height
            or src.height <= 256
        )


def test_read_raster_on_grid_identity(tmp_path, grid10):
    data = np.arange(100, dtype="float64").reshape(10, 10)
    path = write_raster(tmp_path / "b.tif", data, grid10)
    np.testing.assert_allclose(read_raster_on_grid(path, grid10, resampling="nearest"), data)


def test_raster_overwrite_guard(tmp_path, grid10):
    path = write_raster(tmp_path / "c.tif", np.zeros(grid10.shape), grid10)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        write_raster(path, np.ones(grid10.shape), grid10)
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="shape"):
        write_raster(tmp_path / "d.tif", np.zeros((3, 3)), grid10)
    assert not (tmp_path / "d.tif").exists()


def test_read_on_aligned_subgrid_is_exact(tmp_path, grid10):
    """An aligned sub-grid is cut out, not resampled; cells outside the source are NaN."""
    data = np.arange(100, dtype="float64").reshape(10, 10)
    path = write_raster(tmp_path / "e.tif", data, grid10)
    sub = GridSpec.from_bounds((X0 + 300, Y0 + 200, X0 + 1200, Y0 + 700), 100.0, UTM49)
    got = read_raster_on_grid(path, sub, resampling="bilinear")
    assert got.shape == (5, 9)
    np.testing.assert_array_equal(got[:, :7], data[3:8, 3:10])
    assert np.isnan(got[:, 7:]).all()


def test_geographic_raster_reads_and_warps(tmp_path, grid10):
    """A WGS 84 raster (SRTM / WorldPop style) is read as is and warped onto the UTM plan grid."""
    import rasterio
    from affine import Affine
    from pyproj import Transformer

    ll = grid10.bounds
    tr = Transformer.from_crs(grid10.crs, "EPSG:4326", always_xy=True)
    lon0, lat1 = tr.transform(ll[0] - 500, ll[3] + 500)
    lon1, lat0 = tr.transform(ll[2] + 500, ll[1] - 500)
    res = 0.0005
    w, h = int((lon1 - lon0) / res) + 1, int((lat1 - lat0) / res) + 1
    path = tmp_path / "dem_wgs84.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="int16",
        crs="EPSG:4326",
        transform=Affine(res, 0, lon0, 0, -res, lat1),
        nodata=-32768,
    ) as dst:
        data = np.full((h, w), 42, dtype="int16")
        data[0, 0] = -32768
        dst.write(data, 1)
    back, info, _ = read_raster(path)
    assert info.crs == "EPSG:4326"
    assert np.isnan(back[0, 0])
    assert back[1, 1] == 42
    on_grid = read_raster_on_grid(path, grid10)
    assert on_grid.shape == grid10.shape
    assert np.allclose(on_grid, 42.0)


def test_attribute_table_names_the_values_for_gdal(tmp_path):
    """A thematic RAT in the .aux.xml sidecar: our reader and (when installed) GDAL's own map
    each pixel value to its row; text from input files is escaped, not interpreted."""
    grid = GridSpec.from_bounds((X0, Y0, X0 + 300, Y0 + 300), 100.0, UTM49)
    data = np.array([[0, 1, 2], [2, 7, 1], [0, 0, 7]], dtype=np.int32)
    path = write_raster(tmp_path / "server.tif", data, grid, nodata=0)
    ids = np.array(["VT-1", "<script>alert(1)</script> & co", "Trạm Hải Châu"], dtype=object)
    sidecar = write_attribute_table(
        path, np.array([1, 2, 7]), {"site_id": ids, "height_m": np.array([30.0, 25.5, 40.0])},
        name="site_id",
    )  # fmt: skip
    assert sidecar == tmp_path / "server.tif.aux.xml"
    assert "<script>" not in sidecar.read_text(encoding="utf-8")
    table = read_attribute_table(path)
    assert table == {
        1: {"site_id": "VT-1", "height_m": "30.0"},
        2: {"site_id": "<script>alert(1)</script> & co", "height_m": "25.5"},
        7: {"site_id": "Trạm Hải Châu", "height_m": "40.0"},
    }
    with rasterio.open(path) as src:  # the raster itself is untouched
        assert np.array_equal(src.read(1), data)
    # characters XML cannot hold, and missing values, do not break the sidecar
    import pandas as pd

    odd = np.array(["bell\x07 tower", pd.NA, None, float("nan")], dtype=object)
    write_attribute_table(path, np.array([1, 2, 3, 4]), {"site_id": odd}, name="site_id")
    assert read_attribute_table(path) == {
        1: {"site_id": "bell\ufffd tower"}, 2: {"site_id": ""}, 3: {"site_id": ""},
        4: {"site_id": ""},
    }  # fmt: skip
    with pytest.raises(ValueError, match="integers"):
        write_attribute_table(path, np.array([1.5]), {"a": np.array(["x"])}, name="a")
    with pytest.raises(ValueError, match="rows"):
        write_attribute_table(path, np.array([1, 2]), {"a": np.array(["x"])}, name="a")
    write_attribute_table(
        path, np.array([1, 2, 7]), {"site_id": ids, "height_m": np.array([30.0, 25.5, 40.0])},
        name="site_id",
    )  # fmt: skip
    # GDAL's own reading of the sidecar
    import json
    import subprocess

    out = subprocess.run(
        [gdal_tool_or_skip("gdalinfo"), "-json", str(path)], capture_output=True, check=True
    )
    rat = json.loads(out.stdout)["rat"]
    assert [f["name"] for f in rat["fieldDefn"]] == ["value", "site_id", "height_m"]
    assert {r["f"][0]: r["f"][1] for r in rat["row"]} == {1: "VT-1", 2: ids[1], 7: ids[2]}


def test_a_raster_with_several_bands_says_which_one_is_read(tmp_path, caplog):
    import logging

    grid = GridSpec.from_bounds((X0, Y0, X0 + 300, Y0 + 300), 100.0, UTM49)
    profile = {"driver": "GTiff", "width": 3, "height": 3, "count": 2, "dtype": "float64",
               "crs": grid.crs, "transform": grid.transform}  # fmt: skip
    with rasterio.open(tmp_path / "two.tif", "w", **profile) as dst:
        dst.write(np.ones((3, 3)), 1)
        dst.write(np.full((3, 3), 7.0), 2)
    with caplog.at_level(logging.WARNING):
        got = read_raster_on_grid(tmp_path / "two.tif", grid)
    assert np.array_equal(got, np.ones((3, 3)))
    assert "has 2 bands: band 1 is read" in caplog.text


def test_zonal_sum_labels_equals_bincount_to_the_bit():
    """The one-pass kernel adds in cell order, as numpy.bincount does: identical sums (NaN cells
    and label -1 left out)."""
    from telcoplan.gis.zonal import zonal_sum_labels

    rng = np.random.default_rng(7)
    v = rng.random((300, 200)) * 1e3
    v[rng.random(v.shape) < 0.05] = np.nan
    lab = rng.integers(-1, 12, v.shape).astype(np.int32)
    keep = (lab >= 0) & np.isfinite(v)
    expected = np.bincount(lab[keep], weights=v[keep], minlength=12)[:12]
    assert np.array_equal(zonal_sum_labels(v, lab, 12), expected)
    assert np.array_equal(zonal_sum_labels(v, lab.astype(np.int64), 12), expected)
