"""Data between this process and a Dask cluster's workers through files they share.

When the workers of a cluster run on this machine (a local cluster, ``--workers N``) or share
its temporary folder, its inputs and results need not travel through Dask's connections:

- an input is written once to a file of a folder of this process (:meth:`Exchange.put`), and
  every task names it by a small handle (:class:`Stored`); a worker maps the file into memory
  (copy-on-write: the pages are the page cache's, shared by the workers, until written) and
  keeps it for the next tasks (:meth:`Stored.load`);
- a task's result is written by the worker to a file of the same folder (:func:`store`) and
  only its handle goes back; this process maps it (:meth:`Stored.take`);
- or the tasks write their parts of an output straight into an array that this process and
  the workers map shared (:meth:`Exchange.array`, :meth:`SharedArray.open`): no copy at all
  here (a task run again writes the same values again).

Nothing then lives only in a worker's memory: a worker killed at any moment loses no input
(the task that it ran is run again elsewhere, and reads the same file) and the results still
to come are computed again. A scatter, by contrast, keeps the only copies in the workers'
memory, and distributed can wait for ever on a broadcast to a worker killed meanwhile.

The files use pickle's protocol 5 with the arrays' buffers out of band, each aligned to 64
bytes in the file, so that an array is loaded as a view of the mapped file (no copy).

:meth:`Exchange.open` tells whether the workers see this process's files (a probe file read by
every worker through ``client.run``, once per client while its workers stay those that
answered); it returns None when they do not (a cluster on other machines), and the caller then
scatters. The folder is removed when the exchange is closed; one left by a process that was
killed is removed by the next exchange opened on this machine.

:func:`run_tasks` runs a function on the workers over inputs sent either way (files when the
workers share them, else scattered with a hard deadline and tried again), and yields its
results as the tasks finish: the tiled computations of :mod:`telcoplan.coverage.tiled` and
:mod:`telcoplan.gis.polygonize` go through it.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import logging
import mmap
import os
import pickle
import shutil
import struct
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from telcoplan.errors import ClusterError

__all__ = [
    "PROBE_TIMEOUT_S",
    "SCATTER_TIMEOUT_S",
    "Exchange",
    "SharedArray",
    "Stored",
    "run_tasks",
    "store",
    "within",
]

log = logging.getLogger(__name__)

#: Seconds the workers may take to answer the probe.
PROBE_TIMEOUT_S = 30.0
#: Seconds a scatter of the tasks' inputs may take by default (plus their transfer at 20 MB/s
#: per copy): beyond the 30 s the scheduler takes to give up on a dead worker.
SCATTER_TIMEOUT_S = 40.0
_FORGET_TIMEOUT_S = 10.0
_PREFIX = "telcoplan-exchange-"
_MAGIC = b"TPX1"
_HEAD = struct.Struct("<4sQQ")  # magic, pickle length, number of buffers
_ALIGN = 64
_NO_INPUT = object()  # run_tasks: no shared input given
_CACHED = 2  # inputs a worker process keeps mapped (the last ones loaded)
_CACHED_ARRAYS = 16  # shared arrays a worker process keeps mapped


class _Recent:
    """What this process made of the last ``size`` paths it asked for (:meth:`get`), made once
    each while kept; the least recently asked for is let go first. Thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, make: Callable[[str], Any]) -> Any:
        """What ``make(path)`` made, kept from an earlier call or made now (outside the lock:
        two threads asking at once may both make it; both get the one kept)."""
        with self._lock:
            if path in self._kept:
                self._kept.move_to_end(path)
                return self._kept[path]
        value = make(path)
        with self._lock:
            value = self._kept.setdefault(path, value)
            self._kept.move_to_end(path)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return value

    def forget(self, prefix: str) -> None:
        """Let go of what was made of the paths that start with ``prefix``."""
        with self._lock:
            for path in [p for p in self._kept if p.startswith(prefix)]:
                del self._kept[path]

    def paths(self) -> list[str]:
        """The paths kept, the least recently asked for first."""
        with self._lock:
            return list(self._kept)


_inputs = _Recent(_CACHED)
_arrays = _Recent(_CACHED_ARRAYS)
#: The probe's answer per client (:func:`_shares_files`): the workers that gave it, and it.
_probed: weakref.WeakKeyDictionary[Any, tuple[frozenset[str], bool]] = weakref.WeakKeyDictionary()
_probed_lock = threading.Lock()


@dataclass(frozen=True)
class Stored:
    """A handle of an object written to a file of an exchange: what the tasks carry."""

    path: str

    def load(self, cache: bool = False) -> Any:
        """The object, mapped from its file; with ``cache`` kept for the next calls of this
        process (the last :data:`_CACHED` ones), so that the tasks of a worker load it once."""
        return _inputs.get(self.path, _read) if cache else _read(self.path)

    def take(self) -> Any:
        """The object, its file removed (the mapping stays valid while the object lives)."""
        try:
            return _read(self.path)
        finally:
            Path(self.path).unlink(missing_ok=True)


@dataclass(frozen=True)
class SharedArray:
    """A handle of an array of an exchange that this process and the workers map shared."""

    path: str
    dtype: str
    shape: tuple[int, ...]

    def open(self) -> np.ndarray:
        """(on a worker) The array, mapped shared: what is written to it is the array of the
        process that made it (kept mapped for the next tasks of this process)."""
        return _arrays.get(
            self.path, lambda path: _map_shared(path, np.dtype(self.dtype), self.shape)
        )


def store(folder: str, value: Any) -> Stored:
    """(on a worker) ``value`` written to a new file of ``folder``; its handle."""
    path = os.path.join(folder, f"result-{uuid.uuid4().hex}")
    _write(value, path)
    return Stored(path)


class Exchange:
    """A folder of this process that the workers of a cluster read and write."""

    def __init__(self, folder: Path, client: Any = None):
        self.folder = folder
        self._client = client  # whose workers are told to let go of the files at close

    @classmethod
    def open(cls, client: Any) -> Exchange | None:
        """An exchange with the workers of ``client``, or None when they do not see this
        process's temporary folder (then the caller sends its data through Dask).

        The workers are probed once per client (:func:`_shares_files`): the answer is kept
        while the cluster's workers are among those that gave it."""
        _remove_stale()
        known = _known_answer(client)
        if known is False:
            log.debug("the workers do not share this machine's files (probed before)")
            return None
        folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        exchange = cls(folder, client)
        if known is None and not _shares_files(client, folder):
            exchange.close()
            return None
        log.debug("the workers share %s", folder)
        return exchange

    def put(self, value: Any) -> Stored:
        """``value`` written to a new file of the folder; its handle."""
        path = self.folder / f"input-{uuid.uuid4().hex}"
        with self._space():
            _write(value, str(path))
        return Stored(str(path))

    def array(self, shape: tuple[int, ...], dtype: Any) -> tuple[np.ndarray, SharedArray]:
        """A new array (zeros) of ``shape`` and ``dtype`` in a file of the folder, mapped here
        shared, and its handle for the workers (:meth:`SharedArray.open`). The array stays
        valid after :meth:`close` (the file is removed, the mapping kept)."""
        path = self.folder / f"array-{uuid.uuid4().hex}"
        dt = np.dtype(dtype)
        size = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        with self._space(), open(path, "wb") as f:
            if size:  # the blocks reserved now: a full disk is an error here, not a crash later
                os.posix_fallocate(f.fileno(), 0, size)
        handle = SharedArray(str(path), dt.str, tuple(int(n) for n in shape))
        return _map_shared(str(path), dt, handle.shape), handle

    @contextlib.contextmanager
    def _space(self) -> Iterator[None]:
        """A full disk as a ClusterError that says what to do."""
        try:
            yield
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise ClusterError(
                f"no space left in {self.folder.parent} for the files the cluster's workers "
                "share with this run; free some space there, or point TMPDIR at a folder "
                "with more room"
            ) from exc

    def close(self) -> None:
        """Remove the folder and what it holds; the workers drop what they keep mapped of it
        (best effort: a worker that does not answer in a few seconds keeps it until its next
        inputs push it out)."""
        if self._client is not None:
            client, self._client = self._client, None
            try:
                within(
                    _FORGET_TIMEOUT_S,
                    lambda: client.run(_forget, str(self.folder), on_error="ignore"),
                    "let go of the exchanged files",
                )
            except Exception as exc:  # the files are removed all the same
                log.debug("the workers did not let go of %s: %r", self.folder, exc)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def within(seconds: float, call: Callable[[], Any], what: str) -> Any:
    """``call()``, or a ClusterError after ``seconds`` (the call then goes on in a daemon
    thread, which the client's closing ends): distributed's own timeouts do not bound every
    call to a cluster that lost a worker meanwhile (a broadcast scatter waits for ever)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = call()
        except BaseException as exc:  # handed to the caller
            out["error"] = exc

    thread = threading.Thread(target=run, name="telcoplan-cluster-call", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise ClusterError(
            f"the Dask cluster did not {what} in {seconds:.0f} s (a worker lost meanwhile?); "
            "run again, or without --workers/--scheduler"
        )
    if "error" in out:
        raise out["error"]
    return out["value"]


def run_tasks(
    client: Any,
    fn: Callable[..., Any],
    args: Sequence[tuple],
    *,
    shared: Any = _NO_INPUT,
    inputs: Sequence[Any] | None = None,
    exchange: Exchange | Literal["open"] | None = "open",
    name: str = "telcoplan-tasks",
    label: str = "tasks",
    attempts: int = 1,
    scatter_attempts: int = 3,
    scatter_timeout_s: float = SCATTER_TIMEOUT_S,
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(input, *args[i])`` on the workers of ``client`` for every task ``i``; yield
    ``(i, result)`` as the tasks finish (in no particular order, each task once).

    Parameters
    ----------
    client
        A ``distributed.Client`` (used through ``nthreads``, ``run``, ``scatter``, ``submit``,
        ``gather`` and ``cancel``). Data goes to and from the workers directly while the client
        can reach them (unless it was made with ``direct_to_workers=False``), else through the
        scheduler.
    fn
        A module-level function (workers import it by name).
    args
        The arguments of each task after its input (small: pickled with the task).
    shared, inputs
        One of them: ``shared``, the input of every task, sent once (written to one file that
        each worker maps once and keeps, or scattered to every worker); or ``inputs``, each
        task's own input (a file each, or scattered, each to one worker).
    exchange
        The :class:`Exchange` the inputs and results go through (the caller's, which it closes:
        its tasks may write into its shared arrays), None to scatter, or ``"open"``: one is
        opened here (and closed at the end) when the workers share this machine's files.
    name, label
        The tasks' keys are ``(f"{name}-{token}", i)``; the log names them ``label``.
    attempts
        Times the tasks are sent before an error is raised (any error: a worker lost with the
        inputs it held, a task's error): each new attempt sends the inputs again and runs the
        tasks whose results were not yielded yet. With 1, an error is raised at once.
    scatter_attempts, scatter_timeout_s
        Times a scatter is tried within an attempt (a worker that left meanwhile makes it
        fail), and the seconds it may take beyond its bytes' transfer at 20 MB/s per copy (a
        hard deadline, 10 s more, bounds it: :func:`within`).

    The tasks (and the inputs scattered) are released when the generator ends or is closed.
    """
    if (shared is _NO_INPUT) == (inputs is None):
        raise TypeError("run_tasks takes either shared or inputs")
    link = _Link(client)
    scatter = functools.partial(
        _scatter, link, client, attempts=scatter_attempts, timeout_s=scatter_timeout_s
    )
    own = isinstance(exchange, str)
    ex = Exchange.open(client) if own else exchange
    todo = set(range(len(args)))
    try:
        for attempt in range(attempts):
            try:
                sent = _send(ex, shared, inputs, sorted(todo), scatter)
                with contextlib.closing(_run(link, client, ex, fn, args, sent, name)) as results:
                    for i, result in results:
                        todo.discard(i)
                        yield i, result
                return
            except Exception as exc:  # e.g. a worker lost with the inputs it held
                if attempt + 1 == attempts:
                    raise
                log.info("%s sent again to the cluster (%r)", label, exc)
    finally:
        if own and ex is not None:
            ex.close()


class _Link:
    """Moves data between the client and the workers directly (one hop) while it can reach
    them, else through the scheduler (distributed's default outside a worker: two hops, the
    scheduler's process copying every byte; with a local cluster that is this process)."""

    def __init__(self, client: Any):
        own = getattr(client, "direct_to_workers", None)
        self.direct = True if own is None else bool(own)  # the client's own choice wins

    def call(self, method: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        if self.direct:
            try:
                return method(*args, direct=True, **kw)
            except (OSError, TimeoutError) as exc:  # distributed's CommClosedError is an OSError
                log.info("the workers are not reachable directly (%s): through the scheduler", exc)
                self.direct = False
        return method(*args, direct=False, **kw)


@dataclass(frozen=True)
class _Sent:
    """The inputs of an attempt's tasks: each task's handle (a :class:`Stored`, or a scattered
    future), whether a worker keeps it for its next tasks (a shared input), and the futures
    scattered (released with the tasks)."""

    sources: dict[int, Any]
    cache: bool
    scattered: list[Any]


def _send(
    exchange: Exchange | None,
    shared: Any,
    inputs: Sequence[Any] | None,
    todo: list[int],
    scatter: Callable[[Any, bool], Any],
) -> _Sent:
    """The inputs of the tasks ``todo`` written to ``exchange``, or else scattered."""
    if inputs is None:
        if exchange is not None:
            return _Sent(dict.fromkeys(todo, exchange.put(shared)), True, [])
        one = scatter(shared, True)
        return _Sent(dict.fromkeys(todo, one), True, [one])
    if exchange is not None:
        return _Sent({i: exchange.put(inputs[i]) for i in todo}, False, [])
    sent = scatter([inputs[i] for i in todo], False)
    return _Sent(dict(zip(todo, sent, strict=True)), False, list(sent))


def _run(
    link: _Link,
    client: Any,
    exchange: Exchange | None,
    fn: Callable[..., Any],
    args: Sequence[tuple],
    sent: _Sent,
    name: str,
) -> Iterator[tuple[int, Any]]:
    """The tasks of ``sent`` submitted; ``(i, result)`` as they finish; the tasks and the
    scattered inputs released at the end."""
    from distributed import as_completed

    folder = None if exchange is None else str(exchange.folder)
    token = uuid.uuid4().hex[:12]
    futures: list[Any] = []
    try:
        for i, source in sent.sources.items():
            futures.append(
                client.submit(
                    _run_task,
                    fn,
                    source,
                    sent.cache,
                    folder,
                    *args[i],
                    key=(f"{name}-{token}", i),
                    pure=False,
                )
            )
        index = {f.key: i for i, f in zip(sent.sources, futures, strict=True)}
        for future in as_completed(futures):
            if future.status == "error":
                future.result()  # raises the task's error
            got = link.call(client.gather, future)
            yield index[future.key], (got if folder is None else got.take())
    finally:
        client.cancel([*futures, *sent.scattered])


def _scatter(
    link: _Link, client: Any, data: Any, broadcast: bool, *, attempts: int, timeout_s: float
) -> Any:
    """``data`` scattered (with ``broadcast`` to every worker, else a list, each item to one
    worker); again when a worker left meanwhile (killed, or its nanny restarting it: the
    scheduler then fails to copy the data to it)."""
    from dask.sizeof import sizeof

    copies = max(len(client.nthreads()), 1) if broadcast else 1
    # a scatter to a worker that died meanwhile can wait for ever: bounded by what the data
    # needs at a slow network's pace (20 MB/s per copy), and tried again
    timeout = timeout_s + copies * sizeof(data) / 20e6
    for attempt in range(attempts):
        try:
            return within(
                timeout + 10.0,
                lambda: link.call(
                    client.scatter, data, broadcast=broadcast, hash=False, timeout=timeout
                ),
                "take the inputs",
            )
        except Exception as exc:
            if attempt == attempts - 1:
                raise
            log.info("scattering the inputs again: a worker left meanwhile (%r)", exc)
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def _run_task(fn: Callable[..., Any], source: Any, cache: bool, folder: str | None, *args: Any):
    """(on a worker) ``fn(input, *args)``: the input mapped from its file (kept for the next
    tasks with ``cache``) and the result written to a file of ``folder``, its handle returned;
    without ``folder``, the scattered input (Dask passes its value) and the result itself."""
    if folder is None:
        return fn(source, *args)
    return store(folder, fn(source.load(cache=cache), *args))


def _forget(folder: str) -> None:
    """(on a worker) Drop the inputs and shared arrays of ``folder`` this process keeps."""
    prefix = os.path.join(folder, "")
    for kept in (_inputs, _arrays):
        kept.forget(prefix)


def _shares_files(client: Any, folder: Path) -> bool:
    """Whether the workers of ``client`` read a file of ``folder`` (a probe file read by every
    worker through ``client.run``; a worker lost meanwhile is no answer). The answer is kept
    for ``client`` with the workers that gave it; no answer in time is not kept."""
    token = uuid.uuid4().hex
    probe = folder / "probe"
    probe.write_text(token)
    try:
        answers = within(
            PROBE_TIMEOUT_S,
            lambda: client.run(_read_probe, str(probe), on_error="return"),
            "answer whether they share this machine's files",
        )
    except Exception as exc:  # no answer: send through Dask
        log.info("the workers did not answer the probe (%r): data sent through Dask", exc)
        return False
    seen = {w: a for w, a in answers.items() if not isinstance(a, BaseException)}
    shared = bool(seen) and all(a == token for a in seen.values())
    with contextlib.suppress(TypeError), _probed_lock:  # TypeError: no weak reference
        _probed[client] = (frozenset(seen), shared)
    if not shared:
        log.info("the workers do not share this machine's files: data sent through Dask")
    return shared


def _known_answer(client: Any) -> bool | None:
    """The probe's answer kept for ``client``, while every worker of its cluster now is one
    that gave it; else None (probe again). A worker restarted (a new address) or one that
    joined since is thus probed before the files are trusted to reach it; a worker gone
    since changes nothing."""
    try:
        with _probed_lock:
            kept = _probed.get(client)
    except TypeError:  # a client that cannot be weakly referenced: never kept
        return None
    if kept is None:
        return None
    workers, shared = kept
    try:
        now = frozenset(client.nthreads())
    except Exception as exc:  # the probe tells what is wrong
        log.debug("the cluster's workers are unknown (%r): probed again", exc)
        return None
    if not now <= workers:
        log.debug("the cluster's workers changed since the probe: probed again")
        return None
    return shared


def _read_probe(path: str) -> str | None:
    """(on a worker) The probe file's token, or None when the worker cannot read it."""
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _write(value: Any, path: str) -> None:
    """``value`` pickled (protocol 5) with its buffers out of band, 64-byte aligned."""
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    table = []
    offset = _align(_HEAD.size + len(head) + 16 * len(raws))
    for raw in raws:
        table.append((offset, raw.nbytes))
        offset = _align(offset + raw.nbytes)
    tmp = f"{path}.part"
    with open(tmp, "wb") as f:
        f.write(_HEAD.pack(_MAGIC, len(head), len(raws)))
        f.write(head)
        for off, n in table:
            f.write(struct.pack("<QQ", off, n))
        for (off, _), raw in zip(table, raws, strict=True):
            f.seek(off)
            f.write(raw)
        f.truncate(max(offset, f.tell()))
    os.replace(tmp, path)  # never a partial file under the final name


def _read(path: str) -> Any:
    """The object of :func:`_write`'s file, its arrays views of the file mapped copy-on-write."""
    with open(path, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    view = memoryview(mapped)
    magic, n_head, n_buffers = _HEAD.unpack_from(view, 0)
    if magic != _MAGIC:
        raise ValueError(f"{path} is not a telcoplan exchange file")
    start = _HEAD.size
    head = view[start : start + n_head]
    table = start + n_head
    buffers = []
    for i in range(n_buffers):
        off, n = struct.unpack_from("<QQ", view, table + 16 * i)
        buffers.append(view[off : off + n])
    return pickle.loads(head, buffers=buffers)


def _map_shared(path: str, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    """The array of ``path``'s bytes, mapped shared and writable (a plain ndarray)."""
    if not int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        return np.zeros(shape, dtype=dtype)  # nothing to share (mmap refuses empty files)
    with open(path, "r+b") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_WRITE)
    return np.frombuffer(mapped, dtype=dtype).reshape(shape)


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _remove_stale() -> None:
    """Remove the exchange folders of processes of this machine that no longer run."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        try:
            pid = int(folder.name[len(_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
