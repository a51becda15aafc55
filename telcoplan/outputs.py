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

import hashlib
import json
import logging
import math
import numbers
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
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
    "OPERATOR_PALETTE",
    "PROJECT",
    "REPORT",
    "RESERVED_OPERATOR_NAMES",
    "REVIEW",
    "REVIEW_TABLE",
    "SITES",
    "STAGING",
    "SUMMARY",
    "derived",
    "file_sha256",
    "is_missing",
    "may_be_output",
    "operator_colours",
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

#: Names of the files a run may write, besides the fixed ones: per-operator rasters, their
#: attribute tables and QGIS styles.
_OUTPUT_PATTERN = re.compile(r"(signal|server)_.+\.tif(\.aux\.xml)?|.+\.qml")


def may_be_output(name: str) -> bool:
    """Whether a run may write a file called ``name`` into its output folder."""
    fixed = {
        SUMMARY, COVERAGE, GAPS, SITES, BACKBONE, OPERATORS_COUNT, COVERAGE_LIMIT, MAP, REPORT,
        FIGURE, PROJECT, REVIEW, REVIEW_TABLE,
    }  # fmt: skip
    return name in fixed or _OUTPUT_PATTERN.fullmatch(name) is not None


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

#: Categorical colours for operators (tab10 without its red and green, which mean
#: "unserved"/"gap" and "served" on the map), the same in every output that shows operators:
#: the web map, the QGIS styles, the figure and the report (:func:`operator_colours`).
OPERATOR_PALETTE: tuple[str, ...] = (
    "#1f77b4",
    "#ff7f0e",
    "#9467bd",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#7f7f7f",
)


def is_missing(value: object) -> bool:
    """True for None, NaN (Python or numpy), numpy's NaT and pandas' missing-value markers: a
    value the outputs show as missing (the map, the report, the operators' colours) — for a
    single value, what ``pandas.isna`` says."""
    if value is None:
        return True
    import pandas as pd  # loaded by whoever has values from a frame

    if value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, numbers.Real) and not isinstance(value, bool | numbers.Integral):
        return math.isnan(float(value))
    if hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:  # numpy scalar
        kind = value.dtype.kind
        return kind in "fcmM" and bool(value != value)  # NaN and NaT differ from themselves
    return False


def operator_colours(*names: Iterable[object]) -> dict[str, str]:
    """A stable colour per operator name (sorted, cycling through :data:`OPERATOR_PALETTE`;
    missing names and ``any`` left out)."""
    ops = sorted({str(n) for group in names for n in group if not is_missing(n)} - {"any"})
    return {op: OPERATOR_PALETTE[i % len(OPERATOR_PALETTE)] for i, op in enumerate(ops)}


# ----------------------------------------------------------------------------- file names
def slug(name: str) -> str:
    """File-name-safe ASCII form of an operator name: 'Viettel' → 'viettel', 'Đà Nẵng' → 'da-nang';
    a name with no Latin letter or digit (中国移动) → 'op-' and 8 hex digits of its SHA-256, so
    that two such names still get files of their own."""
    text = unicodedata.normalize("NFKD", str(name).replace("Đ", "D").replace("đ", "d"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    # letters or digits with no ASCII form (中国移动4 and 中国联通4 would both give "4")
    lost = any(ch.isalnum() and not ch.isascii() for ch in text)
    text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    if text and not lost:
        return text
    digest = hashlib.sha256(str(name).encode("utf-8")).hexdigest()[:8]
    return f"{text}-{digest}" if text else f"op-{digest}"


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
