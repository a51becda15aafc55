"""The demo's numba functions (compiled on first use and cached, like the other kernels)."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["libm_exp"]


@nb.njit(cache=True, nogil=True)
def libm_exp(x: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled by numba
    """``exp`` of each value of a 1-D float64 array, by the C library (numba calls it; numpy's
    AVX-512 exponential is its own)."""
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = math.exp(x[i])
    return out
