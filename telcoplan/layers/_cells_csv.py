"""Reading and checking OpenCelliD cell exports (CSV, optionally gzip-compressed).

The file format and the row checks shared by :func:`read_opencellid_csv` and the site grouping
(:func:`telcoplan.layers.opencellid.cells_to_sites`, which accepts frames from other sources):
:func:`canonical_columns` maps column names and their aliases to the canonical ones,
:func:`missing_columns` and :func:`parse_cells` report every problem at once.
"""

from __future__ import annotations

import csv
import functools
import gzip
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from telcoplan.errors import InputFileError, LayerValidationError, Problem

__all__ = [
    "CELLS_LAYER",
    "OPENCELLID_COLUMNS",
    "RADIO_TECHNOLOGY",
    "canonical_columns",
    "missing_columns",
    "parse_cells",
    "read_opencellid_csv",
]

#: Columns of an OpenCelliD cell export, in file order (headerless files are read with these).
OPENCELLID_COLUMNS: tuple[str, ...] = (
    "radio",
    "mcc",
    "net",
    "area",
    "cell",
    "unit",
    "lon",
    "lat",
    "range",
    "samples",
    "changeable",
    "created",
    "updated",
    "averageSignal",
)

#: OpenCelliD ``radio`` value → telcoplan technology. CDMA networks (CDMA2000 1x / EV-DO) are
#: counted as 3G.
RADIO_TECHNOLOGY: Mapping[str, str] = MappingProxyType(
    {"GSM": "2G", "UMTS": "3G", "CDMA": "3G", "LTE": "4G", "NR": "5G"}
)

#: Layer name in the errors about cells (the file, or the frame given to the site grouping).
CELLS_LAYER = "OpenCelliD cells"
#: Columns a file with a header line must have (the others are optional).
_FILE_REQUIRED = ("radio", "mcc", "net", "area", "cell", "lon", "lat")
_ALIASES = {"mnc": "net", "lac": "area", "tac": "area", "cid": "cell", "long": "lon", "lng": "lon"}
_CANONICAL = {c.lower(): c for c in OPENCELLID_COLUMNS} | _ALIASES
_INT_COLUMNS = ("mcc", "net", "area", "cell", "samples")
_MISSING_TEXT = ("", "nan", "NaN", "NA", "None", "<NA>")


def read_opencellid_csv(path: str | PathLike[str]) -> pd.DataFrame:
    """Read an OpenCelliD cell export (CSV, optionally ``.gz``), checking every row.

    Parameters
    ----------
    path
        The CSV file: OpenCelliD's ``cell_towers.csv(.gz)`` or a per-country file such as
        ``452.csv.gz``. Real exports have no header line; a file whose first line names the
        columns (case-insensitive; ``mnc``, ``lac``/``tac``, ``cid`` and ``long``/``lng`` are
        accepted for ``net``, ``area``, ``cell`` and ``lon``) is read by those names, in any
        order. Such a file needs ``radio, mcc, net, area, cell, lon, lat``; the other columns
        are optional. Blank lines are ignored.

    Returns
    -------
    pandas.DataFrame
        One row per cell, columns :data:`OPENCELLID_COLUMNS` in that order: ``radio`` upper
        case (GSM, UMTS, CDMA, LTE or NR); ``mcc``, ``net``, ``area``, ``cell`` and
        ``samples`` as int64 (missing ``samples`` → 0); ``lon``, ``lat`` in decimal degrees
        (WGS 84) and the remaining columns as float64 (NaN where missing or not a number:
        they are informative only and not checked). Default RangeIndex, file order.

    Raises
    ------
    InputFileError
        The file does not exist or cannot be read / decoded (UTF-8 expected).
    LayerValidationError
        Listing every problem at once: missing or duplicate columns, a headerless file
        without 14 fields per line, lines with more fields than the first, an empty file,
        and per row: unknown ``radio``; ``mcc``, ``net``, ``area``, ``cell``, ``samples``
        not whole non-negative numbers (MCC and MNC at most 999); ``lon`` / ``lat`` not
        numbers or outside ±180° / ±90°. Here a problem's ``row`` is the **line number in
        the file** (counting the header line when there is one), as shown by text editors.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise InputFileError(
            f"{source}: no such file; give the path of an OpenCelliD CSV export "
            "(cell_towers.csv.gz or a country file such as 452.csv.gz)"
        )
    try:
        raw = pd.read_csv(
            path,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            encoding="utf-8",
            compression="infer",
        )
    except pd.errors.EmptyDataError:
        raise LayerValidationError(
            source,
            CELLS_LAYER,
            [Problem(None, None, "the file is empty; it should hold one cell per line")],
        ) from None
    except pd.errors.ParserError as exc:
        raise LayerValidationError(source, CELLS_LAYER, _field_count_problems(path, exc)) from None
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InputFileError(
            f"{source}: cannot read the file ({exc}); it should be a UTF-8 CSV, optionally "
            "gzip-compressed (.csv.gz)"
        ) from exc

    # physical line numbers survive: skip_blank_lines=False keeps one row per line
    raw = raw[~(raw.apply(lambda s: s.str.strip()) == "").all(axis=1)]
    if raw.empty:
        raise LayerValidationError(
            source,
            CELLS_LAYER,
            [Problem(None, None, "the file has no data lines; it should hold one cell per line")],
        )
    first = [str(v).strip() for v in raw.iloc[0]]
    problems: list[Problem] = []
    if any(v.lower() in _CANONICAL for v in first):
        names = first
        data = raw.iloc[1:]
        renamed: dict[object, str] = {}
        for pos, name in zip(raw.columns, names, strict=True):
            canon = _CANONICAL.get(name.lower())
            if canon is None:
                continue
            if canon in renamed.values():
                problems.append(
                    Problem(
                        None,
                        canon,
                        f"the header names column {canon!r} twice (as {name!r}); keep one",
                    )
                )
                continue
            renamed[pos] = canon
        frame = data[list(renamed)].rename(columns=renamed)
        problems += missing_columns(frame.columns, _FILE_REQUIRED, first, header=True)
        if frame.empty:
            problems.append(Problem(None, None, "the file has a header line but no cells"))
    else:
        if raw.shape[1] != len(OPENCELLID_COLUMNS):
            raise LayerValidationError(
                source,
                CELLS_LAYER,
                [
                    Problem(
                        None,
                        None,
                        f"the file has no header line and {raw.shape[1]} field(s) per line; an "
                        f"OpenCelliD export has {len(OPENCELLID_COLUMNS)} "
                        f"({','.join(OPENCELLID_COLUMNS)}). Check that fields are separated by "
                        "commas, or add a header line naming the columns",
                    )
                ],
            )
        frame = raw.set_axis(list(OPENCELLID_COLUMNS), axis=1)
    lines = frame.index.to_numpy() + 1
    cells, row_problems = parse_cells(frame, lines)
    problems += row_problems
    if problems:
        raise LayerValidationError(source, CELLS_LAYER, problems)
    for col in OPENCELLID_COLUMNS:
        if col not in cells.columns:
            cells[col] = 0 if col == "samples" else np.nan
    return cells[list(OPENCELLID_COLUMNS)].reset_index(drop=True)


def _field_count_problems(path: Path, exc: Exception) -> list[Problem]:
    """Every line whose number of fields differs from the first non-blank line's."""
    if path.suffix.lower() == ".gz":
        opener = functools.partial(gzip.open, path, "rt", encoding="utf-8", newline="")
    elif path.suffix.lower() in (".bz2", ".xz", ".zip", ".zst", ".tar"):
        return [Problem(None, None, f"the CSV cannot be parsed: {exc}")]
    else:
        opener = functools.partial(open, path, encoding="utf-8", newline="")
    problems: list[Problem] = []
    expected = None
    try:
        with opener() as fh:
            reader = csv.reader(fh)
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue
                if expected is None:
                    expected = len(fields)
                elif len(fields) > expected:
                    problems.append(
                        Problem(
                            reader.line_num,
                            None,
                            f"the line has {len(fields)} fields, more than the {expected} of "
                            "the first line; remove the extra fields (a stray comma?)",
                        )
                    )
    except (OSError, EOFError, UnicodeDecodeError, csv.Error):
        problems = []
    return problems or [Problem(None, None, f"the CSV cannot be parsed: {exc}")]


def missing_columns(
    present: pd.Index, required: tuple[str, ...], shown: object, *, header: bool
) -> list[Problem]:
    """One problem per column of ``required`` not in ``present``; ``shown`` lists the input's."""
    where = "the header line" if header else "the table"
    given = ", ".join(str(c) for c in shown) or "none"
    return [
        Problem(
            None,
            col,
            f"required column is missing from {where} (columns present: {given}); an "
            f"OpenCelliD export has {','.join(OPENCELLID_COLUMNS)}",
        )
        for col in required
        if col not in present
    ]


def _numeric(series: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``series`` as float64, with masks of missing values and of values that are no numbers."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        missing = np.isnan(values)
        bad = np.isinf(values)
    else:
        text = series.astype(object).where(series.notna(), "").astype(str).str.strip()
        missing = text.isin(_MISSING_TEXT).to_numpy()
        strings = text.to_numpy(dtype=object)
        strings[missing] = "nan"
        try:  # fast path: every value parses
            values = strings.astype(float)
        except (TypeError, ValueError):
            parsed = pd.to_numeric(pd.Series(strings), errors="coerce")
            values = parsed.to_numpy(dtype=float, na_value=np.nan)
        bad = ~missing & ~np.isfinite(values)
    values = values.copy()
    values[bad] = np.nan
    return values, missing, bad


_WHAT = {
    "mcc": ("the Mobile Country Code (MCC)", "e.g. 452 for Vietnam", 999.0),
    "net": ("the Mobile Network Code (MNC)", "e.g. 4 for Viettel", 999.0),
    "area": ("the location / tracking area code (LAC/TAC)", "e.g. 10521", None),
    "cell": ("the cell id", "e.g. 26115586", None),
    "samples": ("the number of measurements", "e.g. 12", None),
}


def parse_cells(frame: pd.DataFrame, rows: np.ndarray) -> tuple[pd.DataFrame, list[Problem]]:
    """Check and convert the known columns of ``frame`` (canonical names) row by row.

    ``rows`` gives the number reported for each row. Returns the converted frame (same
    index) and the problems, sorted by row.
    """
    found: list[tuple[int, int, Problem]] = []  # (row, column order, problem)
    order = {c: i for i, c in enumerate(OPENCELLID_COLUMNS)}

    def add(mask: np.ndarray, col: str, message) -> None:
        for i in np.flatnonzero(mask):
            row = int(rows[i])
            found.append((row, order[col], Problem(row, col, message(i))))

    out: dict[str, object] = {}
    if "radio" in frame.columns:
        text = (
            frame["radio"].astype(object).where(frame["radio"].notna(), "").astype(str).str.strip()
        )
        radio = text.str.upper()
        missing = text.isin(_MISSING_TEXT).to_numpy()
        unknown = ~missing & ~radio.isin(list(RADIO_TECHNOLOGY)).to_numpy()
        choices = ", ".join(RADIO_TECHNOLOGY)
        add(missing, "radio", lambda i: f"value is missing; give the radio technology ({choices})")
        add(
            unknown,
            "radio",
            lambda i: (
                f"unknown radio {text.iloc[i]!r}; expected one of {choices} (OpenCelliD's values)"
            ),
        )
        out["radio"] = radio.to_numpy(dtype=object)

    for col in ("mcc", "net", "area", "cell", "samples"):
        if col not in frame.columns:
            continue
        what, example, hi = _WHAT[col]
        values, missing, bad = _numeric(frame[col])
        raw = frame[col]
        add(
            bad,
            col,
            lambda i, raw=raw, what=what, ex=example: (
                f"value {raw.iloc[i]!r} is not a number; give {what} as a whole number, {ex}"
            ),
        )
        if col != "samples":
            add(
                missing,
                col,
                lambda i, what=what, ex=example: f"value is missing; give {what}, {ex}",
            )
        ok = np.isfinite(values)
        frac = ok & (values != np.round(values))
        add(
            frac,
            col,
            lambda i, v=values, what=what: f"value {v[i]:g} is not a whole number; give {what}",
        )
        neg = ok & ~frac & (values < 0)
        add(
            neg,
            col,
            lambda i, v=values, what=what: f"value {v[i]:g} is negative; give {what} (≥ 0)",
        )
        if hi is not None:
            big = ok & ~frac & (values > hi)
            add(
                big,
                col,
                lambda i, v=values, what=what, hi=hi: (
                    f"value {v[i]:g} is too large for {what} (≤ {hi:g})"
                ),
            )
        out[col] = np.where(ok, values, 0.0).astype(np.int64)

    for col, name, limit in (("lon", "longitude", 180.0), ("lat", "latitude", 90.0)):
        if col not in frame.columns:
            continue
        values, missing, bad = _numeric(frame[col])
        raw = frame[col]
        add(
            bad,
            col,
            lambda i, raw=raw, name=name: (
                f"value {raw.iloc[i]!r} is not a number; give the {name} in decimal degrees "
                "(WGS 84)"
            ),
        )
        add(
            missing,
            col,
            lambda i, name=name: f"value is missing; give the {name} in decimal degrees (WGS 84)",
        )
        out_of_range = np.isfinite(values) & (np.abs(values) > limit)
        add(
            out_of_range,
            col,
            lambda i, v=values, name=name, limit=limit: (
                f"{name} {v[i]:g}° is outside ±{limit:g}°; check the value (decimal degrees, "
                "WGS 84) "
                "and that lon and lat are not swapped"
            ),
        )
        out[col] = values

    for col in ("unit", "range", "changeable", "created", "updated", "averageSignal"):
        if col in frame.columns:
            out[col] = _numeric(frame[col])[0]

    found.sort(key=lambda t: (t[0], t[1]))
    return pd.DataFrame(out, index=frame.index), [p for _, _, p in found]


def canonical_columns(cells: pd.DataFrame) -> pd.DataFrame:
    """A new frame with the known columns of ``cells`` under their canonical names."""
    picked: dict[str, pd.Series] = {}
    for col in cells.columns:
        canon = _CANONICAL.get(str(col).strip().lower())
        if canon is not None and canon not in picked:
            picked[canon] = cells[col].reset_index(drop=True)
    return pd.DataFrame(picked, index=pd.RangeIndex(len(cells)))
