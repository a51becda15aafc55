"""The cores this process may use (its CPU affinity on Linux), for thread counts."""

from __future__ import annotations

import os

__all__ = ["cores_limit", "limit_cores", "usable_cores"]

#: At most this many cores (:func:`limit_cores`); None: as many as the process may use.
_LIMIT: int | None = None


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity where the system has one, else all, at
    most the :func:`limit_cores`; ≥ 1."""
    try:
        n = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        n = max(1, os.cpu_count() or 1)
    return n if _LIMIT is None else min(n, _LIMIT)


def limit_cores(n: int | None) -> None:
    """From now on this process uses at most ``n`` cores for its thread counts (GDAL's block
    compression and decoding, the map's threads; None: no limit): what a child process forked
    from a run does, since its parent's thread pools (GDAL's) are not usable there, and what
    the run does while such children use some of the cores."""
    global _LIMIT
    _LIMIT = None if n is None else max(1, int(n))


def cores_limit() -> int | None:
    """The limit :func:`limit_cores` set (None: none)."""
    return _LIMIT
