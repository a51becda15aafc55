"""A plan's land-use layer applies a calibration's clutter offsets in the coverage stage.

Two runs of the same plan and calibration, with and without ``layers.land_use``: every
signal raster differs by exactly the offset of the cell's class (0 dB for the fit's reference
class, for classes the fit never saw, and for nodata cells), and the serving sites are the same.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import rasterio
import yaml

from telcoplan.coverage.calibration import Calibration
from telcoplan.errors import PlanError
from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector
from telcoplan.pipeline import read_plan, run_plan

OFFSETS = {"open": 0.0, "urban": 8.0, "forest": -3.0}


@pytest.fixture
def clutter_plan(tmp_path, areas4, towers5, grid10):
    inputs = tmp_path / "inputs"
    write_vector(inputs / "areas.gpkg", areas4)
    write_vector(inputs / "towers.csv", towers5)
    write_raster(inputs / "population.tif", np.full(grid10.shape, 100.0), grid10)
    codes = np.full(grid10.shape, 1, dtype=np.int16)  # open
    codes[:, 5:] = 2  # urban in the east half
    codes[6:, :3] = 4  # forest in the south-west corner
    codes[0, :] = 9  # water along the north edge: a class the fit never saw
    codes[9, 9] = 0  # nodata
    write_raster(inputs / "landuse.tif", codes, grid10, nodata=0)
    (inputs / "classes.csv").write_text("code,name\n1,open\n2,urban\n4,forest\n9,water\n")
    cal = Calibration("hata", "urban", 3.0, 0.0, OFFSETS, 50, 9.0, 4.0, 5.0, 0.0)
    (tmp_path / "params.json").write_text(json.dumps(cal.to_dict()))
    doc = {
        "name": "clutter",
        "resolution_m": 100,
        "layers": {
            "areas": "inputs/areas.gpkg",
            "towers": "inputs/towers.csv",
            "population": "inputs/population.tif",
            "land_use": {"path": "inputs/landuse.tif", "classes": "inputs/classes.csv"},
        },
        "stages": {
            "coverage": {"model": "hata", "validity": "ignore", "calibration": "params.json"},
            "map": False,
            "report": False,
        },
    }
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path, codes


def _rasters(out, name):
    with rasterio.open(out / name) as src:
        return src.read(1)


def test_land_use_applies_the_clutter_offsets_per_cell(clutter_plan, tmp_path, caplog):
    path, codes = clutter_plan
    with_lu = run_plan(read_plan(path), tmp_path / "with")
    doc = yaml.safe_load(path.read_text())
    del doc["layers"]["land_use"]
    path.write_text(yaml.safe_dump(doc))
    with caplog.at_level(logging.WARNING):
        without = run_plan(read_plan(path), tmp_path / "without")
    assert "land_use" in caplog.text  # the offsets cannot be applied: say how to
    offset = np.select(
        [codes == 2, codes == 4], [OFFSETS["urban"], OFFSETS["forest"]], default=0.0
    )  # water (9) and nodata (0): 0 dB
    for op in ("viettel", "vinaphone", "mobifone"):
        a = _rasters(tmp_path / "with", f"signal_{op}.tif")
        b = _rasters(tmp_path / "without", f"signal_{op}.tif")
        both = np.isfinite(a) & np.isfinite(b)
        assert both.sum() > 50
        np.testing.assert_allclose(b[both] - a[both], offset[both], atol=0.01)
        sa = _rasters(tmp_path / "with", f"server_{op}.tif")
        sb = _rasters(tmp_path / "without", f"server_{op}.tif")
        assert np.array_equal(sa[both], sb[both])
    report = with_lu["coverage"]["clutter"]
    assert report["applied"] is True
    assert report["share_pct"] == pytest.approx(
        {"open": 100 * np.mean(codes == 1), "urban": 100 * np.mean(codes == 2),
         "forest": 100 * np.mean(codes == 4)}
    )  # fmt: skip
    assert report["unknown_pct"] == {"water": pytest.approx(10.0)}
    assert report["nodata_pct"] == pytest.approx(1.0)
    assert without["coverage"]["clutter"] == {"applied": False}
    # the class table is an input of the run: its path and SHA-256 are in the provenance
    from telcoplan.outputs import file_sha256

    lu = with_lu["provenance"]["inputs"]["land_use"]
    assert lu["classes_path"] == "inputs/classes.csv"
    assert lu["classes_sha256"] == file_sha256(tmp_path / "inputs" / "classes.csv")


def test_land_use_layer_is_checked_at_read(clutter_plan, tmp_path):
    path, _ = clutter_plan
    doc = yaml.safe_load(path.read_text())
    doc["layers"]["towers"] = {"path": "inputs/towers.csv", "classes": "inputs/classes.csv"}
    doc["layers"]["land_use"]["classes"] = "inputs/nope.csv"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError) as info:
        read_plan(path)
    msg = str(info.value)
    assert "layers.towers.classes" in msg
    assert "nope.csv not found" in msg


def test_land_use_outside_the_study_area_is_a_clear_error(clutter_plan, tmp_path, grid10):
    from telcoplan.gis.grid import GridSpec

    path, codes = clutter_plan
    far = GridSpec.from_bounds(
        (grid10.bounds[0] + 50_000, grid10.bounds[1], grid10.bounds[2] + 50_000, grid10.bounds[3]),
        100.0,
        grid10.crs,
    )
    write_raster(tmp_path / "inputs" / "landuse.tif", codes, far, nodata=0, overwrite=True)
    with pytest.raises(PlanError, match="no class over the study area"):
        run_plan(read_plan(path), tmp_path / "out")
    assert not (tmp_path / "out" / "summary.json").exists()


def test_land_use_without_clutter_offsets_says_it_is_unused(clutter_plan, tmp_path, caplog):
    path, _ = clutter_plan
    doc = yaml.safe_load(path.read_text())
    del doc["stages"]["coverage"]["calibration"]
    path.write_text(yaml.safe_dump(doc))
    with caplog.at_level(logging.WARNING):
        summary = run_plan(read_plan(path), tmp_path / "out")
    assert "land-use layer is not used" in caplog.text
    assert summary["coverage"]["clutter"] == {"applied": False}


def test_report_states_the_calibration_and_its_clutter_offsets_escaped(clutter_plan, tmp_path):
    """Class names come from input files (params.json, the classes CSV): shown, as text."""
    path, _ = clutter_plan
    cal = Calibration(
        "hata", "urban", 3.0, -1.5, {"open": 0.0, "<i>urban</i>": 8.0}, 50, 9.0, 4.0, 5.0, 0.0
    )
    (tmp_path / "params.json").write_text(json.dumps(cal.to_dict()))
    classes = tmp_path / "inputs" / "classes.csv"
    classes.write_text("code,name\n1,open\n2,<i>urban</i>\n4,forest\n9,water\n")
    doc = yaml.safe_load(path.read_text())
    doc["stages"]["report"] = {}
    path.write_text(yaml.safe_dump(doc))
    run_plan(read_plan(path), tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Propagation calibrated on 50 measurements: 3.0 dB at 1 km, -1.5 dB per decade" in html
    assert "clutter offsets applied: open 0.0 dB" in html
    assert (
        "&lt;i&gt;urban&lt;/i&gt; 8.0 dB (44.0 % of cells)" in html
    )  # 50 cells - 5 water - 1 void
    assert "<i>urban</i>" not in html


def test_land_use_polygons_give_the_same_rasters_as_the_codes(clutter_plan, tmp_path, grid10):
    """OpenStreetMap-style land use: polygons with a class column, one per cell here, classed
    as the raster's codes are named; the cell without a class gets no polygon."""
    import geopandas as gpd
    from shapely.geometry import box

    path, codes = clutter_plan
    run_plan(read_plan(path), tmp_path / "raster")
    name = {1: "open", 2: "urban", 4: "forest", 9: "water"}
    x0, _, _, y1 = grid10.bounds
    cells = [(r, c) for r in range(10) for c in range(10) if codes[r, c] in name]
    polys = gpd.GeoDataFrame(
        {"landuse": [name[int(codes[r, c])] for r, c in cells], "natural": None},
        geometry=[box(x0 + c * 100, y1 - (r + 1) * 100, x0 + (c + 1) * 100, y1 - r * 100)
                  for r, c in cells],
        crs=grid10.crs,
    ).to_crs("EPSG:4326")  # fmt: skip
    write_vector(tmp_path / "inputs" / "landuse.geojson", polys)
    doc = yaml.safe_load(path.read_text())
    doc["layers"]["land_use"] = {"path": "inputs/landuse.geojson", "column": "landuse"}
    path.write_text(yaml.safe_dump(doc))
    summary = run_plan(read_plan(path), tmp_path / "polygons")
    for op in ("viettel", "vinaphone", "mobifone"):
        a = _rasters(tmp_path / "raster", f"signal_{op}.tif")
        b = _rasters(tmp_path / "polygons", f"signal_{op}.tif")
        np.testing.assert_array_equal(a, b)
    assert summary["coverage"]["clutter"]["unknown_pct"] == {"water": pytest.approx(10.0)}
    # polygons need their class column; a class table is for rasters
    doc["layers"]["land_use"] = {"path": "inputs/landuse.geojson"}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match="column"):
        run_plan(read_plan(path), tmp_path / "bad1")
    doc["layers"]["land_use"] = {"path": "inputs/landuse.geojson", "column": "landcover"}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match="'landcover' is missing; the layer has landuse, natural"):
        run_plan(read_plan(path), tmp_path / "bad2")
    doc["layers"]["land_use"] = {
        "path": "inputs/landuse.geojson", "column": "landuse", "classes": "inputs/classes.csv"
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PlanError, match="class table only names a raster"):
        run_plan(read_plan(path), tmp_path / "bad3")
