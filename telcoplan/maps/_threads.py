"""Run independent pieces of the map's work in threads.

The work handed over here spends its time in C code that releases the GIL (GEOS through
shapely, GDAL through rasterio, zlib), so on a machine of several cores the pieces run side
by side. Results come back in the order of the items: the page is the same whatever the
number of threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from telcoplan.gis.cores import usable_cores

__all__ = ["balanced_chunks", "in_background", "map_chunks", "one_after_another", "thread_map"]

_T = TypeVar("_T")
_R = TypeVar("_R")


def thread_map(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """``[fn(x) for x in items]``, computed in up to one thread per core."""
    todo = list(items)
    n = min(len(todo), usable_cores())
    if n <= 1:
        return [fn(x) for x in todo]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="telcoplan-map") as pool:
        return list(pool.map(fn, todo))


def balanced_chunks(weights: np.ndarray, chunks: int | None = None) -> list[np.ndarray]:
    """Positions ``0 … len(weights) - 1`` split into at most ``chunks`` (default: one per
    core) non-empty sets of about equal total weight (heaviest first, each to the lightest
    set), each sorted."""
    weights = np.asarray(weights, dtype=float)
    chunks = min(len(weights), chunks or usable_cores())
    if chunks <= 1:
        return [np.arange(len(weights))] if len(weights) else []
    load = np.zeros(chunks)
    owner = np.empty(len(weights), dtype=np.intp)
    for k in np.argsort(-weights, kind="stable").tolist():
        owner[k] = b = int(np.argmin(load))
        load[b] += weights[k]
    return [np.flatnonzero(owner == b) for b in range(chunks) if (owner == b).any()]


def map_chunks(
    fn: Callable[[np.ndarray], np.ndarray], items: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """``fn(items)`` for a vectorised ``fn`` (one result per item, an object array), computed
    on :func:`balanced_chunks` of ``items`` in threads."""
    items = np.asarray(items, dtype=object)
    out = np.empty(len(items), dtype=object)
    picks = balanced_chunks(weights)
    for pick, done in zip(picks, thread_map(lambda p: fn(items[p]), picks), strict=True):
        out[pick] = done
    return out


def in_background(fn: Callable[[], _R]) -> Future[_R]:
    """Start ``fn()`` in a thread of its own; its result (or exception) is the future's."""
    return one_after_another([fn])[0]


def one_after_another(fns: Sequence[Callable[[], _R]]) -> list[Future[_R]]:
    """Start ``fn()`` for each of ``fns`` in one thread of their own, one after the other in
    their order; each result (or exception) is its future's."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="telcoplan-map")
    try:
        return [pool.submit(fn) for fn in fns]
    finally:
        pool.shutdown(wait=False)  # the thread ends with the last fn
