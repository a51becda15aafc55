"""Every loader format round-trips; errors name the file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from telcoplan.errors import InputFileError, LayerValidationError, OutputExistsError
from telcoplan.gis.vector import read_vector, write_vector, write_vector_layers
from telcoplan.layers.roads import load_roads
from telcoplan.layers.towers import load_towers
from tests.conftest import UTM49

FORMATS = ["gpkg", "geojson", "shp", "fgb", "parquet", "csv"]


@pytest.mark.parametrize("ext", FORMATS)
def test_towers_round_trip(tmp_path, towers5, ext):
    path = tmp_path / f"towers.{ext}"
    write_vector(path, towers5)
    back = load_towers(path)
    expected = towers5.set_index("site_id")
    assert list(back.index) == list(expected.index)
    for col in ("operator", "technology", "name"):
        assert list(back[col]) == list(expected[col])
    for col in ("frequency_mhz", "height_m", "eirp_dbm"):
        np.testing.assert_allclose(back[col].to_numpy(float), expected[col].to_numpy(float))
    assert list(back["tenants"]) == list(expected["tenants"])
    pts = back.to_crs(UTM49).geometry
    np.testing.assert_allclose(pts.x, expected.geometry.x, atol=0.01 if ext == "csv" else 1e-6)
    np.testing.assert_allclose(pts.y, expected.geometry.y, atol=0.01 if ext == "csv" else 1e-6)


@pytest.mark.parametrize("ext", ["gpkg", "geojson", "shp", "fgb", "parquet"])
def test_lines_round_trip(tmp_path, roads3, ext):
    path = tmp_path / f"roads.{ext}"
    write_vector(path, roads3)
    back = load_roads(path).to_crs(UTM49)
    assert list(back.index) == ["r1", "r2", "r3"]
    assert back.geometry.geom_equals_exact(roads3.geometry.set_axis(back.index), 1e-6).all()


def test_csv_with_xy_needs_crs(tmp_path, towers5):
    df = pd.DataFrame(towers5.drop(columns="geometry"))
    df["x"], df["y"] = towers5.geometry.x, towers5.geometry.y
    path = tmp_path / "towers_xy.csv"
    df.to_csv(path, index=False)
    with pytest.raises(InputFileError, match="no CRS was given"):
        read_vector(path)
    back = load_towers(path, crs=UTM49)
    np.testing.assert_allclose(back.geometry.x, towers5.geometry.x)


def test_csv_without_coordinates(tmp_path):
    path = tmp_path / "towers.csv"
    path.write_text("site_id,operator\nA,Viettel\n")
    with pytest.raises(InputFileError, match=r"towers.csv.*'lon' and 'lat'"):
        read_vector(path)


def test_csv_empty_coordinates_reported_as_missing_geometry(tmp_path):
    path = tmp_path / "towers.csv"
    path.write_text(
        "site_id,operator,technology,frequency_mhz,height_m,eirp_dbm,lon,lat\n"
        "A,Viettel,4G,1800,30,60,108.2,16.05\n"
        "B,Viettel,4G,1800,30,60,,16.05\n"
    )
    with pytest.raises(LayerValidationError) as info:
        load_towers(path)
    (p,) = info.value.problems
    assert (p.row, p.column, p.feature_id) == (2, "geometry", "B")


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_vector(tmp_path / "nope.gpkg")
    bad = tmp_path / "towers.xlsx"
    bad.write_text("x")
    with pytest.raises(InputFileError, match="unsupported vector format"):
        read_vector(bad)
    garbage = tmp_path / "towers.gpkg"
    garbage.write_text("not a geopackage")
    with pytest.raises(InputFileError, match="cannot read as GeoPackage"):
        read_vector(garbage)


def test_write_refuses_to_overwrite_and_keeps_file(tmp_path, towers5):
    path = tmp_path / "towers.gpkg"
    write_vector(path, towers5)
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        write_vector(path, towers5.iloc[:2])
    assert path.read_bytes() == before
    write_vector(path, towers5.iloc[:2], overwrite=True)
    assert len(read_vector(path)) == 2


def test_failed_write_leaves_nothing_and_keeps_old(tmp_path, towers5, monkeypatch):
    """A writer that crashes half-way leaves no partial file and the previous output intact."""
    import geopandas as gpd

    path = tmp_path / "towers.gpkg"
    write_vector(path, towers5)
    before = path.read_bytes()
    real_to_file = gpd.GeoDataFrame.to_file

    def crash(self, filename, *args, **kwargs):
        real_to_file(self.iloc[:1], filename, *args, **kwargs)  # half-written...
        raise RuntimeError("disk full")

    monkeypatch.setattr(gpd.GeoDataFrame, "to_file", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        write_vector(path, towers5, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["towers.gpkg"]


def test_multi_layer_gpkg(tmp_path, towers5, roads3):
    path = write_vector_layers(tmp_path / "all.gpkg", {"towers": towers5, "roads": roads3})
    assert len(read_vector(path, layer="towers")) == 5
    assert len(read_vector(path, layer="roads")) == 3


def _layer_kinds() -> dict:
    """Columns of every kind a stage writes, with missing values, and mixed geometries."""
    n = 6
    return {
        **{
            f"i{b}": np.arange(n, dtype=f"int{b}") * (10**10 if b == 64 else 1)
            for b in (8, 16, 32, 64)
        },
        **{f"u{b}": np.arange(n, dtype=f"uint{b}") for b in (8, 16, 32, 64)},
        "f32": np.linspace(0, 1, n).astype("float32"),
        "f64": [1.0, np.nan, 2.5, 3.0, np.inf, -0.0],
        "flag": np.arange(n) % 2 == 0,
        "text": ["a", "b", "é", "", "x;y", None],
        "objects": pd.Series([1, "a", 2.5, None, "b", "c"], dtype=object),
        "category": pd.Categorical(["a", "b", "a", "b", "a", "b"]),
        "day": pd.date_range("2020-01-01", periods=n, freq="D"),
        "maybe_int": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
        "maybe_bool": pd.array([True, None, False, True, True, False], dtype="boolean"),
    }


@pytest.mark.parametrize("geometries", ["mixed", "polygons", "empty"])
def test_layers_read_back_as_the_feature_by_feature_writer_writes_them(tmp_path, geometries):
    """write_vector_layers (GDAL's Arrow stream; the feature-by-feature writer for a uint64
    column) against pyogrio's feature-by-feature writer: the same fields and types, values,
    geometry type and WKB geometries, column by column."""
    import geopandas as gpd
    import pyogrio
    import shapely

    tri = shapely.Polygon([(0, 0), (1, 0), (1, 1)])
    geoms = {
        "mixed": [shapely.Point(0, 0), shapely.LineString([(0, 0), (1, 1)]), tri, None,
                  shapely.MultiPolygon([tri]), shapely.Point(1, 2)],
        "polygons": [tri, shapely.MultiPolygon([tri])] * 3,
        "empty": [],
    }[geometries]  # fmt: skip
    layers = {}
    for name, values in _layer_kinds().items():
        gdf = gpd.GeoDataFrame({name: values}, geometry=[None] * 6, crs=UTM49)
        layers[name] = gdf.set_geometry(gpd.GeoSeries(geoms, crs=UTM49)) if geoms else gdf[:0]
    path = write_vector_layers(tmp_path / "layers.gpkg", layers)
    for name, gdf in layers.items():
        alone = tmp_path / f"{name}.gpkg"
        gdf.to_file(alone, driver="GPKG", layer=name, engine="pyogrio", use_arrow=False)
        got, want = (pyogrio.read_dataframe(p, layer=name) for p in (path, alone))
        pd.testing.assert_frame_equal(got.drop(columns="geometry"), want.drop(columns="geometry"))
        assert list(got.geometry.to_wkb()) == list(want.geometry.to_wkb()), name
        info, expected = (pyogrio.read_info(p, layer=name) for p in (path, alone))
        for key in ("fields", "dtypes", "ogr_types", "ogr_subtypes", "geometry_type", "crs"):
            assert str(info[key]) == str(expected[key]), (name, key)


def test_input_not_mutated(tmp_path, towers5):
    before = towers5.copy()
    write_vector(tmp_path / "t.geojson", towers5.set_index("site_id"))
    pd.testing.assert_frame_equal(before, towers5)


def test_csv_ids_stay_text(tmp_path):
    path = tmp_path / "towers.csv"
    path.write_text(
        "site_id,operator,technology,frequency_mhz,height_m,eirp_dbm,lon,lat\n"
        "007,Viettel,4G,1800,30,60,108.2,16.05\n"
        "7,Viettel,4G,1800,30,60,108.21,16.05\n"
    )
    towers = load_towers(path)
    assert list(towers.index) == ["007", "7"]
    assert towers["height_m"].dtype == np.float64


def test_unparseable_geometry_reported_with_row(tmp_path):
    path = tmp_path / "roads.geojson"
    path.write_text(
        '{"type":"FeatureCollection","features":['
        '{"type":"Feature","properties":{"road_id":"a","road_class":"primary"},'
        '"geometry":{"type":"LineString","coordinates":[[108.2,16.0],[108.21,16.0]]}},'
        '{"type":"Feature","properties":{"road_id":"b","road_class":"primary"},'
        '"geometry":{"type":"LineString","coordinates":[[108.2,16.0]]}}]}'
    )
    with pytest.raises(LayerValidationError) as info:
        load_roads(path)
    (p,) = info.value.problems
    assert (p.row, p.feature_id, p.column) == (2, "b", "geometry")


def test_multi_layer_gpkg_needs_a_layer_name(tmp_path, towers5, roads3):
    path = write_vector_layers(tmp_path / "all.gpkg", {"towers": towers5, "roads": roads3})
    with pytest.raises(InputFileError, match=r"2 layers \(towers, roads\)"):
        read_vector(path)
    with pytest.raises(InputFileError, match="no layer 'sites'"):
        read_vector(path, layer="sites")


@pytest.mark.parametrize("ext", ["gpkg", "fgb"])
def test_read_through_arrow_gives_the_feature_by_feature_frame(tmp_path, ext, monkeypatch):
    """GeoPackages and FlatGeobufs are read through GDAL's Arrow stream (5x faster on 100,000
    towers): the frame is the one the feature-by-feature reader gives, also for the fields
    whose Arrow reading differs: booleans with missing values (reals there), text with no
    value at all (objects there); integers with missing values are reals either way."""
    import geopandas as gpd

    n = 5
    gdf = gpd.GeoDataFrame(
        {
            "i_null": pd.array([1, None, 3, 4, 5], dtype="Int64"),
            "i": np.arange(n),
            "i32": np.arange(n, dtype="int32"),
            "f": [1.0, np.nan, 2.0, 3.0, 4.0],
            "b_null": pd.array([True, None, False, True, True], dtype="boolean"),
            "b": [True, False, True, True, False],
            "s_none": [None] * n,
            "s_some": ["a", None, "c", "Trạm", "e"],
        },
        geometry=gpd.points_from_xy(np.arange(n), np.arange(n)),
        crs="EPSG:4326",
    )
    path = tmp_path / f"layer.{ext}"
    gdf.to_file(path, engine="pyogrio")
    plain = read_vector(path, arrow=False)
    calls = []
    read_file = gpd.read_file

    def spy(*args, **kwargs):
        calls.append(kwargs.get("use_arrow", False))
        return read_file(*args, **kwargs)

    monkeypatch.setattr(gpd, "read_file", spy)
    default = read_vector(path)
    assert calls == [True]  # read through Arrow (the point of it), then made the same frame
    pd.testing.assert_frame_equal(default, plain)
    assert default["b_null"].dtype == "float64"
    assert default["s_none"].dtype == object
    # the Arrow stream itself differs on those two fields: the test would see a wrong frame
    arrow = read_vector(path, arrow=True)
    assert arrow["b_null"].dtype == object
    assert arrow["s_none"].dtype != object


@pytest.mark.parametrize("ext", ["gpkg", "fgb"])
def test_a_text_field_named_like_the_geometry_reads_as_before(tmp_path, ext):
    """Both readers drop a text field called ``geometry`` (QGIS names a GeoPackage's geometry
    column ``geom``): the Arrow path, which would meet the geometry there, leaves it to the
    feature-by-feature reader (the read failed on the first version)."""
    import shapely
    from pyogrio.raw import write

    path = tmp_path / f"layer.{ext}"
    texts = [np.array(v, dtype=object) for v in (["a", "b"], ["x", "y"])]
    write(
        path, geometry=np.array(shapely.to_wkb(shapely.points([(0, 0), (1, 1)])), dtype=object),
        field_data=texts, fields=["s", "geometry"], crs="EPSG:4326", geometry_type="Point",
        driver={"gpkg": "GPKG", "fgb": "FlatGeobuf"}[ext],
        layer_options={"GEOMETRY_NAME": "geom"} if ext == "gpkg" else {},
    )  # fmt: skip
    pd.testing.assert_frame_equal(read_vector(path), read_vector(path, arrow=False))
    assert sorted(read_vector(path)["s"]) == ["a", "b"]


def test_non_utf8_text_in_a_geopackage(tmp_path, towers5):
    """Arrow takes bytes that are not UTF-8 as they are (an error only when the value is
    used): the read falls back to the feature-by-feature reader, whose error names it."""
    import sqlite3

    path = tmp_path / "towers.gpkg"
    write_vector(path, towers5)
    con = sqlite3.connect(path)
    for (trigger,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        con.execute(f'DROP TRIGGER "{trigger}"')  # GeoPackage triggers need SpatiaLite
    con.execute("UPDATE towers SET name = CAST(X'41FF42' AS TEXT) WHERE fid = 2")
    con.commit()
    con.close()
    with pytest.raises(InputFileError, match="not UTF-8"):
        read_vector(path)


@pytest.mark.filterwarnings(
    "ignore:'crs' was not provided:UserWarning"
)  # writing a CRS-less file on purpose
def test_invalid_crs_argument(tmp_path, towers5):
    path = tmp_path / "t.geojson"
    write_vector(path, towers5.to_crs("EPSG:4326"))
    from telcoplan.errors import CRSError

    nocrs = tmp_path / "nocrs.fgb"
    write_vector(nocrs, towers5.set_crs(None, allow_override=True))
    with pytest.raises(CRSError, match="not a CRS"):
        read_vector(nocrs, crs="FOO")


def test_non_utf8_csv(tmp_path):
    path = tmp_path / "towers.csv"
    path.write_bytes("site_id,name,lon,lat\nA,Tr\xe1m,108.2,16.0\n".encode("latin-1"))
    with pytest.raises(InputFileError, match="UTF-8"):
        read_vector(path)


@pytest.mark.filterwarnings(
    "ignore:'crs' was not provided:UserWarning"
)  # writing a CRS-less file on purpose
def test_shapefile_overwrite_drops_stale_sidecars(tmp_path, towers5):
    path = tmp_path / "towers.shp"
    write_vector(path, towers5.to_crs("EPSG:4326"))
    assert path.with_suffix(".prj").exists()
    write_vector(path, towers5.set_crs(None, allow_override=True), overwrite=True)
    assert not path.with_suffix(".prj").exists()
    assert read_vector(path).crs is None


def test_csv_with_a_column_twice_or_another_separator_is_a_clear_error(tmp_path):
    twice = tmp_path / "twice.csv"
    twice.write_text("site_id,lon,lat,height_m,height_m\nA,108.2,16.0,30,40\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="'height_m' appear twice in the header"):
        read_vector(twice)
    semi = tmp_path / "semi.csv"
    semi.write_text("site_id;lon;lat\nA;108.2;16.0\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="another separator than commas"):
        read_vector(semi)
