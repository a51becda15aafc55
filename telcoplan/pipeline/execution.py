"""Where a run's tiled work goes: this process, a local Dask cluster, or an existing one.

``telcoplan run --workers N`` (or the plan's ``execution: {workers: N}``) starts a local
``distributed`` cluster of N worker processes for the run; ``--scheduler tcp://host:port`` (or
``execution: {scheduler: …}``) sends the work to an existing cluster; by default everything runs
in this process. The stages that work tile by tile (coverage with its population tables, gaps)
ask their :class:`~telcoplan.pipeline.stages._base.Staging` for the client; the cluster is
started, or reached, only then, so a re-run whose stages are all kept starts nothing. Results are
the same wherever the work runs (rasters bit for bit, sums to 1e-9 relative).

``distributed`` is imported only when a cluster is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from telcoplan.errors import ClusterError
from telcoplan.pipeline.model import Execution

__all__ = ["SCHEDULER_SCHEMES", "Cluster", "cluster_errors", "resolve", "scheduler_problem"]

log = logging.getLogger(__name__)

#: Address schemes of a Dask scheduler telcoplan connects to.
SCHEDULER_SCHEMES = ("tcp", "tls")
#: Seconds to wait for a scheduler to answer, and for a cluster to have a worker.
CONNECT_TIMEOUT_S = 10.0
WORKERS_TIMEOUT_S = 60.0
#: Times a local cluster is started before giving up.
START_ATTEMPTS = 2


def scheduler_problem(address: object) -> str | None:
    """What is wrong with a scheduler address (None: nothing): ``tcp://host:port``."""
    example = "give it as tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786"
    if not isinstance(address, str) or not address.strip():
        return f"{address!r} is not an address; {example}"
    parts = urlsplit(address.strip())
    if parts.scheme not in SCHEDULER_SCHEMES:
        return f"{address!r} has no tcp:// or tls:// scheme; {example}"
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        return f"{address!r} is not HOST:PORT; {example}"
    return None


def resolve(
    plan: Execution, *, workers: int | None = None, scheduler: str | None = None
) -> Execution:
    """The run's execution: the command line's ``workers`` / ``scheduler`` when given (either
    replaces what the plan says), else the plan's."""
    if workers is not None and scheduler is not None:
        raise ClusterError(
            "give --workers (a local cluster started for the run) or --scheduler (an existing "
            "cluster), not both"
        )
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ClusterError(f"--workers must be a whole number of processes ≥ 1, got {workers!r}")
    if scheduler is not None and (problem := scheduler_problem(scheduler)):
        raise ClusterError(f"--scheduler: {problem}")
    if workers is not None or scheduler is not None:
        return Execution(workers=workers, scheduler=scheduler)
    return plan


class Cluster:
    """The run's Dask client, started (or connected) when first asked for, once; closed by
    :meth:`close` (or at the end of a ``with`` block), with the local cluster it started."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self._lock = threading.Lock()
        self._client: Any = None
        self._local: Any = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def started(self) -> bool:
        return self._client is not None

    def client(self) -> Any:
        """A ``distributed.Client``; None when the work runs in this process."""
        if self.execution.in_process:
            return None
        with self._lock:
            if self._client is None:
                if self.execution.scheduler is not None:
                    self._client = _connect(self.execution.scheduler)
                else:
                    self._local, self._client = _start_local(int(self.execution.workers or 1))
            return self._client

    def close(self) -> None:
        with self._lock:
            client, local = self._client, self._local
            self._client = self._local = None
        with warnings.catch_warnings():  # closing may warn of workers already gone
            warnings.simplefilter("ignore")
            for thing in (client, local):
                if thing is not None:
                    with contextlib.suppress(Exception):
                        thing.close()


def _start_local(n: int) -> tuple[Any, Any]:
    """A local cluster of ``n`` worker processes sharing this machine's cores, and its client."""
    import distributed

    threads = max(1, (os.cpu_count() or 1) // n)
    log.info(
        "dask: starting a local cluster of %d worker process%s (%d thread%s each)",
        n,
        "es" * (n > 1),
        threads,
        "s" * (threads > 1),
    )
    for attempt in range(START_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # start-up notes on ports and scratch folders
                warnings.simplefilter("ignore")
                cluster = distributed.LocalCluster(
                    n_workers=n,
                    threads_per_worker=threads,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=logging.WARNING,
                )
                return cluster, distributed.Client(cluster)
        except Exception as exc:  # e.g. a worker process killed while it starts
            if attempt + 1 < START_ATTEMPTS:
                log.warning("dask: the local cluster did not start (%s); trying again", exc)
                continue
            raise ClusterError(
                f"could not start a local Dask cluster of {n} workers ({type(exc).__name__}: "
                f"{exc}); run without --workers to compute in this process"
            ) from None
    raise AssertionError("unreachable")


def _connect(address: str) -> Any:
    """A client of the existing cluster at ``address``, once it has a worker."""
    import distributed

    log.info("dask: connecting to the scheduler at %s", address)
    try:
        with warnings.catch_warnings():  # e.g. version mismatches, reported below if fatal
            warnings.simplefilter("ignore")
            client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc}); check "
            "the address and that `dask scheduler` runs there, or run without --scheduler"
        ) from None
    try:
        client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
    except (OSError, TimeoutError):
        client.close()
        raise ClusterError(
            f"the Dask scheduler at {address} has no worker after {WORKERS_TIMEOUT_S:.0f} s; "
            "start some with `dask worker " + address + "`"
        ) from None
    workers = client.scheduler_info().get("workers", {})
    log.info(
        "dask: %d worker%s, %d thread%s",
        len(workers),
        "s" * (len(workers) != 1),
        sum(int(w.get("nthreads", 0)) for w in workers.values()),
        "s" * (sum(int(w.get("nthreads", 0)) for w in workers.values()) != 1),
    )
    return client


@contextlib.contextmanager
def cluster_errors(what: str) -> Iterator[None]:
    """Report a cluster's failures in ``what`` (a stage) as a :class:`ClusterError`: workers
    that died with the work more often than Dask retries it, a scheduler gone, or any error
    raised inside ``distributed`` itself (e.g. a worker removed while data is sent to it). An
    error of telcoplan's own code on a worker is raised as it is."""
    try:
        yield
    except ClusterError:
        raise
    except Exception as exc:
        import sys

        distributed = sys.modules.get("distributed")
        if distributed is None:
            raise
        lost = (distributed.KilledWorker, distributed.comm.core.CommClosedError)
        if isinstance(exc, lost) or _raised_in_distributed(exc):
            raise ClusterError(
                f"{what}: the Dask cluster lost the work ({type(exc).__name__}: {exc}); its "
                "workers died or the scheduler went away. Nothing was written; run again, "
                "with fewer workers or more memory per worker, or without --workers/--scheduler"
            ) from None
        raise


def _raised_in_distributed(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by Dask's own code (its innermost frame is there)."""
    tb, module = exc.__traceback__, ""
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        tb = tb.tb_next
    return module.startswith(("distributed.", "tornado.", "dask."))
