"""Site selection: telcoplan's lazy greedy and ``method="auto"`` against their peers, in one run.

Instance: a square grid of 100 m demand cells (``--side`` 317 → 100,489 cells) holding a
population-like field — a dense city core and a few towns (Gaussian densities with lognormal
noise), empty sea along one edge, rounded to whole persons — and ``--candidates`` (2,000)
candidate sites, three in four drawn where people live (by population), one in four anywhere
on land, each covering the disc of cells within its radius (0.5–1.5 km, drawn per site: urban
and suburban macro cells), all with a fixed seed. The cover matrix is a boolean CSR matrix,
candidates × cells. The numba kernels are compiled (or loaded from their cache) before timing.

1. **Greedy** with a budget of ``--budget`` sites (default 10 % of the candidates), no costs:
   ``maximize_coverage(method="greedy")`` (lazy, CELF; its a-posteriori bound included) against a
   competently written naive greedy — each round recomputes every marginal gain with one sparse
   matrix-vector product over the uncovered weights and takes the first argmax — interleaved
   over ``--repeat`` rounds. Prints min and median time of each, the speed ratio and whether
   the two selections are identical (they must be: same gains, same tie-breaking); then the
   ratio at the ``--sweep`` budgets (the lazy greedy's cost barely grows with the budget, the
   naive one's is a sparse product per site).
2. **auto vs optimum**, the same budget: ``method="auto"`` (its default 60 s limit) against
   HiGHS's optimum of the same instance (``method="milp"`` with ``--milp-limit`` seconds); prints
   both objective values, bounds, times, auto's gap to HiGHS's value (and to the best proven
   bound, when HiGHS did not prove its optimum within the limit).
3. The same with costs (USD 60k–140k a site; the budget buys about as many average sites).

    .venv/bin/python benchmarks/bench_sites.py [--side 317] [--candidates 2000] [--budget N]
        [--repeat 3] [--seed 0] [--milp-limit 600] [--skip-milp] [--sweep 50 100 400] [--small]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from telcoplan.sites import maximize_coverage  # noqa: E402

CELL_M = 100.0


def instance(side: int, n_candidates: int, seed: int):
    """(cover CSR bool candidates × cells, persons per cell, candidate radii in cells)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64) * CELL_M
    extent = side * CELL_M
    density = 12000 * np.exp(
        -((xx - 0.55 * extent) ** 2 + (yy - 0.5 * extent) ** 2) / (2 * 3000**2)
    )
    for _ in range(6):  # towns
        cx, cy = rng.uniform(0.1, 0.9, 2) * extent
        density += rng.uniform(800, 3000) * np.exp(
            -((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rng.uniform(600, 1500) ** 2)
        )
    density += 30  # scattered rural homes
    density *= rng.lognormal(0.0, 0.6, density.shape)
    sea = xx > 0.85 * extent + 0.05 * extent * np.sin(yy / extent * 6)
    density[sea] = 0.0
    persons = np.round(density * (CELL_M / 1000) ** 2).ravel()  # persons per km² → per cell

    land = np.flatnonzero(~sea.ravel())
    n_pop = (3 * n_candidates) // 4
    p = persons[land] / persons[land].sum()
    where = np.concatenate([rng.choice(land, n_pop, p=p), rng.choice(land, n_candidates - n_pop)])
    rng.shuffle(where)
    radii = rng.uniform(500, 1500, n_candidates) / CELL_M
    rows, cols = [], []
    for i, (cell, r) in enumerate(zip(where.tolist(), radii.tolist(), strict=True)):
        ci, cj = divmod(cell, side)
        ri = int(np.ceil(r))
        di, dj = np.mgrid[-ri : ri + 1, -ri : ri + 1]
        inside = di**2 + dj**2 <= r * r
        ii, jj = ci + di[inside], cj + dj[inside]
        ok = (ii >= 0) & (ii < side) & (jj >= 0) & (jj < side)
        idx = ii[ok] * side + jj[ok]
        rows.append(np.full(idx.size, i))
        cols.append(idx)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    cover = sp.csr_matrix(
        (np.ones(rows.size, dtype=bool), (rows, cols)), shape=(n_candidates, side * side)
    )
    cover.sum_duplicates()
    return cover, persons, radii


def naive_greedy(cover: sp.csr_matrix, weights: np.ndarray, k: int) -> np.ndarray:
    """Plain greedy: every round, all marginal gains by one sparse product; first argmax."""
    A = sp.csr_matrix(
        (np.ones(cover.nnz), cover.indices, cover.indptr), shape=cover.shape, copy=False
    )
    uncovered = weights.copy()
    taken = np.zeros(cover.shape[0], dtype=bool)
    selected = []
    for _ in range(k):
        gains = A @ uncovered
        gains[taken] = -1.0
        i = int(np.argmax(gains))
        if gains[i] <= 0:
            break
        selected.append(i)
        taken[i] = True
        uncovered[A.indices[A.indptr[i] : A.indptr[i + 1]]] = 0.0
    return np.sort(np.asarray(selected, dtype=np.int64))


def timed(fn):
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def greedy_case(cover, persons, k: int, repeat: int) -> None:
    t_lazy, t_naive = [], []
    lazy = naive = None
    for _ in range(repeat):  # interleaved: both sides see the same machine state
        t, naive = timed(lambda: naive_greedy(cover, persons, k))
        t_naive.append(t)
        t, lazy = timed(lambda: maximize_coverage(cover, persons, k, method="greedy"))
        t_lazy.append(t)
    same = np.array_equal(lazy.selected, naive)
    ratio = min(t_naive) / min(t_lazy)
    print(f"1. greedy, budget {k} sites, {repeat} interleaved runs each (min / median):")
    print(
        f"  naive greedy (sparse mat-vec per round) {min(t_naive):8.3f} s / "
        f"{statistics.median(t_naive):.3f} s"
    )
    print(
        f"  lazy greedy (maximize_coverage)         {min(t_lazy):8.3f} s / "
        f"{statistics.median(t_lazy):.3f} s"
    )
    print(f"  speed ratio naive / lazy: {ratio:.1f}x")
    print(
        f"  covered {lazy.covered_weight:,.0f} of {persons.sum():,.0f} persons, "
        f"{len(lazy.selected)} sites; greedy's proven bound {lazy.upper_bound:,.0f} "
        f"(gap {100 * lazy.gap:.2f}%)"
    )
    print(f"  identical selections: {same}")
    print(
        f"  target (>= 20x faster, identical selections): {'met' if ratio >= 20 and same else 'NOT met'}"
    )


def sweep_case(cover, persons, k: int, repeat: int) -> None:
    t_lazy, t_naive = [], []
    for _ in range(repeat):
        t, naive = timed(lambda: naive_greedy(cover, persons, k))
        t_naive.append(t)
        t, lazy = timed(lambda: maximize_coverage(cover, persons, k, method="greedy"))
        t_lazy.append(t)
    print(
        f"  budget {k:4d}: naive {min(t_naive):.3f} s, lazy {min(t_lazy):.4f} s, ratio "
        f"{min(t_naive) / min(t_lazy):5.1f}x, covered {100 * lazy.covered_weight / persons.sum():.1f}%"
        f", identical: {np.array_equal(lazy.selected, naive)}"
    )


def auto_case(cover, persons, k: int, costs, milp_limit: float, label: str) -> None:
    budget = k if costs is None else float(np.round(k * costs.mean()))
    t_auto, auto = timed(lambda: maximize_coverage(cover, persons, budget, costs=costs))
    t_opt, opt = timed(
        lambda: maximize_coverage(
            cover, persons, budget, costs=costs, method="milp", time_limit_s=milp_limit
        )
    )
    best = max(opt.covered_weight, auto.covered_weight)
    bound = min(opt.upper_bound, auto.upper_bound)
    gap = 100 * (best - auto.covered_weight) / best if best else 0.0
    gap_bound = 100 * (bound - auto.covered_weight) / bound if bound else 0.0
    proven = opt.method == "milp" or opt.gap == 0
    print(f"{label}: auto vs HiGHS's optimum (milp, limit {milp_limit:g} s):")
    print(
        f"  auto   {t_auto:8.2f} s   covered {auto.covered_weight:,.0f}   bound "
        f"{auto.upper_bound:,.0f}   proven gap {100 * auto.gap:.3f}%   [{auto.method}]"
    )
    print(
        f"  milp   {t_opt:8.2f} s   covered {opt.covered_weight:,.0f}   bound "
        f"{opt.upper_bound:,.0f}   proven gap {100 * opt.gap:.4f}%   [{opt.method}]"
    )
    what = "the optimum" if proven else "HiGHS's best (optimum not proven)"
    print(
        f"  auto's objective gap to {what}: {gap:.3f}%, to the best proven bound: "
        f"{gap_bound:.3f}% (target <= 1%: {'met' if gap <= 1 else 'NOT met'})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=317, help="demand cells per side of the grid")
    ap.add_argument("--candidates", type=int, default=2000)
    ap.add_argument("--budget", type=int, default=None, help="sites (default: 10%% of candidates)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--milp-limit", type=float, default=600.0, help="seconds for the optimum")
    ap.add_argument("--skip-milp", action="store_true")
    ap.add_argument("--small", action="store_true", help="a tiny case (50 x 50 cells, 80 sites)")
    ap.add_argument(
        "--sweep",
        type=int,
        nargs="*",
        default=[50, 100, 400],
        help="more greedy budgets to time (speed ratio only)",
    )
    args = ap.parse_args()
    if args.small:
        args.side, args.candidates, args.sweep = 50, 80, []
    k = args.budget if args.budget is not None else max(1, args.candidates // 10)

    t0 = time.perf_counter()
    cover, persons, radii = instance(args.side, args.candidates, args.seed)
    print(
        f"instance: {cover.shape[0]:,} candidates x {cover.shape[1]:,} cells, {cover.nnz:,} "
        f"nonzeros, {persons.sum():,.0f} persons (built in {time.perf_counter() - t0:.1f} s)"
    )
    t0 = time.perf_counter()
    small, small_w, _ = instance(30, 20, args.seed)
    maximize_coverage(small, small_w, 2, method="greedy")  # numba: compiled, or loaded from cache
    print(f"numba kernels ready in {time.perf_counter() - t0:.2f} s (once per process, not timed)")
    greedy_case(cover, persons, k, args.repeat)
    for kk in args.sweep:
        sweep_case(cover, persons, kk, args.repeat)
    if not args.skip_milp:
        auto_case(cover, persons, k, None, args.milp_limit, f"2. budget {k} sites")
        rng = np.random.default_rng(args.seed + 1)
        # cost grows with the mast's reach: USD 60k–120k, plus the radius' share
        costs = np.round(
            rng.uniform(60_000, 120_000, len(radii)) + 20_000 * radii / radii.max(), -3
        )
        auto_case(cover, persons, k, costs, args.milp_limit, "3. knapsack budget, costs per site")


if __name__ == "__main__":
    main()
