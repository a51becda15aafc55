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
every worker through ``client.run``); it returns None when they do not (a cluster on other
machines), and the caller then scatters. The folder is removed when the exchange is closed;
one left by a process that was killed is removed by the next exchange opened on this machine.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import mmap
import os
import pickle
import shutil
import struct
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from telcoplan.errors import ClusterError

__all__ = ["PROBE_TIMEOUT_S", "Exchange", "SharedArray", "Stored", "store", "within"]

log = logging.getLogger(__name__)

#: Seconds the workers may take to answer the probe.
PROBE_TIMEOUT_S = 30.0
_FORGET_TIMEOUT_S = 10.0
_PREFIX = "telcoplan-exchange-"
_MAGIC = b"TPX1"
_HEAD = struct.Struct("<4sQQ")  # magic, pickle length, number of buffers
_ALIGN = 64
_CACHED = 2  # inputs a worker process keeps mapped (the last ones loaded)
_CACHED_ARRAYS = 16  # shared arrays a worker process keeps mapped
_cache: collections.OrderedDict[str, Any] = collections.OrderedDict()
_arrays: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Stored:
    """A handle of an object written to a file of an exchange: what the tasks carry."""

    path: str

    def load(self, cache: bool = False) -> Any:
        """The object, mapped from its file; with ``cache`` kept for the next calls of this
        process (the last :data:`_CACHED` ones), so that the tasks of a worker load it once."""
        if not cache:
            return _read(self.path)
        with _cache_lock:
            if self.path in _cache:
                _cache.move_to_end(self.path)
                return _cache[self.path]
        value = _read(self.path)
        with _cache_lock:
            _cache[self.path] = value
            while len(_cache) > _CACHED:
                _cache.popitem(last=False)
        return value

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
        with _cache_lock:
            if self.path in _arrays:
                _arrays.move_to_end(self.path)
                return _arrays[self.path]
        array = _map_shared(self.path, np.dtype(self.dtype), self.shape)
        with _cache_lock:
            _arrays[self.path] = array
            while len(_arrays) > _CACHED_ARRAYS:
                _arrays.popitem(last=False)
        return array


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
        process's temporary folder (then the caller sends its data through Dask)."""
        _remove_stale()
        folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        exchange = cls(folder, client)
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
            exchange.close()
            return None
        seen = [a for a in answers.values() if not isinstance(a, BaseException)]
        if not seen or any(a != token for a in seen):
            log.info("the workers do not share this machine's files: data sent through Dask")
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


def _forget(folder: str) -> None:
    """(on a worker) Drop the inputs and shared arrays of ``folder`` this process keeps."""
    prefix = os.path.join(folder, "")
    with _cache_lock:
        for cache in (_cache, _arrays):
            for path in [p for p in cache if p.startswith(prefix)]:
                del cache[path]


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
