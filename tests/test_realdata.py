"""Optional checks on real Đà Nẵng data (ward polygons with 2019 census, SRTM); skipped when absent.

The files live outside the repository (licences forbid copying them in): ../shared/data/danang-real/.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from telcoplan.demo.danang import CENSUS_2019
from telcoplan.gis.vector import read_vector, write_vector
from telcoplan.pipeline import load_inputs, read_plan, run_plan

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "danang-real"
WARDS = REAL / "population" / "danang_wards_pop2019.geojson"
SRTM = REAL / "terrain" / "danang_srtm_gl1_30m.tif"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(
        not WARDS.exists(), reason="real Đà Nẵng data not available (../shared/data/danang-real)"
    ),
]


def _district(name: str) -> str:
    return name.removeprefix("Quận ").removeprefix("Huyện ")


@pytest.fixture(scope="module")
def real_plan(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    wards = read_vector(WARDS)
    areas = wards.assign(name=wards["district_vn"].map(_district)).dissolve("name", as_index=False)[
        ["name", "geometry"]
    ]
    write_vector(tmp / "areas.gpkg", areas)
    doc = {
        "name": "Đà Nẵng, real wards",
        "resolution_m": 100,
        "study_area_margin_m": 500,
        "layers": {
            "areas": "areas.gpkg",
            "population": {"path": str(WARDS), "column": "pop2019_total"},
        },
    }
    if SRTM.exists():
        doc["layers"]["dem"] = str(SRTM)
    (tmp / "plan.yml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return tmp / "plan.yml"


def test_real_ward_census_conserved(real_plan, tmp_path, caplog):
    """The real 56 ward polygons (EPSG:4326) spread onto a 100 m UTM grid keep every ward's count.

    The thinned ward polygons overlap each other (up to 0.24 km²), also across districts, so the
    district totals are within 2 % of the census, not exact; the loader says so in a warning.
    """
    from telcoplan.gis.zonal import zonal_sum

    inputs = load_inputs(read_plan(real_plan))
    assert inputs.crs == "EPSG:32649"  # local UTM zone chosen from the data
    assert abs(inputs.population.sum() - 1_134_310) <= 1
    wards = read_vector(WARDS).to_crs(inputs.crs)
    per_ward = zonal_sum(inputs.population, inputs.grid, wards)
    np.testing.assert_allclose(per_ward, wards["pop2019_total"].to_numpy(float), atol=0.5)
    assert "overlap" in caplog.text
    summary = run_plan(read_plan(real_plan), tmp_path / "out")
    for area in summary["areas"]:
        census = CENSUS_2019[area["name"].replace("Hoà", "Hòa")]
        assert abs(area["population"] - census) <= 0.02 * census, area


@pytest.mark.skipif(not SRTM.exists(), reason="SRTM tile not available")
def test_real_srtm_on_plan_grid(real_plan):
    inputs = load_inputs(read_plan(real_plan))
    dem = inputs.dem
    assert dem is not None
    assert dem.shape == inputs.grid.shape
    assert 600 < np.nanmax(dem) < 720  # Sơn Trà (the tile stops short of Bà Nà)
