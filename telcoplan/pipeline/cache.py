"""The re-run cache: results of earlier runs' stages, kept in the output folder.

``telcoplan run`` keeps each stage's files, its part of the summary and its in-memory result in
:data:`telcoplan.outputs.CACHE` (``.telcoplan-cache/``) under a key of everything the stage's
result depends on (:func:`code_fingerprint`, the inputs' SHA-256 — :class:`FileHashes` — and the
stage's parameters); a later run into the same folder whose key is kept takes the result from
there instead of computing it (:mod:`telcoplan.pipeline.run`). :class:`ResultCache` keeps
entries in a background thread so that the next stages need not wait for the pickling and
hashing.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import logging
import os
import pickle
import platform
import re
import threading
import time
from collections.abc import Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from telcoplan.outputs import file_sha256

__all__ = [
    "CACHE_FORMAT",
    "KEY_ENV",
    "BrokenEntryError",
    "CacheEntry",
    "FileHashes",
    "ResultCache",
    "code_fingerprint",
]

log = logging.getLogger(__name__)

#: Version of the cache's layout: a change leaves every kept result unused.
CACHE_FORMAT = 2  # 2: manifests signed (signing_key)
#: Environment variable: the file of the key that signs this user's cache entries (default
#: ``$XDG_CACHE_HOME/telcoplan/cache-key``, ``~/.cache/telcoplan/cache-key``).
KEY_ENV = "TELCOPLAN_CACHE_KEY"
#: A cache entry's name: what it keeps (a stage, ``inputs``, ``styles``), a dash, its key.
_ENTRY = re.compile(r"[a-z][a-z0-9_]*-[0-9a-f]{64}")
_MANIFEST = "manifest.json"


@functools.lru_cache(maxsize=1)
def signing_key() -> bytes | None:
    """This user's key for the cache's manifests (32 random bytes, made on first use, readable
    by the user alone), kept outside every output folder; None when it cannot be had.

    An entry's pickles are loaded only when its manifest (which holds their SHA-256) carries
    the HMAC of this key: a run folder from someone else (a zipped run, a shared drive) cannot
    make this user's re-run unpickle what it likes; its entries are recomputed instead.
    """
    path: Path | str = os.environ.get(KEY_ENV) or "~/.cache/telcoplan/cache-key"
    try:
        if not os.environ.get(KEY_ENV):
            home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
            path = Path(home) / "telcoplan" / "cache-key"
        path = Path(path)
        if not path.exists():
            _make_key(path)
        key = path.read_bytes()
    except (OSError, RuntimeError) as exc:  # RuntimeError: no home folder to be found
        log.warning(
            "re-run cache off: no key to sign its entries at %s (%s); set %s to a writable file",
            path,
            getattr(exc, "strerror", None) or exc,
            KEY_ENV,
        )
        return None
    if len(key) < 32:
        log.warning("re-run cache off: %s is not a cache key (too short); remove it", path)
        return None
    return key


def _make_key(path: Path) -> None:
    """Write a new key at ``path`` (readable by the user alone), unless a concurrent run does
    first: written whole under a temporary name, then linked into place (the first link wins);
    where the file system has no hard links, created in place exclusively."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another run's key: read below
        except OSError:  # no hard links here (some network or FUSE file systems)
            with contextlib.suppress(FileExistsError):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(tmp.read_bytes())
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _signature(manifest: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of the manifest (without its signature) under ``key``."""
    body = json.dumps({k: v for k, v in manifest.items() if k != "signature"}, sort_keys=True)
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


class BrokenEntryError(Exception):
    """A cache entry whose files are not what its manifest says (changed since)."""


class CacheEntry:
    """One kept result (see :class:`ResultCache`)."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path, self.manifest = path, manifest

    @property
    def has_value(self) -> bool:
        return self.manifest["value"] is not None

    @property
    def value_path(self) -> Path:
        return self.path / "value.pickle"

    def restore(self, folder: Path) -> list[str]:
        """Link the entry's files into a new ``folder`` and check them against their SHA-256
        (:class:`BrokenEntryError` when one changed); the names at its top."""
        from telcoplan.gis.atomic import link_tree

        files: dict[str, str] = self.manifest["files"]
        tops = sorted({rel.split("/")[0] for rel in files})
        folder.mkdir()
        for top in tops:
            link_tree(self.path / "files" / top, folder / top)
        found = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()}
        if found != set(files):
            raise BrokenEntryError(f"{self.path.name} holds other files than its manifest lists")
        for rel, sha in files.items():
            if file_sha256(folder / rel) != sha:
                raise BrokenEntryError(f"{rel} changed since it was kept")
        return tops

    def summary(self) -> Any:
        """What the entry keeps besides files (a stage's part of the summary)."""
        data = (self.path / "summary.pickle").read_bytes()
        if hashlib.sha256(data).hexdigest() != self.manifest["summary"]:
            raise BrokenEntryError("its summary changed since it was kept")
        try:
            return pickle.loads(data)
        except Exception as exc:  # any unpickling failure: an unusable entry
            raise BrokenEntryError(f"its summary cannot be read ({exc})") from None

    def load_value(self, path: Path) -> Any:
        """The kept in-memory result, from ``path`` (a link to the entry's :attr:`value_path`)."""
        with open(path, "rb") as fh:  # hashed and read through one descriptor: the same file
            h = hashlib.sha256()
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
            if h.hexdigest() != self.manifest["value"]:
                raise BrokenEntryError("its result changed since it was kept")
            fh.seek(0)
            return pickle.load(fh)


class ResultCache:
    """Results kept in an output folder (:data:`telcoplan.outputs.CACHE`) for the runs after.

    One folder per result, ``<what>-<key>``: ``manifest.json`` (what, the key, each file with
    its SHA-256), ``files/`` (the files, hard links of the outputs where the file system
    allows), ``summary.pickle`` and ``value.pickle`` (an in-memory result, if any). An entry
    is built in the run's staging folder (in a background thread: :meth:`put`, :meth:`wait`)
    and renamed into place complete; entries are never changed, only replaced or removed.
    Entries are read as pickles only when their manifest carries this user's signature
    (:func:`signing_key`): another user's entries, or a copied run folder's, are recomputed.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.used: set[str] = set()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []
        self._cancelled = threading.Event()
        self._written: dict[str, threading.Event] = {}

    def get(self, what: str, key: str) -> CacheEntry | None:
        """The entry of ``what`` under ``key``; None when there is none (or not a usable one)."""
        path = self.folder / f"{what}-{key}"
        try:
            manifest = json.loads((path / _MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not (
            isinstance(manifest, dict)
            and manifest.get("format") == CACHE_FORMAT
            and manifest.get("what") == what
            and manifest.get("key") == key
            and isinstance(manifest.get("files"), dict)
            and isinstance(manifest.get("summary"), str)
            and (manifest.get("value") is None or isinstance(manifest.get("value"), str))
        ):
            log.debug("%s: not a cache entry of this telcoplan; ignored", path)
            return None
        key = signing_key()
        signature = manifest.get("signature")
        if (
            key is None
            or not isinstance(signature, str)
            or not hmac.compare_digest(
                signature.encode("utf-8"), _signature(manifest, key).encode("ascii")
            )
        ):
            log.info(
                "%s: kept results not signed by this user (a copied or another user's run "
                "folder): not read, computed again",
                what,
            )
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # in use: not removed by a run that started before (prune)
        self._use(path.name)
        return CacheEntry(path, manifest)

    def put(
        self,
        what: str,
        key: str,
        folder: Path | None,
        files: Sequence[str],
        summary: Any,
        value: Any,
        work: Path,
    ) -> None:
        """Keep ``files`` of ``folder``, ``summary`` and ``value`` under ``key``: built in
        ``work`` (the run's staging folder), then renamed into place. What cannot be kept (not
        picklable, disk full) is logged and the run goes on.

        Only the files are linked into the entry here (hard links: ``folder``'s files may be
        moved away as soon as this returns, never changed in place); hashing them, pickling
        ``summary`` and ``value`` and renaming the entry into place are done in a background
        thread (:meth:`wait` for them) while the run goes on. ``value`` is held until it is
        pickled: it must not be changed in place meanwhile (results are never).
        """
        from telcoplan.gis.atomic import link_tree, remove_tree

        tmp = work / f".entry-{what}"
        try:
            (tmp / "files").mkdir(parents=True)
            for n in files:
                link_tree(folder / n, tmp / "files" / n)
        except OSError as exc:
            log.warning("%s: result not kept for re-runs (%s)", what, exc.strerror or exc)
            remove_tree(tmp)
            return
        job = _Put(what, key, tmp, summary, value, work)
        del summary, value  # held by the job only: dropped once pickled
        with self._lock:
            self._written[what] = job.written
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="telcoplan-cache")
            self._pending.append(self._pool.submit(self._keep, job))

    def wait(self, *, cancel: bool = False) -> None:
        """Wait for the results :meth:`put` is still keeping (before the run's staging folder
        is published or removed); ``cancel``: stop keeping them (an interrupted run), as soon
        as the file being written or hashed allows. Each one ends installed complete or not at
        all. Interrupted itself, it leaves them pending: waited for by the next call."""
        if cancel:
            self._cancelled.set()
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                break
            futures.wait(pending)  # _keep logs its errors: never raises
            with self._lock:
                self._pending = [f for f in self._pending if not f.done()]
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self._cancelled.clear()

    def wait_for_value(self, what: str) -> None:
        """Wait until the value :meth:`put` keeps for ``what`` is written (or could not be),
        no longer held: the run drops a result after this (never held past its last reader)."""
        with self._lock:
            written = self._written.get(what)
        if written is not None:
            written.wait()

    def _keep(self, job: _Put) -> None:
        """:meth:`put`'s background part: hash the files, pickle (and hash) the summary and the
        value, write the manifest, rename the entry; errors logged, a half-built entry removed."""
        from telcoplan.gis.atomic import remove_tree

        tmp, what = job.tmp, job.what
        key = signing_key()
        try:
            if key is None:
                raise _UnpicklableError("no key to sign it")
            files, digests = tmp / "files", {}
            for p in sorted(files.rglob("*")):
                if not p.is_dir():
                    self._check_cancelled()
                    digests[p.relative_to(files).as_posix()] = file_sha256(p)
            summary_sha = _write_pickle(tmp / "summary.pickle", job.take("summary"), self)
            value = job.take("value")
            value_sha = None if value is None else _write_pickle(tmp / "value.pickle", value, self)
            del value
            job.written.set()
            manifest = {
                "format": CACHE_FORMAT,
                "what": what,
                "key": job.key,
                "files": digests,
                "summary": summary_sha,
                "value": value_sha,
            }
            manifest["signature"] = _signature(manifest, key)
            (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            self._check_cancelled()
            self._install(tmp, self.folder / f"{what}-{job.key}", job.work)
        except _UnpicklableError as exc:
            log.debug("%s: result not kept for re-runs (%s)", what, exc)
        except _CancelledError:
            log.debug("%s: result not kept for re-runs (the run was interrupted)", what)
        except OSError as exc:
            log.warning("%s: result not kept for re-runs (%s)", what, exc.strerror or exc)
        except Exception:  # a cache entry that cannot be written never fails a run
            log.warning("%s: result not kept for re-runs", what, exc_info=True)
        finally:
            job.take("summary")
            job.take("value")
            job.written.set()
            with contextlib.suppress(OSError):
                remove_tree(tmp)

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise _CancelledError

    def prune(self, started: float, work: Path) -> None:
        """Remove the entries this run did not use, unless another run may be using them (made
        or used since ``started``, this run's start); moved into ``work`` (removed with it)."""
        try:
            children = list(self.folder.iterdir())
        except OSError:
            return
        for child in children:
            if child.name in self.used or not _ENTRY.fullmatch(child.name):
                continue
            with contextlib.suppress(OSError):
                if not child.is_symlink() and child.lstat().st_mtime < started:
                    os.rename(child, work / f".old-{child.name}")

    def _install(self, tmp: Path, dest: Path, work: Path) -> None:
        """Rename the complete entry ``tmp`` to ``dest``, in place of any entry there (one of
        --force, a broken one, or another run's of the same key)."""
        self.folder.mkdir(exist_ok=True)
        for _ in range(3):
            try:
                os.rename(tmp, dest)
            except OSError:
                if not dest.exists():
                    raise
                with contextlib.suppress(OSError):
                    os.rename(dest, work / f".old-{dest.name}-{time.monotonic_ns()}")
                continue
            self._use(dest.name)
            return

    def _use(self, name: str) -> None:
        with self._lock:
            self.used.add(name)


class _UnpicklableError(Exception):
    """A result that cannot be kept: it cannot be pickled."""


class _CancelledError(Exception):
    """Keeping a result was stopped: the run was interrupted (:meth:`ResultCache.wait`)."""


class _Put:
    """A result :meth:`ResultCache.put` is keeping: its entry folder ``tmp`` (files linked),
    the summary and value to pickle, each dropped once taken (:meth:`take`); ``written`` is
    set once the value is written (or could not be)."""

    def __init__(self, what: str, key: str, tmp: Path, summary: Any, value: Any, work: Path):
        self.what, self.key, self.tmp, self.work = what, key, tmp, work
        self._held, self.written = {"summary": summary, "value": value}, threading.Event()

    def take(self, name: str) -> Any:
        return self._held.pop(name, None)


class _HashingWriter:
    """A binary file that hashes (SHA-256) what is written into it, in pieces of
    :data:`_PIECE` bytes (each hashed then written while in the CPU's cache; both release
    the GIL); stops (:class:`_CancelledError`) when ``cache``'s keeping is cancelled."""

    def __init__(self, fh: Any, cache: ResultCache) -> None:
        self.fh, self.cache, self.sha = fh, cache, hashlib.sha256()

    def write(self, data: Any) -> int:
        self.cache._check_cancelled()
        view = memoryview(data).cast("B")
        for start in range(0, len(view), _PIECE):
            piece = view[start : start + _PIECE]
            self.sha.update(piece)
            self.fh.write(piece)
        return len(view)


#: Bytes of a pickle hashed and written at a time (:class:`_HashingWriter`).
_PIECE = 1 << 22


def _write_pickle(path: Path, obj: Any, cache: ResultCache) -> str:
    """Pickle ``obj`` into ``path`` for ``cache``; its SHA-256 (of the bytes as written)."""
    with open(path, "wb") as fh:
        writer = _HashingWriter(fh, cache)
        try:
            pickle.dump(obj, writer, protocol=pickle.HIGHEST_PROTOCOL)
        except (OSError, _CancelledError):
            raise
        except Exception as exc:  # any pickling failure
            raise _UnpicklableError(f"{type(obj).__name__} cannot be pickled: {exc}") from None
    return writer.sha.hexdigest()


class FileHashes:
    """SHA-256 of files, each read once (a run's inputs)."""

    def __init__(self) -> None:
        self._sha: dict[Path, str] = {}
        self._lock = threading.Lock()

    def sha(self, path: str | os.PathLike) -> str:
        path = Path(path).resolve()
        with self._lock:
            known = self._sha.get(path)
        if known is None:
            known = file_sha256(path)
            with self._lock:
                self._sha[path] = known
        return known

    def files(self, path: str | os.PathLike) -> dict[str, str]:
        """The SHA-256 of what reading ``path`` may read, by name: the file and its side-car
        files (those named like it: ``towers.dbf`` beside ``towers.shp``,
        ``population.tif.aux.xml``), every file of a folder, and the files a GDAL VRT names."""
        path = Path(path)
        if path.is_dir():
            return {
                p.relative_to(path).as_posix(): self.sha(p)
                for p in sorted(path.rglob("*"))
                if p.is_file()
            }
        found = {path.name: self.sha(path)}
        stem = path.name.split(".")[0] + "."
        for p in sorted(path.parent.iterdir()):
            if p.name.startswith(stem) and p.is_file():
                found[p.name] = self.sha(p)
        if path.suffix.lower() == ".vrt":
            text = path.read_text(encoding="utf-8", errors="replace")
            for attrs, name in re.findall(r"<SourceFilename([^>]*)>([^<]+)</SourceFilename>", text):
                ref = path.parent / name if 'relativeToVRT="1"' in attrs else Path(name)
                if ref.is_file():
                    found[f"{name} (in {path.name})"] = self.sha(ref)
        return found


@functools.cache
def code_fingerprint() -> dict[str, Any]:
    """What telcoplan's results depend on besides inputs and parameters: its sources (every
    file of the package, by SHA-256), its version, and those of Python and of its
    dependencies. Read once per process."""
    from importlib import metadata

    from telcoplan import __version__

    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo") or not path.is_file():
            continue
        h.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        h.update(path.read_bytes() + b"\0")
    packages: dict[str, str | None] = {}
    try:
        requirements = metadata.requires("telcoplan") or []
    except metadata.PackageNotFoundError:
        requirements = []
    for req in requirements:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", req)
        if match is None or 'extra == "test"' in req or 'extra == "bench"' in req:
            continue
        try:
            packages[match.group(0).lower()] = metadata.version(match.group(0))
        except metadata.PackageNotFoundError:
            packages[match.group(0).lower()] = None
    return {
        "telcoplan": __version__,
        "sources": h.hexdigest(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "packages": dict(sorted(packages.items())),
    }
