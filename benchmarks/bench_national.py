"""National-scale synthetic coverage run: time and peak memory, 1x and 2x the sites.

Issue 12's national target: 100,000 sites of 3 operators scattered over a 5,750 x 5,750 grid of
100 m cells (~33 M cells, 575 km x 575 km), no terrain, the full coverage computation
(per-operator best server, margins, best technology) in ≤ 20 s with a peak ≤ 3 GB, and twice
the sites on the same grid in ≤ 2.2x the time. Each run is a fresh process (its own peak
resident memory): after a warm-up run (numba's cache, the OS file cache), the 1x and 2x runs
are interleaved ``--repeat`` times (which goes first alternates); min and median of each side
and their ratio are printed. The time is the computation's (``compute_coverage``), after the
sites are generated. ``bench_national_run.py`` times the whole national demo plan (35 M cells;
coverage, gaps, backbone, map and report) instead.

    .venv/bin/python benchmarks/bench_national.py [--sites 100000] [--size 5750] [--repeat 3]
        [--no-scaling]
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

#: what a run prints for the parent to read: its computation time and peak memory
_RESULT = re.compile(r"computed in ([0-9.]+) s; peak ([0-9.]+) GB")


def run_once(sites: int, size: int) -> None:
    """Generate ``sites`` sites on a ``size`` x ``size`` grid, compute their coverage, print the
    time and this process's peak resident memory."""
    import geopandas as gpd

    from telcoplan.coverage.analysis import compute_coverage
    from telcoplan.gis.grid import GridSpec

    side = size * 100.0
    grid = GridSpec.from_bounds(
        (200_000, 1_000_000, 200_000 + side, 1_000_000 + side), 100.0, "EPSG:32649"
    )
    rng = np.random.default_rng(0)
    n = sites
    # clustered like a country: half the sites around 60 "cities", half spread out
    centres = rng.uniform(0, side, (60, 2))
    k = n // 2
    city = centres[rng.integers(0, 60, k)] + rng.normal(0, 8000, (k, 2))
    rural = rng.uniform(0, side, (n - k, 2))
    offset = np.array([200_000.0, 1_000_000.0])  # grid origin (easting, northing), m
    xy = np.clip(np.vstack([city, rural]), 0, side - 1) + offset
    tech = rng.choice(["2G", "3G", "4G", "5G"], n, p=[0.15, 0.2, 0.55, 0.1])
    freq = np.select([tech == "2G", tech == "3G", tech == "4G"], [900.0, 2100.0, 1800.0], 3500.0)
    towers = gpd.GeoDataFrame(
        {
            "operator": rng.choice(["Viettel", "VinaPhone", "MobiFone"], n, p=[0.56, 0.23, 0.21]),
            "technology": tech,
            "frequency_mhz": freq,
            "height_m": rng.uniform(30, 45, n),
            "eirp_dbm": rng.uniform(55, 62, n),
        },
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        crs=grid.crs,
        index=[f"S{i:06d}" for i in range(n)],
    )
    t = time.perf_counter()
    cov = compute_coverage(towers, grid, validity="ignore")
    dt = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"{n} sites, {grid.width} x {grid.height} = {grid.width * grid.height / 1e6:.1f} M cells "
        f"of 100 m: computed in {dt:.2f} s; peak {peak_gb:.2f} GB; covered by any operator: "
        f"{cov.covered_any.mean():.1%} of cells"
    )


def run_child(sites: int, size: int) -> tuple[float, float]:
    """:func:`run_once` in a fresh process: (computation time s, peak memory GB)."""
    cmd = [sys.executable, __file__, "--once", "--sites", str(sites), "--size", str(size)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the run with {sites} sites failed:\n{out.stderr[-3000:]}")
    found = _RESULT.search(out.stdout)
    if found is None:
        raise SystemExit(f"the run with {sites} sites printed no result:\n{out.stdout[-3000:]}")
    return float(found.group(1)), float(found.group(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=5750)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions per side")
    ap.add_argument("--no-scaling", action="store_true", help="skip the runs with twice the sites")
    ap.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.once:
        run_once(args.sites, args.size)
        return
    n = args.sites
    sides = {"1x": n} if args.no_scaling else {"1x": n, "2x": 2 * n}
    print(
        f"{n} sites on {args.size} x {args.size} = {args.size**2 / 1e6:.1f} M cells of 100 m, "
        f"no terrain; each run a fresh process; {args.repeat} interleaved repetitions after a "
        "warm-up"
    )
    run_child(n, args.size)  # warm-up: numba's cache, the OS file cache
    times: dict[str, list[float]] = {side: [] for side in sides}
    peaks: dict[str, list[float]] = {side: [] for side in sides}
    for k in range(args.repeat):
        for side in sides if k % 2 == 0 else reversed(sides):
            dt, peak = run_child(sides[side], args.size)
            times[side].append(dt)
            peaks[side].append(peak)
    for side, count in sides.items():
        print(
            f"  {side} ({count} sites)   min {min(times[side]):6.2f} s   median "
            f"{statistics.median(times[side]):6.2f} s   peak resident memory "
            f"{max(peaks[side]):.2f} GB"
        )
    print(
        f"  1x sites: {statistics.median(times['1x']):.2f} s by medians (target ≤ 20 s), peak "
        f"resident memory {max(peaks['1x']):.2f} GB (target ≤ 3 GB)"
    )
    if "2x" in sides:
        med = statistics.median(times["2x"]) / statistics.median(times["1x"])
        low = min(times["2x"]) / min(times["1x"])
        print(
            f"  time ratio 2x sites / 1x sites: {med:.2f} (medians), {low:.2f} (minima) "
            "(target ≤ 2.2)"
        )


if __name__ == "__main__":
    main()
