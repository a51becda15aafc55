"""The geometry checks of a layer made on whole arrays (layers/_schema.py), text columns
coerced without pandas' per-row map (layers/_loader.py) and a float64 raster read without
GDAL's mask band (gis/raster.py): each against a plain per-row reference."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from affine import Affine
from shapely.geometry import LineString, MultiPoint, Point, Polygon, box

from telcoplan.errors import LayerValidationError
from telcoplan.gis.raster import read_raster
from telcoplan.layers._loader import coerce
from telcoplan.layers.population import load_population_raster
from telcoplan.layers.schemas import ROADS, TOWERS


def _kind(g, study, geographic: bool) -> str:
    """What is wrong with one point of a towers layer, checked geometry by geometry."""
    if g is None:
        return "missing"
    if g.is_empty:
        return "empty"
    if g.geom_type != "Point":
        return "type"
    if not g.is_valid:
        return "invalid"
    xy = np.asarray(g.coords)
    if not np.isfinite(xy).all():
        return "non-finite"
    x, y = xy[0]
    swapped = geographic and abs(y) > 90 and abs(x) <= 90
    if geographic and not swapped and abs(x) > 180:
        return "longitude"
    if geographic and not swapped and abs(y) > 90:
        return "latitude"
    if swapped or (not study.intersects(g) and study.intersects(Point(y, x))):
        return "swapped"
    return "ok" if study.intersects(g) else "outside"


_WORDS = {
    "missing": "missing",
    "empty": "empty",
    "type": "is a MultiPoint",
    "invalid": "invalid",
    "non-finite": "non-finite",
    "longitude": "longitude",
    "latitude": "latitude",
    "swapped": "swapped lat/lon",
    "outside": "outside the study area",
}


@pytest.mark.parametrize("geographic", [False, True])
def test_geometry_problems_match_a_per_row_check(geographic):
    """Random points (with missing, empty, multi-part, NaN, out-of-range, swapped and outside
    ones) get exactly the problems a per-row check finds: range and swap problems first, then
    those outside the study area, each in row order."""
    rng = np.random.default_rng(7)
    if geographic:
        crs, study = "EPSG:4326", box(100.0, 10.0, 106.0, 20.0)
        xy = np.column_stack([rng.uniform(95, 112, 300), rng.uniform(5, 25, 300)])
        odd = [Point(15.0, 103.0), Point(200.0, 15.0), Point(103.0, 95.0), Point(-181.0, 91.0)]
    else:
        crs, study = "EPSG:32648", box(0.0, 0.0, 50_000.0, 50_000.0)
        xy = rng.uniform(-20_000, 70_000, (300, 2))
        odd = [Point(30_000.0, 60_000.0)]  # outside as given, inside once swapped
    geoms = list(shapely.points(xy))
    geoms[3::17] = [None] * len(geoms[3::17])
    geoms[5] = Point()
    geoms[8] = MultiPoint([(1, 1), (2, 2)])
    geoms[11] = Point(np.nan, 1.0)
    geoms[20 : 20 + len(odd)] = odd
    gdf = gpd.GeoDataFrame({"site_id": [f"s{i}" for i in range(300)]}, geometry=geoms, crs=crs)
    area = gpd.GeoSeries([study], crs=crs)
    ids = list(gdf["site_id"])
    got = TOWERS._geometry_problems(gdf, ids, area)
    kinds = [_kind(g, study, geographic) for g in geoms]
    expected = [i for i, k in enumerate(kinds) if k not in ("ok", "outside") and k in _WORDS]
    placed = [i for i in expected if kinds[i] in ("longitude", "latitude", "swapped")]
    basic = [i for i in expected if i not in placed]
    order = basic + placed + [i for i, k in enumerate(kinds) if k == "outside"]
    assert [p.row for p in got] == [i + 1 for i in order]
    for p in got:
        assert _WORDS[kinds[p.row - 1]] in p.message, (p, kinds[p.row - 1])
        assert p.feature_id == ids[p.row - 1]
    # without report_outside, the same but those outside
    quiet = TOWERS._geometry_problems(gdf, ids, area, report_outside=False)
    assert [p.row for p in quiet] == [i + 1 for i in basic + placed]


def test_outside_and_distance_match_per_row_checks():
    """``outside`` and ``distance_m`` of lines (some with NaN or an empty geometry) equal a
    per-row test and shapely's own distance."""
    rng = np.random.default_rng(3)
    study = box(0.0, 0.0, 10_000.0, 10_000.0)
    lines = [LineString(rng.uniform(-5_000, 15_000, (3, 2))) for _ in range(200)]
    with np.errstate(invalid="ignore"):
        lines[4] = LineString([(np.nan, 0.0), (1.0, 1.0)])
    lines[9] = LineString()
    lines[12] = None
    gdf = gpd.GeoDataFrame({"road_id": range(200)}, geometry=lines, crs="EPSG:32648")
    area = gpd.GeoSeries([study], crs="EPSG:32648")
    finite = [g is not None and not g.is_empty and np.isfinite(g.coords).all() for g in lines]
    expected = [f and not study.intersects(g) for g, f in zip(lines, finite, strict=True)]
    assert ROADS.outside(gdf, area).tolist() == expected
    dist = ROADS.distance_m(gdf, area)
    for g, f, d in zip(lines, finite, dist, strict=True):
        assert (math.isnan(d) and not f) or d == pytest.approx(study.distance(g))


def test_text_columns_as_pandas_map_makes_them():
    """Text columns of only strings (the fast path) and with a missing value or a number are
    stripped and spelled as the schema says, with the values and dtypes of the per-row
    pandas ``map`` the loader used to run."""
    tech = pd.Series([" 4g", "LTE ", "5G", "nr", "4G"])

    def per_row(values: pd.Series, choices=None) -> pd.Series:
        out = values.map(lambda v: v if pd.isna(v) else str(v).strip()).astype(object)
        if not choices:
            return out
        sp = {v.upper(): v for v in choices}
        return out.map(lambda v: sp.get(v.upper(), v) if isinstance(v, str) else v)

    for operator in (["X", " Y", "Z ", "X", "Y"], ["X", None, "Z ", 7, "Y"]):
        frame = gpd.GeoDataFrame(
            {"site_id": list("abcde"), "operator": operator, "technology": tech},
            geometry=[Point(i, i) for i in range(5)],
        )
        got = coerce(TOWERS, frame, set_index=False)
        choices = next(c.choices for c in TOWERS.columns if c.name == "technology")
        pd.testing.assert_series_equal(got["technology"], per_row(tech, choices), check_names=False)
        pd.testing.assert_series_equal(
            got["operator"], per_row(pd.Series(operator)), check_names=False
        )
    assert got["technology"].iloc[0] == "4G"


@pytest.mark.parametrize("nodata", [-9999.0, 0.0, float("nan"), None, float("-inf")])
def test_float64_raster_read_masks_as_gdal_does(tmp_path, nodata):
    """A float64 raster read in one pass has NaN where rasterio's masked read (GDAL's mask
    band, which also masks values within a tiny tolerance of the nodata value) has a mask."""
    values = np.array(
        [[-9999.0, -9999.0 * (1 + 1e-8), -9999.0 * (1 + 3e-7), -9999.0 * (1 + 1e-6), 0.0, 1.5]]
    )
    for data in (values, values[:, [0, 3, 4, 5]]):
        path = tmp_path / "r.tif"
        with rasterio.open(
            path, "w", driver="GTiff", width=data.shape[1], height=1, count=1,
            dtype="float64", crs="EPSG:32648", transform=Affine(1, 0, 0, 0, -1, 10), nodata=nodata,
        ) as dst:  # fmt: skip
            dst.write(data, 1)
        with rasterio.open(path) as src:
            expected = np.ma.filled(src.read(1, masked=True).astype("float64"), np.nan)
        got, _, _ = read_raster(path)
        np.testing.assert_array_equal(got, expected)


def test_polygon_of_the_wrong_type_named():
    """A polygon in a points layer is named by its type, after the rows before it."""
    gdf = gpd.GeoDataFrame(
        {"site_id": ["a", "b"]}, geometry=[Point(1, 1), Polygon(box(0, 0, 1, 1))], crs=None
    )
    (p,) = TOWERS._geometry_problems(gdf, ["a", "b"], None)
    assert p.row == 2
    assert "is a Polygon, expected Point" in p.message


def test_population_raster_on_the_grid_read_in_place(tmp_path, grid10):
    """A population raster already on the plan grid comes back with its nodata (and NaN)
    cells as 0 persons and every other cell as written; a negative cell is refused, named by
    row and column."""
    data = np.arange(grid10.height * grid10.width, dtype="float64").reshape(grid10.shape)
    data[0, 0], data[2, 3], data[4, 4] = -9999.0, np.nan, -9999.0
    path = tmp_path / "pop.tif"
    profile = {"driver": "GTiff", "width": grid10.width, "height": grid10.height, "count": 1}
    profile |= {"dtype": "float64", "crs": grid10.crs, "transform": grid10.transform}
    with rasterio.open(path, "w", nodata=-9999.0, **profile) as dst:
        dst.write(data, 1)
    got = load_population_raster(path, grid10)
    expected = np.where((data == -9999.0) | np.isnan(data), 0.0, data)
    np.testing.assert_array_equal(got, expected)
    data[1, 2] = -1.0
    with rasterio.open(path, "w", nodata=-9999.0, **profile) as dst:
        dst.write(data, 1)
    with pytest.raises(
        LayerValidationError, match=r"1 cells have negative counts \(first at row 1, col 2\)"
    ):
        load_population_raster(path, grid10)
