"""Zonal population sums: telcoplan vs exactextract vs rasterstats, side by side in one run.

50 Voronoi areas over a 2,000 x 2,000 raster of 50 m cells (UTM 49N).

    .venv/bin/python benchmarks/bench_zonal.py [--size 2000] [--areas 50] [--repeat 3]

Every side gets the same inputs, in memory: the float64 array (exactextract through a
``NumPyRasterSource`` with the grid's extent, CRS and nodata; rasterstats through
``zonal_stats(areas, raster=array, affine=transform)``) and the areas as a GeoDataFrame, so no side
reads the disk inside the timing. Each side first runs once untimed (warm-up and correctness
check); then the sides are timed in turn over ``--repeat`` rounds, the starting side rotating
from round to round, with ``gc.collect()`` before each timing. Prints min and median seconds per
side and the ratios (peer / telcoplan, > 1 means telcoplan is faster).

Correctness: telcoplan and rasterstats both assign a cell to the polygon containing its centre,
so they must count the same cells in every area and their per-area sums must agree to float
rounding (relative 1e-9: the two sum in different orders). exactextract weights cells by their
exact covered fraction, so its per-area sums differ along boundaries (reported, not checked),
but the areas partition the raster, so its grand total must equal ours to relative 1e-9.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import warnings

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from shapely.geometry import box

from telcoplan.gis.grid import GridSpec
from telcoplan.gis.zonal import label_polygons, zonal_sum

REL_TOL = 1e-9


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--areas", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds (>= 3 for the record)")
    args = ap.parse_args()
    grid, values, areas = make_case(args.size, args.areas)
    print(
        f"{len(areas)} areas, {grid.width}x{grid.height} raster "
        f"({grid.width * grid.height / 1e6:.1f} M cells, float64, in memory for every side); "
        f"{args.repeat} interleaved rounds"
    )

    sides = {"telcoplan": lambda: zonal_sum(values, grid, areas)}
    checks = {}

    try:
        import exactextract
        from exactextract.raster import NumPyRasterSource

        xmin, ymin, xmax, ymax = grid.bounds
        src = NumPyRasterSource(
            values,
            xmin,
            ymin,
            xmax,
            ymax,
            nodata=grid.nodata,
            srs_wkt=CRS.from_user_input(grid.crs).to_wkt(),
        )

        def ee():
            df = exactextract.exact_extract(src, areas, ["sum"], output="pandas")
            return df["sum"].to_numpy()

        sides["exactextract"] = ee
    except ImportError:
        print("exactextract not installed: pip install exactextract")

    try:
        from rasterstats import zonal_stats

        def rs(stats=("sum",)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return zonal_stats(
                    areas,
                    raster=values,
                    affine=grid.transform,
                    stats=list(stats),
                    nodata=grid.nodata,
                )

        sides["rasterstats"] = lambda: [s["sum"] or 0.0 for s in rs()]
        checks["rasterstats"] = rs
    except ImportError:
        print("rasterstats not installed: pip install rasterstats")

    # Untimed first run of every side: warm-up, and the answers checked below.
    out = {name: np.asarray(fn(), dtype=float) for name, fn in sides.items()}

    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.repeat):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            gc.collect()
            t = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - t)

    ref = out["telcoplan"]
    t_min0, t_med0 = min(times["telcoplan"]), statistics.median(times["telcoplan"])
    print(f"{'side':<14}{'min s':>9}{'median s':>10}{'ratio min':>11}{'ratio median':>14}")
    for name in names:
        t_min, t_med = min(times[name]), statistics.median(times[name])
        print(
            f"{name:<14}{t_min:>9.3f}{t_med:>10.3f}{t_min / t_min0:>10.1f}x{t_med / t_med0:>13.1f}x"
        )
    for name in names[1:]:
        print(
            f"ours vs {name}: {min(times[name]) / t_min0:.1f}x (min), "
            f"{statistics.median(times[name]) / t_med0:.1f}x (median)"
        )

    scale = max(abs(float(values.sum())), 1.0)
    if "rasterstats" in out:
        labels = label_polygons(areas, grid)
        our_counts = np.bincount(labels[labels >= 0], minlength=len(areas))
        rs_counts = np.array([s["count"] or 0 for s in checks["rasterstats"](("count",))])
        d = np.abs(out["rasterstats"] - ref)
        same = bool(
            np.array_equal(our_counts, rs_counts)
            and np.all(d <= REL_TOL * np.maximum(np.abs(ref), 1.0))
        )
        print(
            f"rasterstats (centre of cell): same cells per area: "
            f"{np.array_equal(our_counts, rs_counts)}, max |diff| per area {d.max():.3g}; "
            f"totals equal (rel {REL_TOL:g}): {same}"
        )
    if "exactextract" in out:
        e = out["exactextract"]
        d = np.abs(e - ref)
        rel = abs(e.sum() - ref.sum()) / scale
        print(
            f"exactextract (fractional): per area max |diff| {d.max():.4g} "
            f"(max {np.max(d / np.maximum(np.abs(ref), 1.0)):.2%} of the area's sum); "
            f"grand total {e.sum():.1f} vs ours {ref.sum():.1f}, "
            f"rel diff {rel:.2g}, within {REL_TOL:g}: {bool(rel <= REL_TOL)}"
        )
    print(f"raster total {values.sum():.1f}")


if __name__ == "__main__":
    main()
