"""Steiner trees: telcoplan ``steiner_tree`` against networkx's Mehlhorn approximation, in one run.

Speed. Default case: a road-like graph — a jittered 224 x 224 street grid of 100 m blocks (~50k
junctions labelled by (i, j) tuples, like telcoplan's coordinate-labelled road graphs), ~15% of
the street pieces removed (dead ends; primary roads every 8 blocks are kept), the largest
connected component kept — whose edge ``weight`` is the trench cost: length × 45 USD/m
(primary) or 30 USD/m (residential) × a random factor 0.8–1.25 (soil, permits). 200 terminal
junctions are drawn with a fixed seed. Both sides get the same graph and terminals:

- ours: ``telcoplan.backbone.steiner.steiner_tree(G, terminals, weight="weight")``;
- networkx: ``networkx.algorithms.approximation.steiner_tree(G, terminals, method="mehlhorn",
  weight="weight")``.

The two sides are timed interleaved: ``--repeat`` rounds (at least 3), each running both sides
once, networkx first in odd rounds and ours first in even ones, every run after
``gc.collect()``. Printed: each side's min and median, the ratio of the medians, both costs
(both results checked to be trees of G spanning the terminals, ours' ``graph["cost"]`` checked
against the sum of its edge weights), and ours with the local search switched off
(``max_passes=0``: Mehlhorn's construction alone, timed once).

Quality. SteinLib's B and C series (``tests/backbone/data/steinlib_b`` and ``steinlib_c``,
J. E. Beasley's sparse random graphs of 50–100 and 500 nodes, with their known optima): cost
and gap to the optimum per instance for networkx and ours, the mean and worst gaps, and the
total time of each side (the sum over instances of each instance's fastest of 3 interleaved
runs).

``--steinlib b10,c03`` runs those instances only (a quick check of the gaps).

    .venv/bin/python benchmarks/bench_steiner.py [--side 224] [--terminals 200] [--drop 0.15]
        [--seed 0] [--repeat 5] [--max-passes N] [--restarts N] [--skip-steinlib]
        [--steinlib NAMES]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
from networkx.algorithms.approximation import steiner_tree as nx_steiner_tree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from telcoplan.backbone.steiner import steiner_tree  # noqa: E402
from tests.backbone.test_steiner import B_OPTIMA, C_OPTIMA, DATA, read_stp  # noqa: E402


def road_graph(side: int, drop: float, seed: int) -> nx.Graph:
    """A jittered street grid with trench costs (see the module docstring)."""
    rng = np.random.default_rng(seed)
    spacing = 100.0
    jitter = rng.uniform(-20, 20, size=(side, side, 2))
    G = nx.Graph(crs="EPSG:32649")
    for i in range(side):
        for j in range(side):
            G.add_node((i, j), x=i * spacing + jitter[i, j, 0], y=j * spacing + jitter[i, j, 1])
    for i in range(side):
        for j in range(side):
            for di, dj in ((1, 0), (0, 1)):
                if i + di >= side or j + dj >= side:
                    continue
                primary = (i % 8 == 0 and dj == 0) or (j % 8 == 0 and di == 0)
                if not primary and rng.random() < drop:
                    continue
                a, b = (i, j), (i + di, j + dj)
                length = float(
                    np.hypot(
                        spacing * di + jitter[i + di, j + dj, 0] - jitter[i, j, 0],
                        spacing * dj + jitter[i + di, j + dj, 1] - jitter[i, j, 1],
                    )
                )
                per_m = 45.0 if primary else 30.0
                G.add_edge(
                    a,
                    b,
                    length_m=length,
                    road_class="primary" if primary else "residential",
                    weight=length * per_m * rng.uniform(0.8, 1.25),
                )
    return G.subgraph(max(nx.connected_components(G), key=len)).copy()


def timed(fn):
    """(seconds, result) of one call started from a clean garbage collector (collected before,
    enabled during the call), the same for both sides."""
    gc.collect()
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def interleaved(rounds: int, first, second):
    """Both functions ``rounds`` times, ``first`` first in even rounds (0, 2, …) and
    ``second`` first in odd ones: (times of first, times of second, last results)."""
    t1: list[float] = []
    t2: list[float] = []
    r1 = r2 = None
    for i in range(rounds):
        if i % 2 == 0:
            dt, r1 = timed(first)
            t1.append(dt)
            dt, r2 = timed(second)
            t2.append(dt)
        else:
            dt, r2 = timed(second)
            t2.append(dt)
            dt, r1 = timed(first)
            t1.append(dt)
    return t1, t2, r1, r2


def check(G: nx.Graph, terminals, T: nx.Graph) -> float:
    assert nx.is_tree(T), "not a tree"
    assert set(terminals) <= set(T), "a terminal is missing"
    assert all(G.has_edge(u, v) for u, v in T.edges)
    return float(T.size(weight="weight"))


def ours_kwargs(args) -> dict:
    kwargs = {}
    if args.max_passes is not None:
        kwargs["max_passes"] = args.max_passes
    if args.restarts is not None:
        kwargs["restarts"] = args.restarts
    return kwargs


def road_case(args) -> None:
    t0 = time.perf_counter()
    G = road_graph(args.side, args.drop, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    nodes = list(G)
    terminals = [nodes[i] for i in sorted(rng.choice(len(nodes), args.terminals, replace=False))]
    print(
        f"road graph: {G.number_of_nodes():,} nodes, {G.number_of_edges():,} edges, "
        f"{len(terminals)} terminals (built in {time.perf_counter() - t0:.1f} s)"
    )
    kwargs = ours_kwargs(args)
    steiner_tree(G, terminals, **kwargs)  # compiles or loads the numba kernels
    rounds = max(3, args.repeat)
    t_nx, t_ours, T_nx, T_ours = interleaved(
        rounds,
        lambda: nx_steiner_tree(G, terminals, method="mehlhorn", weight="weight"),
        lambda: steiner_tree(G, terminals, **kwargs),
    )
    t_mst, T_mst = timed(lambda: steiner_tree(G, terminals, max_passes=0))
    c_nx, c_ours, c_mst = (
        check(G, terminals, T_nx),
        check(G, terminals, T_ours),
        check(G, terminals, T_mst),
    )
    assert abs(c_ours - T_ours.graph["cost"]) <= 1e-9 * c_ours
    label = "ours" + (f" {kwargs}" if kwargs else "")
    print(f"{rounds} interleaved rounds (networkx first in rounds 1, 3, …), seconds:")
    print(f"  {'':24s} {'min':>8s} {'median':>8s}   cost")
    for name, t, c in (("networkx mehlhorn", t_nx, c_nx), (label, t_ours, c_ours)):
        print(
            f"  {name:24s} {min(t):8.3f} {statistics.median(t):8.3f}   {c:,.0f}"
            f"   ({100 * (c / c_nx - 1):+.2f}% vs networkx)"
        )
    print(
        f"  {'ours, construction only':24s} {t_mst:8.3f} {'':8s}   {c_mst:,.0f}"
        f"   ({100 * (c_mst / c_nx - 1):+.2f}% vs networkx)"
    )
    ratio = statistics.median(t_nx) / statistics.median(t_ours)
    print(
        f"  speed ratio networkx / ours: {ratio:.1f}x (medians), {min(t_nx) / min(t_ours):.1f}x (mins)"
    )
    verdict = "met" if ratio >= 10 and c_ours <= c_nx else "NOT met"
    print(f"  target (>= 10x faster by medians, cost <= networkx's): {verdict}")


def steinlib_table(args) -> None:
    print("\nSteinLib B and C series (known optima); times: fastest of 3 interleaved runs, ms")
    print(
        f"  {'inst':5s} {'nodes':>5s} {'edges':>5s} {'terms':>5s} {'opt':>5s} "
        f"{'networkx':>9s} {'gap':>6s} {'ms':>6s} {'ours':>6s} {'gap':>6s} {'ms':>6s}"
    )
    kwargs = ours_kwargs(args)
    gaps: dict[str, list[float]] = {"nx": [], "ours": []}
    total = {"nx": 0.0, "ours": 0.0}
    cases = [("steinlib_b", B_OPTIMA), ("steinlib_c", C_OPTIMA)]
    only = None if args.steinlib is None else set(args.steinlib.split(","))
    known = {name for _, optima in cases for name in optima}
    if only is not None and not only <= known:
        raise SystemExit(
            f"unknown SteinLib instances {sorted(only - known)}; known: {sorted(known)}"
        )
    for folder, optima in cases:
        for name, opt in optima.items():
            if only is not None and name not in only:
                continue
            G, terminals, stated = read_stp(DATA.parent / folder / f"{name}.stp")
            assert stated == opt
            t_nx, t_ours, T_nx, T_ours = interleaved(
                3,
                lambda G=G, terminals=terminals: nx_steiner_tree(G, terminals, method="mehlhorn"),
                lambda G=G, terminals=terminals: steiner_tree(G, terminals, **kwargs),
            )
            c_nx, c = check(G, terminals, T_nx), check(G, terminals, T_ours)
            row = {"nx": (c_nx, min(t_nx)), "ours": (c, min(t_ours))}
            for k, (cost, t) in row.items():
                gaps[k].append(100 * (cost / opt - 1))
                total[k] += t
            print(
                f"  {name:5s} {G.number_of_nodes():5d} {G.number_of_edges():5d} "
                f"{len(terminals):5d} {opt:5d} {c_nx:9.0f} {gaps['nx'][-1]:5.1f}% "
                f"{1000 * min(t_nx):6.1f} {c:6.0f} {gaps['ours'][-1]:5.2f}% {1000 * min(t_ours):6.1f}"
            )
    n = len(gaps["ours"])
    for k, name in (("nx", "networkx"), ("ours", "ours")):
        print(
            f"  {name:8s}: mean gap {statistics.mean(gaps[k]):.2f}%, worst {max(gaps[k]):.2f}%, "
            f"optimal on {sum(g < 1e-9 for g in gaps[k])} of {n}, total {1000 * total[k]:.1f} ms"
        )
    met = (
        statistics.mean(gaps["ours"]) <= 0.5
        and max(gaps["ours"]) <= 3
        and total["ours"] <= total["nx"]
    )
    print(
        f"  target (mean gap <= 0.5%, worst <= 3%, total time <= networkx's): "
        f"{'met' if met else 'NOT met'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=224, help="junctions per side of the grid")
    ap.add_argument("--terminals", type=int, default=200)
    ap.add_argument("--drop", type=float, default=0.15, help="share of side streets removed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--repeat", type=int, default=5, help="interleaved rounds of the speed case (at least 3)"
    )
    ap.add_argument(
        "--max-passes", type=int, default=None, help="local-search passes (default: the library's)"
    )
    ap.add_argument(
        "--restarts", type=int, default=None, help="randomised restarts (default: the library's)"
    )
    ap.add_argument("--skip-steinlib", action="store_true")
    ap.add_argument(
        "--steinlib",
        default=None,
        metavar="NAMES",
        help="comma-separated SteinLib instances to run, e.g. b10,c03 (default: all of B and C)",
    )
    args = ap.parse_args()
    road_case(args)
    if not args.skip_steinlib:
        steinlib_table(args)


if __name__ == "__main__":
    main()
