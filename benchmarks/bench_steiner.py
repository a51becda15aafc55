"""Steiner trees: telcoplan ``steiner_tree`` against networkx's Mehlhorn approximation, in one run.

Default case: a road-like graph — a jittered 224 x 224 street grid of 100 m blocks (~50k
junctions labelled by (i, j) tuples, like telcoplan's coordinate-labelled road graphs), ~15% of
the street pieces removed (dead ends; primary roads every 8 blocks are kept), the largest
connected component kept — whose edge ``weight`` is the trench cost: length × 45 USD/m
(primary) or 30 USD/m (residential) × a random factor 0.8–1.25 (soil, permits). 200 terminal
junctions are drawn with a fixed seed. Both sides get the same graph and terminals:

- ours: ``telcoplan.backbone.steiner.steiner_tree(G, terminals, weight="weight")``;
- networkx: ``networkx.algorithms.approximation.steiner_tree(G, terminals, method="mehlhorn",
  weight="weight")``.

Prints each side's best time over ``--repeat`` runs (each run starts after ``gc.collect()``, so
a collection of the big graph left pending by earlier runs does not land in it), the speed
ratio, both costs (checking both are trees spanning the terminals), and ours with the local
search switched off
(``max_passes=0``: Mehlhorn's construction alone). Then SteinLib's B series
(``tests/backbone/data/steinlib_b``, known optima): cost and gap per instance for networkx,
our construction alone and ours, and the mean gaps.

    .venv/bin/python benchmarks/bench_steiner.py [--side 224] [--terminals 200] [--drop 0.15]
        [--seed 0] [--repeat 5] [--max-passes N] [--skip-steinlib]
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
from tests.backbone.test_steiner import B_OPTIMA, read_stp  # noqa: E402

STEINLIB = ROOT / "tests" / "backbone" / "data" / "steinlib_b"


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


def best_of(repeat: int, fn):
    """(best seconds, last result) over ``repeat`` calls, each started from a clean garbage
    collector (collected before, enabled during the call), the same for both sides."""
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def check(G: nx.Graph, terminals, T: nx.Graph) -> float:
    assert nx.is_tree(T), "not a tree"
    assert set(terminals) <= set(T), "a terminal is missing"
    assert all(G.has_edge(u, v) for u, v in T.edges)
    return float(T.size(weight="weight"))


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
    kwargs = {} if args.max_passes is None else {"max_passes": args.max_passes}
    t_nx, T_nx = best_of(
        args.repeat,
        lambda: nx_steiner_tree(G, terminals, method="mehlhorn", weight="weight"),
    )
    t_ours, T_ours = best_of(args.repeat, lambda: steiner_tree(G, terminals, **kwargs))
    t_mst, T_mst = best_of(args.repeat, lambda: steiner_tree(G, terminals, max_passes=0))
    c_nx, c_ours, c_mst = (
        check(G, terminals, T_nx),
        check(G, terminals, T_ours),
        check(G, terminals, T_mst),
    )
    assert abs(c_ours - T_ours.graph["cost"]) <= 1e-9 * c_ours
    print(f"best of {args.repeat} runs each:")
    print(f"  networkx mehlhorn      {t_nx:8.3f} s   cost {c_nx:,.0f}")
    print(
        f"  ours{'' if args.max_passes is None else f' (max_passes={args.max_passes})':18s} "
        f"{t_ours:8.3f} s   cost {c_ours:,.0f}   ({100 * (c_ours / c_nx - 1):+.2f}% vs networkx)"
    )
    print(
        f"  ours, construction only {t_mst:5.3f} s   cost {c_mst:,.0f}   "
        f"({100 * (c_mst / c_nx - 1):+.2f}% vs networkx)"
    )
    print(f"  speed ratio networkx / ours: {t_nx / t_ours:.1f}x")
    verdict = "met" if t_nx / t_ours >= 10 and c_ours <= c_nx else "NOT met"
    print(f"  target (>= 10x faster, cost <= networkx's): {verdict}")


def steinlib_table(args) -> None:
    print("\nSteinLib B series (known optima):")
    print(
        f"  {'inst':5s} {'nodes':>5s} {'edges':>5s} {'terms':>5s} {'opt':>5s} "
        f"{'networkx':>9s} {'gap':>6s} {'constr.':>8s} {'gap':>6s} {'ours':>6s} {'gap':>6s} {'ms':>6s}"
    )
    gaps: dict[str, list[float]] = {"nx": [], "mst": [], "ours": []}
    kwargs = {} if args.max_passes is None else {"max_passes": args.max_passes}
    for name, opt in B_OPTIMA.items():
        G, terminals, _ = read_stp(STEINLIB / f"{name}.stp")
        c_nx = nx_steiner_tree(G, terminals, method="mehlhorn").size(weight="weight")
        c_mst = steiner_tree(G, terminals, max_passes=0).graph["cost"]
        t, T = best_of(3, lambda G=G, terminals=terminals: steiner_tree(G, terminals, **kwargs))
        c = T.graph["cost"]
        row = {"nx": c_nx, "mst": c_mst, "ours": c}
        for k, v in row.items():
            gaps[k].append(100 * (v / opt - 1))
        print(
            f"  {name:5s} {G.number_of_nodes():5d} {G.number_of_edges():5d} {len(terminals):5d} "
            f"{opt:5d} {c_nx:9.0f} {gaps['nx'][-1]:5.1f}% {c_mst:8.0f} {gaps['mst'][-1]:5.1f}% "
            f"{c:6.0f} {gaps['ours'][-1]:5.1f}% {1000 * t:6.1f}"
        )
    print(
        f"  mean gap: networkx {statistics.mean(gaps['nx']):.2f}%, construction only "
        f"{statistics.mean(gaps['mst']):.2f}%, ours {statistics.mean(gaps['ours']):.2f}% "
        f"(optimal on {sum(g < 1e-9 for g in gaps['ours'])} of {len(gaps['ours'])}); "
        f"target <= 2%: {'met' if statistics.mean(gaps['ours']) <= 2 else 'NOT met'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=224, help="junctions per side of the grid")
    ap.add_argument("--terminals", type=int, default=200)
    ap.add_argument("--drop", type=float, default=0.15, help="share of side streets removed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=5, help="runs per side (best kept)")
    ap.add_argument(
        "--max-passes", type=int, default=None, help="local-search passes (default: the library's)"
    )
    ap.add_argument("--skip-steinlib", action="store_true")
    args = ap.parse_args()
    road_case(args)
    if not args.skip_steinlib:
        steinlib_table(args)


if __name__ == "__main__":
    main()
