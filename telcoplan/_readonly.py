"""Read-only views of a compiled kernel's input arrays: one signature per kernel.

numba compiles and caches a kernel once per signature, and an array argument's type says
whether the array is read-only. The same towers gave either: a float64 column of a DataFrame
comes out of ``to_numpy()`` read-only (pandas' copy-on-write), while a column read from
integers, or filled in because it is missing, comes out writable; arrays sent to a Dask
worker arrive writable. Each new combination compiled the kernel again on the first run that
met it (the terrain best-server kernel: 40–66 s on a 2-core machine), after ``make install`` had
compiled another. Kernels take their inputs through :func:`readonly_arrays`: always
read-only, never copied.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = ["readonly", "readonly_arrays"]


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (``a`` itself is left as it is; no data is copied)."""
    view = a.view()
    view.flags.writeable = False
    return view


def readonly_arrays(args: Iterable[Any]) -> tuple[Any, ...]:
    """``args`` with every numpy array replaced by its :func:`readonly` view; the other
    values (numbers, flags) as they are."""
    return tuple(readonly(a) if isinstance(a, np.ndarray) else a for a in args)
