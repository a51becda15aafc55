"""National-scale synthetic coverage run: time and peak memory.

100,000 sites of 3 operators scattered over a 5,750 x 5,750 grid of 100 m cells (~33 M cells,
575 km x 575 km), no terrain, the full coverage computation (per-operator best server, margins,
best technology). Prints the wall time and the process's peak resident memory; the target is
≤ 3 GB. Then runs the same grid with twice the sites in a fresh process (its own peak memory)
and prints the time ratio: the target is ≤ 2.2 (cost grows with the sites, not faster).

    .venv/bin/python benchmarks/bench_national.py [--sites 100000] [--size 5750] [--no-scaling]
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import time

import geopandas as gpd
import numpy as np

from telcoplan.coverage.analysis import compute_coverage
from telcoplan.gis.grid import GridSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=5750)
    ap.add_argument("--no-scaling", action="store_true", help="skip the run with twice the sites")
    args = ap.parse_args()
    side = args.size * 100.0
    grid = GridSpec.from_bounds(
        (200_000, 1_000_000, 200_000 + side, 1_000_000 + side), 100.0, "EPSG:32649"
    )
    rng = np.random.default_rng(0)
    n = args.sites
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
    print(
        f"{n} sites, {grid.width} x {grid.height} = {grid.width * grid.height / 1e6:.1f} M cells of 100 m"
    )
    t = time.perf_counter()
    cov = compute_coverage(towers, grid, validity="ignore")
    dt = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"coverage computed in {dt:.1f} s; covered by any operator: {cov.covered_any.mean():.1%} of cells"
    )
    print(f"peak resident memory {peak_gb:.2f} GB (target ≤ 3 GB)")
    if args.no_scaling:
        return
    # twice the sites on the same grid, in a fresh process (its own peak memory); the kernels
    # are compiled and cached already, so both runs time the computation only
    cmd = [sys.executable, __file__, "--sites", str(2 * n), "--size", str(args.size)]
    out = subprocess.run([*cmd, "--no-scaling"], capture_output=True, text=True, check=True).stdout
    t2 = float(re.search(r"computed in ([0-9.]+) s", out).group(1))
    peak2 = re.search(r"peak resident memory ([0-9.]+) GB", out).group(1)
    print(
        f"{2 * n} sites: coverage computed in {t2:.1f} s, peak {peak2} GB; "
        f"time ratio 2x sites / 1x sites = {t2 / dt:.2f} (target ≤ 2.2)"
    )


if __name__ == "__main__":
    main()
