"""Clutter (land-use) classes of a calibration: measurements' labels and per-cell offsets.

:func:`clutter_labels` names the land-use codes sampled under drive-test measurements (the
``clutter=`` of :func:`telcoplan.coverage.calibration.calibrate`); :func:`clutter_offset_grid`
lays a calibration's per-class offsets on a land-use raster for the coverage stage. Codes are
named as :mod:`telcoplan.layers.land_use` names them (its ``code_text`` and
``read_clutter_table``), so offsets apply by class name. Both functions are re-exported by
:mod:`telcoplan.coverage.calibration`.

Land use never covers everything: places no polygon covers, and a raster's nodata, form the
class :data:`UNCLASSIFIED`. A fit gives it an offset like any other class when measurements lie
there (0 dB, the reference's, when none do), and the coverage grid gives cells without a class
that offset, so that fit and prediction agree.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from telcoplan.coverage.drive_test import format_rows
from telcoplan.errors import LayerValidationError, Problem
from telcoplan.layers.land_use import code_text

if TYPE_CHECKING:
    from telcoplan.coverage.calibration import Calibration

__all__ = ["UNCLASSIFIED", "ClutterGrid", "clutter_labels", "clutter_offset_grid"]

log = logging.getLogger(__name__)

#: Clutter class of the places the land-use layer gives no class (outside every polygon, outside
#: the raster, or on its nodata cells).
UNCLASSIFIED = "unclassified"


def clutter_labels(
    codes: Sequence[Any] | np.ndarray,
    names: Mapping[Any, str] | None = None,
    *,
    source: str = "<land use>",
    layer_source: str = "<measurements>",
) -> np.ndarray:
    """Clutter class names of measurements from the land-use codes sampled under them.

    Parameters
    ----------
    codes
        Land-use code at each measurement (numbers; NaN where the measurement lies outside
        the raster or every polygon, or on a nodata cell), in the measurements' row order.
    names
        Class name of each code (e.g. from a ``code,name`` CSV). Without it, the code itself
        names the class, as text (``10``, not ``10.0``, for whole numbers).
    source, layer_source
        Names of the land-use raster and of the measurements in error messages.

    Returns
    -------
    numpy.ndarray
        object (n,): class name per measurement, to pass as ``clutter=`` to :func:`calibrate`;
        :data:`UNCLASSIFIED` where the code is NaN (no class there).

    Raises
    ------
    telcoplan.errors.LayerValidationError
        Codes that ``names`` does not name (each code, with its first rows): a class table that
        does not match its raster is a mistake, not a place without a class.
    """
    values = np.asarray(codes, dtype=np.float64).ravel()
    problems: list[Problem] = []
    missing = ~np.isfinite(values)
    if missing.any():
        log.info(
            "%d of %d measurements of %s have no land-use class (outside every polygon or the "
            "raster, or on its nodata): class %r",
            int(missing.sum()),
            len(values),
            layer_source,
            UNCLASSIFIED,
        )
    text = np.array([code_text(v) for v in values], dtype=object)
    if names is not None:
        lookup = {code_text(float(k)): str(v) for k, v in names.items()}
        ok = np.isfinite(values)
        for code in sorted(set(text[ok]) - set(lookup), key=float):
            rows = np.flatnonzero(ok & (text == code))
            problems.append(
                Problem(
                    None,
                    "code",
                    f"land-use code {code} under {len(rows)} measurement(s) of {layer_source} "
                    f"(rows {format_rows(rows)}) has no name in the class table; add a row "
                    f"'{code},<name>'",
                )
            )
        text = np.array([lookup.get(t, t) for t in text], dtype=object)
    if problems:
        raise LayerValidationError(source, "land use", problems)
    text[missing] = UNCLASSIFIED
    return text


@dataclass(frozen=True)
class ClutterGrid:
    """A calibration's clutter offsets laid on a land-use raster (see :func:`clutter_offset_grid`).

    ``offset_db`` (float32, the raster's shape) is the loss (dB) added to every path that ends
    in the cell; ``share_pct`` the % of the raster's cells (the whole plan grid, sea and land
    outside the areas included) in each class the calibration knows;
    ``unknown_pct`` the same for classes it does not know (0 dB, the offset of the fit's reference
    class) and ``nodata_pct`` for cells without a class (the calibration's
    :data:`UNCLASSIFIED` offset when it has one, else 0 dB).
    """

    offset_db: np.ndarray
    share_pct: dict[str, float]
    unknown_pct: dict[str, float]
    nodata_pct: float


def clutter_offset_grid(
    calibration: Calibration, codes: np.ndarray, names: Mapping[float, str] | None = None
) -> ClutterGrid:
    """Per-cell clutter offsets of ``calibration`` from a land-use raster's codes.

    ``codes`` holds the raster's value per cell (NaN = nodata), ``names`` the class table (as
    for :func:`clutter_labels`: without one, the code itself names the class). A class the
    calibration was not fitted on gets 0 dB — the reference class — and is reported (a land-use
    map usually has classes, such as water, that no drive test crossed). A cell without a class
    gets the calibration's :data:`UNCLASSIFIED` offset, as the measurements without a class had
    in the fit; calibrations without that class (written before it existed) give it 0 dB.
    """
    if not calibration.clutter_offsets_db:
        raise ValueError("this calibration has no clutter offsets (calibrate with --land-use)")
    values = np.asarray(codes, dtype=np.float64)
    finite = np.isfinite(values)
    offset = np.zeros(values.shape, dtype=np.float32)
    lookup = {} if names is None else {code_text(float(k)): str(v) for k, v in names.items()}
    n = max(values.size, 1)
    share: dict[str, float] = {}
    unknown: dict[str, float] = {}
    uniq, inverse = np.unique(values[finite], return_inverse=True)
    counts = np.bincount(inverse, minlength=len(uniq))
    per_code = np.zeros(len(uniq), dtype=np.float32)
    for i, (code, count) in enumerate(zip(uniq, counts, strict=True)):
        text = code_text(float(code))
        name = lookup.get(text, text)
        pct = 100.0 * float(count) / n
        if name in calibration.clutter_offsets_db:
            per_code[i] = calibration.clutter_offsets_db[name]
            share[name] = share.get(name, 0.0) + pct
        else:
            unknown[name] = unknown.get(name, 0.0) + pct
    offset[finite] = per_code[inverse]
    offset[~finite] = calibration.clutter_offsets_db.get(UNCLASSIFIED, 0.0)
    return ClutterGrid(
        offset_db=offset,
        share_pct={k: round(v, 3) for k, v in share.items()},
        unknown_pct={k: round(v, 3) for k, v in unknown.items()},
        nodata_pct=round(100.0 * float((~finite).sum()) / n, 3),
    )
