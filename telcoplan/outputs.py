"""The output folder of a run: its file names, ``summary.json``, and reading a finished run.

This module is the one owner of the output folder's layout. The stages write under the names
defined here, :func:`telcoplan.pipeline.run_plan` publishes them, and the map and the report read
a finished run (or a run's staging folder) through :func:`read_layer`, :func:`read_table`,
:func:`read_signal` and :func:`read_summary`. Nobody else spells an output file name.

Files of a run (each optional except ``summary.json``):

=========================  ================================================================
``summary.json``           key figures and provenance (:func:`write_summary`)
``coverage.gpkg``          layers ``coverage`` (per operator and ``any``), ``areas``
                           (population covered per area) and ``sites`` (the towers)
``signal_<op>.tif``        received power per operator (``signal_<op>-<tech>.tif`` per
                           technology), :func:`signal_file`
``server_<op>.tif``        serving site per operator, :func:`server_file`
``operators_count.tif``    number of operators above threshold
``coverage_limit.tif``     what ends coverage (distance or terrain)
``gaps.gpkg``              layers ``gaps``, ``single_operator`` and ``pois``
``sites.gpkg``             proposed sites (layer ``sites``)
``backbone.gpkg``          backbone links (layer ``links``)
``site_review.gpkg``       ``telcoplan sites review``: layers ``review`` (one point per
                           proposed site) and ``review_footprint`` (the populated cells each
                           would newly cover); ``site_review.csv`` the same table
``map.html``               the interactive map
``report.html``            the report, with ``figure.png`` beside it
``project.qgs``            a QGIS project of the outputs; every raster has its QGIS style
                           (``<name>.qml``) beside it, every GeoPackage layer its default
                           style in the file's ``layer_styles`` table
=========================  ================================================================

Hidden entries of the folder (never listed in a summary, never outputs):

=========================  ================================================================
``.staging-*``             a run's working folder (:data:`STAGING`): its stages write there and
                           its outputs move into place from there; removed at the end of the
                           run, or by a later run when its process was killed
``.telcoplan-cache/``      results of earlier runs' stages (:data:`CACHE`), reused by
                           ``telcoplan run`` when a stage's inputs and parameters are unchanged
=========================  ================================================================
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import pickle
import platform
import re
import threading
import time
import unicodedata
from collections.abc import Mapping, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telcoplan.errors import InputFileError, OutputExistsError

if TYPE_CHECKING:
    import geopandas as gpd
    import numpy as np
    import pandas as pd

__all__ = [
    "BACKBONE",
    "CACHE",
    "COVERAGE",
    "COVERAGE_KEYS",
    "COVERAGE_LIMIT",
    "FIGURE",
    "GAPS",
    "LAYERS",
    "MAP",
    "OPERATORS_COUNT",
    "PROJECT",
    "REPORT",
    "RESERVED_OPERATOR_NAMES",
    "REVIEW",
    "REVIEW_TABLE",
    "SITES",
    "STAGING",
    "SUMMARY",
    "BrokenEntryError",
    "CacheEntry",
    "FileHashes",
    "ResultCache",
    "code_fingerprint",
    "derived",
    "file_sha256",
    "per_operator_rasters",
    "previous_outputs",
    "publish",
    "read_layer",
    "read_signal",
    "read_summary",
    "read_table",
    "remove_abandoned_runs",
    "server_file",
    "signal_file",
    "slug",
    "write_summary",
]

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
COVERAGE = "coverage.gpkg"
GAPS = "gaps.gpkg"
SITES = "sites.gpkg"
BACKBONE = "backbone.gpkg"
OPERATORS_COUNT = "operators_count.tif"
COVERAGE_LIMIT = "coverage_limit.tif"
MAP = "map.html"
REPORT = "report.html"
FIGURE = "figure.png"
PROJECT = "project.qgs"
#: Site review (``telcoplan sites review``), written beside a run's outputs: the GeoPackage and
#: the same table as CSV. Not part of a run (never listed in its summary).
REVIEW = "site_review.gpkg"
REVIEW_TABLE = "site_review.csv"
#: Prefix of a run's staging folder in the output folder (hidden; see the module's docstring).
STAGING = ".staging-"
#: The output folder's cache of stage results (hidden; see the module's docstring).
CACHE = ".telcoplan-cache"

#: Vector outputs by name: (file, GeoPackage layer, id column that becomes the index).
LAYERS: dict[str, tuple[str, str, str | None]] = {
    "areas": (COVERAGE, "areas", None),
    "coverage": (COVERAGE, "coverage", None),
    "towers": (COVERAGE, "sites", "site_id"),
    "gaps": (GAPS, "gaps", "gap_id"),
    "single_operator": (GAPS, "single_operator", None),
    "pois": (GAPS, "pois", "poi_id"),
    "sites": (SITES, "sites", None),
    "backbone": (BACKBONE, "links", None),
    "review": (REVIEW, "review", "candidate_id"),
    "review_footprint": (REVIEW, "review_footprint", "candidate_id"),
}

#: Keys of ``summary.json``'s ``coverage`` block that are not operators (the operators' own
#: figures sit beside them under their names).
COVERAGE_KEYS = frozenset(
    {"any", "areas", "best_single_operator", "by_technology", "clutter", "limit", "parameters",
     "urban_rural"}
)  # fmt: skip
#: Operator names the outputs cannot carry (lower case; compared without case): the coverage
#: keys above, and the suffixes of the per-area columns ``covered_any``, ``covered_best_single``
#: and ``covered_<2G…5G>_plus``.
RESERVED_OPERATOR_NAMES = frozenset(
    {k.lower() for k in COVERAGE_KEYS} | {"best_single", "2g_plus", "3g_plus", "4g_plus", "5g_plus"}
)


# ----------------------------------------------------------------------------- file names
def slug(name: str) -> str:
    """File-name-safe ASCII form of an operator name: 'Viettel' → 'viettel', 'Đà Nẵng' → 'da-nang'."""
    text = unicodedata.normalize("NFKD", str(name).replace("Đ", "D").replace("đ", "d"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return text or "unnamed"


def signal_file(operator: str, technology: str | None = None) -> str:
    """Name of an operator's (or operator and technology's) signal raster."""
    if technology is None:
        return f"signal_{slug(operator)}.tif"
    return f"signal_{slug(operator)}-{technology.lower()}.tif"


def server_file(operator: str) -> str:
    """Name of an operator's serving-site raster."""
    return f"server_{slug(operator)}.tif"


# ------------------------------------------------------------------------------ summary
def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file (for provenance)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _clean(obj: object) -> object:
    """Make numpy scalars and non-finite floats JSON-safe (NaN/inf become null)."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_summary(path: str | os.PathLike, summary: Mapping, *, overwrite: bool = False) -> Path:
    """Write ``summary`` as pretty UTF-8 JSON, atomically (keys keep their order)."""
    from telcoplan.gis.atomic import atomic_path

    text = json.dumps(_clean(summary), ensure_ascii=False, indent=2, allow_nan=False)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def read_summary(path: str | os.PathLike) -> dict:
    """A run's ``summary.json`` (``path`` is the file or its output folder); a clear
    :class:`InputFileError` when it is missing, malformed or not written by telcoplan (every run
    writes ``population_total``)."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY
    try:
        summary = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(
            f"{p} not found; run the plan first (telcoplan run PLAN.yml --out {p.parent})"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{p} is not a summary.json written by telcoplan: {exc}") from None
    if not isinstance(summary, dict) or "population_total" not in summary:
        raise InputFileError(
            f"{p} is not a summary.json written by telcoplan (no population_total); run the "
            "plan again to rewrite it"
        )
    return summary


def previous_outputs(out: Path) -> set[str]:
    """The files the previous run into ``out`` listed as its outputs (none if unknown)."""
    try:
        listed = json.loads((out / SUMMARY).read_text(encoding="utf-8")).get("outputs")
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(listed, list):
        return set()
    return {n for n in listed if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")}


def derived(out_dir: str | os.PathLike, path: str | os.PathLike) -> bool:
    """Whether ``path`` is the map, report or figure that the run in ``out_dir`` wrote (listed in
    its ``summary.json``): drawn from the run's data, it may be drawn again without asking. The
    run's data themselves (rasters, GeoPackages, the summary) are never derived."""
    p, out = Path(path), Path(out_dir)
    if p.name not in (MAP, REPORT, FIGURE) or not p.is_file():
        return False
    return p.resolve().parent == out.resolve() and p.name in previous_outputs(out)


# ------------------------------------------------------------------------------ reading
def _layer_name(path: Path, name: str) -> str | None:
    """The GeoPackage layer of output ``name`` in ``path``: its own layer, else the file's only
    layer (or, for proposed sites, its first; never for the site review, whose two layers
    differ); None when there is none."""
    import pyogrio

    layer = LAYERS[name][1]
    try:
        names = [str(n) for n, _ in pyogrio.list_layers(path)]
    except Exception as exc:  # any driver failure is a clean error
        raise InputFileError(f"{path}: not a readable GeoPackage ({exc})") from None
    if layer in names:
        return layer
    if names and LAYERS[name][0] != REVIEW and (len(names) == 1 or name == "sites"):
        return names[0]
    log.debug("%s has no layer %r (layers: %s)", path, layer, ", ".join(names))
    return None


def read_layer(
    out_dir: str | os.PathLike, name: str, *, arrow: bool = False
) -> gpd.GeoDataFrame | None:
    """Output layer ``name`` (a key of :data:`LAYERS`) of the run in ``out_dir``, indexed by its
    id column when it has a unique one; None when the run did not write it. ``arrow``: read
    through GDAL's Arrow stream (:func:`telcoplan.gis.vector.read_vector`; faster on large layers)."""
    from telcoplan.gis.vector import read_vector

    file, _, index = LAYERS[name]
    path = Path(out_dir) / file
    if not path.is_file():
        return None
    layer = _layer_name(path, name)
    if layer is None:
        return None
    gdf = read_vector(path, layer=layer, arrow=arrow)
    if "row" in gdf.columns and index == "site_id":
        gdf = gdf.drop(columns="row")
    if index is not None and index in gdf.columns and gdf[index].is_unique:
        gdf = gdf.set_index(index)
    return gdf


def read_table(
    out_dir: str | os.PathLike, name: str, *, arrow: bool = False
) -> pd.DataFrame | None:
    """The attribute table (no geometry) of output layer ``name``; None when absent.

    ``arrow``: read through GDAL's Arrow stream (pyogrio ``use_arrow``: a national run's
    420,000 backbone links 0.18 s instead of 1.4 s CPU); the same frame but for the dtype of a
    column that holds only nulls."""
    import pyogrio

    path = Path(out_dir) / LAYERS[name][0]
    if not path.is_file():
        return None
    layer = _layer_name(path, name)
    if layer is None:
        return None
    try:
        return pyogrio.read_dataframe(
            path, layer=layer, read_geometry=False, **({"use_arrow": True} if arrow else {})
        )
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InputFileError(f"{path}: cannot read layer {layer!r}: {exc}") from None


def per_operator_rasters(out_dir: str | os.PathLike, kind: str) -> list[tuple[Path, str]]:
    """The run's ``signal`` or ``server`` rasters (``signal_<op>[-<tech>].tif``,
    ``server_<op>.tif``), sorted, each with the part of its name after the prefix."""
    if kind not in {"signal", "server"}:
        raise ValueError(f"kind must be 'signal' or 'server', got {kind!r}")
    return [
        (path, path.stem.removeprefix(f"{kind}_"))
        for path in sorted(Path(out_dir).glob(f"{kind}_*.tif"))
    ]


def read_signal(out_dir: str | os.PathLike) -> dict[str, tuple[np.ndarray, Any]]:
    """Operator → (received power in dBm, raster info) from the run's ``signal_<operator>.tif``
    (per-technology rasters are left out), sorted by operator."""
    from telcoplan.gis.raster import read_raster

    signal: dict[str, tuple[np.ndarray, Any]] = {}
    for path, name in per_operator_rasters(out_dir, "signal"):
        values, info, tags = read_raster(path)
        if tags.get("technology"):
            continue
        operator = tags.get("operator") or name
        signal[operator] = (values, info)
    return dict(sorted(signal.items()))


# --------------------------------------------------------------------------- publishing
def publish(staging: Path, out: Path, names: list[str], *, overwrite: bool) -> None:
    """Move a run's outputs ``names`` from its ``staging`` folder into ``out``, all together or
    not at all (:func:`telcoplan.gis.atomic.publish_files`), with ``out``'s lock held.

    First what killed runs left is cleaned up (:func:`remove_abandoned_runs`). The previous
    run's outputs this run does not write go too. Without ``overwrite``, an output already
    there is an error; a folder where an output goes always is (nothing moves then).
    """
    from telcoplan.gis.atomic import publish_files

    _remove_abandoned(out)
    clash = [n for n in names if (out / n).exists()]
    if clash and not overwrite:
        raise OutputExistsError(
            f"{out / clash[0]} already exists; pass --overwrite to replace the outputs in {out}"
        )
    for name in names:
        if (out / name).is_dir():
            raise OutputExistsError(
                f"{out / name} is a folder; the run writes a file {name} there: move the "
                "folder away (nothing was written)"
            )
    stale = sorted(previous_outputs(out) - set(names))
    log.debug("publishing %d outputs into %s", len(names), out)
    try:
        publish_files(staging, out, names, stale)
    except OSError as exc:
        raise OutputExistsError(
            f"cannot write the outputs into {out} ({exc.strerror or exc}); nothing was "
            "changed there"
        ) from None
    removed = [n for n in stale if (staging / f".previous-{n}").exists()]
    if removed:
        log.info("removed %d outputs of the previous run that this run did not write", len(removed))


def remove_abandoned_runs(out_dir: str | os.PathLike) -> list[Path]:
    """Clean up after the runs into ``out_dir`` that were killed: undo the publishing one of
    them had half done (its previous outputs come back byte for byte) and remove their staging
    folders (:data:`STAGING`); returns those removed.

    Only staging folders whose run has ended are touched (their owner file is not locked:
    :func:`telcoplan.gis.atomic.remove_abandoned`); a run going on in the same folder keeps its
    own. Every run does this first; it is safe at any time.
    """
    from telcoplan.gis.atomic import folder_lock

    out = Path(out_dir)
    if not out.is_dir():
        return []
    with folder_lock(out):
        return _remove_abandoned(out)


def _remove_abandoned(out: Path) -> list[Path]:
    """:func:`remove_abandoned_runs` with the folder's lock held."""
    from telcoplan.gis.atomic import remove_abandoned, undo_publish

    def undo(folder: Path) -> None:
        if undo_publish(folder, out):
            log.warning(
                "%s: a run died while moving its outputs into place; the previous outputs are back",
                out,
            )

    removed = remove_abandoned(out, STAGING, before=undo)
    if removed:
        n = len(removed)
        log.info(
            "removed %d staging folder%s left in %s by runs that did not finish",
            n,
            "s" if n > 1 else "",
            out,
        )
    return removed


# -------------------------------------------------------------------------------- cache
#: Version of the cache's layout: a change leaves every kept result unused.
CACHE_FORMAT = 1
#: A cache entry's name: what it keeps (a stage, ``inputs``, ``styles``), a dash, its key.
_ENTRY = re.compile(r"[a-z][a-z0-9_]*-[0-9a-f]{64}")
_MANIFEST = "manifest.json"


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
        if file_sha256(path) != self.manifest["value"]:
            raise BrokenEntryError("its result changed since it was kept")
        with open(path, "rb") as fh:
            return pickle.load(fh)


class ResultCache:
    """Results kept in an output folder (:data:`CACHE`) for the runs after.

    One folder per result, ``<what>-<key>``: ``manifest.json`` (what, the key, each file with
    its SHA-256), ``files/`` (the files, hard links of the outputs where the file system
    allows), ``summary.pickle`` and ``value.pickle`` (an in-memory result, if any). An entry
    is built in the run's staging folder (in a background thread: :meth:`put`, :meth:`wait`)
    and renamed into place complete; entries are never changed, only replaced or removed.
    Entries are read as pickles: the cache belongs to whoever may write into the folder.
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
        try:
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
