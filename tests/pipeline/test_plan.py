"""The plan file: parsing, every problem at once, the pipeline, and outputs kept on bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import yaml

from telcoplan.errors import InputFileError, OutputExistsError, PlanError
from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector
from telcoplan.pipeline import load_inputs, read_plan, run_plan
from tests.conftest import X0, Y0


def test_run_small_plan(small_plan, tmp_path):
    summary = run_plan(read_plan(small_plan), tmp_path / "out")
    assert summary["population_total"] == pytest.approx(10_000.0)
    assert [a["population"] for a in summary["areas"]] == pytest.approx([2500.0] * 4)
    assert summary["layers"] == {"towers": 5, "roads": 3}
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert on_disk["population_total"] == summary["population_total"]
    assert set(on_disk["provenance"]["inputs"]) == {"areas", "towers", "roads", "population"}
    assert on_disk["crs"] == "EPSG:32649"


def test_population_from_area_counts(small_plan, tmp_path):
    doc = yaml.safe_load(small_plan.read_text())
    del doc["layers"]["population"]
    small_plan.write_text(yaml.safe_dump(doc))
    summary = run_plan(read_plan(small_plan), tmp_path / "out")
    assert [a["population"] for a in summary["areas"]] == pytest.approx([1000, 2000, 3000, 4000])


def test_population_polygons_with_other_column(small_plan, tmp_path, areas4):
    polys = areas4.rename(columns={"population": "pop2019"})
    write_vector(tmp_path / "inputs" / "wards.geojson", polys)
    doc = yaml.safe_load(small_plan.read_text())
    doc["layers"]["population"] = {"path": "inputs/wards.geojson", "column": "pop2019"}
    small_plan.write_text(yaml.safe_dump(doc))
    summary = run_plan(read_plan(small_plan), tmp_path / "out")
    assert summary["population_total"] == pytest.approx(10_000.0)


def test_plan_reports_every_problem(tmp_path):
    path = tmp_path / "plan.yml"
    path.write_text(
        yaml.safe_dump(
            {
                "nmae": "typo",
                "resolution_m": -5,
                "crs": "EPSG:4326",
                "layers": {"towrs": "t.gpkg", "towers": "missing.gpkg"},
            }
        )
    )
    with pytest.raises(PlanError) as info:
        read_plan(path)
    msg = str(info.value)
    assert "did you mean 'name'" in msg
    assert "did you mean 'towers'" in msg
    assert "missing.gpkg not found" in msg
    assert "resolution_m" in msg
    assert "not projected" in msg
    assert "layers.areas is required" in msg


def test_plan_yaml_syntax_error(tmp_path):
    path = tmp_path / "plan.yml"
    path.write_text("layers:\n  areas: [unclosed\n")
    with pytest.raises(PlanError, match=r"not valid YAML at line \d+"):
        read_plan(path)
    with pytest.raises(InputFileError):
        read_plan(tmp_path / "none.yml")


def test_plan_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "plan.yml"
    path.write_text("layers: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(PlanError):
        read_plan(path)


def test_bad_layers_all_reported_and_outputs_kept(small_plan, tmp_path):
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out)
    before = (out / "summary.json").read_bytes()
    csv = tmp_path / "inputs" / "towers.csv"
    lines = csv.read_text().splitlines()
    lines[2] = lines[2].replace("4G", "9G")
    csv.write_text("\n".join(lines) + "\n")
    roads = tmp_path / "inputs" / "roads.geojson"
    roads.write_text(roads.read_text().replace('"primary"', '"highway-ish"'))
    with pytest.raises(PlanError) as info:
        run_plan(read_plan(small_plan), out, overwrite=True)
    msg = str(info.value)
    assert "towers.csv" in msg
    assert "'9G'" in msg
    assert "row 2" in msg
    assert "roads.geojson" in msg
    assert "highway-ish" in msg
    assert (out / "summary.json").read_bytes() == before


def test_outputs_not_overwritten_without_flag(small_plan, tmp_path):
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_plan(read_plan(small_plan), out)
    run_plan(read_plan(small_plan), out, overwrite=True)


#: areas4's quadrants as 5 x 5 blocks of the 10 x 10 grid (row 0 = north).
QUADRANTS = {"SW": np.s_[5:, :5], "SE": np.s_[5:, 5:], "NW": np.s_[:5, :5], "NE": np.s_[:5, 5:]}


def _assert_population_conserved(summary, out, inputs):
    """Covered + uncovered = total per area, each against numpy sums over the written rasters.

    A cell is covered when ``operators_count.tif`` > 0; persons are read from the input
    population raster; areas are the quadrants (cell-aligned). Also: the areas' totals plus the
    population outside every area equal the raster's total. Returns the covered mask.
    """
    import rasterio

    with rasterio.open(out / "operators_count.tif") as src:
        covered = src.read(1) > 0
    with rasterio.open(inputs / "population.tif") as src:
        persons = src.read(1).astype(np.float64)
    assert covered.shape == persons.shape == (10, 10)
    areas = {a["name"]: a for a in summary["coverage"]["areas"]}
    assert set(areas) == set(QUADRANTS)
    for name, zone in QUADRANTS.items():
        p, c = persons[zone], covered[zone]
        area = areas[name]
        assert area["population"] == pytest.approx(p.sum(), abs=0.05)
        assert area["covered_any"] == pytest.approx(p[c].sum(), abs=0.05)
        assert area["uncovered_any"] == pytest.approx(p[~c].sum(), abs=0.05)
        assert area["covered_any"] + area["uncovered_any"] == pytest.approx(p.sum(), abs=0.1)
    in_areas = sum(a["population"] for a in areas.values())
    assert in_areas + summary["population_outside_areas"] == pytest.approx(persons.sum(), abs=0.1)
    assert summary["population_total"] == pytest.approx(persons.sum(), abs=0.01)
    return covered


def test_coverage_stage_outputs(small_plan, tmp_path):
    import rasterio

    from telcoplan.gis.vector import read_vector

    out = tmp_path / "out"
    summary = run_plan(read_plan(small_plan), out)
    cov = summary["coverage"]
    for op in ("Viettel", "VinaPhone", "MobiFone"):
        assert 0 <= cov[op]["population_pct"] <= 100
        with rasterio.open(out / f"signal_{op.lower()}.tif") as src:
            assert src.crs.to_epsg() == 32649
            assert src.dtypes[0] == "float32"
    assert cov["any"]["population_covered"] >= cov["best_single_operator"]["population_covered"]
    _assert_population_conserved(summary, out, tmp_path / "inputs")
    # areas4 carries `urban` (SW, SE urban; NW, NE rural): the split, per class as nationally
    ur = cov["urban_rural"]
    by_name = {a["name"]: a for a in cov["areas"]}
    for cls, names in (("urban", ("SW", "SE")), ("rural", ("NW", "NE"))):
        c = ur[cls]
        assert c["population"] == pytest.approx(sum(by_name[n]["population"] for n in names))
        assert c["covered_any"] == c["any"]["population_covered"]
        for op in ("Viettel", "VinaPhone", "MobiFone"):
            expected = sum(by_name[n][f"covered_{op}"] for n in names)
            assert c["operators"][op]["population_covered"] == pytest.approx(expected, abs=0.1)
            assert c["operators"][op]["population_pct"] == pytest.approx(
                100 * expected / c["population"], abs=0.01
            )
        best = c["best_single_operator"]
        top = max(v["population_covered"] for v in c["operators"].values())
        assert best["population_covered"] == top
        assert c["operators"][best["operator"]]["population_covered"] == top
        assert c["any"]["population_covered"] >= top
    layers = read_vector(out / "coverage.gpkg", layer="coverage")
    assert list(layers["operator"]) == ["MobiFone", "Viettel", "VinaPhone", "any"]
    assert not list(out.glob(".staging-*"))


def test_coverage_population_conserved_with_gaps(small_plan, tmp_path):
    """Short radii leave people uncovered in some quadrants: uncovered is checked, not derived."""
    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = {"coverage": {"max_radius_km": 0.25}, "map": False, "report": False}
    small_plan.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    summary = run_plan(read_plan(small_plan), out)
    covered = _assert_population_conserved(summary, out, tmp_path / "inputs")
    assert covered.any()
    assert not covered.all()
    assert all(a["uncovered_any"] > 0 for a in summary["coverage"]["areas"])
    # the gaps summary lists the fiber distance too: null, as the plan has no fiber layer
    largest = summary["gaps"]["largest"]
    assert largest
    assert all(g["dist_fiber_m"] is None and g["dist_tower_m"] > 0 for g in largest)


def test_coverage_parameters_checked_at_read(small_plan):
    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = {"coverage": {"model": "okumura", "h_rx_m": 0, "colour": "red"}, "sitez": {}}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError) as info:
        read_plan(small_plan)
    msg = str(info.value)
    assert "'okumura'" in msg
    assert "h_rx_m" in msg
    assert "'colour'" in msg
    assert "sitez" in msg


def test_failed_stage_keeps_previous_outputs(small_plan, tmp_path, monkeypatch):
    from telcoplan.pipeline.stages import STAGES

    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(inputs, params, staging):
        (staging.folder / "signal_viettel.tif").write_bytes(b"half")
        raise RuntimeError("crash in the middle of a stage")

    monkeypatch.setitem(STAGES, "coverage", replace(STAGES["coverage"], run=boom))
    with pytest.raises(RuntimeError):
        run_plan(read_plan(small_plan), out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_coverage_stage_can_be_skipped(small_plan, tmp_path):
    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = {"coverage": False}
    small_plan.write_text(yaml.safe_dump(doc))
    summary = run_plan(read_plan(small_plan), tmp_path / "out")
    assert "coverage" not in summary


def test_coverage_with_calibration_file(small_plan, tmp_path):
    import json

    from telcoplan.coverage.calibration import Calibration

    cal = Calibration(
        model="hata",
        environment="urban",
        intercept_offset_db=10.0,
        slope_offset_db_per_decade=0.0,
        clutter_offsets_db={},
        n_measurements=50,
        rmse_db_before=9.0,
        rmse_db_after=4.0,
        mean_error_db_before=5.0,
        mean_error_db_after=0.0,
    )
    (tmp_path / "params.json").write_text(json.dumps(cal.to_dict()))
    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = {
        "coverage": {"model": "hata", "validity": "ignore", "calibration": "params.json"}
    }
    small_plan.write_text(yaml.safe_dump(doc))
    calibrated = run_plan(read_plan(small_plan), tmp_path / "cal")
    doc["stages"]["coverage"].pop("calibration")
    small_plan.write_text(yaml.safe_dump(doc))
    plain = run_plan(read_plan(small_plan), tmp_path / "plain")
    assert calibrated["coverage"]["parameters"]["calibration_fit"]["intercept_offset_db"] == 10.0
    # 10 dB more loss everywhere: less area covered by every operator
    for op in ("Viettel", "VinaPhone", "MobiFone"):
        assert calibrated["coverage"][op]["area_km2"] < plain["coverage"][op]["area_km2"]
    doc["stages"]["coverage"] = {"model": "cost231", "calibration": "params.json"}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match="fitted for model 'hata'"):
        read_plan(small_plan)
    doc["stages"]["coverage"] = {"calibration": "nope.json"}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match=r"nope\.json not found"):
        read_plan(small_plan)


def test_per_technology_signal_rasters(small_plan, tmp_path):
    import rasterio

    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = {"coverage": {"per_technology": True, "max_radius_km": 2}}
    small_plan.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out)
    names = sorted(p.name for p in out.glob("signal_*-*.tif"))
    assert names == [
        "signal_mobifone-3g.tif",
        "signal_viettel-4g.tif",
        "signal_viettel-5g.tif",
        "signal_vinaphone-4g.tif",
    ]
    # the operator's raster is its serving carrier's power: at each cell, one of its
    # technologies' rasters (the one with the best margin over its own threshold, which need
    # not be the strongest; tests/coverage/test_coverage_rasters.py checks the choice)
    with (
        rasterio.open(out / "signal_viettel-4g.tif") as a,
        rasterio.open(out / "signal_viettel-5g.tif") as b,
        rasterio.open(out / "signal_viettel.tif") as op,
    ):
        p4, p5, p = a.read(1), b.read(1), op.read(1)
    ok = np.isfinite(p)
    assert ok.sum() > 10
    assert np.all(np.isclose(p[ok], p4[ok]) | np.isclose(p[ok], p5[ok]))
    assert np.all(p[ok] <= np.fmax(p4, p5)[ok] + 1e-4)


@pytest.mark.parametrize(
    ("names", "per_technology", "clash"),
    [
        (["Alpha", "Alpha!"], False, "signal_alpha.tif"),
        (["Alpha", "ALPHA"], False, "signal_alpha.tif"),
        (["Alpha", "Alpha 4G"], True, "signal_alpha-4g.tif"),
        (["Alpha", "any"], False, "reserved"),  # the union's own key and column
        (["Clutter", "Alpha"], False, "reserved"),  # a summary key (any case)
        (["Alpha", "4G_plus"], False, "reserved"),  # a per-area column
    ],
)
def test_operator_names_that_would_share_an_output_are_refused(
    small_plan, tmp_path, towers5, names, per_technology, clash
):
    """Two operators must not write one file (or one case-insensitive GeoPackage field): the
    second would silently replace the first. A clear error, nothing written."""
    towers = towers5.copy()
    towers["operator"] = [names[0], names[0], names[1], names[1], names[0]]
    write_vector(tmp_path / "inputs" / "towers.csv", towers, overwrite=True)
    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = {"coverage": {"per_technology": per_technology}}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match=r"cannot tell apart|reserved") as info:
        run_plan(read_plan(small_plan), tmp_path / "out")
    assert clash in str(info.value)
    named = [n for n in names if repr(n) in str(info.value)]
    if clash == "reserved":  # only the reserved name is named
        assert named == [n for n in names if n != "Alpha"]
    else:
        assert named == names
        # where to find each: its first site (the towers' ids: rows 0 and 2)
        for name, row in zip(names, (0, 2), strict=True):
            assert f"{name!r} (first at site {towers['site_id'].iloc[row]})" in str(info.value)
    assert not (tmp_path / "out" / "summary.json").exists()
    # `telcoplan validate` finds it too, before a run
    from telcoplan.pipeline.validate import validate_files

    (report,) = validate_files([small_plan])
    assert not report.ok
    assert clash in report.message


def test_clip_leaves_out_features_outside_the_study_area(small_plan, tmp_path, roads3, caplog):
    """A national road file: with `clip: true` the roads outside the study area are left out
    (counted in a warning) and one crossing its edge is cut at it; without, each is reported.
    Problems of left-out rows are not reported; the others keep their file row numbers."""
    import logging

    from shapely.geometry import LineString

    far = [
        LineString([(X0 + 20_000 + 100 * k, Y0), (X0 + 20_000 + 100 * k, Y0 + 900)])
        for k in range(4)
    ]
    crossing = LineString([(X0 + 500, Y0 + 500), (X0 + 5_000, Y0 + 500)])
    roads = gpd.GeoDataFrame(
        {"road_id": [*roads3["road_id"], "far0", "far1", "far2", "far3", "cross"],
         "road_class": [*roads3["road_class"], "primary", "bogus", "primary", "primary",
                        "tertiary"]},
        geometry=[*roads3.geometry, *far, crossing], crs=roads3.crs,
    )  # fmt: skip
    write_vector(tmp_path / "inputs" / "roads.geojson", roads, overwrite=True)
    with pytest.raises(PlanError) as info:
        load_inputs(read_plan(small_plan))
    msg = str(info.value)
    assert msg.count("outside the study area") == 4
    assert "'bogus'" in msg  # without clip, row 5's bad class is reported too
    doc = yaml.safe_load(small_plan.read_text())
    doc["layers"]["roads"] = {"path": "inputs/roads.geojson", "clip": True}
    small_plan.write_text(yaml.safe_dump(doc))
    with caplog.at_level(logging.WARNING):
        inputs = load_inputs(read_plan(small_plan))
    assert list(inputs.vectors["roads"].index) == ["r1", "r2", "r3", "cross"]
    assert inputs.vectors["roads"].loc["cross"].geometry.length == pytest.approx(500.0)
    assert "4 of 8 roads features lie outside the study area and are left out" in caplog.text
    # a problem on a kept row is still reported, with its row number in the file
    roads.loc[7, "road_class"] = "unknown-class"
    write_vector(tmp_path / "inputs" / "roads.geojson", roads, overwrite=True)
    with pytest.raises(PlanError, match=r"row 8, id 'cross', column 'road_class'") as info:
        load_inputs(read_plan(small_plan))
    assert "bogus" not in str(info.value)
    # every feature outside: one message (a CRS mistake, likely), not one per feature
    write_vector(tmp_path / "inputs" / "roads.geojson", roads.iloc[3:7], overwrite=True)
    with pytest.raises(PlanError) as info:
        load_inputs(read_plan(small_plan))
    assert "all 4 features lie outside the study area, so `clip` would leave none" in str(
        info.value
    )
    assert str(info.value).count("outside the study area") == 1
    doc["layers"]["areas"] = {"path": "inputs/areas.gpkg", "clip": True}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match=r"layers.areas.clip: only the layers"):
        read_plan(small_plan)


def test_clip_never_hides_a_coordinate_mistake(small_plan, tmp_path, towers5):
    """Left out are only sound features outside the study area: an impossible latitude, a
    point inside the area once its x and y are swapped, or a wrong geometry type are still
    reported; an id used by a left-out tower does not clash with a kept one."""
    from shapely.geometry import LineString, Point

    towers = towers5.to_crs("EPSG:4326")
    lon, lat = towers.geometry.iloc[0].x, towers.geometry.iloc[0].y
    extra = gpd.GeoDataFrame(
        {"site_id": ["VT-1", "BAD-LAT", "SWAPPED", "LINE"], "operator": "Viettel",
         "technology": "4G", "frequency_mhz": 1800.0, "height_m": 30.0, "eirp_dbm": 60.0},
        geometry=[Point(lon + 1.0, lat), Point(lon, 160.5), Point(lat, lon),
                  LineString([(lon + 1, lat), (lon + 1.1, lat)])],
        crs="EPSG:4326",
    )  # fmt: skip
    both = gpd.GeoDataFrame(
        pd.concat([extra.iloc[:1], towers.reset_index()], ignore_index=True), crs="EPSG:4326"
    )
    write_vector(tmp_path / "inputs" / "towers.gpkg", both)
    doc = yaml.safe_load(small_plan.read_text())
    doc["layers"]["towers"] = {"path": "inputs/towers.gpkg", "clip": True}
    small_plan.write_text(yaml.safe_dump(doc))
    inputs = load_inputs(read_plan(small_plan))  # VT-1 far away is left out: no duplicate
    assert list(inputs.vectors["towers"].index) == list(towers5["site_id"])
    bad = gpd.GeoDataFrame(
        pd.concat([extra.iloc[1:], towers.reset_index()], ignore_index=True), crs="EPSG:4326"
    )
    write_vector(tmp_path / "inputs" / "towers.gpkg", bad, overwrite=True)
    with pytest.raises(PlanError) as info:
        load_inputs(read_plan(small_plan))
    msg = str(info.value)
    assert "row 1, id 'BAD-LAT'" in msg
    assert "row 2, id 'SWAPPED'" in msg
    assert "swapped" in msg
    assert "row 3, id 'LINE'" in msg
    assert "LineString" in msg


def test_columns_maps_the_files_names_to_the_layers(small_plan, tmp_path, towers5):
    """An operator's export names its columns its own way: `columns:` maps them, and wrong
    names are all reported at once."""
    theirs = towers5.rename(columns={"site_id": "CellID", "height_m": "AntennaHeight"})
    theirs["operator_code"] = "x"
    write_vector(tmp_path / "inputs" / "theirs.gpkg", theirs)
    doc = yaml.safe_load(small_plan.read_text())
    doc["layers"]["towers"] = {
        "path": "inputs/theirs.gpkg",
        "columns": {"site_id": "CellID", "height_m": "AntennaHeight"},
    }
    small_plan.write_text(yaml.safe_dump(doc))
    inputs = load_inputs(read_plan(small_plan))
    towers = inputs.vectors["towers"]
    assert list(towers.index) == list(towers5["site_id"])
    assert list(towers["height_m"]) == list(towers5["height_m"])
    doc["layers"]["towers"]["columns"] = {"site_ident": "CellID", "height_m": "Height"}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError) as info:
        load_inputs(read_plan(small_plan))
    msg = str(info.value)
    assert "'site_ident' is not a column of the towers layer; did you mean 'site_id'?" in msg
    assert "column 'Height' (given for 'height_m') is not in the file" in msg
    assert "did you mean 'AntennaHeight'?" in msg  # the file's closest column
    doc["layers"]["towers"]["columns"] = ["site_id"]
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match=r"layers\.towers\.columns must map"):
        read_plan(small_plan)


def test_values_translate_a_files_classes(small_plan, tmp_path, roads3):
    """A national road file in Vietnamese: its ids and classes mapped onto the contract."""
    theirs = roads3.rename(columns={"road_id": "gid"}).drop(columns="road_class")
    theirs["cap_duong"] = ["Quốc Gia", " Cấp Tỉnh ", "Cấp Huyện"]
    write_vector(tmp_path / "inputs" / "vn_roads.gpkg", theirs)
    doc = yaml.safe_load(small_plan.read_text())
    doc["layers"]["roads"] = {
        "path": "inputs/vn_roads.gpkg",
        "columns": {"road_id": "gid", "road_class": "cap_duong"},
        "values": {"road_class": {"Quốc Gia": "trunk", "Cấp Tỉnh": "primary"}},
    }
    small_plan.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PlanError, match=r"'Cấp Huyện'"):  # not translated, not a road class
        load_inputs(read_plan(small_plan))
    doc["layers"]["roads"]["values"]["road_class"]["Cấp Huyện"] = "secondary"
    small_plan.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    roads = load_inputs(read_plan(small_plan)).vectors["roads"]
    assert list(roads["road_class"]) == ["trunk", "primary", "secondary"]
    doc["layers"]["roads"]["values"] = {"lanes": {"2": "two"}}
    small_plan.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PlanError, match="values are given for 'lanes'"):
        load_inputs(read_plan(small_plan))


def test_outputs_are_replaced_all_together_or_not_at_all(small_plan, tmp_path, monkeypatch):
    """A move that fails half-way is undone: the previous outputs are all back, none mixed."""
    import os as _os

    import telcoplan.pipeline.run as plan_mod

    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    doc = yaml.safe_load(small_plan.read_text())
    doc["resolution_m"] = 50  # every raster changes
    small_plan.write_text(yaml.safe_dump(doc))
    real = _os.replace
    calls = {"n": 0}

    def flaky(src, dst):  # moves of new outputs into place (os is one module: count only those)
        if _os.path.dirname(dst) == str(out) and ".staging-" in str(src):
            calls["n"] += 1
            if calls["n"] == 7:  # somewhere in the middle of the outputs
                raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(plan_mod.os, "replace", flaky)
    with pytest.raises(OutputExistsError, match=r"No space left on device.*nothing was changed"):
        run_plan(read_plan(small_plan), out, overwrite=True)
    monkeypatch.setattr(plan_mod.os, "replace", real)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # a folder where an output goes: refused before anything moves
    (out / "operators_count.tif").unlink()
    (out / "operators_count.tif").mkdir()
    with pytest.raises(OutputExistsError, match="is a folder"):
        run_plan(read_plan(small_plan), out, overwrite=True)
    assert (out / "signal_viettel.tif").read_bytes() == before["signal_viettel.tif"]


def test_overwrite_removes_the_previous_runs_outputs_it_does_not_write(
    small_plan, tmp_path, towers5
):
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out)
    assert (out / "signal_mobifone.tif").exists()
    (out / "notes.txt").write_text("mine")  # not an output of telcoplan: kept
    towers = towers5[towers5["operator"] != "MobiFone"]
    write_vector(tmp_path / "inputs" / "towers.csv", towers, overwrite=True)
    summary = run_plan(read_plan(small_plan), out, overwrite=True)
    assert not (out / "signal_mobifone.tif").exists()
    assert not (out / "server_mobifone.tif.aux.xml").exists()
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(summary["outputs"]) == sorted(
        p.name for p in out.iterdir() if p.name != "notes.txt"
    )


def test_plan_yaml_duplicate_keys_and_python_tags_are_refused(tmp_path):
    plan = tmp_path / "plan.yml"
    plan.write_text("name: x\nlayers:\n  areas: a.gpkg\n  areas: b.gpkg\n", encoding="utf-8")
    with pytest.raises(PlanError, match=r"key 'areas' is given twice \(lines 3 and 4\)"):
        read_plan(plan)
    plan.write_text("name: !!python/object/apply:os.system ['echo pwned']\n", encoding="utf-8")
    with pytest.raises(PlanError, match="not valid YAML"):
        read_plan(plan)


def test_layer_keys_of_the_wrong_type_are_plan_errors(small_plan):
    doc = yaml.safe_load(small_plan.read_text())
    doc["layers"]["population"] = {"path": "inputs/population.tif", "column": ["pop"]}
    doc["layers"]["towers"] = {"path": "inputs/towers.csv", "layer": {"a": 1}}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError) as info:
        read_plan(small_plan)
    assert "layers.population.column must be a name, got ['pop']" in str(info.value)
    assert "layers.towers.layer must be a name" in str(info.value)


def test_population_rasters_with_impossible_counts_or_elsewhere_are_errors(
    small_plan, tmp_path, grid10
):
    pop = np.full(grid10.shape, 100.0)
    pop[3, 4] = np.inf
    write_raster(tmp_path / "inputs" / "population.tif", pop, grid10, overwrite=True)
    with pytest.raises(PlanError, match="non-finite"):
        load_inputs(read_plan(small_plan))
    pop[3, 4] = 1e12
    write_raster(tmp_path / "inputs" / "population.tif", pop, grid10, overwrite=True)
    with pytest.raises(PlanError, match="more than live on Earth"):
        load_inputs(read_plan(small_plan))
    from telcoplan.gis.grid import GridSpec

    x0, y0, x1, y1 = grid10.bounds
    far = GridSpec.from_bounds((x0 + 50_000, y0, x1 + 50_000, y1), 100.0, grid10.crs)
    write_raster(
        tmp_path / "inputs" / "population.tif", np.full(far.shape, 5.0), far, overwrite=True
    )
    with pytest.raises(PlanError, match="none of its 500 persons lie over the study area"):
        load_inputs(read_plan(small_plan))


def test_a_plan_crs_for_another_part_of_the_world_is_refused(small_plan, tmp_path):
    doc = yaml.safe_load(small_plan.read_text())
    doc["crs"] = "EPSG:32601"  # UTM zone 1 (180°W–174°W); the study area is in zone 49
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match=r"crs EPSG:32601 is meant for .* leave `crs:` out"):
        load_inputs(read_plan(small_plan))
    doc["crs"] = "EPSG:32650"  # the neighbouring zone (114–120°E): allowed
    small_plan.write_text(yaml.safe_dump(doc))
    assert load_inputs(read_plan(small_plan)).crs == "EPSG:32650"


@pytest.mark.parametrize("content", ["[]", "{}", '{"coverage": {}}', "not json"])
def test_map_and_report_refuse_a_summary_not_written_by_telcoplan(small_plan, tmp_path, content):
    from click.testing import CliRunner

    from telcoplan.cli import cli

    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out)
    (out / "summary.json").write_text(content)
    for command in ("map", "report"):
        res = CliRunner().invoke(cli, [command, str(out), "-o", str(tmp_path / f"{command}.html")])
        assert res.exit_code == 1, res.output
        assert "is not a summary.json written by telcoplan" in res.output
        assert "Traceback" not in res.output
        assert not (tmp_path / f"{command}.html").exists()


def test_a_failed_first_run_leaves_no_empty_folder(small_plan, tmp_path, monkeypatch):
    from telcoplan.pipeline.stages import STAGES

    def boom(inputs, params, staging):
        raise PlanError("a stage fails")

    monkeypatch.setitem(STAGES, "coverage", replace(STAGES["coverage"], run=boom))
    with pytest.raises(PlanError):
        run_plan(read_plan(small_plan), tmp_path / "new" / "out")
    assert not (tmp_path / "new" / "out").exists()


@pytest.mark.parametrize("levels", [-100, {"4G": "abc"}, ["4G", -100]])
def test_thresholds_of_the_wrong_shape_are_plan_errors(small_plan, levels):
    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = {"coverage": {"thresholds_dbm": levels}}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match=r"thresholds_dbm must map technologies to levels in dBm"):
        read_plan(small_plan)


def test_keys_that_a_file_cannot_use_are_plan_errors(small_plan):
    """`column:` on a population raster, `layer:` on a CSV: silently ignored before."""
    doc = yaml.safe_load(small_plan.read_text())
    doc["layers"]["population"] = {"path": "inputs/population.tif", "column": "pop"}
    doc["layers"]["towers"] = {"path": "inputs/towers.csv", "layer": "sites"}
    small_plan.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError) as info:
        read_plan(small_plan)
    assert "layers.population.column: population.tif is a raster, which has no column" in str(
        info.value
    )
    assert "layers.towers.layer: a CSV file has one table" in str(info.value)


def test_provenance_paths_are_relative_inside_the_plan_folder_else_absolute(tmp_path):
    """``data/towers.csv`` for a file beside the plan; ``/srv/…`` rather than ``../../srv/…``
    for a file elsewhere (the report shows these paths to planners)."""
    from telcoplan.pipeline.inputs import source_provenance
    from telcoplan.pipeline.model import LayerRef

    plan_dir = tmp_path / "plans" / "city"
    (plan_dir / "data").mkdir(parents=True)
    inside = plan_dir / "data" / "towers.csv"
    elsewhere = tmp_path / "shared" / "wards.geojson"
    elsewhere.parent.mkdir()
    for f in (inside, elsewhere):
        f.write_text("x")
    got = source_provenance(LayerRef(path=str(inside)), plan_dir, sha=lambda p: "h")
    assert got == {"path": "data/towers.csv", "sha256": "h"}
    got = source_provenance(LayerRef(path=str(elsewhere)), plan_dir, sha=lambda p: "h")
    assert got["path"] == str(elsewhere)
