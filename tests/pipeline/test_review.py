"""The site review on a small town with a finished run: its figures against independent
computations (the coverage engine rerun with the proposal added; masks read from the run's
rasters), hosts within the co-location radius, zoning, writing and bad proposals files."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from shapely.geometry import Point, box

from telcoplan.errors import LayerValidationError, OutputExistsError, PlanError
from telcoplan.gis.vector import write_vector
from telcoplan.pipeline import load_inputs, read_plan, run_plan
from telcoplan.pipeline.review import review_plan
from tests.conftest import UTM49, X0, Y0
from tests.pipeline.town import RADIO, H, W, town_plan


def write_proposals(path, rows):
    """rows: (candidate_id, operator, x offset, y offset, extra columns)."""
    gdf = gpd.GeoDataFrame(
        [{"candidate_id": i, "operator": op, **extra} for i, op, _, _, extra in rows],
        geometry=[Point(X0 + dx, Y0 + dy) for _, _, dx, dy, _ in rows],
        crs=UTM49,
    )
    write_vector(path, gdf)
    return path


def _tower(pid, op, x, y, radio):
    return gpd.GeoDataFrame(
        {"operator": [op], **{k: [v] for k, v in radio.items()}},
        geometry=[Point(x, y)],
        index=pd.Index([pid], name="site_id"),
        crs=UTM49,
    )


def _run_masks(run, summary):
    """Each operator's covered mask read straight from the run's rasters (rasterio): power ≥
    the serving site's technology threshold as the summary states it."""
    sites = gpd.read_file(run / "coverage.gpkg", layer="sites").sort_values("row")
    thr = summary["coverage"]["parameters"]["thresholds"]["power_threshold_dbm"]
    out = {}
    for op in ("Alpha", "Beta"):
        with rasterio.open(run / f"signal_{op.lower()}.tif") as src:
            signal = src.read(1)
        with rasterio.open(run / f"server_{op.lower()}.tif") as src:
            server = src.read(1)
        level = np.full(server.shape, np.inf, dtype=np.float32)
        served = server > 0
        tech = sites["technology"].to_numpy()[server[served] - 1]
        # the summary's thresholds are rounded to 0.01 dB: recompute the exact float32 ones
        from telcoplan.coverage.thresholds import Thresholds

        exact = Thresholds(indoor=summary["coverage"]["parameters"]["indoor"])
        assert all(abs(exact.power_threshold(t) - thr[t]) < 0.01 for t in set(tech))
        level[served] = np.array([exact.power_threshold(t) for t in tech], dtype=np.float32)
        with np.errstate(invalid="ignore"):
            out[op] = signal >= level
    return out


@pytest.mark.parametrize("terrain", [False, True], ids=["flat", "terrain"])
def test_review_equals_a_recomputed_coverage_difference(tmp_path, terrain):
    """population_new: the coverage engine rerun with the proposal as a tower of its operator
    (the same plan parameters), minus the coverage before; overlaps: the proposal's own
    footprint against masks read from the run's rasters."""
    from telcoplan.coverage.analysis import compute_coverage

    plan_path = town_plan(tmp_path, dem=terrain)
    run = tmp_path / "run"
    summary = run_plan(read_plan(plan_path), run)
    props = write_proposals(
        tmp_path / "proposals.gpkg",
        [
            ("P-east", "Alpha", 4500, 1500, {}),
            ("P-west", "Alpha", 900, 1200, {}),
            ("P-beta", "Beta", 3000, 2500, {}),
            # own radio: another band, height and EIRP (the same engine call shifts the EIRP)
            (
                "P-own",
                "Alpha",
                2600,
                800,
                {"frequency_mhz": 900.0, "height_m": 40.0, "eirp_dbm": 55.0},
            ),
            ("P-eirp", "Beta", 5000, 600, {"eirp_dbm": 52.0}),
        ],
    )
    done = review_plan(read_plan(plan_path), props, run_dir=run)
    got = done.review.sites
    assert list(got.index) == ["P-east", "P-west", "P-beta", "P-own", "P-eirp"]
    assert done.run_dir == run

    inputs = load_inputs(read_plan(plan_path))
    towers = inputs.vectors["towers"]
    pop = inputs.population
    kw = {"model": "hata", "validity": "ignore", "dem": inputs.dem if terrain else None}
    before = compute_coverage(towers, inputs.grid, **kw)
    masks = _run_masks(run, summary)
    for op in ("Alpha", "Beta"):  # the run's rasters and the engine agree
        assert np.array_equal(masks[op], before.covered[list(before.operators).index(op)])
    for pid, row in got.iterrows():
        radio = {**RADIO, **{k: row[k] for k in RADIO}}
        new_tower = _tower(pid, row["operator"], row.geometry.x, row.geometry.y, radio)
        after = compute_coverage(
            gpd.GeoDataFrame(pd.concat([towers, new_tower]), crs=towers.crs), inputs.grid, **kw
        )
        k = list(after.operators).index(row["operator"])
        gain = float(pop[after.covered[k] & ~before.covered[k]].sum())
        assert row["population_new"] == pytest.approx(gain, abs=0.05), pid
        alone = compute_coverage(new_tower, inputs.grid, **kw).covered[0]
        assert row["population_footprint"] == pytest.approx(float(pop[alone].sum()), abs=0.05)
        own = masks[row["operator"]]
        assert row["population_own_overlap"] == pytest.approx(
            float(pop[alone & own].sum()), abs=0.05
        )
        other = "Beta" if row["operator"] == "Alpha" else "Alpha"
        assert row[f"overlap_{other}"] == pytest.approx(
            float(pop[alone & masks[other]].sum()), abs=0.05
        )
        assert np.isnan(row[f"overlap_{row['operator']}"])
        assert row["population_other_overlap"] == pytest.approx(row[f"overlap_{other}"])
    assert got.loc["P-east", "population_new"] > 0  # Alpha lacks the east
    assert got.loc["P-own", "frequency_mhz"] == 900.0
    assert got.loc["P-eirp", "eirp_dbm"] == 52.0


def test_host_within_the_colocation_radius_and_distances(tmp_path):
    """A proposal 40 m from Beta's eastern mast lists it (urban radius: 100 persons per cell is
    10,000 per km²); one in the open field lists none. Distances to the road and fibers."""
    plan_path = town_plan(tmp_path)
    run = tmp_path / "run"
    run_plan(read_plan(plan_path), run)
    props = write_proposals(
        tmp_path / "p.gpkg",
        [("near", "Alpha", 5540, 1500, {}), ("far", "Alpha", 3000, 2500, {})],
    )
    got = review_plan(read_plan(plan_path), props, run_dir=run).review.sites
    assert got.loc["near", "colocation_radius_m"] == 100.0
    assert got.loc["near", "host_count"] == 1
    assert got.loc["near", "nearest_host"] == "B2"
    assert got.loc["near", "nearest_host_m"] == pytest.approx(40.0)
    assert got.loc["near", "hosts"] == "B2 (Beta, 40 m)"
    assert got.loc["far", "host_count"] == 0
    assert got.loc["far", "hosts"] == ""
    assert got.loc["near", "dist_road_m"] == pytest.approx(100.0)
    assert got.loc["far", "dist_road_m"] == pytest.approx(1100.0)
    assert got.loc["near", "dist_fiber_m"] == pytest.approx(np.hypot(3540.0, 100.0), abs=0.1)
    assert np.isnan(got.loc["near", "dist_own_fiber_m"])  # Alpha has no fiber


def test_colocation_radius_follows_the_sites_stage_rule(tmp_path):
    """The review's public copy of the rule gives the sites stage's radii (rural where
    sparse)."""
    from telcoplan.pipeline.review import colocation_radius
    from telcoplan.pipeline.stages import sites as sites_stage
    from telcoplan.sites.planning import colocation_radius as rule

    inputs = load_inputs(read_plan(town_plan(tmp_path)))
    params = sites_stage.parse({"urban_density_per_km2": 5_000.0})
    pop = inputs.population.copy()
    pop[:, :30] = 1.0  # the west is sparse
    pts = gpd.GeoSeries([Point(X0 + x, Y0 + 1500) for x in (500, 2950, 3050, 5500)], crs=UTM49)
    ours = colocation_radius(pts, params, pop.ravel(), inputs.grid)
    assert np.array_equal(
        ours,
        rule(
            pts,
            pop.ravel(),
            inputs.grid,
            radius_m=dict(params.colocation_radius_m),
            urban_density_per_km2=params.urban_density_per_km2,
        ),
    )
    assert ours[0] == 500.0
    assert ours[-1] == 100.0


def test_zoning_exclusion_is_flagged(tmp_path):
    exclusion = gpd.GeoDataFrame(geometry=[box(X0 + 3000, Y0, X0 + W, Y0 + H)], crs=UTM49)
    write_vector(tmp_path / "heritage.gpkg", exclusion)
    plan_path = town_plan(tmp_path, stages={"sites": {"zoning": {"exclude": "heritage.gpkg"}}})
    run = tmp_path / "run"
    run_plan(read_plan(plan_path), run)
    props = write_proposals(
        tmp_path / "p.gpkg",
        [("in", "Alpha", 4500, 1500, {}), ("out", "Alpha", 2000, 1500, {})],
    )
    got = review_plan(read_plan(plan_path), props, run_dir=run).review.sites
    assert not got.loc["in", "zoning_allowed"]
    assert "exclusion zone" in got.loc["in", "zoning_reason"]
    assert got.loc["out", "zoning_allowed"]
    assert got.loc["out", "zoning_reason"] == ""


def test_outputs_written_together_and_kept_without_overwrite(tmp_path, monkeypatch):
    plan_path = town_plan(tmp_path)
    run = tmp_path / "run"
    run_plan(read_plan(plan_path), run)
    props = write_proposals(tmp_path / "p.gpkg", [("P1", "Alpha", 4500, 1500, {})])
    done = review_plan(read_plan(plan_path), props, run_dir=run)
    gpkg, csv = run / "site_review.gpkg", run / "site_review.csv"
    assert done.paths == (gpkg, csv)
    table = pd.read_csv(csv)
    assert table["candidate_id"].tolist() == ["P1"]
    assert {"lon", "lat", "population_new", "hosts"} <= set(table.columns)
    foot = gpd.read_file(gpkg, layer="review_footprint")
    assert foot["candidate_id"].tolist() == ["P1"]
    assert foot.geometry.area.sum() / 1e6 == pytest.approx(table["area_new_km2"].item())
    before = (gpkg.read_bytes(), csv.read_bytes())
    with pytest.raises(OutputExistsError, match="--overwrite"):
        review_plan(read_plan(plan_path), props, run_dir=run)
    assert (gpkg.read_bytes(), csv.read_bytes()) == before
    # a failure while writing the CSV leaves both files as they were, and no temporary file
    import telcoplan.gis.vector as vector

    real = vector.write_vector

    def broken(path, gdf, **kw):
        if str(path).endswith(".csv"):
            raise OSError(28, "No space left on device")
        return real(path, gdf, **kw)

    monkeypatch.setattr(vector, "write_vector", broken)
    with pytest.raises(OSError, match="space"):
        review_plan(read_plan(plan_path), props, run_dir=run, overwrite=True)
    assert (gpkg.read_bytes(), csv.read_bytes()) == before
    assert sorted(p.name for p in run.glob(".site_review*")) == []
    monkeypatch.setattr(vector, "write_vector", real)
    review_plan(read_plan(plan_path), props, run_dir=run, overwrite=True)
    # the run's own data are untouched: the review is not one of its outputs
    assert "site_review.gpkg" not in json.loads((run / "summary.json").read_text())["outputs"]


def test_bad_proposals_file_lists_every_problem(tmp_path):
    plan_path = town_plan(tmp_path)
    run = tmp_path / "run"
    run_plan(read_plan(plan_path), run)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "candidate_id,operator,height_m,technology,lon,lat\n"
        "P1,Alpha,-5,4G,0,0\n"
        "P2,Alpah,30,6G,0,0\n"
        "P3,,30,4G,0,0\n",
        encoding="utf-8",
    )
    lon, lat = (
        gpd.GeoSeries([Point(X0 + 3000, Y0 + 1500)], crs=UTM49)
        .to_crs("EPSG:4326")
        .iloc[0]
        .coords[0]
    )
    bad.write_text(bad.read_text().replace("0,0", f"{lon},{lat}"), encoding="utf-8")
    with pytest.raises(LayerValidationError) as info:
        review_plan(read_plan(plan_path), bad, run_dir=run)
    msg = str(info.value)
    assert msg.startswith(f"{bad}: proposals layer has 4 problems")
    assert "row 1, id 'P1', column 'height_m': value -5 m is out of range" in msg
    assert "row 2, id 'P2', column 'technology'" in msg
    assert (
        "row 2, id 'P2', column 'operator': operator 'Alpah' has no coverage in the run; did you mean 'Alpha'?"
        in msg
    )
    assert "row 3, id 'P3', column 'operator': value is missing" in msg
    assert "--operator" in msg
    assert not (run / "site_review.csv").exists()


def test_operator_option_and_a_missing_run(tmp_path):
    """--operator reviews every proposal for one operator; an unknown one is refused; without a
    run folder the coverage pass is made for the review and the same figures come out."""
    plan_path = town_plan(tmp_path)
    props = write_proposals(tmp_path / "p.gpkg", [("P1", "Beta", 4500, 1500, {})])
    with pytest.raises(PlanError, match="did you mean 'Alpha'"):
        review_plan(read_plan(plan_path), props, operator="alpha", out_dir=tmp_path / "o1")
    fresh = review_plan(read_plan(plan_path), props, operator="Alpha", out_dir=tmp_path / "o1")
    assert fresh.run_dir is None
    assert fresh.review.sites.loc["P1", "operator"] == "Alpha"
    run_plan(read_plan(plan_path), tmp_path / "outputs")  # the plan's default output folder
    reused = review_plan(read_plan(plan_path), props, operator="Alpha", out_dir=tmp_path / "o2")
    assert reused.run_dir == tmp_path / "outputs"
    cols = ["population_new", "population_own_overlap", "overlap_Beta"]
    pd.testing.assert_frame_equal(fresh.review.sites[cols], reused.review.sites[cols])
