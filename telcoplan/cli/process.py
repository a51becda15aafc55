"""The ``telcoplan`` process: its entry point (:func:`main`), how it collects garbage and how it
ends."""

from __future__ import annotations

__all__ = ["GC_THRESHOLDS", "main"]

#: The cyclic garbage collector's thresholds in the command's process (Python's: 700, 10, 10).
#: A national run holds millions of long-lived objects (layers, a road graph, map features)
#: that each full collection walks: 14 of them took 2.0 s of a 40 s run; with these, one
#: (1.1 s of collecting in all). Cycles are still collected, a few thousand objects later.
GC_THRESHOLDS = (10_000, 10, 10)


def main() -> None:
    """Console-script entry point (the ``telcoplan`` process; :data:`cli` alone for library
    callers and tests).

    The process ends once the command and the exit handlers are done (:func:`os._exit`), without
    tearing the interpreter down object by object: ~0.7 s after a national run, which wrote and
    closed every file before. Under a profiler or a tracer (``python -m cProfile -m telcoplan``,
    coverage.py) it exits as usual, so that they write what they gathered."""
    import atexit
    import gc
    import os
    import sys

    from telcoplan.cli import cli

    gc.set_threshold(*GC_THRESHOLDS)
    try:
        cli(prog_name="telcoplan")
        code = 0
    except SystemExit as exc:  # click ends every command so
        code = _exit_status(exc.code)
    if _observed():
        sys.exit(code)  # the profiler's or tracer's own code runs after this
    atexit._run_exitfuncs()  # logging's flush, temporary files' clean-up, …
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (| head): nothing more can be said
            code = code or 1
    os._exit(code)


def _exit_status(code: object) -> int:
    """The status :class:`SystemExit` gives the system for ``code`` (printed if it is text)."""
    import sys

    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _observed() -> bool:
    """Whether a profiler or tracer watches the process: ``sys.setprofile``/``sys.settrace``
    (cProfile and coverage.py up to Python 3.11), or a :mod:`sys.monitoring` tool (3.12+)."""
    import sys

    if sys.getprofile() is not None or sys.gettrace() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)
    return monitoring is not None and any(monitoring.get_tool(i) is not None for i in range(6))
