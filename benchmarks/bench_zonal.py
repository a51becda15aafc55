"""Zonal population sums: telcoplan vs exactextract vs rasterstats, side by side in one run.

50 Voronoi areas over a 2,000 x 2,000 raster of 50 m cells (UTM 49N). Prints seconds, the ratio
to telcoplan and the largest difference of the per-area totals.

    .venv/bin/python benchmarks/bench_zonal.py [--size 2000] [--areas 50] [--repeat 3]

telcoplan and rasterstats both assign a cell to the polygon containing its centre, so their
totals must agree exactly; exactextract weights cells by their exact covered fraction, so its
totals differ slightly along boundaries (the grand total agrees).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import box

from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import write_raster
from telcoplan.gis.zonal import zonal_sum


def make_case(size: int, n_areas: int, seed: int = 0):
    grid = GridSpec.from_bounds(
        (800_000, 1_750_000, 800_000 + 50 * size, 1_750_000 + 50 * size), 50.0, "EPSG:32649"
    )
    rng = np.random.default_rng(seed)
    values = rng.gamma(0.5, 20.0, grid.shape)
    frame = box(*grid.bounds)
    pts = shapely.points(
        rng.uniform(grid.bounds[0], grid.bounds[2], n_areas),
        rng.uniform(grid.bounds[1], grid.bounds[3], n_areas),
    )
    cells = shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=frame)
    polys = [c.intersection(frame) for c in shapely.get_parts(cells)]
    areas = gpd.GeoDataFrame(
        {"name": [f"a{i}" for i in range(len(polys))]}, geometry=polys, crs=grid.crs
    )
    return grid, values, areas


def best_of(fn, repeat: int) -> tuple[float, np.ndarray]:
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, np.asarray(out, dtype=float)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--areas", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    grid, values, areas = make_case(args.size, args.areas)
    print(
        f"{args.areas} areas, {grid.width}x{grid.height} raster ({grid.width * grid.height / 1e6:.1f} M cells)"
    )
    results: dict[str, tuple[float, np.ndarray]] = {}
    results["telcoplan"] = best_of(lambda: zonal_sum(values, grid, areas), args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        tif = Path(tmp) / "values.tif"
        write_raster(tif, values.astype("float64"), grid)
        try:
            import exactextract

            def ee():
                df = exactextract.exact_extract(str(tif), areas, ["sum"], output="pandas")
                return df["sum"].to_numpy()

            results["exactextract (fractional)"] = best_of(ee, args.repeat)
        except ImportError:
            print("exactextract not installed: pip install exactextract")
        try:
            import warnings

            from rasterstats import zonal_stats

            def rs():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return [
                        s["sum"] or 0.0
                        for s in zonal_stats(
                            areas, values, affine=grid.transform, stats=["sum"], nodata=-1e30
                        )
                    ]

            results["rasterstats (centre)"] = best_of(rs, args.repeat)
        except ImportError:
            print("rasterstats not installed: pip install rasterstats")
    t0, ref = results["telcoplan"]
    print(
        f"{'method':<28}{'seconds':>10}{'ratio':>10}{'max |diff| per area':>22}{'grand total':>16}"
    )
    for name, (t, out) in results.items():
        print(
            f"{name:<28}{t:>10.3f}{t / t0:>9.1f}x{np.max(np.abs(out - ref)):>22.4g}{out.sum():>16.1f}"
        )
    print(f"raster total {values.sum():.1f}")


if __name__ == "__main__":
    main()
