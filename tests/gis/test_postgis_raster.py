"""PostGIS rasters read through psycopg (raster WKB, no GDAL driver in the database): tiles
laid together as the file they were loaded from, only the tiles over the plan grid read, the
same cells on the grid as the file, and clear errors, against the ``postgis`` cluster."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine

from telcoplan.errors import CRSError, DatabaseError
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.postgis_raster import mosaic, read_postgis_raster, source_kind, tile_from_wkb
from telcoplan.gis.raster import read_raster, read_raster_on_grid
from telcoplan.layers.dem import load_dem
from tests.conftest import UTM49, X0, Y0
from tests.gis.postgis_rasters import load_raster


@pytest.fixture
def pg(postgis, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", postgis.password)
    return postgis


def _tif(path, data, transform, crs, nodata=None):
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": 1,
               "dtype": data.dtype.name, "crs": crs, "transform": transform, "nodata": nodata}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def _values(rng, dtype, shape):
    if np.dtype(dtype).kind == "f":
        return rng.normal(300.0, 80.0, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -30000), min(info.max, 30000), shape).astype(dtype)


@pytest.mark.parametrize(
    ("dtype", "nodata"),
    [("uint8", 255), ("int16", -32768), ("uint16", None), ("int32", -1), ("float32", -9999.0),
     ("float64", np.nan)],
)  # fmt: skip
def test_tiles_are_laid_together_as_the_file_they_were_loaded_from(pg, tmp_path, dtype, nodata):
    rng = np.random.default_rng(7)
    data = _values(rng, dtype, (23, 31))
    if nodata is not None:
        data[3, 4] = nodata
    transform = Affine(30.0, 0.0, X0 + 15.0, 0.0, -30.0, Y0 + 700.0)
    path = _tif(tmp_path / "r.tif", data, transform, UTM49, nodata)
    tiles = load_raster(pg, "rast_test.r", path, tile=(8, 6))
    assert tiles == 4 * 4  # 31 x 23 cells in 8 x 6 tiles
    raster = read_postgis_raster(pg.url, table="rast_test.r")
    got, info, _ = read_raster(raster)
    want, want_info, _ = read_raster(path)
    np.testing.assert_array_equal(got, want)  # NaN where nodata, on both
    assert (info.crs, info.transform, info.shape) == (
        want_info.crs,
        want_info.transform,
        want_info.shape,
    )
    assert info.nodata == pytest.approx(want_info.nodata, nan_ok=True)
    record = raster.attrs["postgis"]
    assert (record["table"], record["srid"], record["tiles"]) == ("rast_test.r", 32649, 16)
    assert pg.password not in repr(raster) + str(record)
    # PostGIS' own reading of some cells (ST_Value: NULL on nodata)
    for row, col in [(0, 0), (3, 4), (22, 30), (11, 17)]:
        x, y = transform @ (col + 0.5, row + 0.5)
        (value,) = pg.execute(
            "SELECT ST_Value(rast, ST_SetSRID(ST_Point(%s, %s), 32649)) FROM rast_test.r "
            "WHERE ST_Intersects(rast, ST_SetSRID(ST_Point(%s, %s), 32649))",
            (x, y, x, y),
        )[0]
        assert (np.nan if value is None else value) == pytest.approx(got[row, col], nan_ok=True)


def test_only_the_tiles_over_the_grid_are_read_and_give_the_files_cells(pg, tmp_path):
    """A DEM in WGS 84 (warped onto a UTM grid, bilinear): the tiles over the grid, plus the
    margin, give the very cells the whole file gives."""
    rng = np.random.default_rng(3)
    lon0, lat0 = 116.02, 16.06
    transform = Affine(1 / 3600, 0.0, lon0, 0.0, -1 / 3600, lat0)
    data = (rng.random((260, 300)) * 400.0).astype("float32")
    path = _tif(tmp_path / "dem.tif", data, transform, "EPSG:4326", -9999.0)
    load_raster(pg, "rast_test.dem", path, tile=(32, 32))
    utm = rasterio.warp.transform("EPSG:4326", UTM49, [lon0 + 0.03], [lat0 - 0.03])
    x, y = utm[0][0], utm[1][0]
    grid = GridSpec.from_bounds((x, y, x + 1500.0, y + 1000.0), 30.0, UTM49)
    raster = read_postgis_raster(pg.url, table="rast_test.dem", extent=grid)
    assert raster.attrs["postgis"]["tiles"] < 80  # of 90
    for resampling in ("bilinear", "nearest", "average", "sum"):
        got = read_raster_on_grid(raster, grid, resampling=resampling)
        want = read_raster_on_grid(path, grid, resampling=resampling)
        assert got.tobytes() == want.tobytes(), resampling
    np.testing.assert_array_equal(load_dem(raster, grid), load_dem(path, grid))
    # a query reads the same tiles
    query = read_postgis_raster(pg.url, sql="SELECT rid, rast FROM rast_test.dem", extent=grid)
    assert query.attrs["postgis"]["sha256"] == raster.attrs["postgis"]["sha256"]
    assert source_kind(pg.url, table="rast_test.dem") == "raster"


#: an SRTM 1″ tile's geotransform as GDAL writes it (the Đà Nẵng DEM's): 1/3600° is not a
#: binary fraction, so the tiles' corners are the origin plus i · 64 cells to within a rounding
SRTM_CELL, SRTM_LON, SRTM_LAT = 0.0002777777777778146, 108.07986111114928, 16.120138888883076


def _terrain(rng, shape, nodata):
    """int16 heights with ridges and valleys (what bilinear weights change), the sea nodata."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    z = 400 + 300 * np.sin(rows / 37.0) * np.cos(cols / 23.0) + rng.normal(0, 25, shape)
    data = z.round().astype("int16")
    data[rows + cols > shape[0] + shape[1] - 250] = nodata  # the south-east corner: sea
    return data


@pytest.mark.parametrize(
    "bounds",
    [
        (159_500.0, 1_762_100.0, 215_400.0, 1_795_200.0),  # the real plan: over the east edge
        (192_000.0, 1_762_000.0, 208_000.0, 1_779_000.0),  # inside: the read cut on all sides
    ],
)
def test_a_cut_srtm_dem_gives_the_files_cells_on_a_coarser_grid(pg, tmp_path, bounds):
    """The real Đà Nẵng DEM's pattern (1″ cells in WGS 84, 864 × 900 cells in raster2pgsql's
    64 × 64 tiles, int16 with nodata) warped onto a 100 m UTM grid (bilinear, downsampling):
    the tiles over the grid give, to the bit, the cells the whole file gives. GDAL widens the
    bilinear kernel by the ratio of source to grid cells over the source window it computes,
    which depends on the raster's size: the in-memory raster must be the whole raster's."""
    rng = np.random.default_rng(11)
    transform = Affine(SRTM_CELL, 0.0, SRTM_LON, 0.0, -SRTM_CELL, SRTM_LAT)
    data = _terrain(rng, (900, 864), -32768)
    path = _tif(tmp_path / "srtm.tif", data, transform, "EPSG:4326", -32768)
    assert load_raster(pg, "rast_test.srtm", path, tile=(64, 64)) == 15 * 14
    grid = GridSpec.from_bounds(bounds, 100.0, UTM49)
    raster = read_postgis_raster(pg.url, table="rast_test.srtm", extent=grid)
    assert raster.attrs["postgis"]["tiles"] < 15 * 14  # only the tiles over the grid
    with rasterio.io.MemoryFile(raster.data) as memory, memory.open() as src:
        assert (src.transform, src.shape) == (transform, data.shape)  # the file's, exactly
    got = read_raster_on_grid(raster, grid, resampling="bilinear")
    want = read_raster_on_grid(path, grid, resampling="bilinear")
    assert np.isfinite(want).sum() > 10_000
    assert got.tobytes() == want.tobytes()


def test_a_raster_without_srid_takes_the_given_crs(pg, tmp_path):
    data = np.arange(12, dtype="int16").reshape(3, 4)
    path = _tif(tmp_path / "r.tif", data, Affine(100, 0, X0, 0, -100, Y0 + 300), UTM49)
    load_raster(pg, "rast_test.nosrid", path, srid=0)
    with pytest.raises(CRSError, match="SRID 0") as err:
        read_postgis_raster(pg.url, table="rast_test.nosrid")
    assert "crs: EPSG:32649" in str(err.value)
    got, info, _ = read_raster(read_postgis_raster(pg.url, table="rast_test.nosrid", crs=UTM49))
    np.testing.assert_array_equal(got, data)
    assert info.crs == "EPSG:32649"


def test_bad_raster_sources_are_named_with_the_fix(pg, tmp_path, areas4):
    data = np.ones((4, 4), dtype="uint8")
    path = _tif(tmp_path / "r.tif", data, Affine(100, 0, X0, 0, -100, Y0 + 400), UTM49)
    load_raster(pg, "rast_test.small", path, tile=(2, 2))
    pg.load_table("rast_test.areas", areas4)
    far = GridSpec.from_bounds((X0 + 50_000, Y0, X0 + 51_000, Y0 + 1000), 100.0, UTM49)
    cases = [
        ({"table": "rast_test.areas"}, "table rast_test.areas: has no raster column"),
        ({"table": "rast_test.nope"}, "no table rast_test.nope; tables with raster: rast_test."),
        ({"table": "rast_test.small", "extent": far}, "no raster tile over the study area"),
        ({"sql": "SELECT rast, rast AS r2 FROM rast_test.small"}, "has 2 raster columns"),
        ({"sql": "SELECT rast FROM rast_test.small WHERE false"}, "has no raster (no row"),
        ({"sql": "SELECT rast FROM rast_test.nowhere"}, "query: the query fails"),
        (
            {"sql": "SELECT rast FROM rast_test.small UNION ALL SELECT ST_SetSRID(rast, 4326) "
                     "FROM rast_test.small"},
            "several SRIDs",
        ),
    ]  # fmt: skip
    for kwargs, expected in cases:
        with pytest.raises(DatabaseError) as err:
            read_postgis_raster(pg.url, **kwargs)
        assert expected in str(err.value), (kwargs, str(err.value))
        assert pg.password not in str(err.value)
    assert source_kind(pg.url, table="rast_test.areas") == "vector"


def test_a_database_without_the_raster_extension_says_how_to_add_it(pg):
    pg.execute("DROP DATABASE IF EXISTS no_raster")
    pg.execute("CREATE DATABASE no_raster OWNER planner")
    url = pg.url.replace("/telcoplan_test?", "/no_raster?")
    admin = pg.admin_url.replace("/telcoplan_test?", "/no_raster?")
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
    with pytest.raises(DatabaseError, match="CREATE EXTENSION postgis_raster"):
        read_postgis_raster(url, table="public.dem")
    assert source_kind(url, sql="SELECT 1 AS a") == "vector"


def test_tiles_that_do_not_share_cell_edges_are_refused():
    def tile(x0, size=10.0):
        return tile_from_wkb(_wkb(x0, size))

    with pytest.raises(ValueError, match="ST_SameAlignment"):
        mosaic([tile(0.0), tile(25.0)])
    with pytest.raises(ValueError, match="cell sizes"):
        mosaic([tile(0.0), tile(20.0, 5.0)])
    data, gt, nodata = mosaic([tile(0.0), tile(40.0)])  # a gap between: nodata
    assert data.shape == (2, 6)
    assert gt[0] == 0.0
    assert np.isnan(data[:, 2:4]).all()
    assert np.isnan(nodata)
    np.testing.assert_array_equal(data[:, :2], [[1, 2], [3, 4]])


def test_tile_corners_a_rounding_off_the_cell_edges_are_placed_on_them():
    """Corners as ST_Tile computes them (origin + k · cell size, in doubles, 1″ cells): each
    tile in its own cells, far along the row too; a hundredth of a cell off is refused."""
    corners = [SRTM_LON + 2 * k * SRTM_CELL for k in range(500)]
    assert any((x - SRTM_LON) / SRTM_CELL != 2 * k for k, x in enumerate(corners))  # roundings
    tiles = [tile_from_wkb(_wkb(x, SRTM_CELL)) for x in reversed(corners)]
    data, gt, _ = mosaic(tiles)
    assert data.shape == (2, 1000)
    assert gt[:2] == (SRTM_LON, SRTM_CELL)
    np.testing.assert_array_equal(data, np.tile([[1, 2], [3, 4]], 500))
    with pytest.raises(ValueError, match="ST_SameAlignment"):
        mosaic([*tiles, tile_from_wkb(_wkb(SRTM_LON + 7.01 * SRTM_CELL, SRTM_CELL))])


def _wkb(x0: float, size: float) -> bytes:
    """A 2 x 2 tile of 8BUI 1…4 without nodata (little-endian raster WKB, written by hand)."""
    import struct

    head = struct.pack("<BHHddddddiHH", 1, 0, 1, size, -size, x0, 100.0, 0.0, 0.0, 32649, 2, 2)
    return head + bytes([4, 0, 1, 2, 3, 4])
