"""Running stages at the same time: in threads of this process, or in child processes forked
from it (:class:`Forked`), and when each is safe.

Threads gain little: the map, the report and most of the backbone hold the GIL. A forked child
shares the parent's loaded inputs (copy-on-write: nothing is read or sent again) and has its own
interpreter, so a stage that only reads its inputs and files and returns a small summary (the
backbone, the report: :attr:`~telcoplan.pipeline.stages.Stage.separate`) runs on the other core
while this process computes coverage or the map.

What a forked child must not do: use the thread pools its parent started — GDAL's global pool
(compression, overviews, multi-threaded decoding) and GNU OpenMP's (numba's parallel kernels)
exist in the child without their threads, and a job sent to them never ends. The child therefore
counts one usable core (:func:`telcoplan.gis.cores.limit_cores`: GDAL runs single-threaded
there); the separate stages run no parallel numba kernel. Forks are made from the thread that
schedules the stages, before it starts other work (no lock of a running stage is copied held).
While children run, the run's own thread counts (GDAL's, the map's) leave them a core each
(``run_plan``'s scheduler: :func:`telcoplan.gis.cores.limit_cores`): on 2 cores the national
run's rasters are compressed on one thread beside the backbone's child instead of crowding it
out on two (its child then ends with the gaps stage rather than ≈ 1.5 s after it).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from telcoplan.errors import TelcoplanError
from telcoplan.gis.cores import limit_cores, usable_cores
from telcoplan.pipeline.memory import available_memory, estimate_peak_bytes

__all__ = [
    "Forked",
    "StageProcessError",
    "can_fork",
    "concurrent_ok",
    "run_mode",
    "thread_safe_kernels",
]

log = logging.getLogger(__name__)


class StageProcessError(TelcoplanError, RuntimeError):
    """A stage's child process ended without a result (killed, out of memory)."""


class ChildTraceback(Exception):  # noqa: N818 - a traceback shown as a cause, not an error
    """The traceback of an error raised in a child process (the error's ``__cause__``)."""

    def __str__(self) -> str:
        return self.args[0]


def can_fork() -> bool:
    """Whether stages may run in forked child processes here: on Linux (where ``fork`` is safe
    for the libraries we use; macOS's system frameworks are not) with more than one core."""
    return (
        sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
        and usable_cores() >= 2
    )


def concurrent_ok(cells: int, operators: int) -> bool:
    """Whether to run independent stages at the same time: with more than one core, and when the
    run's estimated peak memory (``cells`` of the grid, ``operators``) leaves room for two
    stages' arrays at once."""
    if usable_cores() < 2:
        return False
    available = available_memory()
    if available is None:
        return True
    if estimate_peak_bytes(cells, operators) > 0.5 * available:
        log.debug("stages run one after the other: the run may need half the memory available")
        return False
    return True


def run_mode(concurrent: bool | None, cells: int, operators: int, in_process: bool) -> str:
    """How a run's stages run (see :func:`telcoplan.pipeline.run_plan`): ``"forks"`` (the
    separate stages in forked child processes, the others in turn in the run's thread),
    ``"threads"`` (independent stages in threads) or ``"sequential"`` (in turn, in the run's
    thread). ``concurrent``: None (forks where possible), True (threads), False (sequential);
    ``in_process``: the run computes in this process (no Dask cluster: no fork beside its
    client's threads)."""
    if concurrent is False or not concurrent_ok(cells, operators):
        return "sequential"
    if concurrent is None:
        return "forks" if in_process and can_fork() else "sequential"
    if not thread_safe_kernels():
        log.debug("stages run one after the other: numba's threading layer is not thread-safe")
        return "sequential"
    return "threads"


def thread_safe_kernels() -> bool:
    """Whether numba's threading layer lets several threads run parallel kernels at once: TBB
    and OpenMP do; the fallback "workqueue" layer (no TBB or OpenMP runtime, or chosen with
    NUMBA_THREADING_LAYER) aborts the process when two threads launch kernels together — the
    kernels release the GIL, so concurrent stages would."""
    import numba

    if numba.config.THREADING_LAYER == "workqueue":
        return False
    for layer in ("numba.np.ufunc.tbbpool", "numba.np.ufunc.omppool"):
        try:
            importlib.import_module(layer)
        except ImportError:
            continue
        return True
    return False


class Forked:
    """``call()`` running in a child process forked now from this one; :meth:`result` waits
    for its value (pickled back) or raises its error (with the child's traceback as
    ``__cause__``); :meth:`cancel` ends it."""

    def __init__(self, call: Callable[[], Any], name: str) -> None:
        self.name = name
        context = multiprocessing.get_context("fork")
        self._conn, sender = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_child,
            args=(sender, call, os.getpid()),
            name=f"telcoplan-{name}",
            daemon=True,
        )
        with warnings.catch_warnings():
            # Python ≥ 3.12 warns of any fork beside other threads (ours wait on children,
            # numba's and OpenBLAS's idle): the child only runs the stage (see the module)
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                self._process.start()
            except BaseException:
                sender.close()
                self._conn.close()
                raise
        sender.close()  # the child's end: EOF here when the child is gone

    def result(self) -> Any:
        try:
            try:
                kind, value, text = self._conn.recv()
            except (EOFError, OSError):
                self._process.join()
                raise StageProcessError(
                    f"the {self.name} stage's process ended without a result (exit code "
                    f"{self._process.exitcode}); run again with --sequential to see why"
                ) from None
        finally:
            self._conn.close()
        self._process.join()
        if kind == "raised":
            value.__cause__ = ChildTraceback(text)
            raise value
        return value

    def cancel(self) -> None:
        """End the child (SIGTERM) and wait for it; nothing if it has ended. (:meth:`result`,
        waiting in another thread, then raises :class:`StageProcessError`.)"""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _child(conn: Any, call: Callable[[], Any], parent: int) -> None:  # pragma: no cover
    """The forked child's body: ``call()`` with one usable core, its value or error sent back;
    it ends with its parent (SIGTERM when the parent dies, even killed)."""
    with contextlib.suppress(OSError, AttributeError):  # Linux's prctl(PR_SET_PDEATHSIG)
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before that
        os._exit(1)
    limit_cores(1)
    try:
        message = ("returned", call(), "")
    except BaseException as exc:  # sent back, raised in the parent
        message = ("raised", _portable(exc), "".join(traceback.format_exception(exc)))
    try:
        conn.send(message)
    except Exception as exc:  # a value that does not pickle
        conn.send(("raised", _portable(exc), "".join(traceback.format_exception(exc))))
    finally:
        conn.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc
