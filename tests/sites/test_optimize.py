"""maximize_coverage: exact optima by brute force, the greedy's guarantees, proven bounds,
conflicts, the time limit, the reduction, input errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telcoplan.errors import PlanError, TelcoplanError
from telcoplan.sites import METHODS, CoverageSolution, maximize_coverage
from telcoplan.sites.optimize import _Problem, _reduce, _value

EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_instance(seed: int, *, knapsack: bool, conflicts: bool, n_max: int = 10):
    """A small random instance: ≤ n_max candidates, ≤ 24 demand cells, integer weights (some 0),
    integer costs 1–9 (exact sums), a few conflict pairs."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, n_max + 1))
    m = int(rng.integers(1, 25))
    dense = rng.random((n, m)) < rng.uniform(0.1, 0.5)
    w = rng.integers(0, 20, m).astype(float)
    costs = rng.integers(1, 10, n).astype(float) if knapsack else None
    budget = float(rng.integers(0, 25)) if knapsack else int(rng.integers(0, n + 1))
    pairs = None
    if conflicts and n >= 2:
        pairs = np.array(
            [rng.choice(n, 2, replace=False) for _ in range(int(rng.integers(1, n + 1)))]
        )
    return sp.csr_matrix(dense), w, budget, costs, pairs


def brute_force(cover, w, budget, costs=None, conflicts=None) -> float:
    """The optimum by enumerating every subset."""
    dense = cover.toarray().astype(bool)
    n = dense.shape[0]
    best = 0.0
    for r in range(n + 1):
        if costs is None and r > budget:
            break
        for subset in itertools.combinations(range(n), r):
            s = list(subset)
            if costs is not None and costs[s].sum() > budget + 1e-9:
                continue
            if conflicts is not None and any(a in subset and b in subset for a, b in conflicts):
                continue
            best = max(best, float(w[dense[s].any(axis=0)].sum()) if s else 0.0)
    return best


def check_solution(sol: CoverageSolution, cover, w, budget, costs=None, conflicts=None) -> None:
    """Feasible, its figures recomputed independently, a bound above its value."""
    sel = sol.selected
    assert np.all(np.diff(sel) > 0)
    dense = cover.toarray().astype(bool)
    value = float(w[dense[sel].any(axis=0)].sum()) if len(sel) else 0.0
    assert sol.covered_weight == pytest.approx(value, abs=1e-9)
    if costs is None:
        assert len(sel) <= budget
        assert sol.cost == len(sel)
    else:
        assert costs[sel].sum() <= budget + 1e-9
        assert sol.cost == pytest.approx(costs[sel].sum())
    if conflicts is not None:
        chosen = set(sel.tolist())
        assert not any(a in chosen and b in chosen for a, b in conflicts)
    assert sol.upper_bound >= sol.covered_weight
    assert 0 <= sol.gap <= 1


@EXAMPLES
@given(
    seed=st.integers(0, 2**32 - 1),
    knapsack=st.booleans(),
    conflicts=st.booleans(),
)
def test_milp_value_is_the_brute_force_optimum(seed, knapsack, conflicts):
    cover, w, budget, costs, pairs = random_instance(seed, knapsack=knapsack, conflicts=conflicts)
    opt = brute_force(cover, w, budget, costs, pairs)
    sol = maximize_coverage(cover, w, budget, costs=costs, conflicts=pairs, method="milp")
    check_solution(sol, cover, w, budget, costs, pairs)
    assert sol.covered_weight == pytest.approx(opt, rel=1e-7, abs=1e-9)
    assert sol.upper_bound >= opt - 1e-9
    assert sol.method in ("milp", "greedy")  # the greedy when its own bound proves it optimal


@EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), knapsack=st.booleans())
def test_greedy_guarantees_and_bound(seed, knapsack):
    """(1 − 1/e) of the optimum without costs (Nemhauser et al. 1978), (1 − 1/√e) with costs
    (Khuller et al. 1999); the upper bound is above the optimum, hence every feasible value."""
    cover, w, budget, costs, _ = random_instance(seed, knapsack=knapsack, conflicts=False)
    opt = brute_force(cover, w, budget, costs)
    sol = maximize_coverage(cover, w, budget, costs=costs, method="greedy")
    check_solution(sol, cover, w, budget, costs)
    assert sol.method == "greedy"
    ratio = 1 - 1 / math.sqrt(math.e) if knapsack else 1 - 1 / math.e
    assert sol.covered_weight >= ratio * opt - 1e-9
    assert sol.upper_bound >= opt - 1e-9


@EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), knapsack=st.booleans())
def test_conflicts_are_never_violated(seed, knapsack):
    cover, w, budget, costs, pairs = random_instance(seed, knapsack=knapsack, conflicts=True)
    opt = brute_force(cover, w, budget, costs, pairs)
    for method in METHODS:
        sol = maximize_coverage(cover, w, budget, costs=costs, conflicts=pairs, method=method)
        check_solution(sol, cover, w, budget, costs, pairs)
        assert sol.upper_bound >= opt - 1e-9


@EXAMPLES
@given(seed=st.integers(0, 2**32 - 1), knapsack=st.booleans(), conflicts=st.booleans())
def test_auto_is_at_least_the_greedy_and_bounds_the_optimum(seed, knapsack, conflicts):
    cover, w, budget, costs, pairs = random_instance(seed, knapsack=knapsack, conflicts=conflicts)
    opt = brute_force(cover, w, budget, costs, pairs)
    greedy = maximize_coverage(cover, w, budget, costs=costs, conflicts=pairs, method="greedy")
    auto = maximize_coverage(cover, w, budget, costs=costs, conflicts=pairs)
    check_solution(auto, cover, w, budget, costs, pairs)
    assert auto.covered_weight >= greedy.covered_weight
    assert auto.upper_bound <= greedy.upper_bound
    assert opt - 1e-9 <= auto.upper_bound
    # small instances: the MILP runs and proves the optimum
    assert auto.covered_weight == pytest.approx(opt, rel=1e-7, abs=1e-9)


def naive_greedy(cover, w, k):
    """Plain greedy: all marginal gains by one sparse product per round, first argmax."""
    a = cover.astype(float).tocsr()
    uncovered = w.copy()
    taken = np.zeros(a.shape[0], dtype=bool)
    out = []
    for _ in range(k):
        gains = a @ uncovered
        gains[taken] = -1
        i = int(np.argmax(gains))
        if gains[i] <= 0:
            break
        out.append(i)
        taken[i] = True
        uncovered[a[i].indices] = 0.0
    return sorted(out)


@pytest.mark.parametrize("seed", range(5))
def test_lazy_greedy_selects_what_the_plain_greedy_selects(seed):
    """Float weights, many candidates: lazy evaluation changes nothing."""
    rng = np.random.default_rng(seed)
    cover = sp.random(200, 3000, density=0.02, random_state=rng, format="csr").astype(bool)
    w = rng.lognormal(2, 1, 3000)
    sol = maximize_coverage(cover, w, 25, method="greedy")
    assert sol.selected.tolist() == naive_greedy(cover, w, 25)


def test_knapsack_greedy_takes_the_best_single_candidate_when_better():
    """Gain per cost prefers the cheap site (2 per unit) and then cannot afford the big one."""
    cover = sp.csr_matrix(np.array([[1, 0], [0, 1]], dtype=bool))
    w = np.array([2.0, 10.0])
    sol = maximize_coverage(cover, w, 10, costs=np.array([1.0, 10.0]), method="greedy")
    assert sol.selected.tolist() == [1]
    assert sol.covered_weight == 10


def test_time_limit_returns_the_incumbent_with_a_valid_bound():
    rng = np.random.default_rng(7)
    cover = sp.random(150, 2000, density=0.03, random_state=rng, format="csr").astype(bool)
    w = rng.integers(1, 100, 2000).astype(float)
    limited = maximize_coverage(cover, w, 12, method="milp", time_limit_s=0.05)
    assert limited.method == "milp (time limit)"
    check_solution(limited, cover, w, 12)
    greedy = maximize_coverage(cover, w, 12, method="greedy")
    assert limited.covered_weight >= greedy.covered_weight
    assert limited.upper_bound <= greedy.upper_bound
    better = maximize_coverage(cover, w, 12, method="milp", time_limit_s=0.3)
    assert limited.upper_bound >= better.covered_weight  # a bound above a feasible value
    assert better.upper_bound >= better.covered_weight


def test_reduction_merges_identical_columns_and_keeps_the_optimum():
    rng = np.random.default_rng(3)
    base = rng.random((8, 10)) < 0.3
    base[:, 0] = False  # covered by nobody
    w_base = rng.integers(1, 20, 10).astype(float)
    # each column three times, the weight split unevenly; plus zero-weight copies
    reps = np.repeat(np.arange(10), 3)
    split = rng.dirichlet(np.ones(3), 10).ravel()
    cover = sp.csr_matrix(np.hstack([base[:, reps], base]))
    w = np.concatenate([w_base[reps] * split, np.zeros(10)])
    p = _Problem(cover, w, np.ones(8), 3.0, True, np.zeros((0, 2), dtype=np.int64), 0)
    r = _reduce(p)
    distinct = {tuple(col) for col in base[:, 1:].T if col.any()}
    assert r.cover.shape[1] == len(distinct)
    assert r.weights.sum() == pytest.approx(w[cover.toarray().any(axis=0)].sum())
    for subset in itertools.combinations(range(8), 3):
        s = np.array(subset)
        reduced = float(r.weights[r.cover[s].toarray().any(axis=0)].sum())
        assert reduced == pytest.approx(_value(p, s))
    opt = brute_force(sp.csr_matrix(base), w_base, 3)
    sol = maximize_coverage(cover, w, 3, method="milp")
    assert sol.covered_weight == pytest.approx(opt)


def test_milp_drops_sites_that_add_nothing():
    cover = sp.csr_matrix(np.array([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=bool))
    sol = maximize_coverage(cover, np.array([1.0, 2.0, 3.0]), 3, method="milp")
    assert sol.selected.tolist() == [0]
    assert sol.cost == 1
    assert sol.gap == 0


def test_edge_cases_and_dense_input():
    cover = np.array([[True, False], [False, True]])
    w = np.array([3.0, 4.0])
    none = maximize_coverage(cover, w, 0)
    assert none.selected.tolist() == []
    assert none.covered_weight == 0
    assert none.upper_bound == 0
    assert none.gap == 0
    free = maximize_coverage(cover, w, 0.0, costs=np.array([0.0, 5.0]))
    assert free.selected.tolist() == [0]
    empty = maximize_coverage(sp.csr_matrix((0, 2), dtype=bool), w, 3)
    assert empty.selected.tolist() == []
    zero = maximize_coverage(cover, np.zeros(2), 1)
    assert zero.covered_weight == zero.upper_bound == 0
    every = maximize_coverage(cover, w, 5)
    assert every.selected.tolist() == [0, 1]
    assert every.gap == 0


def test_deterministic_and_inputs_unmodified():
    rng = np.random.default_rng(11)
    cover = sp.random(30, 200, density=0.08, random_state=rng, format="csr").astype(bool)
    w = rng.random(200)
    costs = rng.uniform(1, 3, 30)
    before = (cover.copy(), w.copy(), costs.copy())
    pairs = np.array([[0, 1], [2, 3]])
    a = maximize_coverage(cover, w, 10.0, costs=costs, conflicts=pairs, seed=3)
    b = maximize_coverage(cover, w, 10.0, costs=costs, conflicts=pairs, seed=3)
    assert a.selected.tolist() == b.selected.tolist()
    assert a.covered_weight == b.covered_weight
    assert (cover != before[0]).nnz == 0
    assert np.array_equal(w, before[1])
    assert np.array_equal(costs, before[2])
    with pytest.raises(ValueError, match="read-only"):
        a.selected[0] = 5


def test_gap_property():
    sol = CoverageSolution(np.array([0]), 90.0, 100.0, 1.0, "greedy")
    assert sol.gap == pytest.approx(0.1)
    assert CoverageSolution(np.array([], dtype=int), 0.0, 0.0, 0.0, "greedy").gap == 0


def test_methods_registry():
    assert METHODS == ("auto", "greedy", "milp")


COVER = sp.csr_matrix(np.eye(3, 4, dtype=bool))
W = np.ones(4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": np.ones(3)}, "weights has shape"),
        ({"weights": np.array([1.0, -1.0, 0.0, 0.0])}, "finite and ≥ 0"),
        ({"weights": np.array([1.0, np.nan, 0.0, 0.0])}, "finite and ≥ 0"),
        ({"costs": np.ones(4), "budget": 2.0}, "costs has shape"),
        ({"costs": np.array([1.0, -2.0, 1.0]), "budget": 2.0}, "finite and ≥ 0"),
        ({"costs": np.ones(3), "budget": -1.0}, "budget must be a finite number"),
        ({"budget": -1}, "whole number"),
        ({"budget": 1.5}, "whole number"),
        ({"cover": sp.csr_matrix(2 * np.eye(3, 4))}, "must be boolean"),
        ({"cover": np.ones(4, dtype=bool)}, "2-D"),
        ({"conflicts": np.array([[0, 3]])}, "not two different candidates"),
        ({"conflicts": np.array([[1, 1]])}, "not two different candidates"),
        ({"conflicts": np.array([0, 1, 2])}, "shape \\(m, 2\\)"),
        ({"method": "exact"}, "unknown method"),
        ({"time_limit_s": 0}, "time_limit_s"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_input_errors(kwargs, message):
    args = {"cover": COVER, "weights": W, "budget": 1} | kwargs
    with pytest.raises(PlanError, match=message) as err:
        maximize_coverage(args.pop("cover"), args.pop("weights"), args.pop("budget"), **args)
    assert isinstance(err.value, TelcoplanError)
    assert isinstance(err.value, ValueError)
