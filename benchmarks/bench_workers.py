"""Coverage and population tables on a local Dask cluster: 2 worker processes against 1.

National-like case (issue 13): the synthetic national demo
(:func:`telcoplan.demo.national.build_national`: 63 provinces, sites of three operators and four
technologies where the people live, a population raster) at ``--scale`` (default 0.55: 30,250
sites on 3,246 x 3,245 cells of 100 m, 10.5 M cells), no terrain. Each run is the coverage
stage's one call, :func:`telcoplan.coverage.analysis.coverage_and_population` — preparing the
towers, labelling the provinces, scattering the inputs, the tiles on the workers, the rasters
copied back, the tables added — timed from the call to its return.

Two ``distributed.LocalCluster``s are started once and warmed up (numba's cached kernels loaded
in every worker): one worker process of one thread, and two of one thread each. Their runs are
interleaved with the in-process run (numba on this machine's 2 threads, no cluster; which goes
first rotates) over ``--repeat`` repetitions; min and median of each, and the ratio of the medians
and of the minima of 1 worker to 2 (issue 13's target: 2 workers ≥ 1.6x faster than 1). Beside
it, the same ratio for 8 tasks of pure CPU work on the same clusters, before and after the case:
what the machine's load leaves of its 2 cores at the time. Every run's rasters are compared with
the first run's (bit for bit) and its table (1e-9 relative).

``--terrain`` adds a case with a DEM (rolling hills, Okumura-Hata + Bullington diffraction) on a
smaller country (``--terrain-scale``, default 0.07: ~490 sites on ~650,000 cells of 50 m).

    .venv/bin/python benchmarks/bench_workers.py [--scale 0.55] [--repeat 3] [--terrain]
        [--terrain-scale 0.07]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telcoplan.coverage.analysis import coverage_and_population
from telcoplan.demo.national import build_national
from telcoplan.gis.grid import GridSpec


def national_case(scale: float, res: float):
    """The synthetic national demo's provinces, sites and population
    (:func:`telcoplan.demo.national.build_national`) at ``scale`` on cells of ``res`` m."""
    sc = build_national(scale=scale, resolution_m=res)
    return sc.grid, sc.towers.set_index("site_id"), sc.areas, np.asarray(sc.population)


def hills(grid: GridSpec) -> np.ndarray:
    """Rolling hills up to ~270 m (float32-exact values, as a DEM read from a GeoTIFF)."""
    xc, yc = grid.cell_centres()
    x = (xc - grid.bounds[0]) / 2500.0
    y = (yc - grid.bounds[1]) / 1900.0
    return np.round(150.0 * np.sin(x) ** 2 + 120.0 * np.cos(y + 0.3 * x) ** 2).astype(np.float32)


def same(a, b) -> bool:
    """Rasters bit for bit (NaN where NaN) and tables to 1e-9 relative."""
    (ca, ta), (cb, tb) = a, b
    for name in ("power_dbm", "margin_db", "server", "covered", "best_technology", "limit"):
        x, y = getattr(ca, name), getattr(cb, name)
        if (x is None) != (y is None):
            return False
        if x is not None and not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            return False
    try:
        pd.testing.assert_frame_equal(ta, tb, check_exact=False, rtol=1e-9, atol=0.0)
    except AssertionError:
        return False
    return True


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def summary(name: str, times: list[float]) -> str:
    return f"{name:<28} min {min(times):7.2f} s   median {statistics.median(times):7.2f} s"


def spin(_: int) -> float:
    """Pure CPU work (~0.3 s on one core), for the machine's scaling at the moment."""
    t = time.perf_counter()
    x = 0
    for i in range(3_000_000):
        x += i * i
    return time.perf_counter() - t


def machine_scaling(clusters: dict) -> float:
    """How much faster 8 independent CPU tasks run on the 2-worker cluster than on the
    1-worker one right now (2.0 on an idle 2-core machine; less when others load it)."""
    walls = []
    for client in clusters.values():
        t = time.perf_counter()
        client.gather(client.map(spin, range(8), pure=False))
        walls.append(time.perf_counter() - t)
    return walls[0] / walls[1]


def run_case(title: str, case, kw: dict, clusters: dict, repeat: int) -> None:
    grid, towers, areas, population = case
    print(f"\n== {title}: {len(towers):,} towers, {grid.width} x {grid.height} cells")
    sides = {"in-process (numba, 2 threads)": None, **clusters}
    times: dict[str, list[float]] = {name: [] for name in sides}
    want = None
    ok = True
    names = list(sides)
    scaling = [machine_scaling(clusters)]
    for rep in range(repeat):
        order = names[rep % len(names) :] + names[: rep % len(names)]  # who goes first rotates
        for name in order:
            client = sides[name]
            dt, got = timed(
                lambda c=client: coverage_and_population(
                    towers, grid, population, areas, client=c, **kw
                )
            )
            times[name].append(dt)
            if want is None:
                want = got
            else:
                ok &= same(got, want)
            del got
    scaling.append(machine_scaling(clusters))
    for name in names:
        print(summary(name, times[name]))
    one, two = times[names[1]], times[names[2]]
    print(
        f"2 workers vs 1: {statistics.median(one) / statistics.median(two):.2f}x (medians), "
        f"{min(one) / min(two):.2f}x (minima); target >= 1.6x. Pure CPU tasks on the same two "
        f"clusters, before and after: {scaling[0]:.2f}x, {scaling[1]:.2f}x (the machine's load)"
    )
    print(f"outputs equal to the in-process run (rasters bit for bit, tables 1e-9): {ok}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.55)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--terrain", action="store_true")
    ap.add_argument("--terrain-scale", type=float, default=0.07)
    args = ap.parse_args()
    import distributed

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (1 min)")
    flat = national_case(args.scale, 100.0)
    terrain = national_case(args.terrain_scale, 50.0) if args.terrain else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = {"1 worker x 1 thread": 1, "2 workers x 1 thread": 2}
        clusters = {
            name: distributed.Client(
                distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
                )
            )
            for name, n in spec.items()
        }
    try:
        grid, towers, areas, population = national_case(0.03, 200.0)
        for client in [None, *clusters.values()]:  # numba's kernels loaded everywhere
            for dem in (None, hills(grid)):
                coverage_and_population(
                    towers, grid, population, areas, client=client, validity="ignore", dem=dem
                )
        kw = {"validity": "ignore"}
        run_case("national-like, flat earth", flat, kw, clusters, args.repeat)
        if terrain is not None:
            kw = {"validity": "ignore", "model": "hata", "dem": hills(terrain[0])}
            run_case("terrain (Hata + Bullington)", terrain, kw, clusters, args.repeat)
    finally:
        for client in clusters.values():
            cluster = client.cluster
            client.close()
            cluster.close()


if __name__ == "__main__":
    main()
