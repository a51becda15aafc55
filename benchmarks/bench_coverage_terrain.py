"""Coverage with terrain: ``best_server(dem=...)`` against a plain numpy reference, and on 1 vs 2 threads.

What one site costs the coverage engine when it prices the terrain of every cell in range
(Okumura-Hata + Bullington's knife edge over the terrain and the Earth's bulge, the stage's
defaults), next to an independent numpy implementation of the same physics: per cell, the
profile of ``ceil(d / res)`` steps (bilinear DEM + bulge d1·d2/(2 k R_e)), Bullington's
equivalent edge (ITU-R P.526-15 §4.5) and J(ν) (§4.1), the loss applied where the terrain rises
above the direct ray. The reference runs on a random sample of the cells in range (its time is
extrapolated to all of them) and checks our power there (largest difference, dB). The two are
timed alternately, ``--repeat`` times each (min and median reported). For context the site's
viewshed by ``line_of_sight(method="planes")`` (GDAL's algorithm; see ``bench_terrain.py``) is
timed too: a viewshed answers "visible or not", the coverage engine also prices every
obstructed path.

Then a network of ``--towers`` sites (one ``best_server`` call, as the coverage stage makes it)
is timed on 1 and on 2 numba threads, alternately, ``--repeat`` times each. Other processes on
the machine take cores too: a pure-compute numba loop is timed the same way beside it, so that
the kernel's scaling can be read against what the machine gave at that moment.

Default: the hills of ``bench_terrain.py`` (200 m relief) on 500 x 500 cells of 30 m, rounded to
float32 as a DEM read from a GeoTIFF is (``--dem-dtype float64`` keeps all digits; the kernel
then reads float64), 3 sites with a 30 m mast at 900 MHz, EIRP 60 dBm, receivers at 1.5 m,
radius 7 km; the network has 12 such sites.

    .venv/bin/python benchmarks/bench_coverage_terrain.py [--size 500] [--res 30]
        [--radius 7] [--sites 3] [--sample 4000] [--repeat 3] [--towers 12]
        [--dem-dtype float32]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
from shapely.geometry import Point

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_terrain import numpy_bilinear, synthetic_dem

from telcoplan.coverage import path_loss
from telcoplan.coverage.bestserver import best_server
from telcoplan.coverage.terrain import EARTH_RADIUS_M, K_FACTOR, line_of_sight
from telcoplan.gis.grid import GridSpec

CURV = 1.0 / (2.0 * K_FACTOR * EARTH_RADIUS_M)
FREQ_MHZ, MAST_M, EIRP_DBM, H_RX = 900.0, 30.0, 60.0, 1.5


def knife_edge(nu: np.ndarray) -> np.ndarray:
    """J(ν) of ITU-R P.526-15 eq. (31), 0 for ν ≤ −0.78."""
    v = nu - 0.1
    with np.errstate(invalid="ignore"):
        j = 6.9 + 20.0 * np.log10(np.sqrt(v * v + 1.0) + v)
    return np.where(nu > -0.78, j, 0.0)


def reference_power(dem, grid, tx, ty, ha, rows, cols, lam):
    """Received power (dBm) at cells (rows, cols): Hata minus Bullington where obstructed."""
    res = grid.resolution
    rx, ry = grid.x_centres()[cols], grid.y_centres()[rows]
    hb = dem[rows, cols] + H_RX
    d = np.hypot(rx - tx, ry - ty)
    n = np.maximum(np.ceil(d / res - 1e-9), 1).astype(np.int64)
    loss = np.zeros(len(d))
    for start in range(0, len(d), 1000):
        s_ = slice(start, start + 1000)
        dd, nn, hbb = d[s_, None], n[s_, None], hb[s_, None]
        i = np.arange(1, int(nn.max()))[None, :]
        ok = i < nn  # interior points only
        f = np.where(ok, i / nn, 0.5)
        s = dd * f  # distance from the antenna (m)
        z = numpy_bilinear(dem, grid, tx + (rx[s_, None] - tx) * f, ty + (ry[s_, None] - ty) * f)
        g = z + s * (dd - s) * CURV
        h = g - (ha + (hbb - ha) * f)  # height above the direct ray
        low = -np.inf
        clearance = np.where(ok, h, low).max(axis=1)
        nu = np.where(ok, h * np.sqrt(2.0 * dd / (lam * s * (dd - s))), low).max(axis=1)
        s_tim = np.where(ok, (g - ha) / s, low).max(axis=1)
        s_rim = np.where(ok, (g - hbb) / (dd - s), low).max(axis=1)
        d1, hb1 = dd[:, 0], hbb[:, 0]
        s_tr = (hb1 - ha) / d1
        los = (s_tim < s_tr) | ~(s_tim + s_rim > 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            d_bp = (hb1 - ha + s_rim * d1) / (s_tim + s_rim)
            h_bp = ha + s_tim * d_bp - (ha * (d1 - d_bp) + hb1 * d_bp) / d1
            nu_b = h_bp * np.sqrt(2.0 * d1 / (lam * d_bp * (d1 - d_bp)))
        j = np.where(los, knife_edge(nu), knife_edge(np.where(los, 0.0, nu_b)))
        loss[s_] = np.where((nn[:, 0] >= 2) & (clearance > 0.0), j, 0.0)
    hata = path_loss(
        "hata", freq_mhz=FREQ_MHZ, distance_km=d / 1000.0, h_tx_m=MAST_M, h_rx_m=H_RX,
        check_distance=False,
    )  # fmt: skip
    return EIRP_DBM - hata - loss


def stats(times: list[float]) -> str:
    """``min / median`` of a list of seconds, in ms."""
    return f"{min(times) * 1000:.0f} / {np.median(times) * 1000:.0f}"


def spin_loop():
    """A pure-compute parallel numba loop: how much a second thread can give at this moment."""
    import numba as nb

    @nb.njit(parallel=True, cache=False)
    def spin(n):
        out = np.zeros(64)
        for k in nb.prange(64):
            x = 0.0
            for i in range(n):
                x += math.sqrt(i + k)
            out[k] = x
        return out.sum()

    spin(10)
    return spin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=500, help="cells per side")
    ap.add_argument("--res", type=float, default=30.0, help="cell size (m)")
    ap.add_argument("--radius", type=float, default=7.0, help="site radius (km)")
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--sample", type=int, default=4000, help="cells the reference evaluates")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each side (min/median)")
    ap.add_argument("--towers", type=int, default=12, help="sites of the thread-scaling network")
    ap.add_argument("--dem-dtype", choices=("float32", "float64"), default="float32")
    args = ap.parse_args()
    import numba

    side = args.size * args.res
    x0 = round(800_000 / args.res) * args.res
    y0 = round(1_750_000 / args.res) * args.res
    grid = GridSpec.from_bounds((x0, y0, x0 + side, y0 + side), args.res, "EPSG:32649")
    dem = synthetic_dem(grid, 200.0).astype(args.dem_dtype).astype(np.float64)
    radius = args.radius * 1000.0
    lam = 299_792_458.0 / (FREQ_MHZ * 1e6)
    rng = np.random.default_rng(3)
    print(
        f"DEM {grid.width}x{grid.height} cells of {args.res:g} m (200 m relief, "
        f"{args.dem_dtype}); Hata {FREQ_MHZ:g} MHz, mast {MAST_M:g} m, receivers {H_RX:g} m, "
        f"Bullington, R = {args.radius:g} km; reference on {args.sample} random cells in range "
        f"per site; {args.repeat} interleaved runs of each side, min / median; "
        f"{numba.get_num_threads()} numba threads"
    )

    def site(xs, ys):
        k = len(xs)
        return gpd.GeoDataFrame(
            {"site_id": [f"S{i}" for i in range(k)], "operator": ["A"] * k,
             "technology": ["2G"] * k, "frequency_mhz": [FREQ_MHZ] * k, "height_m": [MAST_M] * k,
             "eirp_dbm": [EIRP_DBM] * k},
            geometry=[Point(x, y) for x, y in zip(xs, ys, strict=True)], crs=grid.crs,
        )  # fmt: skip

    # warm-up (JIT compile or cache load)
    warm = site([x0 + side / 2], [y0 + side / 2])
    best_server(warm, grid, dem=dem, max_radius_km=0.5, validity="ignore")
    line_of_sight(dem, grid, x0 + side / 2, y0 + side / 2, MAST_M, radius_m=500.0, method="planes")
    print(
        f"{'site (row, col)':>16} {'cells':>7} {'hidden':>7} {'ours ms':>13} {'numpy ms':>13} "
        f"{'ratio':>6} {'max |dB|':>9} {'viewshed ms':>12}"
    )
    ratios, diffs = [], []
    xs, ys = grid.cell_centres()
    for k in range(args.sites):
        row = args.size // 2 if k == 0 else int(rng.integers(args.size // 4, 3 * args.size // 4))
        col = args.size // 2 if k == 0 else int(rng.integers(args.size // 4, 3 * args.size // 4))
        tx, ty = float(grid.x_centres()[col]), float(grid.y_centres()[row])
        inside = (xs - tx) ** 2 + (ys - ty) ** 2 <= radius * radius
        ha = float(dem[row, col]) + MAST_M  # the kernel's antenna: ground of its cell + mast
        ours, numpy_times, view = [], [], []
        for _ in range(args.repeat):  # interleaved: ours, the reference, the viewshed
            t0 = time.perf_counter()
            sig = best_server(
                site([tx], [ty]), grid, dem=dem, max_radius_km=args.radius, validity="ignore"
            )
            ours.append(time.perf_counter() - t0)
            power = sig.power_dbm[0]
            rows, cols = np.nonzero(inside & np.isfinite(power))
            pick = rng.choice(len(rows), min(args.sample, len(rows)), replace=False)
            t0 = time.perf_counter()
            ref = reference_power(dem, grid, tx, ty, ha, rows[pick], cols[pick], lam)
            numpy_times.append((time.perf_counter() - t0) * len(rows) / len(pick))
            diffs.append(float(np.max(np.abs(power[rows[pick], cols[pick]] - ref))))
            t0 = time.perf_counter()
            visible = line_of_sight(dem, grid, tx, ty, MAST_M, radius_m=radius, method="planes")
            view.append(time.perf_counter() - t0)
        ratio = float(np.median(numpy_times) / np.median(ours))
        ratios.append(ratio)
        print(
            f"{f'({row}, {col})':>16} {int(inside.sum()):>7} "
            f"{int((inside & ~visible).sum()):>7} {stats(ours):>13} {stats(numpy_times):>13} "
            f"{ratio:>5.1f}x {max(diffs[-args.repeat :]):>9.4f} {stats(view):>12}"
        )
    print(
        f"numpy reference / ours (medians): {min(ratios):.1f}–{max(ratios):.1f}x; largest power "
        f"difference {max(diffs):.4f} dB (float32 output: ≤ 0.01 dB expected)"
    )

    # thread scaling: one network, 1 vs 2 threads, alternately; the machine's own scaling beside
    lo, hi = args.size // 8, args.size - args.size // 8
    cells = rng.integers(lo, max(hi, lo + 1), size=(args.towers, 2))
    net = site(grid.x_centres()[cells[:, 1]], grid.y_centres()[cells[:, 0]])
    threads = [t for t in (1, 2) if t <= numba.config.NUMBA_NUM_THREADS]
    spin = spin_loop()
    times = {t: [] for t in threads}
    spins = {t: [] for t in threads}
    before = numba.get_num_threads()
    try:
        for _ in range(args.repeat):
            for t in threads:
                numba.set_num_threads(t)
                t0 = time.perf_counter()
                best_server(net, grid, dem=dem, max_radius_km=args.radius, validity="ignore")
                times[t].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                spin(200_000 * max(1, args.size // 50))
                spins[t].append(time.perf_counter() - t0)
    finally:
        numba.set_num_threads(before)
    print(
        f"network of {args.towers} sites (one best_server call), ms min / median: "
        + ", ".join(f"{t} thread{'s' * (t > 1)} {stats(times[t])}" for t in threads)
    )
    if len(threads) == 2:
        print(
            f"thread scaling (median 1 thread / median 2 threads): kernel "
            f"{np.median(times[1]) / np.median(times[2]):.2f}x, pure-compute loop at the same "
            f"time {np.median(spins[1]) / np.median(spins[2]):.2f}x"
        )
    else:
        print("thread scaling: numba has a single thread on this machine")


if __name__ == "__main__":
    main()
