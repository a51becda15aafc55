"""Tests of the synthetic Đà Nẵng demo scenario (telcoplan.demo.danang).

The expected numbers come from public facts (2019 census, market shares, peak heights), written
out here independently of the module's own constants.
"""

from __future__ import annotations

import copy
import itertools
import time
import unicodedata
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import rasterio
import shapely
from geopandas.testing import assert_geodataframe_equal

from telcoplan.demo import danang
from telcoplan.demo.danang import CENSUS_2019, DEMO_CRS, Scenario, build_scenario, write_scenario
from telcoplan.errors import OutputExistsError
from telcoplan.gis.raster import read_raster
from telcoplan.gis.vector import read_vector
from telcoplan.gis.zonal import label_polygons, zonal_sum
from telcoplan.layers import schemas

#: 2019 census (persons), from the General Statistics Office of Viet Nam.
CENSUS = {
    "Hải Châu": 201_522,
    "Liên Chiểu": 194_913,
    "Thanh Khê": 185_064,
    "Cẩm Lệ": 159_295,
    "Sơn Trà": 157_415,
    "Hòa Vang": 145_749,
    "Ngũ Hành Sơn": 90_352,
}
TOTAL = 1_134_310
#: Mobile market shares 2024 (%).
SHARES = {"Viettel": 56.0, "VinaPhone": 21.0, "MobiFone": 18.0}
VECTOR_LAYERS = ("areas", "towers", "fiber", "roads", "candidates", "pois")
BUILD_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    """The default demo scenario (seed 2019, 100 m grid), built once for the module."""
    t0 = time.perf_counter()
    sc = build_scenario()
    BUILD_SECONDS["default"] = time.perf_counter() - t0
    return sc


@pytest.fixture(scope="module")
def written(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The default scenario written once into a temporary inputs folder."""
    return write_scenario(scenario, tmp_path_factory.mktemp("demo") / "inputs")


def district_mask(scenario: Scenario, name: str) -> np.ndarray:
    names = list(scenario.areas["name"])
    return label_polygons(scenario.areas, scenario.grid) == names.index(name)


# --------------------------------------------------------------------------------- facts, areas
def test_census_constant_matches_the_2019_census() -> None:
    assert CENSUS_2019 == CENSUS
    assert sum(CENSUS_2019.values()) == TOTAL
    assert DEMO_CRS == "EPSG:32649"


def test_areas_are_the_seven_districts(scenario: Scenario) -> None:
    areas = scenario.areas
    assert list(areas["name"]) == list(CENSUS)
    assert all(unicodedata.is_normalized("NFC", n) for n in areas["name"])
    assert dict(zip(areas["name"], areas["population"], strict=True)) == CENSUS
    assert dict(zip(areas["name"], areas["urban"], strict=True)) == {
        n: n != "Hòa Vang" for n in CENSUS
    }
    assert areas["urban"].dtype == bool
    assert (areas.geom_type == "Polygon").all()
    assert areas.is_valid.all()


def test_areas_form_a_partition(scenario: Scenario) -> None:
    geoms = scenario.areas.geometry.to_numpy()
    for a, b in itertools.combinations(range(len(geoms)), 2):
        assert shapely.intersection(geoms[a], geoms[b]).area < 1.0  # m²
    union = shapely.union_all(geoms)
    assert union.geom_type == "Polygon"  # one piece, no holes between districts
    assert len(union.interiors) == 0
    assert union.area == pytest.approx(sum(g.area for g in geoms), abs=10.0)
    assert 900.0 <= union.area / 1e6 <= 1_050.0  # km²


def test_district_sizes_are_plausible(scenario: Scenario) -> None:
    km2 = dict(zip(scenario.areas["name"], scenario.areas.area / 1e6, strict=True))
    assert km2["Hòa Vang"] > 0.6 * sum(km2.values())  # the big rural west
    assert max(km2, key=km2.get) == "Hòa Vang"
    assert all(v > 5.0 for v in km2.values())


def test_districts_lie_where_they_are(scenario: Scenario) -> None:
    """Known places fall in the right district (lon/lat from general knowledge)."""
    places = {
        "Hải Châu": (108.220, 16.060),  # city centre, west bank of the Hàn
        "Thanh Khê": (108.185, 16.064),
        "Sơn Trà": (108.290, 16.125),  # the peninsula
        "Ngũ Hành Sơn": (108.262, 16.003),  # Marble Mountains
        "Liên Chiểu": (108.135, 16.180),  # Hải Vân pass side
        "Hòa Vang": (107.992, 15.998),  # Bà Nà
    }
    pts = gpd.GeoSeries.from_xy(
        [p[0] for p in places.values()], [p[1] for p in places.values()], crs="EPSG:4326"
    ).to_crs(DEMO_CRS)
    for (name, _), pt in zip(places.items(), pts, strict=True):
        inside = scenario.areas.loc[scenario.areas.contains(pt), "name"].tolist()
        assert inside == [name]


# ------------------------------------------------------------------------------- population
def test_population_per_district_equals_census(scenario: Scenario) -> None:
    sums = zonal_sum(scenario.population, scenario.grid, scenario.areas)
    for name, got in zip(scenario.areas["name"], sums, strict=True):
        assert got == pytest.approx(CENSUS[name], abs=0.5), name


def test_population_total(scenario: Scenario) -> None:
    assert float(scenario.population.sum()) == pytest.approx(TOTAL, abs=1.0)


def test_population_raster_on_grid(scenario: Scenario) -> None:
    grid = scenario.grid
    assert grid.crs == DEMO_CRS
    assert grid.resolution == 100.0
    for arr in (scenario.population, scenario.dem, scenario.landuse_weights):
        assert arr.shape == grid.shape
        assert np.all(np.isfinite(arr))
    assert scenario.population.dtype == np.float64
    assert scenario.dem.dtype == np.float32
    assert scenario.population.min() >= 0.0
    outside = label_polygons(scenario.areas, grid) < 0
    assert scenario.population[outside].sum() == 0.0
    assert scenario.landuse_weights.min() >= 0.0
    assert scenario.landuse_weights.max() == pytest.approx(1.0)


def test_population_avoids_mountains_and_is_densest_in_the_core(scenario: Scenario) -> None:
    pop, dem = scenario.population, scenario.dem
    assert pop[dem > 300.0].sum() < 0.01 * TOTAL
    area = scenario.grid.cell_area_m2 / 1e6
    density = {
        n: pop[district_mask(scenario, n)].sum() / (district_mask(scenario, n).sum() * area)
        for n in CENSUS
    }
    assert density["Hải Châu"] > 5_000.0  # persons/km²
    assert density["Hòa Vang"] < 500.0
    assert min(density, key=density.get) == "Hòa Vang"


# ------------------------------------------------------------------------------------- terrain
def test_dem_peaks(scenario: Scenario) -> None:
    dem = scenario.dem
    assert dem.min() >= 0.0
    assert 650.0 <= dem[district_mask(scenario, "Sơn Trà")].max() <= 720.0  # Sơn Trà ≈ 690 m
    assert 1_400.0 <= dem.max() <= 1_550.0  # Bà Nà ≈ 1,487 m
    labels = label_polygons(scenario.areas, scenario.grid)
    top = labels.ravel()[int(np.argmax(dem))]
    assert scenario.areas["name"].iloc[top] == "Hòa Vang"
    # Hải Vân ridge in the north of the city
    _, yy = scenario.grid.cell_centres()
    north = (
        yy
        > shapely.get_coordinates(
            gpd.GeoSeries.from_xy([108.1], [16.17], crs="EPSG:4326").to_crs(DEMO_CRS).to_numpy()
        )[0, 1]
    )
    assert dem[north & (labels >= 0)].max() > 500.0


def test_dem_coastal_plain(scenario: Scenario) -> None:
    for name in ("Hải Châu", "Thanh Khê"):
        values = scenario.dem[district_mask(scenario, name)]
        assert values.min() >= 0.0
        assert values.max() <= 12.0
        assert 1.0 <= float(np.median(values)) <= 10.0


def test_dem_is_smooth(scenario: Scenario) -> None:
    gy, gx = np.gradient(scenario.dem.astype(float), scenario.grid.resolution)
    assert float(np.hypot(gx, gy).max()) < 1.5  # m/m: no cliffs beyond ~56°


# -------------------------------------------------------------------------------------- schemas
@pytest.mark.parametrize("layer", VECTOR_LAYERS)
def test_layer_passes_its_schema(scenario: Scenario, layer: str) -> None:
    gdf = getattr(scenario, layer)
    schema = schemas.SCHEMAS[layer]
    assert gdf.crs == DEMO_CRS
    assert schema.problems(gdf, study_area=scenario.areas) == []


@pytest.mark.parametrize("layer", VECTOR_LAYERS)
def test_every_feature_inside_the_study_area(scenario: Scenario, layer: str) -> None:
    study = shapely.union_all(scenario.areas.geometry.to_numpy()).buffer(0.01)
    assert shapely.covered_by(getattr(scenario, layer).geometry.to_numpy(), study).all()


@pytest.mark.parametrize("layer", VECTOR_LAYERS)
def test_layers_say_they_are_synthetic(scenario: Scenario, layer: str) -> None:
    gdf = getattr(scenario, layer)
    assert (gdf["source"] == "synthetic telcoplan demo").all()


# --------------------------------------------------------------------------------------- towers
def test_tower_columns(scenario: Scenario) -> None:
    expected = {"site_id", "operator", "technology", "frequency_mhz", "height_m", "eirp_dbm", "name",
                "azimuth_deg", "beamwidth_deg", "tilt_deg", "tower_type", "tenants", "source", "geometry"}  # fmt: skip
    assert set(scenario.towers.columns) == expected


def test_operator_site_shares_follow_market_shares(scenario: Scenario) -> None:
    towers = scenario.towers
    assert 400 <= len(towers) <= 800
    got = towers["operator"].value_counts(normalize=True)
    total = sum(SHARES.values())
    for op, share in SHARES.items():
        assert got[op] == pytest.approx(share / total, abs=0.03), op
    prefix = {"Viettel": "VT-", "VinaPhone": "VNP-", "MobiFone": "MBF-"}
    assert all(
        s.startswith(prefix[o]) for s, o in zip(towers["site_id"], towers["operator"], strict=True)
    )


def test_shared_sites_have_consistent_tenants(scenario: Scenario) -> None:
    towers = scenario.towers
    xy = shapely.get_coordinates(towers.geometry.to_numpy())
    groups: dict[tuple[float, float], list[str]] = {}
    for (x, y), op in zip(xy, towers["operator"], strict=True):
        groups.setdefault((x, y), []).append(op)
    for (x, y), tenants in zip(xy, towers["tenants"], strict=True):
        ops = groups[(x, y)]
        assert len(ops) == len(set(ops)) == tenants
    assert sum(len(v) > 1 for v in groups.values()) >= 20  # some sites are already shared
    assert max(len(v) for v in groups.values()) == 3


def test_tower_attributes_are_plausible(scenario: Scenario) -> None:
    t = scenario.towers
    bands = {"2G": {900.0, 1800.0}, "3G": {2100.0}, "4G": {900.0, 1800.0, 2600.0}, "5G": {3500.0}}
    for tech, freq in zip(t["technology"], t["frequency_mhz"], strict=True):
        assert freq in bands[tech]
    assert (t["technology"] == "4G").mean() > 0.5
    assert t["eirp_dbm"].between(55.0, 62.0).all()
    rural = t["tower_type"] == "A2b"
    assert t.loc[rural, "height_m"].between(30.0, 45.0).all()
    assert t.loc[~rural, "height_m"].between(30.0, 42.0).all()
    assert set(t["tower_type"]) == {"A1", "A2a", "A2b"}
    hai_chau = scenario.areas.geometry.iloc[list(scenario.areas["name"]).index("Hải Châu")]
    assert t.loc[t["tower_type"] == "A1"].within(hai_chau).all()
    hoa_vang = scenario.areas.geometry.iloc[list(scenario.areas["name"]).index("Hòa Vang")]
    assert (t.within(hoa_vang) == rural).all()
    assert t["name"].str.startswith("Trạm ").all()


def test_towers_denser_where_people_live(scenario: Scenario) -> None:
    t, areas = scenario.towers, scenario.areas
    density = {}
    for name, geom in zip(areas["name"], areas.geometry, strict=True):
        density[name] = t.within(geom).sum() / (geom.area / 1e6)
    assert density["Hải Châu"] > 5.0 * density["Hòa Vang"]
    assert density["Hòa Vang"] > 0.0


# ---------------------------------------------------------------------------- roads and fiber
def test_roads_form_one_connected_network(scenario: Scenario) -> None:
    graph = nx.Graph()
    for line in scenario.roads.geometry:
        xy = shapely.get_coordinates(line)
        graph.add_edge(tuple(np.round(xy[0], 2)), tuple(np.round(xy[-1], 2)))
    assert nx.is_connected(graph)
    assert (scenario.roads.geom_type == "LineString").all()
    classes = set(scenario.roads["road_class"])
    assert {
        "motorway",
        "trunk",
        "primary",
        "secondary",
        "tertiary",
        "residential",
        "track",
    } <= classes
    assert scenario.roads["name"].str.contains("1A").any()  # the national highway


def test_fiber_follows_roads(scenario: Scenario) -> None:
    fiber, roads = scenario.fiber, scenario.roads
    on_roads = shapely.buffer(shapely.union_all(roads.geometry.to_numpy()), 0.01)
    assert shapely.covered_by(fiber.geometry.to_numpy(), on_roads).all()
    assert (fiber.geom_type == "LineString").all()
    assert (fiber["status"] == "existing").all()
    length = fiber.groupby("operator").apply(lambda f: f.length.sum(), include_groups=False)
    assert set(length.index) == set(SHARES)
    assert length.idxmax() == "Viettel"


# ------------------------------------------------------------------------- candidates, POIs
def test_candidates(scenario: Scenario) -> None:
    c = scenario.candidates
    assert 150 <= len(c) <= 300
    assert set(c["kind"]) == {"existing_tower", "rooftop", "greenfield", "public_land"}
    towers_xy = {tuple(p) for p in shapely.get_coordinates(scenario.towers.geometry.to_numpy())}
    existing = c[c["kind"] == "existing_tower"]
    assert all(tuple(p) in towers_xy for p in shapely.get_coordinates(existing.geometry.to_numpy()))
    hoa_vang = scenario.areas.geometry.iloc[list(scenario.areas["name"]).index("Hòa Vang")]
    assert c[c["kind"] == "greenfield"].within(hoa_vang).all()
    assert not c[c["kind"] == "rooftop"].within(hoa_vang).any()
    assert (c["cost"] > 0).all()


def test_pois(scenario: Scenario) -> None:
    p = scenario.pois
    offices = p[p["category"] == "ward_office"]
    assert len(offices) == 56  # 45 phường + 11 xã in 2019
    assert offices["name"].str.match(r"^UBND (phường|xã) .+ \(synthetic\)$").all()
    assert p["name"].str.endswith("(synthetic)").all()
    assert {"school", "clinic", "ward_office"} <= set(p["category"])
    per_district = {
        n: int(offices.within(g).sum())
        for n, g in zip(scenario.areas["name"], scenario.areas.geometry, strict=True)
    }
    assert per_district["Hòa Vang"] == 11
    assert sum(per_district.values()) == 56
    assert all(v >= 4 for v in per_district.values())


# ---------------------------------------------------------------------------- determinism, I/O
def test_same_seed_same_scenario(scenario: Scenario) -> None:
    again = build_scenario(2019)
    for layer in VECTOR_LAYERS:
        assert_geodataframe_equal(getattr(again, layer), getattr(scenario, layer))
    for arr in ("population", "dem", "landuse_weights"):
        np.testing.assert_array_equal(getattr(again, arr), getattr(scenario, arr))
    assert again.grid == scenario.grid
    assert again.seed == 2019


def test_other_seed_other_details(scenario: Scenario) -> None:
    other = build_scenario(7)
    assert not np.array_equal(other.population, scenario.population)
    assert not other.towers.geometry.geom_equals(scenario.towers.geometry).all()
    # the facts do not depend on the seed
    assert_geodataframe_equal(other.areas, scenario.areas)
    np.testing.assert_allclose(
        zonal_sum(other.population, other.grid, other.areas), list(CENSUS.values()), atol=0.5
    )


def test_write_scenario_files(scenario: Scenario, written: dict[str, Path]) -> None:
    assert set(written) == {*VECTOR_LAYERS, "population", "dem"}
    for name, path in written.items():
        assert path.exists()
        assert path.name == f"{name}.{'tif' if name in ('population', 'dem') else 'gpkg'}"
    for name in ("population", "dem"):
        data, grid, tags = read_raster(written[name])
        assert grid.same_grid(scenario.grid)
        assert tags["synthetic"] == "true"
        assert "synthetic" in tags["source"]
        np.testing.assert_array_equal(data, getattr(scenario, name))
        with rasterio.open(written[name]) as src:
            assert "SYNTHETIC" in src.descriptions[0]
    for name in VECTOR_LAYERS:
        back = read_vector(written[name])
        assert len(back) == len(getattr(scenario, name))
        assert (back["source"] == "synthetic telcoplan demo").all()
        assert schemas.SCHEMAS[name].problems(back, study_area=scenario.areas) == []


def test_write_scenario_is_deterministic(written: dict[str, Path], tmp_path: Path) -> None:
    again = write_scenario(build_scenario(2019), tmp_path / "inputs")
    for name in ("population", "dem"):
        assert written[name].read_bytes() == again[name].read_bytes()
    for name in VECTOR_LAYERS:
        assert_geodataframe_equal(read_vector(again[name]), read_vector(written[name]))


def test_write_scenario_does_not_overwrite(scenario: Scenario, tmp_path: Path) -> None:
    (tmp_path / "dem.tif").write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match=r"dem\.tif"):
        write_scenario(scenario, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dem.tif"]  # nothing written
    assert (tmp_path / "dem.tif").read_bytes() == b"keep me"
    paths = write_scenario(scenario, tmp_path, overwrite=True)
    assert read_raster(paths["dem"])[0].shape == scenario.grid.shape


def test_inputs_not_mutated(scenario: Scenario, tmp_path: Path) -> None:
    census = dict(CENSUS_2019)
    before = {layer: getattr(scenario, layer).copy() for layer in VECTOR_LAYERS}
    arrays = {a: getattr(scenario, a).copy() for a in ("population", "dem", "landuse_weights")}
    write_scenario(scenario, tmp_path)
    for layer in VECTOR_LAYERS:
        assert_geodataframe_equal(getattr(scenario, layer), before[layer])
    for a, arr in arrays.items():
        np.testing.assert_array_equal(getattr(scenario, a), arr)
        assert not getattr(scenario, a).flags.writeable  # read-only: cannot be changed in place
    assert census == CENSUS_2019
    assert copy.deepcopy(danang.CENSUS_2019) == CENSUS


def test_other_resolution(scenario: Scenario) -> None:
    coarse = build_scenario(resolution_m=250.0)
    assert coarse.grid.resolution == 250.0
    sums = zonal_sum(coarse.population, coarse.grid, coarse.areas)
    np.testing.assert_allclose(sums, list(CENSUS.values()), atol=0.5)
    assert 1_400.0 <= coarse.dem.max() <= 1_550.0


def test_build_is_fast(scenario: Scenario) -> None:
    assert BUILD_SECONDS["default"] < 10.0
