"""Tests of the synthetic national demo (telcoplan.demo.national), on a small-scale country.

``scale=0.05`` builds a 29 km miniature of the Vietnam-sized country in about a second: the same
63 provinces, 250 sites, ~240,500 persons. The full national plan is never built here (writing it
takes 16–40 s and ~1.8 GB; its run 8–12 minutes and ~5 GB: see the README).
The expected numbers come from public facts (2019 census, land area, market shares), written out
here independently of the module's constants.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import rasterio
import shapely
import yaml
from click.testing import CliRunner
from geopandas.testing import assert_geodataframe_equal

from telcoplan.cli import cli
from telcoplan.demo import write_demo
from telcoplan.demo.national import NationalScenario, build_national
from telcoplan.errors import OutputExistsError
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.zonal import label_polygons, zonal_sum
from telcoplan.layers import schemas

SCALE = 0.05
#: Vietnam's land area (km²) and 2019 census population (persons).
VIETNAM_KM2 = 331_000.0
VIETNAM_2019 = 96_208_984
#: Mobile market shares 2024 (%).
SHARES = {"Viettel": 56.0, "VinaPhone": 21.0, "MobiFone": 18.0}
VECTOR_LAYERS = ("areas", "towers", "fiber", "roads")


@pytest.fixture(scope="module")
def small() -> NationalScenario:
    """The national scenario at scale 0.05 (seed 2019, 100 m grid), built once."""
    return build_national(2019, scale=SCALE)


@pytest.fixture(scope="module")
def plan_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small national demo written as inputs/ + plan.yml, once."""
    return write_demo(tmp_path_factory.mktemp("national"), scale="national", size=SCALE, seed=2019)


# -------------------------------------------------------------------------------------- provinces
def test_provinces_partition_the_country(small: NationalScenario) -> None:
    areas = small.areas
    assert len(areas) == 63
    assert areas["name"].is_unique
    assert areas.is_valid.all()
    geoms = areas.geometry.to_numpy()
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = left < right
    assert pairs.any()  # neighbours touch
    overlap = shapely.area(shapely.intersection(geoms[left[pairs]], geoms[right[pairs]]))
    assert overlap.max() < 1.0  # m²: no overlaps
    union = shapely.union_all(geoms)
    assert union.geom_type == "Polygon"  # one piece: no gaps between provinces
    assert len(union.interiors) == 0
    assert union.area == pytest.approx(sum(g.area for g in geoms), abs=10.0)
    assert union.area / 1e6 == pytest.approx(VIETNAM_KM2 * SCALE**2, rel=1e-3)


def test_provinces_are_compact_with_varied_sizes(small: NationalScenario) -> None:
    km2 = small.areas.area / 1e6
    assert km2.min() > 0.2 * km2.mean()
    assert km2.max() < 4.0 * km2.mean()
    x0, y0, x1, y1 = small.areas.total_bounds
    assert (x1 - x0) * (y1 - y0) < 1.1 * km2.sum() * 1e6  # compact: not Vietnam's S-shape
    assert int(small.areas["urban"].sum()) == 5  # the centrally-run cities


# ------------------------------------------------------------------------------------- population
def test_population_conserved_per_province(small: NationalScenario) -> None:
    areas = small.areas
    assert areas["population"].sum() == round(VIETNAM_2019 * SCALE**2)
    sums = zonal_sum(small.population, small.grid, areas)
    np.testing.assert_allclose(sums, areas["population"].to_numpy(dtype=float), rtol=1e-9)
    assert float(small.population.sum()) == pytest.approx(float(areas["population"].sum()))


def test_population_on_the_plan_grid_and_only_on_land(small: NationalScenario) -> None:
    grid = small.grid
    assert grid == GridSpec.from_bounds(tuple(small.areas.total_bounds), 100.0, "EPSG:32648")
    assert small.population.shape == grid.shape
    assert small.population.dtype == np.float64
    assert not small.population.flags.writeable
    outside = label_polygons(small.areas, grid) < 0
    assert (small.population[outside] == 0).all()
    assert (small.population >= 0).all()


def test_population_clusters_in_cities(small: NationalScenario) -> None:
    areas = small.areas
    density = areas["population"] / (areas.area / 1e6)
    assert density[areas["urban"]].min() > density[~areas["urban"]].median()
    pop = small.population[small.population > 0]
    # the densest 5 % of the land holds far more than 5 % of the people
    top = np.sort(pop)[::-1][: len(pop) // 20]
    assert top.sum() > 0.25 * pop.sum()


# ------------------------------------------------------------------------------------------ sites
def test_sites_inside_the_country(small: NationalScenario) -> None:
    towers = small.towers
    assert len(towers) == round(100_000 * SCALE**2)
    country = shapely.union_all(small.areas.geometry.to_numpy())
    assert shapely.contains(country, towers.geometry.to_numpy()).all()


def test_towers_pass_their_schema(small: NationalScenario) -> None:
    schemas.TOWERS.validate(small.towers, source="towers")
    assert small.towers["site_id"].is_unique


def test_operator_shares_follow_market_shares(small: NationalScenario) -> None:
    counts = small.towers["operator"].value_counts()
    total = sum(SHARES.values())
    for op, pct in SHARES.items():
        assert counts[op] == pytest.approx(len(small.towers) * pct / total, abs=1.0)


def test_shared_structures_are_consistent(small: NationalScenario) -> None:
    xy = shapely.get_coordinates(small.towers.geometry.to_numpy())
    groups = small.towers.assign(x=xy[:, 0], y=xy[:, 1]).groupby(["x", "y"])
    assert (groups.size() > 1).any()  # some structures are shared
    for _, g in groups:
        assert g["operator"].is_unique  # one row per operator
        assert (g["tenants"] == len(g)).all()


# ------------------------------------------------------------------------------------------ roads
def test_roads_form_one_connected_noded_network(small: NationalScenario) -> None:
    roads = small.roads
    assert (roads.geom_type == "LineString").all()
    assert roads["road_id"].is_unique
    graph = nx.Graph()
    for line in roads.geometry:
        xy = shapely.get_coordinates(line)
        graph.add_edge(tuple(np.round(xy[0], 2)), tuple(np.round(xy[-1], 2)))
    assert nx.is_connected(graph)
    # noded: no two segments cross between their ends
    geoms = roads.geometry.to_numpy()
    crossing = shapely.STRtree(geoms).query(geoms, predicate="crosses")
    assert crossing.shape[1] == 0
    assert {"motorway", "trunk", "secondary", "tertiary", "track"} <= set(roads["road_class"])
    country = shapely.union_all(small.areas.geometry.to_numpy())
    assert shapely.covered_by(geoms, shapely.buffer(country, 1.0)).all()


def test_fiber_follows_roads(small: NationalScenario) -> None:
    fiber, roads = small.fiber, small.roads
    schemas.FIBER.validate(fiber, source="fiber")
    assert set(fiber["operator"]) == set(SHARES)
    vertices = shapely.get_coordinates(fiber.geometry.to_numpy())
    tree = shapely.STRtree(roads.geometry.to_numpy())
    _, dist = tree.query_nearest(shapely.points(vertices), return_distance=True)
    assert dist.max() < 0.01  # m


def test_every_layer_says_it_is_synthetic(small: NationalScenario) -> None:
    for layer in VECTOR_LAYERS:
        gdf = getattr(small, layer)
        assert (gdf["source"] == "synthetic telcoplan national demo").all(), layer
        assert gdf.crs == "EPSG:32648"


# ---------------------------------------------------------------------------------- determinism
def test_same_seed_same_scenario(small: NationalScenario) -> None:
    again = build_national(2019, scale=SCALE)
    for layer in VECTOR_LAYERS:
        assert_geodataframe_equal(getattr(again, layer), getattr(small, layer))
    np.testing.assert_array_equal(again.population, small.population)
    assert again.grid == small.grid
    other = build_national(7, scale=SCALE)
    assert not np.array_equal(other.population, small.population)
    assert other.areas["population"].sum() == small.areas["population"].sum()


@pytest.mark.parametrize("scale", [0.0, 0.01, 1.5, float("nan")])
def test_scale_out_of_range(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        build_national(scale=scale)


# --------------------------------------------------------------------------------- plan and CLI
def test_written_plan(plan_path: Path) -> None:
    doc = yaml.safe_load(plan_path.read_text(encoding="utf-8"))
    assert doc["synthetic"] is True
    assert doc["crs"] == "EPSG:32648"
    assert set(doc["layers"]) == {"areas", "towers", "fiber", "roads", "population"}
    stages = doc["stages"]
    assert stages["coverage"]["terrain"] is False
    assert stages["sites"] is False
    assert {"gaps", "backbone", "map", "report"} <= set(stages)
    with rasterio.open(plan_path.parent / "inputs" / "population.tif") as src:
        tags = src.tags()
    assert tags["synthetic"] == "true"
    assert "synthetic" in tags["source"]


def test_written_plan_validates(plan_path: Path) -> None:
    res = CliRunner().invoke(cli, ["validate", str(plan_path)])
    assert res.exit_code == 0, res.output
    assert "OK" in res.output


def test_write_demo_does_not_overwrite(plan_path: Path) -> None:
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_demo(plan_path.parent, scale="national", size=SCALE)
    with pytest.raises(ValueError, match="national"):
        write_demo(plan_path.parent / "city", size=0.5)


def test_cli_demo_scale_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["demo", "--scale", "national", "--help"])
    assert res.exit_code == 0
    assert "--scale [city|national]" in res.output
    calls = []

    def fake_write(out_dir, **kw):
        calls.append(("write", kw))
        return Path(out_dir) / "plan.yml"

    def fake_run(out_dir, **kw):  # pragma: no cover - must not be called
        calls.append(("run", kw))
        return {"population_total": 0.0}

    monkeypatch.setattr("telcoplan.demo.write_demo", fake_write)
    monkeypatch.setattr("telcoplan.demo.run_demo", fake_run)
    out = tmp_path / "nat"
    res = runner.invoke(cli, ["demo", "--scale", "national", "--out", str(out), "--seed", "7"])
    assert res.exit_code == 0, res.output
    assert calls == [
        ("write", {"seed": 7, "resolution_m": 100.0, "overwrite": False, "scale": "national"})
    ]
    assert f"telcoplan run {out / 'plan.yml'}" in res.output
    res = runner.invoke(cli, ["demo", "--scale", "country", "--out", str(out)])
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    calls.clear()
    assert runner.invoke(cli, ["demo", "--out", str(out)]).exit_code == 0  # city by default
    assert [c[0] for c in calls] == ["run"]
