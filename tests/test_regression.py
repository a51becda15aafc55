"""Regression: the demo plan's outputs equal a fingerprint recorded before the pipeline restructuring.

The fingerprint (``tests/data/demo_fingerprint.json``) holds, for every output file of a run:
rasters — the pixel bytes of every band (SHA-256) with dtype, shape, transform, CRS, nodata,
tags and descriptions; GeoPackages — every layer's columns, dtypes, exact values
(``pandas.util.hash_pandas_object``) and geometries (WKB); ``summary.json`` — its whole content;
every other file (HTML, PNG, ``.aux.xml``) — its bytes. Two plans are recorded: the demo plan as
``telcoplan demo`` writes it, and a variant of it that switches on the options the demo leaves at
their defaults (per-technology rasters, indoor margin, Deygout diffraction, gaps thresholds,
rings for every site, no leasing, report and map options), so that every stage's parameters
are carried through.

To record a fingerprint again (only when an output is *meant* to change, and say so in the
commit)::

    python -m tests.test_regression --record
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
FINGERPRINT = ROOT / "tests" / "data" / "demo_fingerprint.json"

#: The demo plan's stages, with every option the demo leaves at its default set otherwise.
VARIANT_STAGES: dict[str, Any] = {
    "coverage": {
        "terrain": True,
        "diffraction": "deygout",
        "indoor": True,
        "per_technology": True,
        "thresholds_dbm": {"4G": -100, "3G": -95},
        "max_radius_km": 8,
    },
    "gaps": {"min_population": 50, "min_density_per_km2": 20},
    "backbone": {
        "protect": "all",
        "lease_factor": None,
        "cost_per_m": {"primary": 50, "access": 25},
        "shapley": True,
    },
    "map": {"tiles": "none", "signal": False, "simplify_m": 40},
    "report": {"top_gaps": 5, "currency": "VND", "figure": False},
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _raster(path: Path) -> dict[str, Any]:
    import rasterio

    with rasterio.open(path) as src:
        return {
            "dtypes": list(src.dtypes),
            "shape": [src.count, src.height, src.width],
            "transform": list(src.transform)[:6],
            "crs": src.crs.to_string() if src.crs else None,
            "nodata": None if src.nodata is None else repr(src.nodata),
            "tags": src.tags(),
            "descriptions": list(src.descriptions),
            "bands": [_sha(src.read(b).tobytes()) for b in range(1, src.count + 1)],
        }


def _geopackage(path: Path) -> dict[str, Any]:
    import pandas as pd
    import pyogrio
    import shapely

    layers = {}
    for name, _ in pyogrio.list_layers(path):
        gdf = pyogrio.read_dataframe(path, layer=name)
        geometry = getattr(gdf, "geometry", None)  # None: an attribute table (layer_styles)
        attrs = pd.DataFrame(gdf if geometry is None else gdf.drop(columns=geometry.name))
        layers[str(name)] = {
            "rows": len(gdf),
            "crs": gdf.crs.to_string() if getattr(gdf, "crs", None) else None,
            "columns": {c: str(t) for c, t in attrs.dtypes.items()},
            "values": _sha(pd.util.hash_pandas_object(attrs, index=False).to_numpy().tobytes())
            if len(attrs.columns)
            else None,
            "geometry": None
            if geometry is None
            else _sha(b"".join(shapely.to_wkb(geometry.to_numpy(), hex=False))),
        }
    return layers


def fingerprint(out_dir: Path) -> dict[str, Any]:
    """The fingerprint of every file in ``out_dir`` (see the module's docstring)."""
    result: dict[str, Any] = {}
    for path in sorted(out_dir.iterdir()):
        if path.suffix == ".tif":
            result[path.name] = _raster(path)
        elif path.suffix == ".gpkg":
            result[path.name] = _geopackage(path)
        elif path.name == "summary.json":
            result[path.name] = json.loads(path.read_text(encoding="utf-8"))
        else:
            result[path.name] = _sha(path.read_bytes())
    return result


def _run_both(tmp: Path) -> dict[str, Any]:
    """Write the demo (inputs, plan, outputs) into ``tmp``, run the variant plan beside it."""
    import yaml

    from telcoplan.demo import run_demo

    run_demo(tmp / "demo", overwrite=True)
    plan = yaml.safe_load((tmp / "demo" / "plan.yml").read_text(encoding="utf-8"))
    plan["stages"] = VARIANT_STAGES
    variant = tmp / "demo" / "variant.yml"
    variant.write_text(yaml.safe_dump(plan, allow_unicode=True, sort_keys=False), "utf-8")
    from telcoplan import read_plan, run_plan

    run_plan(read_plan(variant), tmp / "demo" / "variant-outputs", overwrite=True)
    return {
        "demo": fingerprint(tmp / "demo" / "outputs"),
        "variant": fingerprint(tmp / "demo" / "variant-outputs"),
    }


def _differences(expected: Any, actual: Any, where: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{where}/{k}: missing" for k in expected if k not in actual]
        out += [f"{where}/{k}: not expected" for k in actual if k not in expected]
        for k in expected:
            if k in actual:
                out += _differences(expected[k], actual[k], f"{where}/{k}")
        return out
    if expected != actual:
        return [f"{where}: expected {str(expected)[:200]}, got {str(actual)[:200]}"]
    return []


@pytest.mark.slow
def test_demo_outputs_equal_the_recorded_fingerprint(tmp_path):
    recorded = json.loads(FINGERPRINT.read_text(encoding="utf-8"))
    actual = _run_both(tmp_path)
    diff = _differences(recorded, actual)
    assert not diff, f"{len(diff)} differences from {FINGERPRINT.name}:\n" + "\n".join(diff[:40])


def test_fingerprint_sees_a_change(tmp_path):
    """The fingerprint is not blind: one changed pixel, attribute or summary value shows."""
    import geopandas as gpd
    import numpy as np
    from shapely.geometry import Point

    from telcoplan.gis.grid import GridSpec
    from telcoplan.gis.raster import write_raster
    from telcoplan.gis.vector import write_vector_layers

    grid = GridSpec.from_bounds((0, 0, 300, 300), 100.0, "EPSG:32649")

    def write(out: Path, pixel: float, value: float, total: float) -> dict[str, Any]:
        out.mkdir()
        arr = np.zeros(grid.shape, dtype=np.float32)
        arr[1, 1] = pixel
        write_raster(out / "signal_a.tif", arr, grid, nodata=float("nan"))
        gdf = gpd.GeoDataFrame({"v": [value]}, geometry=[Point(1, 1)], crs=grid.crs)
        write_vector_layers(out / "coverage.gpkg", {"coverage": gdf})
        (out / "summary.json").write_text(json.dumps({"total": total}), encoding="utf-8")
        return fingerprint(out)

    base = write(tmp_path / "a", 1.0, 2.0, 3.0)
    assert _differences(base, write(tmp_path / "b", 1.0, 2.0, 3.0)) == []
    assert _differences(base, write(tmp_path / "c", 1.0 + 1e-6, 2.0, 3.0))
    assert _differences(base, write(tmp_path / "d", 1.0, 2.0 + 1e-12, 3.0))
    assert _differences(base, write(tmp_path / "e", 1.0, 2.0, 3.5))


if __name__ == "__main__":  # python -m tests.test_regression --record
    import tempfile

    if "--record" not in sys.argv:
        sys.exit("usage: python -m tests.test_regression --record")
    with tempfile.TemporaryDirectory() as tmp:
        FINGERPRINT.parent.mkdir(exist_ok=True)
        FINGERPRINT.write_text(
            json.dumps(_run_both(Path(tmp)), indent=1, sort_keys=True, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    print(f"recorded {FINGERPRINT}")
