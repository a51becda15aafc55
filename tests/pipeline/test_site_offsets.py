"""A calibration's per-site offsets reach the coverage stage: the calibrated site's power is
shifted by exactly its offset wherever it serves, the others are unchanged."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import rasterio
import yaml

from telcoplan.coverage.calibration import Calibration
from telcoplan.pipeline import read_plan, run_plan


def _signal(out, op):
    with rasterio.open(out / f"signal_{op}.tif") as src:
        return src.read(1)


def _server(out, op):
    with rasterio.open(out / f"server_{op}.tif") as src:
        return src.read(1)


def test_site_offsets_shift_the_calibrated_site_only(small_plan, tmp_path):
    base = Calibration("hata", "urban", 2.0, 0.0, {}, 50, 9.0, 4.0, 5.0, 0.0)
    with_sites = dataclasses.replace(base, site_offsets_db={"VT-1": 6.0}, site_shrinkage=4.0)
    runs = {}
    for name, cal in (("base", base), ("sites", with_sites)):
        (small_plan.parent / f"{name}.json").write_text(json.dumps(cal.to_dict()))
        doc = yaml.safe_load(small_plan.read_text())
        doc["stages"] = {
            "coverage": {"model": "hata", "validity": "ignore", "calibration": f"{name}.json"},
            "map": False,
            "report": False,
        }
        small_plan.write_text(yaml.safe_dump(doc))
        runs[name] = run_plan(read_plan(small_plan), tmp_path / name)
    a, b = _signal(tmp_path / "base", "viettel"), _signal(tmp_path / "sites", "viettel")
    vt1_now = _server(tmp_path / "sites", "viettel") == 1  # VT-1 is the first tower
    vt1_before = _server(tmp_path / "base", "viettel") == 1
    assert vt1_now.any()
    assert not (vt1_now & ~vt1_before).any()  # a weaker site wins no new cell
    # where VT-1 still serves: exactly 6 dB less
    np.testing.assert_allclose(b[vt1_now], a[vt1_now] - 6.0, atol=1e-4)
    # cells it lost: another site now serves, between the old power and 6 dB below it
    lost = vt1_before & ~vt1_now
    assert np.all((b[lost] <= a[lost] + 1e-4) & (b[lost] >= a[lost] - 6.0 - 1e-4))
    # cells it never served: unchanged
    never = ~vt1_before & np.isfinite(a)
    np.testing.assert_allclose(b[never], a[never], atol=1e-4)
    np.testing.assert_array_equal(
        _signal(tmp_path / "base", "mobifone"), _signal(tmp_path / "sites", "mobifone")
    )
    # the sites layer keeps each site's own EIRP
    import geopandas as gpd

    sites = gpd.read_file(tmp_path / "sites" / "coverage.gpkg", layer="sites")
    assert sites.loc[sites["site_id"] == "VT-1", "eirp_dbm"].item() == 60.0
