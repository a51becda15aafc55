"""Site selection as a maximal covering problem: lazy greedy, exact MILP (HiGHS), and both.

:func:`maximize_coverage` picks candidate sites so that the demand they cover (persons, say)
is as large as possible within a budget — a number of sites, or money when each candidate has
a cost — optionally with pairs of candidates that may not both be built (zoning spacing). Every
answer carries a proven upper bound on the optimum, so how far it can be from the best plan is
always known.

The input is a boolean matrix ``cover`` (candidates × demand cells): the coverage engine's
per-candidate footprints on the plan grid, flattened. Everything here is array code; HiGHS
(``highspy``) is imported only when a MILP is solved.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

from telcoplan._readonly import readonly_arrays
from telcoplan.errors import PlanError
from telcoplan.sites.choices import METHODS

__all__ = ["METHODS", "CoverageSolution", "maximize_coverage"]

log = logging.getLogger(__name__)

#: ``method="auto"`` solves the MILP outright when the reduced instance (after dropping empty
#: demand and merging identical demand columns) has at most this many cover nonzeros; above it
#: only when the greedy's proven gap exceeds ``_AUTO_GAP``. Measured with
#: benchmarks/bench_sites.py's instances (disc footprints on a grid): HiGHS proves the optimum
#: at up to ~7,000 reduced nonzeros in 0.1–0.4 s, at 13,000–18,000 in 0.7–3 s, at 33,000 in up
#: to 11 s, and not always in 30 s at 60,000.
_AUTO_MILP_NNZ = 10_000
_AUTO_GAP = 0.01
_AUTO_TIME_LIMIT_S = 60.0
#: HiGHS stops when (dual bound − incumbent) ≤ this × dual bound: one person in ten million.
_MIP_REL_GAP = 1e-7
#: Relative slack on the knapsack budget for floating-point sums of costs.
_BUDGET_RTOL = 1e-9


@dataclass(frozen=True, eq=False)
class CoverageSolution:
    """A selection of candidate sites and what it is worth.

    Attributes
    ----------
    selected : numpy.ndarray
        Indices (rows of ``cover``) of the selected candidates, increasing, int64, read-only.
    covered_weight : float
        Total weight of the demand cells covered by at least one selected candidate (persons
        when the weights are persons per cell).
    upper_bound : float
        A proven upper bound on the best covered weight any feasible selection reaches; always
        ≥ ``covered_weight``.
    cost : float
        Sum of the selected candidates' costs, or their number when there are no costs.
    method : str
        What produced the selection: ``"greedy"`` (also for ``"milp"`` and ``"auto"`` when
        the greedy's own bound proves it optimal, or ``"auto"`` judged it close enough),
        ``"milp"`` (proven optimal, within a relative gap of 1e-7), ``"milp (time limit)"`` (the
        best selection found when the time ran out) or ``"milp (<HiGHS status>)"`` for another
        early stop.
    """

    selected: np.ndarray
    covered_weight: float
    upper_bound: float
    cost: float
    method: str

    @property
    def gap(self) -> float:
        """Relative optimality gap, (upper_bound − covered_weight) / upper_bound (0 when the
        bound is 0): the selection is within this fraction of the optimum."""
        if self.upper_bound <= 0:
            return 0.0
        return max(0.0, (self.upper_bound - self.covered_weight) / self.upper_bound)


def maximize_coverage(
    cover,
    weights,
    budget: float,
    *,
    costs=None,
    method: str = "auto",
    time_limit_s: float | None = None,
    conflicts=None,
    seed: int = 0,
) -> CoverageSolution:
    """Select candidate sites that cover the most demand within a budget.

    Parameters
    ----------
    cover
        Boolean scipy.sparse matrix or array (a dense 2-D array is accepted too), candidates ×
        demand cells: ``cover[i, j]`` is true when candidate ``i`` serves demand cell ``j``.
        Numeric matrices must hold only 0 and 1.
    weights
        Demand per cell (e.g. persons), one float ≥ 0 per column of ``cover``.
    budget
        Without ``costs``: the number of candidates to select at most (a whole number ≥ 0).
        With ``costs``: the money available (≥ 0, in the costs' unit).
    costs
        Cost of each candidate (one float ≥ 0 per row of ``cover``, e.g. USD), or None.
    method
        One of :data:`METHODS`. ``"greedy"``: lazy greedy, fast, with an a-posteriori bound.
        ``"milp"``: the exact integer program with HiGHS, warm-started from the greedy; no time
        limit unless ``time_limit_s`` is given. ``"auto"``: the greedy always, then the MILP
        (within ``time_limit_s``, 60 s by default) when the reduced instance is small or the
        greedy's proven gap exceeds 1 %; the better selection and the tighter bound are kept.
    time_limit_s
        Wall-clock limit in seconds for the whole call with ``"milp"`` and ``"auto"`` (the
        greedy is not interrupted; HiGHS checks the clock between its steps, so it may overrun
        by a little); when the MILP is stopped by it, the best selection found so far is
        returned with HiGHS's dual bound as ``upper_bound``. Ignored by ``"greedy"``.
    conflicts
        Optional integer array of shape (m, 2): pairs of candidates that may not both be
        selected (minimum spacing between masts, zoning). Respected by every method.
    seed
        HiGHS's random seed. The greedy breaks ties by the lowest candidate index; results are
        deterministic for a given seed.

    Returns
    -------
    CoverageSolution
        The selection, its covered weight, a proven upper bound on the optimum (``gap`` is
        the relative distance between the two), its cost and the method that produced it.

    Raises
    ------
    PlanError
        (a ``ValueError``) Shapes that do not match, a non-boolean cover, negative or
        non-finite weights or costs, a negative or (without costs) fractional budget, a
        conflict naming a missing candidate or a candidate with itself, an unknown method, a
        time limit ≤ 0.

    Notes
    -----
    The problem is the maximal covering location problem (Church & ReVelle 1974), here with a
    knapsack budget and pairwise conflicts::

        max Σ_j w_j y_j   s.t.  y_j ≤ Σ_{i covers j} x_i,  Σ_i c_i x_i ≤ B,
                                x_a + x_b ≤ 1 for each conflict (a, b),
                                x_i ∈ {0, 1},  0 ≤ y_j ≤ 1

    (y may stay continuous: given binary x, an optimal y is binary.) Its objective
    f(S) = Σ_{j covered by S} w_j is monotone and submodular.

    *Greedy.* Without costs, the candidate with the largest marginal gain f(S ∪ {i}) − f(S) is
    added until ``budget`` sites are chosen or no candidate adds anything: at least (1 − 1/e)
    of the optimum without conflicts (Nemhauser, Wolsey & Fisher 1978). With costs, the
    candidate with the largest gain per cost that still fits; the result is the better of that
    selection and the best single affordable candidate, at least (1 − 1/√e) of the optimum
    (Khuller, Moss & Naor 1999). A candidate conflicting with a selected one is never taken
    (the guarantees then no longer hold). Gains are evaluated lazily (Minoux 1978; CELF,
    Leskovec et al. 2007): by submodularity a gain computed earlier bounds the current one, so
    a priority queue of stale gains is re-evaluated only at its top, one CSR row gather each.

    *Bound of the greedy.* For any selection S and any feasible S*, f(S*) ≤ f(S) +
    Σ_{i ∈ S*} δ_i(S), with δ_i(S) the marginal gains; so f(S) plus the fractional knapsack
    bound max Σ δ_i z_i subject to Σ c_i z_i ≤ B, 0 ≤ z ≤ 1 (the k largest gains without
    costs) bounds the optimum (Leskovec et al. 2007's online bound). It is taken at the final
    selection (exact gains, one pass over the nonzeros) and at the empty one, and capped by the
    total coverable weight.

    *MILP.* Before HiGHS sees it, the instance is reduced: demand with weight 0 or covered by
    no candidate is dropped, demand cells covered by exactly the same candidates are merged
    into one (weights summed; found by hashing the columns, then checked entry by entry),
    candidates costing more than the budget or covering nothing left are fixed at 0. The
    greedy selection is passed as the starting incumbent. HiGHS stops at a relative gap of
    1e-7 or at the time limit; its dual bound becomes ``upper_bound``. Selected candidates
    that add nothing to the coverage are dropped (the cost can only go down).

    References: R. Church and C. ReVelle, "The maximal covering location problem", Papers of
    the Regional Science Association 32, 101–118 (1974); G. L. Nemhauser, L. A. Wolsey and
    M. L. Fisher, "An analysis of approximations for maximizing submodular set functions",
    Mathematical Programming 14, 265–294 (1978); M. Minoux, "Accelerated greedy algorithms for
    maximizing submodular set functions", Optimization Techniques, LNCIS 7, 234–243 (1978);
    S. Khuller, A. Moss and J. Naor, "The budgeted maximum coverage problem", Information
    Processing Letters 70, 39–45 (1999); J. Leskovec, A. Krause, C. Guestrin, C. Faloutsos,
    J. VanBriesen and N. Glance, "Cost-effective outbreak detection in networks", KDD 2007;
    Q. Huangfu and J. A. J. Hall, "Parallelizing the dual revised simplex method",
    Mathematical Programming Computation 10, 119–142 (2018) (HiGHS).
    """
    p = _problem(cover, weights, budget, costs, conflicts, method, time_limit_s, seed)
    t0 = time.perf_counter()
    greedy = _greedy(p)
    t_greedy = time.perf_counter() - t0
    log.info(
        "maximize_coverage: %d candidates, %d demand cells: greedy %.6g (bound %.6g, gap %.3g%%) "
        "in %.3f s",
        p.n,
        p.m,
        greedy.covered_weight,
        greedy.upper_bound,
        100 * greedy.gap,
        t_greedy,
    )
    if method == "greedy" or greedy.gap == 0:
        return greedy
    if method == "auto" and time_limit_s is None:
        time_limit_s = _AUTO_TIME_LIMIT_S
    deadline = None if time_limit_s is None else t0 + time_limit_s
    if deadline is not None and time.perf_counter() >= deadline:
        return greedy
    reduced = _reduce(p)
    if method == "auto" and reduced.nnz > _AUTO_MILP_NNZ and greedy.gap <= _AUTO_GAP:
        log.info(
            "maximize_coverage: greedy gap %.3g%% ≤ %g%% and %d reduced nonzeros: no MILP",
            100 * greedy.gap,
            100 * _AUTO_GAP,
            reduced.nnz,
        )
        return greedy
    return _milp(p, reduced, greedy, deadline)


# --------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class _Problem:
    """The validated instance: ``cover`` canonical CSR bool (n × m), float64 arrays."""

    cover: sp.csr_matrix
    weights: np.ndarray
    costs: np.ndarray  # ones without costs
    budget: float  # k without costs
    cardinality: bool
    conflicts: np.ndarray  # (c, 2) int64
    seed: int

    @property
    def n(self) -> int:
        return self.cover.shape[0]

    @property
    def m(self) -> int:
        return self.cover.shape[1]

    @property
    def budget_tol(self) -> float:
        """The budget with the slack allowed for floating-point sums of costs."""
        if self.cardinality:
            return self.budget
        return self.budget + _BUDGET_RTOL * max(self.budget, 1.0)


def _problem(cover, weights, budget, costs, conflicts, method, time_limit_s, seed) -> _Problem:
    if method not in METHODS:
        raise PlanError(
            f"maximize_coverage: unknown method {method!r}; choose one of {', '.join(METHODS)}"
        )
    if time_limit_s is not None and not (
        isinstance(time_limit_s, numbers.Real) and time_limit_s > 0
    ):
        raise PlanError(
            f"maximize_coverage: time_limit_s must be a number of seconds > 0 or None, "
            f"got {time_limit_s!r}"
        )
    if not isinstance(seed, numbers.Integral):
        raise PlanError(f"maximize_coverage: seed must be an integer, got {seed!r}")
    mat = _cover_matrix(cover)
    n, m = mat.shape
    w = _vector(weights, m, "weights", "column of cover (demand cell)")
    if costs is None:
        if (
            not isinstance(budget, numbers.Real)
            or isinstance(budget, bool)
            or not math.isfinite(budget)
            or budget < 0
            or budget != int(budget)
        ):
            raise PlanError(
                f"maximize_coverage: without costs, budget is the number of sites to select: "
                f"a whole number ≥ 0, got {budget!r}"
            )
        c = np.ones(n)
        b = float(int(budget))
    else:
        c = _vector(costs, n, "costs", "row of cover (candidate)")
        if (
            not isinstance(budget, numbers.Real)
            or isinstance(budget, bool)
            or not math.isfinite(budget)
            or budget < 0
        ):
            raise PlanError(
                f"maximize_coverage: budget must be a finite number ≥ 0 (in the costs' unit), "
                f"got {budget!r}"
            )
        b = float(budget)
    return _Problem(mat, w, c, b, costs is None, _conflict_pairs(conflicts, n), int(seed))


def _cover_matrix(cover) -> sp.csr_matrix:
    if sp.issparse(cover):
        mat = sp.csr_matrix(cover)  # no copy when it already is one
    else:
        arr = np.asarray(cover)
        if arr.ndim != 2:
            raise PlanError(
                f"maximize_coverage: cover must be a 2-D matrix (candidates × demand cells), "
                f"got an array of shape {arr.shape}"
            )
        mat = sp.csr_matrix(arr)
    if mat.ndim != 2:
        raise PlanError("maximize_coverage: cover must be a 2-D matrix (candidates × demand cells)")
    if mat.dtype != np.bool_:
        data = mat.data
        if data.dtype.kind not in "biuf" or not np.isin(data, (0, 1)).all():
            raise PlanError(
                "maximize_coverage: cover must be boolean (candidate i covers demand cell j), "
                f"got {mat.dtype} values other than 0 and 1; threshold it first (e.g. signal ≥ "
                "the planning threshold)"
            )
    if mat.dtype != np.bool_ or not mat.has_canonical_format or not mat.data.all():
        mat = mat.astype(np.bool_, copy=True)
        mat.sum_duplicates()
        mat.eliminate_zeros()
    return mat


def _vector(values, size: int, name: str, per: str) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PlanError(f"maximize_coverage: {name} must be numbers: {exc}") from None
    if v.shape != (size,):
        raise PlanError(
            f"maximize_coverage: {name} has shape {v.shape} but cover needs {size} values, one "
            f"per {per}"
        )
    bad = np.flatnonzero(~np.isfinite(v) | (v < 0))
    if bad.size:
        raise PlanError(
            f"maximize_coverage: {name} must be finite and ≥ 0; {bad.size} are not, first at "
            f"index {bad[0]} ({v[bad[0]]!r})"
        )
    return v


def _conflict_pairs(conflicts, n: int) -> np.ndarray:
    if conflicts is None:
        return np.zeros((0, 2), dtype=np.int64)
    arr = np.asarray(conflicts)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.dtype.kind not in "iu":
        raise PlanError(
            f"maximize_coverage: conflicts must be an integer array of shape (m, 2), pairs of "
            f"candidate indices, got {arr.dtype} of shape {arr.shape}"
        )
    arr = arr.astype(np.int64)
    bad = np.flatnonzero(((arr < 0) | (arr >= n)).any(axis=1) | (arr[:, 0] == arr[:, 1]))
    if bad.size:
        a, b = arr[bad[0]]
        raise PlanError(
            f"maximize_coverage: {bad.size} conflict pair(s) are not two different candidates "
            f"among the {n} rows of cover, first row {bad[0]}: ({a}, {b})"
        )
    return arr


# --------------------------------------------------------------------------------------------
# evaluation and bounds


def _solution(
    p: _Problem, selected, upper_bound: float, method: str, value: float | None = None
) -> CoverageSolution:
    sel = np.unique(np.asarray(selected, dtype=np.int64))
    sel.setflags(write=False)
    if value is None:
        value = _value(p, sel)
    return CoverageSolution(
        selected=sel,
        covered_weight=value,
        upper_bound=max(float(upper_bound), value),
        cost=float(p.costs[sel].sum()),
        method=method,
    )


def _value(p: _Problem, sel: np.ndarray) -> float:
    """f(S): the weight of the demand covered by the candidates ``sel``."""
    cov = p.cover
    mask = _kernels().covered(
        *readonly_arrays((cov.indptr, cov.indices, np.asarray(sel, dtype=np.int64))), p.m
    )
    return float(p.weights[mask].sum())


def _knapsack_bound(
    gains: np.ndarray, costs: np.ndarray, budget: float
) -> tuple[float, np.ndarray]:
    """max Σ gains·z subject to Σ costs·z ≤ budget, 0 ≤ z ≤ 1 (gains, costs ≥ 0), and the
    candidates with z > 0 in the optimal (ratio-greedy) solution."""
    pos = gains > 0
    free = np.flatnonzero(pos & (costs <= 0))
    total = float(gains[free].sum())
    take = np.flatnonzero(pos & (costs > 0) & (costs <= budget))
    if take.size == 0:
        return total, free
    g, c = gains[take], costs[take]
    order = np.argsort(-(g / c), kind="stable")
    g, c, take = g[order], c[order], take[order]
    cum = np.cumsum(c)
    full = int(np.searchsorted(cum, budget, side="right"))
    total += float(g[:full].sum())
    used = full
    if full < g.size:
        room = budget - (cum[full - 1] if full else 0.0)
        if room > 0:
            total += float(g[full]) * room / float(c[full])
            used += 1
    return total, np.concatenate([free, take[:used]])


# --------------------------------------------------------------------------------------------
# lazy greedy: plain Python kernels compiled by numba on first use (cached on disk)


def _greedy(p: _Problem) -> CoverageSolution:
    kern = _kernels()
    cov, w, costs = p.cover, p.weights, p.costs
    budget = p.budget_tol
    gains0, reach = kern.gains(cov.indptr, cov.indices, w)
    coverable = float(w[reach].sum())
    bound = min(coverable, _knapsack_bound(gains0, costs, budget)[0])

    if len(p.conflicts):
        pairs = np.concatenate([p.conflicts, p.conflicts[:, ::-1]])
        nbrs = sp.csr_matrix(
            (np.ones(len(pairs), dtype=bool), (pairs[:, 0], pairs[:, 1])), shape=(p.n, p.n)
        )
        nbr_ptr, nbr_idx = nbrs.indptr.astype(np.int64), nbrs.indices.astype(np.int64)
    else:
        nbr_ptr, nbr_idx = np.zeros(p.n + 1, dtype=np.int64), np.zeros(0, dtype=np.int64)
    # the priority queue starts sorted (a sorted array is a heap): key descending, index ascending
    eligible = np.flatnonzero((gains0 > 0) & (costs <= budget))
    if p.cardinality:
        keys = gains0[eligible]
    else:
        with np.errstate(divide="ignore"):
            keys = np.where(costs[eligible] > 0, gains0[eligible] / costs[eligible], np.inf)
    order = np.lexsort((eligible, -keys))
    steps = int(p.budget) if p.cardinality else p.n
    selected, uncovered = kern.greedy(
        cov.indptr,
        cov.indices,
        w,
        costs,
        float(budget),
        steps,
        not p.cardinality,
        gains0,
        keys[order].astype(np.float64),
        eligible[order].astype(np.int64),
        nbr_ptr,
        nbr_idx,
    )
    value = _value(p, selected)
    exact = kern.row_sums(cov.indptr, cov.indices, uncovered, np.arange(p.n, dtype=np.int64))
    bound = min(bound, value + _knapsack_bound(exact, costs, budget)[0])
    if not p.cardinality and len(gains0):
        single = np.where(costs <= budget, gains0, -1.0)
        best = int(np.argmax(single))
        if single[best] > value:
            return _solution(p, [best], bound, "greedy")
    return _solution(p, selected, bound, "greedy", value)


def _gains_py(indptr, indices, w):  # pragma: no cover - compiled by numba
    """Each row's sum of ``w`` over its columns, and which columns any row has."""
    n = len(indptr) - 1
    gains = np.zeros(n)
    reach = np.zeros(len(w), dtype=np.bool_)
    for i in range(n):
        g = 0.0
        for q in range(indptr[i], indptr[i + 1]):
            j = indices[q]
            g += w[j]
            reach[j] = True
        gains[i] = g
    return gains, reach


def _covered_py(indptr, indices, rows, m):  # pragma: no cover - compiled by numba
    mask = np.zeros(m, dtype=np.bool_)
    for i in rows:
        for q in range(indptr[i], indptr[i + 1]):
            mask[indices[q]] = True
    return mask


def _row_sums_py(indptr, indices, values, rows):  # pragma: no cover - compiled by numba
    out = np.zeros(len(rows))
    for r in range(len(rows)):
        i = rows[r]
        g = 0.0
        for q in range(indptr[i], indptr[i + 1]):
            g += values[indices[q]]
        out[r] = g
    return out


def _greedy_py(
    indptr, indices, w, costs, budget, steps, ratio, gains0, hkey, hidx, nbr_ptr, nbr_idx
):  # pragma: no cover - compiled by numba
    """Lazy greedy (CELF). The heap (``hkey`` descending, ties by ``hidx`` ascending) holds
    each eligible candidate once with the key of its stale gain (the gain, or gain / cost);
    ``fresh_at[i]`` is the step at which ``stale[i]`` was computed. The top is re-evaluated
    until a fresh one comes up, which is then selected. Row sums run in CSR order, as
    scipy's sparse product does, so the gains equal a plain greedy's to the last bit."""
    n = len(indptr) - 1
    uncovered = w.copy()
    stale = gains0.copy()
    fresh_at = np.zeros(n, dtype=np.int64)
    banned = np.zeros(n, dtype=np.bool_)
    selected = np.empty(min(n, steps), dtype=np.int64)
    size = len(hkey)
    step = 0
    spent = 0.0
    while size > 0 and step < steps:
        i = hidx[0]
        remove = False
        select = False
        if banned[i] or spent + costs[i] > budget:
            remove = True  # for good: conflicts stay, the money left only shrinks
        elif fresh_at[i] != step:
            g = 0.0
            for q in range(indptr[i], indptr[i + 1]):
                g += uncovered[indices[q]]
            stale[i] = g
            fresh_at[i] = step
            if g > 0:
                if not ratio:
                    hkey[0] = g
                elif costs[i] > 0:
                    hkey[0] = g / costs[i]
                else:
                    hkey[0] = np.inf
            else:
                remove = True
        else:
            select = True
            remove = True
        if remove:
            size -= 1
            hkey[0] = hkey[size]
            hidx[0] = hidx[size]
        # sift the root down
        pos = 0
        while True:
            child = 2 * pos + 1
            if child >= size:
                break
            right = child + 1
            if right < size and (
                hkey[right] > hkey[child]
                or (hkey[right] == hkey[child] and hidx[right] < hidx[child])
            ):
                child = right
            if hkey[child] > hkey[pos] or (hkey[child] == hkey[pos] and hidx[child] < hidx[pos]):
                hkey[pos], hkey[child] = hkey[child], hkey[pos]
                hidx[pos], hidx[child] = hidx[child], hidx[pos]
                pos = child
            else:
                break
        if select:
            selected[step] = i
            spent += costs[i]
            for q in range(indptr[i], indptr[i + 1]):
                uncovered[indices[q]] = 0.0
            stale[i] = 0.0
            for q in range(nbr_ptr[i], nbr_ptr[i + 1]):
                banned[nbr_idx[q]] = True
            step += 1
    return selected[:step], uncovered


@cache
def _kernels() -> SimpleNamespace:
    import numba as nb

    return SimpleNamespace(
        gains=nb.njit(cache=True)(_gains_py),
        covered=nb.njit(cache=True)(_covered_py),
        row_sums=nb.njit(cache=True)(_row_sums_py),
        greedy=nb.njit(cache=True)(_greedy_py),
    )


# --------------------------------------------------------------------------------------------
# reduction and MILP


@dataclass(frozen=True)
class _Reduced:
    """The instance HiGHS sees: candidates × merged demand, and which candidates may be 1."""

    cover: sp.csr_matrix  # n × m', bool
    weights: np.ndarray  # m'
    usable: np.ndarray  # n, bool

    @property
    def nnz(self) -> int:
        return int(self.cover.nnz)


def _reduce(p: _Problem) -> _Reduced:
    """Drop demand of weight 0 or covered by nobody; merge identical demand columns."""
    csc = p.cover.tocsc()
    csc.sort_indices()
    counts = np.diff(csc.indptr)
    keep = np.flatnonzero((p.weights > 0) & (counts > 0))
    csc = csc[:, keep]
    w = p.weights[keep]
    m = len(keep)
    if m:
        groups = _column_groups(csc)
        n_groups = int(groups.max()) + 1
        merged_w = np.bincount(groups, weights=w, minlength=n_groups)
        first = np.full(n_groups, m, dtype=np.int64)
        np.minimum.at(first, groups, np.arange(m))
        csc = csc[:, first]
        w = merged_w
    csr = csc.tocsr()
    csr.sort_indices()
    usable = (np.diff(csr.indptr) > 0) & (p.costs <= p.budget_tol)
    log.debug(
        "maximize_coverage: reduced %d demand cells to %d, %d of %d nonzeros",
        p.m,
        csr.shape[1],
        csr.nnz,
        p.cover.nnz,
    )
    return _Reduced(csr, w, usable)


def _column_groups(csc: sp.csc_matrix) -> np.ndarray:
    """Group id of each column of ``csc`` (sorted CSC), equal ids for identical columns."""
    m = csc.shape[1]
    counts = np.diff(csc.indptr)
    rng = np.random.default_rng(0x5EED)
    keys = rng.integers(1, 2**62, size=(2, csc.shape[0]), dtype=np.int64).astype(np.uint64)
    col = np.repeat(np.arange(m), counts)
    h = np.zeros((2, m), dtype=np.uint64)
    for r in range(2):  # sums of random 64-bit keys, wrapping: equal for equal columns
        np.add.at(h[r], col, keys[r][csc.indices])
    table = np.stack([counts.astype(np.uint64), h[0], h[1]], axis=1)
    _, groups = np.unique(table, axis=0, return_inverse=True)
    groups = groups.ravel().astype(np.int64)
    # check entry by entry against the group's first column (a hash collision splits it off)
    first = np.full(groups.max() + 1, m, dtype=np.int64)
    np.minimum.at(first, groups, np.arange(m))
    rep = first[groups]
    offset = np.arange(csc.nnz) - np.repeat(csc.indptr[:-1], counts)
    same = csc.indices == csc.indices[csc.indptr[rep][col] + offset]
    bad = np.unique(col[~same])
    if bad.size:
        groups[bad] = groups.max() + 1 + np.arange(bad.size)
    _, groups = np.unique(groups, return_inverse=True)
    return groups.ravel()


@cache
def _solver_class():
    import highspy

    class _QuietHighs(highspy.Highs):
        """highspy.Highs that never prints: ``output_flag`` goes off before the callbacks are
        installed (installing them writes HiGHS's banner to stdout)."""

        def enableCallbacks(self):  # noqa: N802 - highspy's name
            self.setOptionValue("output_flag", False)
            super().enableCallbacks()

    return _QuietHighs, highspy


def _milp(
    p: _Problem, r: _Reduced, greedy: CoverageSolution, deadline: float | None
) -> CoverageSolution:
    solver_class, highspy = _solver_class()
    n, m = r.cover.shape
    # rows: m coverage rows (y_j − Σ_{i covers j} x_i ≤ 0), the budget, the conflicts
    cov_t = r.cover.T.tocsr().astype(np.float64)  # m × n
    rows = [sp.hstack([-cov_t, sp.identity(m, format="csr")], format="csr")]
    budget_row = sp.csr_matrix(np.concatenate([p.costs, np.zeros(m)])[None, :])
    rows.append(budget_row)
    if len(p.conflicts):
        c = len(p.conflicts)
        inc = sp.csr_matrix(
            (np.ones(2 * c), (np.repeat(np.arange(c), 2), p.conflicts.ravel())), shape=(c, n + m)
        )
        rows.append(inc)
    mat = sp.vstack(rows, format="csc")
    mat.sort_indices()
    n_rows = mat.shape[0]
    upper_row = np.zeros(n_rows)
    upper_row[m] = p.budget_tol if not p.cardinality else p.budget
    upper_row[m + 1 :] = 1.0

    lp = highspy.HighsLp()
    lp.num_col_ = n + m
    lp.num_row_ = n_rows
    lp.col_cost_ = np.concatenate([np.zeros(n), r.weights])
    lp.col_lower_ = np.zeros(n + m)
    lp.col_upper_ = np.concatenate([r.usable.astype(np.float64), np.ones(m)])
    lp.row_lower_ = np.full(n_rows, -highspy.kHighsInf)
    lp.row_upper_ = upper_row
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.integrality_ = [highspy.HighsVarType.kInteger] * n + [highspy.HighsVarType.kContinuous] * m
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = n + m
    lp.a_matrix_.num_row_ = n_rows
    lp.a_matrix_.start_ = mat.indptr.astype(np.int32)
    lp.a_matrix_.index_ = mat.indices.astype(np.int32)
    lp.a_matrix_.value_ = mat.data

    h = solver_class()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", _MIP_REL_GAP)
    h.setOptionValue("random_seed", int(p.seed) % 2**31)
    h.passModel(lp)

    # the greedy selection as the starting incumbent
    start = np.zeros(n + m)
    sel = greedy.selected[r.usable[greedy.selected]]
    start[sel] = 1.0
    start[n:] = np.minimum(1.0, (r.cover[sel].sum(axis=0).A1 if len(sel) else np.zeros(m)))
    h.setSolution(n + m, np.arange(n + m, dtype=np.int32), start)

    t0 = time.perf_counter()
    if deadline is not None:  # the time left of the call's limit (HiGHS wants > 0)
        h.setOptionValue("time_limit", max(1e-3, deadline - t0))
    h.run()
    elapsed = time.perf_counter() - t0
    status = h.getModelStatus()
    info = h.getInfo()
    dual = float(info.mip_dual_bound)
    if status == highspy.HighsModelStatus.kOptimal:
        label = "milp"
    elif status == highspy.HighsModelStatus.kTimeLimit:
        label = "milp (time limit)"
    else:
        label = f"milp ({h.modelStatusToString(status).lower()})"
    bound = greedy.upper_bound
    if math.isfinite(dual) and status in (
        highspy.HighsModelStatus.kOptimal,
        highspy.HighsModelStatus.kTimeLimit,
        highspy.HighsModelStatus.kInterrupt,
        highspy.HighsModelStatus.kIterationLimit,
        highspy.HighsModelStatus.kSolutionLimit,
    ):
        bound = min(bound, dual)

    best = greedy
    x = np.asarray(h.getSolution().col_value[:n]) if info.primal_solution_status else None
    if x is not None and len(x) == n:
        chosen = _prune(p, np.flatnonzero(x > 0.5))
        if _feasible(p, chosen):
            candidate = _solution(p, chosen, bound, label)
            if candidate.covered_weight >= greedy.covered_weight:
                best = candidate
        else:
            log.warning("maximize_coverage: HiGHS's selection breaks a constraint; kept greedy")
    log.info(
        "maximize_coverage: MILP (%d candidates × %d merged cells, %d nonzeros) %s in %.2f s: "
        "%.6g, dual bound %.6g, gap %.3g%%",
        n,
        m,
        r.nnz,
        label,
        elapsed,
        best.covered_weight,
        dual,
        100 * float(info.mip_gap) if math.isfinite(info.mip_gap) else math.inf,
    )
    method = best.method if best is not greedy else label
    return CoverageSolution(
        selected=best.selected,
        covered_weight=best.covered_weight,
        upper_bound=max(best.covered_weight, min(bound, best.upper_bound)),
        cost=best.cost,
        method=method,
    )


def _feasible(p: _Problem, sel: np.ndarray) -> bool:
    if p.cardinality:
        if len(sel) > p.budget:
            return False
    elif p.costs[sel].sum() > p.budget_tol:
        return False
    if len(p.conflicts):
        chosen = np.zeros(p.n, dtype=bool)
        chosen[sel] = True
        if (chosen[p.conflicts[:, 0]] & chosen[p.conflicts[:, 1]]).any():
            return False
    return True


def _prune(p: _Problem, sel: np.ndarray) -> np.ndarray:
    """Drop selected candidates whose every positive-weight cell another selected one covers."""
    if len(sel) == 0:
        return sel
    cov = p.cover
    count = np.asarray(cov[sel].sum(axis=0)).ravel()
    keep = []
    for i in sel.tolist():
        cells = cov.indices[cov.indptr[i] : cov.indptr[i + 1]]
        cells = cells[p.weights[cells] > 0]
        if cells.size and (count[cells] < 2).any():
            keep.append(i)
        else:
            count[cells] -= 1
    return np.asarray(keep, dtype=np.int64)
