"""``summary.json``: the machine-readable key figures and provenance of a run."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path

from telcoplan.gis.atomic import atomic_path

__all__ = [
    "COVERAGE_KEYS",
    "RESERVED_OPERATOR_NAMES",
    "file_sha256",
    "read_summary",
    "write_summary",
]

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
    text = json.dumps(_clean(summary), ensure_ascii=False, indent=2, allow_nan=False)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def read_summary(path: str | os.PathLike) -> dict:
    """A run's ``summary.json``; a clear :class:`InputFileError` when it is missing, malformed
    or not written by telcoplan (every run writes ``population_total``)."""
    from telcoplan.errors import InputFileError

    p = Path(path)
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
