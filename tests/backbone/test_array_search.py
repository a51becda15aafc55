"""The array local search (the one large graphs get) with its vectorised key-path exchange gives
the same trees, edge for edge, as with the per-move exchange it replaced
(``tests/backbone/_reference_search.py``), on seeded road-like grids, random graphs and
SteinLib's C series; and its flat-list helper equals slicing."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from telcoplan.backbone import steiner
from tests.backbone import _reference_search as ref
from tests.backbone.test_steiner import read_stp

DATA = Path(__file__).parent / "data"


def _grid(seed: int) -> tuple[nx.Graph, list]:
    """A road-like grid: integer weights (many ties), some streets missing, a few diagonals."""
    rng = np.random.default_rng(seed)
    side = 12 + 4 * (seed % 4)
    G = nx.grid_2d_graph(side, side)
    for u, v in list(G.edges):
        if rng.random() < 0.15:
            G.remove_edge(u, v)
        else:
            G.edges[u, v]["weight"] = float(rng.integers(1, 6 if seed % 2 else 40))
    nodes = list(G)
    for _ in range(side):
        a, b = rng.choice(len(nodes), 2, replace=False)
        if not G.has_edge(nodes[a], nodes[b]):
            G.add_edge(nodes[a], nodes[b], weight=float(rng.integers(5, 60)))
    comp = sorted(max(nx.connected_components(G), key=len))
    k = int(rng.integers(4, 3 * side))
    return G, [comp[i] for i in rng.choice(len(comp), k, replace=False)]


def _random(seed: int) -> tuple[nx.Graph, list]:
    """A random graph, integer (ties) or real weights."""
    rng = np.random.default_rng(1000 + seed)
    n = 150 + 40 * seed
    G = nx.gnm_random_graph(n, 3 * n, seed=seed)
    for u, v in G.edges:
        G.edges[u, v]["weight"] = float(rng.integers(1, 30)) if seed % 2 else rng.random() * 10
    comp = sorted(max(nx.connected_components(G), key=len))
    return G, [comp[i] for i in rng.choice(len(comp), min(len(comp), 10 + 5 * seed), False)]


def _cases():
    for seed in range(8):
        yield f"grid{seed}", *_grid(seed)
    for seed in range(6):
        yield f"random{seed}", *_random(seed)
    for path in sorted((DATA / "steinlib_c").glob("*.stp")):
        G, terminals, _ = read_stp(path)
        yield path.stem, G, terminals


def _tree(G: nx.Graph, terminals: list, passes: int | None) -> tuple:
    T = steiner.steiner_tree(G, terminals, max_passes=passes)
    return sorted(tuple(sorted(map(repr, e))) for e in T.edges), T.graph["cost"]


@pytest.mark.parametrize("passes", [None, 1])
def test_vectorised_exchange_gives_the_reference_trees(monkeypatch, passes):
    monkeypatch.setattr(steiner, "_COMPILED_LIMIT", 0)  # the array search on every graph
    moves = steiner._MOVES
    reference = (ref.key_path_exchange, *moves[1:])
    assert moves[0] is steiner._key_path_exchange
    applied = []
    real = steiner._apply_exchanges

    def counted(*args):
        out = real(*args)
        applied.append(len(args[4]))
        return out

    monkeypatch.setattr(steiner, "_apply_exchanges", counted)
    differ = []
    for name, G, terminals in _cases():
        got = _tree(G, terminals, passes)
        monkeypatch.setattr(steiner, "_MOVES", reference)
        want = _tree(G, terminals, passes)
        monkeypatch.setattr(steiner, "_MOVES", moves)
        if got != want:
            differ.append(f"{name}: {got[1]} vs {want[1]} (reference)")
    assert not differ, differ
    assert sum(n > 1 for n in applied) >= 5  # batches of several exchanges were compared


def test_take_equals_slicing():
    rng = np.random.default_rng(3)
    for _ in range(50):
        sizes = rng.integers(0, 5, int(rng.integers(0, 12)))
        ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        flat = rng.integers(0, 100, int(ptr[-1])).astype(np.int64)
        items = rng.integers(0, len(sizes), int(rng.integers(0, 8))) if len(sizes) else []
        got, got_ptr = steiner._take(flat, ptr, np.asarray(items, dtype=np.int64))
        lists = [flat[ptr[i] : ptr[i + 1]].tolist() for i in items]
        assert [got[got_ptr[k] : got_ptr[k + 1]].tolist() for k in range(len(lists))] == lists


def test_first_min_is_the_first_least_value_per_key_in_key_order():
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(0, 200))
        key = rng.integers(0, int(rng.integers(1, 40)) * 3, n).astype(np.int64)
        val = rng.integers(0, 5, n).astype(np.float64)
        val[rng.random(n) < 0.1] = np.inf
        order = np.lexsort((val, key))
        first = np.ones(n, dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        assert steiner._first_min(key, val).tolist() == order[first].tolist()
