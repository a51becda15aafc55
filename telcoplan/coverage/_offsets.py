"""The least-squares fit of a calibration's offsets, shared by the fit and its cross-validation.

The correction added to a model's loss at measurement i is

    a + b log10(d_i / 1 km) [+ c_k(i)] [+ u_s(i)],

with one offset c_k per clutter class except the reference class (0 dB) and one intercept offset
u_s per serving site. The global parameters (a, b, c) are ordinary least squares; the site
offsets are a ridge (random-intercept) term: they minimise

    Σ_i (r_i + a + b log10 d_i + c_k(i) + u_s(i))² + λ Σ_s u_s²,

so a site's offset is its mean residual from the common fit shrunk by w_s = n_s / (n_s + λ):
the empirical-Bayes (random-intercept) estimate of a site effect of variance τ² when
λ = σ² / τ² (σ the measurements' scatter), e.g. Gelman & Hill (2007), *Data Analysis Using
Regression and Multilevel/Hierarchical Models*, §12.5. A site with few measurements keeps little
of its own mean; one with many keeps nearly all of it. With the intercept a free, the optimum
has Σ_s u_s = 0: offsets are relative to the common intercept, which takes the w-weighted mean
of the sites' own offsets; a site without measurements (u = 0) gets the common fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Relative singular-value cut-off of the fits: well above rounding, so that distances equal
#: but for float noise count as one distance.
RCOND = 1e-9


@dataclass(frozen=True)
class OffsetDesign:
    """The columns of the correction for n measurements.

    ``x`` (n, p): 1, log10 d and one indicator per clutter class but the reference;
    ``site_codes`` (n,) the position of each measurement's site in ``sites`` (None without
    site offsets).
    """

    x: np.ndarray
    names: tuple[str, ...]
    classes: tuple[str, ...]
    reference: str | None
    site_codes: np.ndarray | None
    sites: tuple[str, ...]

    @property
    def fitted_classes(self) -> tuple[str, ...]:
        """Classes with a column (all but the reference), in column order."""
        return tuple(c for c in self.classes if c != self.reference)


def make_design(
    log_d: np.ndarray,
    labels: np.ndarray | None = None,
    site_keys: np.ndarray | None = None,
) -> OffsetDesign:
    """Design of the correction; the reference class is the most frequent (ties: the first in
    sort order)."""
    n = len(log_d)
    columns = [np.ones(n), np.asarray(log_d, dtype=np.float64)]
    names = ["intercept", "slope"]
    classes: list[str] = []
    reference: str | None = None
    if labels is not None:
        counts = pd.Series(labels).value_counts()
        classes = sorted(counts.index)
        reference = sorted(c for c in classes if counts[c] == counts.max())[0]
        for c in classes:
            if c != reference:
                columns.append((labels == c).astype(np.float64))
                names.append(f"clutter {c!r}")
    codes = None
    sites: list[str] = []
    if site_keys is not None:
        uniq, codes = np.unique(np.asarray(site_keys, dtype=str), return_inverse=True)
        sites = [str(s) for s in uniq]
    return OffsetDesign(
        np.column_stack(columns), tuple(names), tuple(classes), reference, codes, tuple(sites)
    )


def solve(
    design: OffsetDesign,
    target: np.ndarray,
    rows: np.ndarray | None = None,
    shrinkage: float | None = None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(β, u, full rank) minimising ‖X β + Z u − target‖² + λ ‖u‖² over ``rows`` (all if None).

    ``target`` is −r (the correction is added to the loss, so subtracted from the power).
    Without ``shrinkage`` (or without sites) there are no site offsets and ``u`` is empty.
    Sites without a row in ``rows`` get u = 0 (the ridge's prior mean). A rank-deficient X (a
    class or distance the rows do not span) gives the minimum-norm solution and ``False``.

    Notes
    -----
    For given β the best u_s is Σ_{i∈s} e_i / (n_s + λ), e = target − X β; putting it back
    leaves eᵀ M e with M = I − 11ᵀ / (n_s + λ) on each site's block, whose square root is
    I − g_s 11ᵀ / n_s, g_s = 1 − √(λ / (n_s + λ)). So β is the least-squares fit of the rows
    minus g_s times their site's mean — O(n p²), however many sites.
    """
    x = design.x if rows is None else design.x[rows]
    t = np.asarray(target, dtype=np.float64)
    t = t if rows is None else t[rows]
    p = x.shape[1]
    if shrinkage is None or design.site_codes is None:
        beta, _, rank, _ = np.linalg.lstsq(x, t, rcond=RCOND)
        return beta, np.zeros(0), bool(rank == p)
    if not (shrinkage > 0 and np.isfinite(shrinkage)):
        raise ValueError(f"the site-offset shrinkage must be positive, got {shrinkage!r}")
    codes = design.site_codes if rows is None else design.site_codes[rows]
    s = len(design.sites)
    counts = np.bincount(codes, minlength=s).astype(np.float64)
    sum_x = np.zeros((s, p))
    np.add.at(sum_x, codes, x)
    sum_t = np.bincount(codes, weights=t, minlength=s)
    safe = np.maximum(counts, 1.0)
    g = 1.0 - np.sqrt(shrinkage / (counts + shrinkage))
    xt = x - (g / safe)[codes, None] * sum_x[codes]
    tt = t - (g / safe)[codes] * sum_t[codes]
    beta, _, rank, _ = np.linalg.lstsq(xt, tt, rcond=RCOND)
    u = (sum_t - sum_x @ beta) / (counts + shrinkage)
    return beta, u, bool(rank == p)


def correction(
    design: OffsetDesign, beta: np.ndarray, u: np.ndarray, rows: np.ndarray | None = None
) -> np.ndarray:
    """X β (+ u of each row's site) (dB): what the fit adds to the loss of ``rows``."""
    x = design.x if rows is None else design.x[rows]
    out = x @ beta
    if len(u) and design.site_codes is not None:
        codes = design.site_codes if rows is None else design.site_codes[rows]
        out = out + u[codes]
    return out
