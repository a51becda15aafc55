"""Best-server kernel vs the plain numpy per-tower-window implementation, in one run.

Default case (the coverage issue's target): 2,000 towers of 3 operators, 1,000 x 1,000 cells of
50 m, R = 10 km, Okumura-Hata, 70 % sectorised. Prints both times, the ratio, and the largest
power difference (dB).

    .venv/bin/python benchmarks/bench_bestserver.py [--towers 2000] [--size 1000] [--radius 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telcoplan.coverage.bestserver import best_server
from telcoplan.gis.grid import GridSpec
from tests.coverage.reference import reference_best_server
from tests.coverage.test_bestserver import random_towers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--towers", type=int, default=2000)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--res", type=float, default=50.0)
    ap.add_argument("--radius", type=float, default=10.0)
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    side = args.size * args.res
    grid = GridSpec.from_bounds(
        (800_000, 1_750_000, 800_000 + side, 1_750_000 + side), args.res, "EPSG:32649"
    )
    towers = random_towers(args.towers, grid, seed=1, sectors=True)
    towers["frequency_mhz"] = 900.0  # inside Hata's validity range
    print(
        f"{len(towers)} towers, {grid.width}x{grid.height} cells of {args.res:g} m, R = {args.radius:g} km"
    )
    best_server(towers.iloc[:5], grid, max_radius_km=1.0, validity="ignore")  # JIT warm-up (cached)
    t = time.perf_counter()
    res = best_server(towers, grid, max_radius_km=args.radius, validity="ignore")
    t_ours = time.perf_counter() - t
    print(
        f"telcoplan kernel      {t_ours:8.2f} s   ({res.towers_evaluated} tower-tile evaluations)"
    )
    if args.skip_reference:
        return
    t = time.perf_counter()
    _, ref_p, _ = reference_best_server(towers, grid, max_radius_km=args.radius)
    t_ref = time.perf_counter() - t
    ok = np.isfinite(ref_p)
    diff = float(np.max(np.abs(res.power_dbm[ok] - ref_p[ok]))) if ok.any() else 0.0
    same_mask = bool(np.array_equal(ok, np.isfinite(res.power_dbm)))
    print(f"numpy per-tower window{t_ref:8.2f} s")
    print(
        f"ratio {t_ref / t_ours:.1f}x   max |diff| {diff:.4f} dB   same coverage mask: {same_mask}"
    )


if __name__ == "__main__":
    main()
