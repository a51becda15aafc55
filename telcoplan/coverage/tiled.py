"""Blocks of whole tiles as the tasks of a Dask (``distributed``) cluster.

The best-server kernels compute a grid tile by tile, and every tile alone: its candidate towers
come from buckets of the towers over the whole grid, its cells' coordinates from the whole grid's
transform, and what it reads of the DEM or the clutter from the whole grid's rasters
(:class:`telcoplan.coverage.bestserver.BestServerJob`). A block of whole tiles therefore gives,
on its cells, the bits of the run over the whole grid, wherever it is computed. This module runs
such blocks on a cluster:

- the caller prepares its inputs once for the whole grid (a ``BestServerJob`` and, for the
  coverage stage, the areas' labels and the population) and :func:`map_blocks` sends them
  **once**: when the workers share this machine's files (a local cluster), written to a file
  that each worker maps into memory once and the results written back the same way
  (:mod:`telcoplan.gis.cluster_io`: nothing then lives only in a worker, and a worker killed
  loses nothing but its tasks, which Dask runs again); otherwise scattered to every worker
  (``broadcast=True``); each task names them by a handle or key, so they are not pickled again
  per task;
- the grid is cut into blocks of whole tiles (:func:`block_layout`): several per worker thread,
  so that the cheap blocks (sea, empty land) and the dear ones (cities) even out, and at most
  :data:`MAX_BLOCK_CELLS` cells each, so that a worker's memory stays bounded by a few blocks'
  outputs besides the scattered inputs;
- a task sets numba's thread count to its worker's threads, under a lock of the worker process:
  a worker of N threads runs one kernel at a time on N threads, not N kernels of N threads;
- the results come back as the tasks finish; the caller copies them into the full arrays, and
  the progress (share of the tiles done, time left) is logged every few seconds;
- data goes between the client and the workers directly, one hop, when the client can reach
  them (distributed's default outside a worker routes it through the scheduler: two hops, and
  with a local cluster the scheduler is this process, which then handles every byte twice —
  10x slower here); through the scheduler otherwise, or when the client says so
  (``direct_to_workers=False``).

The DEM, its block maxima and the clutter travel whole (once per worker, like the other inputs)
rather than as windows padded by the largest radius: the profiles of the terrain kernel read the
DEM anywhere within a tower's radius of a tile, a padded window is most of the grid for a block
of a national plan, and the kernels keep one indexing (the full grid's) for every input.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from telcoplan.coverage._progress import Progress
from telcoplan.gis.cluster_io import run_tasks

__all__ = ["CHUNKS_PER_THREAD", "MAX_BLOCK_CELLS", "Block", "block_layout", "map_blocks"]

log = logging.getLogger(__name__)

#: Blocks per worker thread (at least): the tasks even out the tiles' unequal costs.
CHUNKS_PER_THREAD = 4
#: Cells of a block (at most, but for a single tile): 4 M cells are ~100 MB of results for
#: three operators (margin and server per operator, generation).
MAX_BLOCK_CELLS = 1 << 22
_KERNEL_LOCK = threading.Lock()  # one kernel at a time in a worker process

#: A block of tiles: rows ``r0:r1``, columns ``c0:c1`` of the grid.
Block = tuple[int, int, int, int]


def block_layout(shape: tuple[int, int], tile_size: int, n_threads: int) -> list[Block]:
    """Blocks of whole tiles covering a grid of ``shape`` cells, row-major.

    At least :data:`CHUNKS_PER_THREAD` blocks per thread (as far as there are tiles) and at most
    :data:`MAX_BLOCK_CELLS` cells per block: bands of whole tile rows, or on a grid too wide for
    that, runs of tiles within a tile row. The blocks' first row and column are multiples of
    ``tile_size``; the last ones end at the grid's edge.
    """
    height, width = shape
    ts = int(tile_size)
    tile_rows, tile_cols = math.ceil(height / ts), math.ceil(width / ts)
    n_tiles = tile_rows * tile_cols
    if not n_tiles:
        return []
    wanted = max(CHUNKS_PER_THREAD * max(int(n_threads), 1), 1)
    per_block = max(1, min(math.ceil(n_tiles / wanted), MAX_BLOCK_CELLS // (ts * ts)))
    blocks = []
    if per_block >= tile_cols:  # bands of whole tile rows
        rows = per_block // tile_cols
        for tr in range(0, tile_rows, rows):
            blocks.append((tr * ts, min((tr + rows) * ts, height), 0, width))
    else:  # runs of tiles within each tile row
        for tr in range(tile_rows):
            for tc in range(0, tile_cols, per_block):
                blocks.append(
                    (
                        tr * ts,
                        min((tr + 1) * ts, height),
                        tc * ts,
                        min((tc + per_block) * ts, width),
                    )
                )
    return blocks


def map_blocks(
    client: Any,
    data: Any,
    task: Callable[[Any, Block], Any],
    shape: tuple[int, int],
    tile_size: int,
    progress_label: str,
    exchange: Any = "open",
) -> Iterator[tuple[Block, Any]]:
    """Run ``task(data, block)`` on a cluster for every block of :func:`block_layout`; yield
    ``(block, result)`` as the tasks finish (in no particular order).

    Parameters
    ----------
    client
        A ``distributed.Client`` (used through ``nthreads``, ``run``, ``scatter``, ``submit``,
        ``gather`` and ``cancel``). Data goes to and from the workers directly when the client
        can reach them (unless the client was made with ``direct_to_workers=False``), else
        through the scheduler.
    data
        The inputs of every task, written once to a file the workers map (when they share
        this machine's files) or else scattered once to every worker (``broadcast=True``; not
        hashed: one key per call); the tasks receive it by handle or key.
    task
        A module-level function (workers import it by name) computing a block's result from
        ``data``; it runs with numba's thread count set to its worker's threads, one task's
        numba work at a time per worker process.
    shape, tile_size
        The grid's shape (rows, columns) and the kernels' tile size (cells).
    progress_label
        How the progress messages name the computation.
    exchange
        The :class:`~telcoplan.gis.cluster_io.Exchange` the data and the results go through
        (the caller's, which it closes: its tasks may write into its shared arrays), or None to
        scatter; by default (``"open"``) one is opened (and closed) here when the workers share
        this machine's files (:func:`~telcoplan.gis.cluster_io.run_tasks`).

    An error in a task is raised here (the other tasks are cancelled); the data (files or
    scattered) and the tasks are released when the generator ends or is closed.
    """
    threads = _cluster_threads(client)
    blocks = block_layout(shape, tile_size, threads)
    tiles = [
        math.ceil((r1 - r0) / tile_size) * math.ceil((c1 - c0) / tile_size)
        for r0, r1, c0, c1 in blocks
    ]
    n_tiles = sum(tiles)
    progress = Progress(log, progress_label, n_tiles, "tiles")
    log.info(
        "%s: %d tiles in %d blocks on %d worker threads",
        progress_label,
        n_tiles,
        len(blocks),
        threads,
    )
    done = 0
    results = run_tasks(
        client,
        _run_block,
        [(task, block) for block in blocks],
        shared=data,
        exchange=exchange,
        name="telcoplan-tiles",
        label="blocks",
    )  # a scatter tried 3 times, each within cluster_io.SCATTER_TIMEOUT_S (+ its transfer)
    with contextlib.closing(results):
        for i, result in results:
            yield blocks[i], result
            done += tiles[i]
            progress.update(done)


def _cluster_threads(client: Any) -> int:
    """The cluster's worker threads, waiting up to a minute for a first worker."""
    threads = sum(client.nthreads().values())
    if threads:
        return threads
    try:
        client.wait_for_workers(1, timeout=60)
    except TimeoutError as exc:
        address = getattr(getattr(client, "scheduler", None), "address", "the scheduler")
        raise RuntimeError(
            f"the Dask cluster at {address} has no worker after 60 s; start workers "
            f"(`dask worker {address}`) or run with --workers N (a local cluster)"
        ) from exc
    return max(sum(client.nthreads().values()), 1)


def _run_block(data: Any, task: Callable[[Any, Block], Any], block: Block) -> Any:
    """A task on a worker: ``task(data, block)`` with numba's threads set to the worker's
    threads, one at a time per worker process (numba's thread count is per calling thread; the
    lock keeps a worker of N threads from running N kernels of N threads at once)."""
    import numba

    threads = _worker_threads()
    with _KERNEL_LOCK:
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            return task(data, block)
        finally:
            numba.set_num_threads(before)


def _worker_threads() -> int:
    """The threads of the worker running this task (``distributed.get_worker().state.nthreads``),
    at most numba's; outside a worker (a task run in the client), numba's current count."""
    import numba

    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return numba.get_num_threads()
    state = getattr(worker, "state", None)
    n = getattr(state, "nthreads", None) or getattr(worker, "nthreads", None) or 1
    return max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
