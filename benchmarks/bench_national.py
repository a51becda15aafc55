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

The result is checked too, outside the timed runs: the warm-up run (whose time is not used)
compares, after its computation, the serving power and site of every operator on ``--sample``
random cells with an independent per-cell numpy reference (:func:`reference_at_cells`) and
prints the largest power difference (dB), whether the same cells have a signal and are
covered, and the share of cells served by the same site.

    .venv/bin/python benchmarks/bench_national.py [--sites 100000] [--size 5750] [--repeat 3]
        [--no-scaling] [--sample 500]
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


#: what the checking run prints about its sample
_CHECK = re.compile(r"reference on .*")


def reference_at_cells(towers, grid, rows: np.ndarray, cols: np.ndarray, operators):
    """Serving power (dBm, NaN: no signal) and serving site id per operator at cells
    (``rows``, ``cols``), and the margin, from plain numpy: every tower within its band's
    default radius of the cell centre priced with the public ``path_loss`` (the ``"auto"``
    band rule written out: Okumura-Hata up to 1500 MHz, COST-231 Hata up to 2000 MHz, 3GPP
    UMa above; urban, receiver at 1.5 m), its margin = power − its technology's threshold on
    total power; an operator's serving site is its largest margin, none below −60 dB."""
    import pandas as pd
    from scipy.spatial import cKDTree

    from telcoplan.coverage.bestserver import default_radius_km
    from telcoplan.coverage.propagation import path_loss
    from telcoplan.coverage.thresholds import Thresholds

    cx, cy = grid.x_centres()[cols], grid.y_centres()[rows]
    tx, ty = towers.geometry.x.to_numpy(), towers.geometry.y.to_numpy()
    freq = towers["frequency_mhz"].to_numpy(dtype=float)
    radius_m = default_radius_km(freq) * 1000.0
    near = cKDTree(np.column_stack([tx, ty])).query_ball_point(
        np.column_stack([cx, cy]), r=float(radius_m.max())
    )
    cell = np.repeat(np.arange(len(rows)), [len(n) for n in near])
    tower = np.concatenate([np.asarray(n, dtype=np.int64) for n in near])
    d = np.hypot(cx[cell] - tx[tower], cy[cell] - ty[tower])
    keep = d <= radius_m[tower]
    cell, tower, d = cell[keep], tower[keep], d[keep]
    f = freq[tower]
    loss = np.full(len(d), np.nan)
    for model, sel in (
        ("hata", f <= 1500.0),
        ("cost231", (f > 1500.0) & (f <= 2000.0)),
        ("3gpp-uma", f > 2000.0),
    ):
        loss[sel] = path_loss(
            model,
            freq_mhz=f[sel],
            distance_km=d[sel] / 1000.0,
            h_tx_m=towers["height_m"].to_numpy(dtype=float)[tower[sel]],
            h_rx_m=1.5,
            environment="urban",
            validity="ignore",
        )
    thr = Thresholds()
    tech = towers["technology"].astype(str).to_numpy()
    power_thr = np.array([thr.power_threshold(t) for t in tech])
    power = towers["eirp_dbm"].to_numpy(dtype=float)[tower] - loss
    pairs = pd.DataFrame(
        {
            "cell": cell,
            "op": towers["operator"].astype(str).to_numpy()[tower],
            "tower": tower,
            "power": power,
            "margin": power - power_thr[tower],
        }
    )
    best = pairs.loc[pairs.groupby(["cell", "op"])["margin"].idxmax()]
    best = best[best["margin"] >= -60.0]
    ref_power = np.full((len(operators), len(rows)), np.nan)
    ref_margin = np.full((len(operators), len(rows)), -np.inf)
    ref_site = np.full((len(operators), len(rows)), None, dtype=object)
    ids = towers.index.to_numpy()
    for k, op in enumerate(operators):
        b = best[best["op"] == op]
        c = b["cell"].to_numpy()
        ref_power[k, c] = b["power"].to_numpy()
        ref_margin[k, c] = b["margin"].to_numpy()
        ref_site[k, c] = ids[b["tower"].to_numpy()]
    return ref_power, ref_site, ref_margin


def check_sample(towers, grid, cov, sample: int) -> None:
    """Print our coverage at ``sample`` random cells against :func:`reference_at_cells`."""
    rng = np.random.default_rng(1)
    rows = rng.integers(0, grid.height, sample)
    cols = rng.integers(0, grid.width, sample)
    ref_power, ref_site, ref_margin = reference_at_cells(towers, grid, rows, cols, cov.operators)
    ours = np.asarray(cov.power_dbm[:, rows, cols], dtype=float)
    server = cov.server[:, rows, cols]
    ids = np.asarray(cov.site_ids, dtype=object)
    site = np.where(server >= 0, ids[np.maximum(server, 0)], None)
    signal = np.isfinite(ref_power)
    same_signal = bool(np.array_equal(signal, np.isfinite(ours)))
    both = signal & np.isfinite(ours)
    largest = float(np.abs(ours[both] - ref_power[both]).max()) if both.any() else float("nan")
    same_site = float((site[both] == ref_site[both]).mean()) if both.any() else float("nan")
    same_covered = bool(np.array_equal(cov.covered[:, rows, cols], ref_margin >= 0.0))
    print(
        f"reference on {sample} random cells x {len(cov.operators)} operators "
        f"({int(signal.sum())} with a signal, {int((ref_margin >= 0.0).sum())} covered): same "
        f"cells with a signal: {same_signal}; "
        f"same covered: {same_covered}; largest power difference {largest:.4f} dB; "
        f"same serving site on {same_site:.2%}"
    )


def run_once(sites: int, size: int, sample: int = 0) -> None:
    """Generate ``sites`` sites on a ``size`` x ``size`` grid, compute their coverage, print the
    time and this process's peak resident memory; with ``sample``, then check the result on
    that many cells (:func:`check_sample`, after the time and the memory are taken)."""
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
    if sample:
        check_sample(towers, grid, cov, sample)


def run_child(sites: int, size: int, sample: int = 0) -> tuple[float, float]:
    """:func:`run_once` in a fresh process: (computation time s, peak memory GB); with
    ``sample``, the check's line is printed here."""
    cmd = [sys.executable, __file__, "--once", "--sites", str(sites), "--size", str(size)]
    cmd += ["--sample", str(sample)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the run with {sites} sites failed:\n{out.stderr[-3000:]}")
    found = _RESULT.search(out.stdout)
    if found is None:
        raise SystemExit(f"the run with {sites} sites printed no result:\n{out.stdout[-3000:]}")
    if sample:
        check = _CHECK.search(out.stdout)
        if check is None:
            raise SystemExit(f"the checking run printed no check:\n{out.stdout[-3000:]}")
        print(f"  {check.group(0)}")
    return float(found.group(1)), float(found.group(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=5750)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions per side")
    ap.add_argument("--no-scaling", action="store_true", help="skip the runs with twice the sites")
    ap.add_argument(
        "--sample",
        type=int,
        default=500,
        help="cells the warm-up run checks against the numpy reference (0: no check)",
    )
    ap.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.once:
        run_once(args.sites, args.size, args.sample)
        return
    n = args.sites
    sides = {"1x": n} if args.no_scaling else {"1x": n, "2x": 2 * n}
    print(
        f"{n} sites on {args.size} x {args.size} = {args.size**2 / 1e6:.1f} M cells of 100 m, "
        f"no terrain; each run a fresh process; {args.repeat} interleaved repetitions after a "
        "warm-up"
    )
    # warm-up (numba's cache, the OS file cache), not timed: it checks the result
    run_child(n, args.size, args.sample)
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
