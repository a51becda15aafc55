"""OpenCelliD import: crowd-sourced cell positions to a towers layer.

`OpenCelliD <https://opencellid.org>`_ publishes one row per radio *cell* (a sector / carrier
seen by phones), with an estimated position. The planner needs *sites* (masts) with radio
parameters. This module turns the one into the other:

1. :func:`read_opencellid_csv` reads an OpenCelliD CSV export (with or without a header line,
   optionally gzip-compressed) and reports every bad row at once.
2. :func:`load_operator_table` gives the MCC/MNC → operator name table (a table for Vietnam,
   MCC 452, ships with the package in ``layers/data/mcc_mnc.csv``).
3. :func:`cells_to_sites` groups the cells of each operator into sites by single-linkage
   clustering within :data:`DEFAULT_SITE_RADIUS_M` and fills the radio parameters that
   OpenCelliD does not know (frequency, antenna height, EIRP) from documented defaults
   (:class:`ImportDefaults`). The result satisfies the :data:`~telcoplan.layers.schemas.TOWERS`
   schema.

The OpenCelliD cell format (shared with the former Mozilla Location Service) has the columns
``radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal``:
radio technology, Mobile Country Code, Mobile Network Code (for CDMA: system id), location /
tracking area code (for CDMA: network id), cell id, PSC/PCI, position (WGS 84 decimal degrees),
estimated range (m), number of measurements, 0/1 (position given by the operator / computed from
measurements), first and last seen (Unix time, s) and the average signal (dBm, mostly 0).
"""

from __future__ import annotations

import csv
import functools
import gzip
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from os import PathLike
from pathlib import Path
from types import MappingProxyType

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import Transformer

from telcoplan.errors import InputFileError, LayerValidationError, Problem
from telcoplan.gis.crs import utm_crs_for
from telcoplan.layers.schemas import TECHNOLOGIES

__all__ = [
    "DEFAULT_EIRP_DBM",
    "DEFAULT_FREQUENCY_MHZ",
    "DEFAULT_HEIGHT_M",
    "DEFAULT_SITE_RADIUS_M",
    "OPENCELLID_COLUMNS",
    "RADIO_TECHNOLOGY",
    "TECHNOLOGY_CHOICES",
    "ImportDefaults",
    "cells_to_sites",
    "import_cells",
    "load_operator_table",
    "read_opencellid_csv",
]

log = logging.getLogger(__name__)

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

#: Values of the ``technology=`` argument of :func:`cells_to_sites` (also for a CLI choice).
TECHNOLOGY_CHOICES: tuple[str, ...] = ("best", "all", *TECHNOLOGIES)

#: Cells of one operator whose positions are within this distance (m) of each other, directly
#: or through a chain of such cells (single linkage), form one site. See :func:`cells_to_sites`.
DEFAULT_SITE_RADIUS_M = 50.0

#: Assumed carrier frequency (MHz) per technology: the bands most used in Vietnam
#: (GSM 900, UMTS band 1 at 2100, LTE band 3 at 1800, NR n78 at 3500).
DEFAULT_FREQUENCY_MHZ: Mapping[str, float] = MappingProxyType(
    {"2G": 900.0, "3G": 2100.0, "4G": 1800.0, "5G": 3500.0}
)

#: Assumed antenna height above ground (m) of a macro site.
DEFAULT_HEIGHT_M = 30.0

#: Assumed EIRP (dBm) per technology, antenna gain included: a macro sector with 20-40 W
#: (43-46 dBm) of transmit power, ~15-18 dBi of antenna gain and ~2-3 dB of feeder loss.
DEFAULT_EIRP_DBM: Mapping[str, float] = MappingProxyType(
    {"2G": 58.0, "3G": 58.0, "4G": 60.0, "5G": 62.0}
)

_LAYER = "OpenCelliD cells"
_SOURCE_NAME = "OpenCelliD"
#: Columns a file with a header line must have (the others are optional).
_FILE_REQUIRED = ("radio", "mcc", "net", "area", "cell", "lon", "lat")
#: Columns :func:`cells_to_sites` needs in its input frame.
_SITES_REQUIRED = ("radio", "mcc", "net", "lon", "lat")
_ALIASES = {"mnc": "net", "lac": "area", "tac": "area", "cid": "cell", "long": "lon", "lng": "lon"}
_CANONICAL = {c.lower(): c for c in OPENCELLID_COLUMNS} | _ALIASES
_INT_COLUMNS = ("mcc", "net", "area", "cell", "samples")
_MISSING_TEXT = ("", "nan", "NaN", "NA", "None", "<NA>")

_OUTPUT_COLUMNS = (
    "site_id",
    "operator",
    "technology",
    "frequency_mhz",
    "height_m",
    "eirp_dbm",
    "name",
    "n_cells",
    "technologies",
    "mcc",
    "mnc",
    "area",
    "samples",
    "source",
)


# ----------------------------------------------------------------------------- defaults
@dataclass(frozen=True)
class ImportDefaults:
    """Radio parameters that OpenCelliD does not provide, and the site grouping distance.

    Every value is an assumption, not a measurement: replace them with the operators' data
    when you have it. A dictionary may name only some technologies; the others keep their
    default values, e.g. ``ImportDefaults(frequency_mhz={"4G": 2600.0})``.

    Attributes
    ----------
    frequency_mhz : dict of str to float
        Carrier frequency (MHz) per technology ("2G", "3G", "4G", "5G"); defaults in
        :data:`DEFAULT_FREQUENCY_MHZ`.
    height_m : float
        Antenna height above ground (m) of every site; default :data:`DEFAULT_HEIGHT_M`.
    eirp_dbm : dict of str to float
        EIRP (dBm, antenna gain included) per technology; defaults in :data:`DEFAULT_EIRP_DBM`.
    site_radius_m : float
        Single-linkage distance (m) for grouping cells into sites; default
        :data:`DEFAULT_SITE_RADIUS_M`. 0 groups only cells at identical positions.

    Raises
    ------
    ValueError
        For an unknown technology or a value outside the towers schema's range
        (frequency 100-100,000 MHz, height 0-500 m, EIRP -30-90 dBm, radius ≥ 0 m).
    """

    frequency_mhz: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FREQUENCY_MHZ))
    height_m: float = DEFAULT_HEIGHT_M
    eirp_dbm: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EIRP_DBM))
    site_radius_m: float = DEFAULT_SITE_RADIUS_M

    def __post_init__(self) -> None:
        freq = _complete(
            self.frequency_mhz, DEFAULT_FREQUENCY_MHZ, "frequency_mhz", 100.0, 100_000.0, "MHz"
        )
        eirp = _complete(self.eirp_dbm, DEFAULT_EIRP_DBM, "eirp_dbm", -30.0, 90.0, "dBm")
        height = _number(self.height_m, "height_m")
        if not 0.0 < height <= 500.0:
            raise ValueError(
                f"height_m={self.height_m!r} m is out of range; give a height > 0 and ≤ 500 m"
            )
        radius = _number(self.site_radius_m, "site_radius_m")
        if radius < 0.0:
            raise ValueError(
                f"site_radius_m={self.site_radius_m!r} m is negative; give a distance ≥ 0 m"
            )
        object.__setattr__(self, "frequency_mhz", freq)
        object.__setattr__(self, "eirp_dbm", eirp)
        object.__setattr__(self, "height_m", height)
        object.__setattr__(self, "site_radius_m", radius)


def _number(value: object, name: str) -> float:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(out):
        raise ValueError(f"{name}={value!r} is not a finite number")
    return out


def _complete(
    given: Mapping[str, float],
    default: Mapping[str, float],
    name: str,
    lo: float,
    hi: float,
    unit: str,
) -> dict[str, float]:
    unknown = sorted(set(given) - set(TECHNOLOGIES))
    if unknown:
        raise ValueError(
            f"{name} has unknown technologies {unknown}; use keys among {', '.join(TECHNOLOGIES)}"
        )
    out = dict(default)
    for tech, value in given.items():
        v = _number(value, f"{name}[{tech!r}]")
        if not lo <= v <= hi:
            raise ValueError(
                f"{name}[{tech!r}]={value!r} {unit} is out of range ({lo:g}-{hi:g} {unit})"
            )
        out[tech] = v
    return out


# ----------------------------------------------------------------------------- reading
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
            _LAYER,
            [Problem(None, None, "the file is empty; it should hold one cell per line")],
        ) from None
    except pd.errors.ParserError as exc:
        raise LayerValidationError(source, _LAYER, _field_count_problems(path, exc)) from None
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
            _LAYER,
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
        problems += _missing_columns(frame.columns, _FILE_REQUIRED, first, header=True)
        if frame.empty:
            problems.append(Problem(None, None, "the file has a header line but no cells"))
    else:
        if raw.shape[1] != len(OPENCELLID_COLUMNS):
            raise LayerValidationError(
                source,
                _LAYER,
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
    cells, row_problems = _parse_cells(frame, lines)
    problems += row_problems
    if problems:
        raise LayerValidationError(source, _LAYER, problems)
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


def _missing_columns(
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


def _parse_cells(frame: pd.DataFrame, rows: np.ndarray) -> tuple[pd.DataFrame, list[Problem]]:
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


# ----------------------------------------------------------------------------- operators
def load_operator_table(path: str | PathLike[str] | None = None) -> dict[tuple[int, int], str]:
    """The MCC/MNC → operator name table.

    Parameters
    ----------
    path
        A CSV with a header line and the columns ``mcc``, ``mnc``, ``operator`` (others, such
        as ``country``, are ignored). None (default) reads the table shipped with telcoplan
        (``telcoplan/layers/data/mcc_mnc.csv``: the Vietnamese networks, MCC 452).

    Returns
    -------
    dict
        ``{(mcc, mnc): operator}``, e.g. ``{(452, 4): "Viettel", ...}``. MNCs are integers,
        so "04" and "4" are the same network (2- and 3-digit MNCs are not distinguished).

    Raises
    ------
    InputFileError
        ``path`` does not exist or cannot be read.
    LayerValidationError
        Every problem at once: missing columns, MCC/MNC not whole numbers in 0-999, an empty
        operator name, one MCC/MNC given two different names. Rows are line numbers in the
        file (the header is line 1).
    """
    if path is None:
        return dict(_packaged_operator_table())
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file; give a CSV with the columns mcc,mnc,operator")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(
            f"{path}: cannot read the operator table ({exc}); it should be a UTF-8 CSV"
        ) from exc
    return _parse_operator_table(text, str(path))


@functools.cache
def _packaged_operator_table() -> tuple[tuple[tuple[int, int], str], ...]:
    resource = resources.files("telcoplan.layers").joinpath("data").joinpath("mcc_mnc.csv")
    text = resource.read_text(encoding="utf-8")
    return tuple(_parse_operator_table(text, "telcoplan/layers/data/mcc_mnc.csv").items())


def _parse_operator_table(text: str, source: str) -> dict[tuple[int, int], str]:
    layer = "operator table"
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise LayerValidationError(
            source,
            layer,
            [Problem(None, None, "the file is empty; give a header line mcc,mnc,operator")],
        )
    index = {name.strip().lower(): i for i, name in enumerate(header)}
    missing = [c for c in ("mcc", "mnc", "operator") if c not in index]
    if missing:
        raise LayerValidationError(
            source,
            layer,
            [
                Problem(
                    None,
                    c,
                    f"required column is missing (header: {','.join(header)}); "
                    "expected mcc,mnc,operator",
                )
                for c in missing
            ],
        )
    table: dict[tuple[int, int], str] = {}
    seen_on: dict[tuple[int, int], int] = {}
    problems: list[Problem] = []
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue

        def get(col: str, fields=fields) -> str:
            i = index[col]
            return fields[i].strip() if i < len(fields) else ""

        codes = []
        for col in ("mcc", "mnc"):
            value = get(col)
            if value.isdigit() and int(value) <= 999:
                codes.append(int(value))
            else:
                problems.append(
                    Problem(line, col, f"value {value!r} is not a whole number in 0-999")
                )
        name = get("operator")
        if not name:
            problems.append(Problem(line, "operator", "value is missing; give the operator's name"))
        if len(codes) != 2 or not name:
            continue
        key = (codes[0], codes[1])
        if key in table and table[key] != name:
            problems.append(
                Problem(
                    line,
                    "operator",
                    f"MCC {key[0]} / MNC {key[1]:02d} is named {name!r} here and {table[key]!r} on "
                    f"line {seen_on[key]}; keep one",
                )
            )
            continue
        table[key] = name
        seen_on.setdefault(key, line)
    if problems:
        raise LayerValidationError(source, layer, problems)
    return table


# ----------------------------------------------------------------------------- sites
def cells_to_sites(
    cells: pd.DataFrame,
    *,
    operators: Mapping[tuple[int, int], str] | None = None,
    defaults: ImportDefaults | None = None,
    technology: str = "best",
) -> gpd.GeoDataFrame:
    """Group OpenCelliD cells into operator sites and give them radio parameters.

    Parameters
    ----------
    cells
        One row per cell, as returned by :func:`read_opencellid_csv`; needs the columns
        ``radio, mcc, net, lon, lat`` (``area``, ``cell`` and ``samples`` are used when
        present). Text values are accepted and checked like the file reader does; rows in
        problems are 1-based positions in ``cells``. Not modified.
    operators
        ``{(mcc, mnc): name}`` entries that override or extend the packaged table
        (:func:`load_operator_table`; pass ``load_operator_table("my.csv")`` to use your own
        CSV). A network found in neither is named ``f"MCC{mcc}-MNC{mnc:02d}"`` and logged as
        a warning.
    defaults
        Assumed radio parameters and the grouping distance; :class:`ImportDefaults` () when
        None.
    technology
        Which rows to return (:data:`TECHNOLOGY_CHOICES`):

        - ``"best"`` (default): one row per site, for its most recent technology
          (5G > 4G > 3G > 2G) — one tower per mast, e.g. for best-coverage studies.
        - ``"all"``: one row per site and technology present at it (a mast with GSM and LTE
          cells gives a 2G and a 4G row at the same point) — for per-technology coverage.
        - ``"2G"``, ``"3G"``, ``"4G"`` or ``"5G"``: the rows of that technology only.

        Sites are formed from all of an operator's cells in every case, so a site keeps its
        number (and its ``site_id``) whatever is chosen.

    Returns
    -------
    geopandas.GeoDataFrame
        Points in EPSG:4326 with the :data:`~telcoplan.layers.schemas.TOWERS` columns

        - ``site_id``: ``f"{operator}-{n:05d}-{technology}"``, e.g. ``"Viettel-00012-4G"``
          (operator name reduced to letters and digits; n numbers the operator's sites from
          west to east, from 1);
        - ``operator``, ``technology``, ``frequency_mhz`` (MHz), ``height_m`` (m),
          ``eirp_dbm`` (dBm) from ``defaults``; ``name`` (``"Viettel site 00012"``);

        and the extra columns ``n_cells`` (cells of this technology at the site),
        ``technologies`` (all technologies at the site, e.g. ``"2G,4G"``), ``mcc``, ``mnc``
        and ``area`` (LAC/TAC; the most frequent among the row's cells, smallest on ties;
        ``area`` is <NA> when ``cells`` has none), ``samples`` (sum over the row's cells) and
        ``source`` (``"OpenCelliD"``). Sorted by operator, technology, then longitude and
        latitude; default RangeIndex. Empty (with these columns) when ``cells`` is.

    Raises
    ------
    LayerValidationError
        ``cells`` lacks a required column or has bad values (every problem listed).
    ValueError
        ``technology`` is not one of :data:`TECHNOLOGY_CHOICES`.

    Notes
    -----
    **Site rule.** Two cells of the same operator belong to the same site when their
    positions are at most ``defaults.site_radius_m`` (default 50 m) apart, directly or
    through a chain of such cells (single-linkage clustering; the sites are the connected
    components of the "within the radius" graph). The sectors and carriers of one mast
    (typically 3 sectors × 1-3 technologies) are separate cells in OpenCelliD, and their
    positions are estimates averaged from phone measurements that scatter by tens of
    metres around the mast, while macro masts of one operator in a dense city are rarely
    closer than 150-300 m. 50 m merges the first without merging the second; raise it for
    noisy rural data, lower it in very dense networks. Operators are never merged: shared
    masts are found later, by the sharing analysis.

    Distances are computed in the UTM zone of the centre of each operator's cells
    (:func:`~telcoplan.gis.crs.utm_crs_for`), with a k-d tree (``scipy.spatial.cKDTree``
    ``query_pairs``) and ``scipy.sparse.csgraph.connected_components``: O(n log n) plus the
    number of close pairs (100,000 cells take a couple of seconds).

    **Site position** is the mean of its cells' projected positions weighted by their number
    of measurements (``samples``; a cell with 0 or no samples weighs like one sample), back
    in longitude / latitude.

    **Radio parameters** (frequency, antenna height, EIRP) are not in OpenCelliD; they come
    from ``defaults`` and are assumptions to be replaced by operator data. The output is
    the same whatever the order of the input rows.

    References: OpenCelliD database format, https://wiki.opencellid.org/wiki/Database_format;
    column meanings, https://community.opencellid.org/t/186.
    """
    if technology not in TECHNOLOGY_CHOICES:
        raise ValueError(f"technology={technology!r} is not one of {', '.join(TECHNOLOGY_CHOICES)}")
    defaults = ImportDefaults() if defaults is None else defaults
    table = load_operator_table()
    if operators is not None:
        table.update({(int(m), int(n)): str(name) for (m, n), name in operators.items()})

    frame = _canonical_columns(cells)
    problems = _missing_columns(frame.columns, _SITES_REQUIRED, cells.columns, header=False)
    parsed, row_problems = _parse_cells(frame, np.arange(1, len(frame) + 1))
    problems += row_problems
    if problems:
        raise LayerValidationError("<cells>", _LAYER, problems)
    if len(parsed) == 0:
        return _empty_sites()

    work = pd.DataFrame(
        {
            "technology": pd.Series(parsed["radio"]).map(dict(RADIO_TECHNOLOGY)).to_numpy(),
            "mcc": parsed["mcc"].to_numpy(),
            "mnc": parsed["net"].to_numpy(),
            "area": parsed["area"].to_numpy() if "area" in parsed else np.full(len(parsed), -1),
            "cell": parsed["cell"].to_numpy() if "cell" in parsed else np.full(len(parsed), -1),
            "samples": parsed["samples"].to_numpy()
            if "samples" in parsed
            else np.zeros(len(parsed), np.int64),
            "lon": parsed["lon"].to_numpy(),
            "lat": parsed["lat"].to_numpy(),
        }
    )
    work["operator"] = _operator_names(work["mcc"].to_numpy(), work["mnc"].to_numpy(), table)
    # a canonical order makes every later step independent of the input's row order
    work = work.sort_values(
        ["operator", "lon", "lat", "mcc", "mnc", "area", "cell", "technology", "samples"],
        kind="mergesort",
    ).reset_index(drop=True)

    sites = _cluster_sites(work, defaults.site_radius_m)  # also sets work["site"]
    rows = _site_technology_rows(work)
    if technology == "best":
        rows = rows.sort_values(["site", "technology"]).drop_duplicates("site", keep="last")
    elif technology != "all":
        rows = rows[rows["technology"] == technology]
    if rows.empty:
        return _empty_sites()

    rows = rows.merge(sites, on="site", how="left", validate="many_to_one")
    rows = rows.sort_values(["operator", "technology", "lon", "lat", "n"], kind="mergesort")
    return _towers_frame(rows, defaults, has_area="area" in parsed)


def _towers_frame(
    rows: pd.DataFrame, defaults: ImportDefaults, *, has_area: bool
) -> gpd.GeoDataFrame:
    """The output layer from the (site, technology) rows joined with their sites."""
    tech = rows["technology"].to_numpy(dtype=object)
    operator = rows["operator"].to_numpy(dtype=object)
    slug = rows["slug"].to_numpy(dtype=object)
    number = rows["n"].to_numpy(dtype=np.int64).tolist()
    area = rows["area"].to_numpy(dtype=np.int64)
    out = pd.DataFrame(
        {
            "site_id": [f"{s}-{n:05d}-{t}" for s, n, t in zip(slug, number, tech, strict=True)],
            "operator": operator,
            "technology": tech,
            "frequency_mhz": np.array([defaults.frequency_mhz[t] for t in tech], dtype=float),
            "height_m": np.full(len(rows), defaults.height_m),
            "eirp_dbm": np.array([defaults.eirp_dbm[t] for t in tech], dtype=float),
            "name": [f"{o} site {n:05d}" for o, n in zip(operator, number, strict=True)],
            "n_cells": rows["n_cells"].to_numpy(dtype=np.int64),
            "technologies": rows["technologies"].to_numpy(dtype=object),
            "mcc": rows["mcc"].to_numpy(dtype=np.int64),
            "mnc": rows["mnc"].to_numpy(dtype=np.int64),
            "area": pd.array(area, dtype="Int64")
            if has_area
            else pd.array([None] * len(rows), dtype="Int64"),
            "samples": rows["samples"].to_numpy(dtype=np.int64),
            "source": _SOURCE_NAME,
        }
    )
    geometry = gpd.points_from_xy(rows["lon"].to_numpy(), rows["lat"].to_numpy(), crs="EPSG:4326")
    return gpd.GeoDataFrame(out, geometry=geometry, crs="EPSG:4326")


def _canonical_columns(cells: pd.DataFrame) -> pd.DataFrame:
    """A new frame with the known columns of ``cells`` under their canonical names."""
    picked: dict[str, pd.Series] = {}
    for col in cells.columns:
        canon = _CANONICAL.get(str(col).strip().lower())
        if canon is not None and canon not in picked:
            picked[canon] = cells[col].reset_index(drop=True)
    return pd.DataFrame(picked, index=pd.RangeIndex(len(cells)))


def _operator_names(
    mcc: np.ndarray, mnc: np.ndarray, table: Mapping[tuple[int, int], str]
) -> np.ndarray:
    plmn, inverse, counts = np.unique(
        np.column_stack([mcc, mnc]), axis=0, return_inverse=True, return_counts=True
    )
    names = []
    for (m, n), count in zip(plmn.tolist(), counts.tolist(), strict=True):
        name = table.get((m, n))
        if name is None:
            name = f"MCC{m}-MNC{n:02d}"
            log.warning(
                "OpenCelliD import: no operator name for MCC %d / MNC %02d (%d cells); "
                "calling it %r. "
                "Name it with operators={(%d, %d): 'Name'} or an operator CSV.",
                m,
                n,
                count,
                name,
                m,
                n,
            )
        names.append(name)
    return np.asarray(names, dtype=object)[inverse.ravel()]


def _single_linkage(xy: np.ndarray, radius_m: float) -> np.ndarray:
    """Single-linkage cluster labels of projected points (m): 0, 1, … in order of first point.

    Two points are linked when at most ``radius_m`` apart; clusters are the connected
    components of that graph. Identical points are merged before the k-d tree is built.
    """
    from scipy.sparse import coo_array
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if len(xy) == 0:
        return np.zeros(0, dtype=np.int64)
    unique, inverse = np.unique(xy, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    m = len(unique)
    pairs = cKDTree(unique).query_pairs(radius_m, output_type="ndarray")
    graph = coo_array(
        (np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(m, m)
    )
    _, component = connected_components(graph, directed=False)
    labels = component[inverse]
    _, first = np.unique(labels, return_index=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[labels]


def _cluster_sites(work: pd.DataFrame, radius_m: float) -> pd.DataFrame:
    """Cluster each operator's cells; set ``work["site"]``; return one row per site."""
    site = np.empty(len(work), dtype=np.int64)
    parts = []
    offset = 0
    for operator, idx in work.groupby("operator", sort=True).indices.items():
        lon = work["lon"].to_numpy()[idx]
        lat = work["lat"].to_numpy()[idx]
        centre_lon = (lon.min() + lon.max()) / 2.0
        centre_lat = min(max((lat.min() + lat.max()) / 2.0, -80.0), 84.0)
        crs = utm_crs_for(float(centre_lon), float(centre_lat))
        x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
        labels = _single_linkage(np.column_stack([x, y]), radius_m)
        k = int(labels.max()) + 1
        weight = np.maximum(work["samples"].to_numpy()[idx], 1).astype(float)
        total = np.bincount(labels, weight, minlength=k)
        cx = np.bincount(labels, weight * x, minlength=k) / total
        cy = np.bincount(labels, weight * y, minlength=k) / total
        slon, slat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(cx, cy)
        site[idx] = offset + labels
        parts.append(
            pd.DataFrame(
                {
                    "site": offset + np.arange(k),
                    "operator": operator,
                    "lon": np.asarray(slon, dtype=float),
                    "lat": np.asarray(slat, dtype=float),
                }
            )
        )
        offset += k
    work["site"] = site
    sites = pd.concat(parts, ignore_index=True)
    slugs = {o: re.sub(r"[^0-9A-Za-z]+", "", o) or "operator" for o in work["operator"].unique()}
    sites["slug"] = sites["operator"].map(slugs)
    # number sites from 1 per id prefix, west to east (ties: south to north, then first cell)
    sites = sites.sort_values(["slug", "operator", "lon", "lat", "site"], kind="mergesort")
    sites["n"] = sites.groupby("slug", sort=False).cumcount() + 1
    # technologies present at each site, as a bit mask over TECHNOLOGIES, then as text
    bit = (
        work["technology"]
        .map({t: 1 << k for k, t in enumerate(TECHNOLOGIES)})
        .to_numpy(dtype=np.int64)
    )
    mask = np.zeros(offset, dtype=np.int64)
    np.bitwise_or.at(mask, site, bit)
    names = [
        ",".join(t for k, t in enumerate(TECHNOLOGIES) if m >> k & 1)
        for m in range(1 << len(TECHNOLOGIES))
    ]
    sites["technologies"] = np.asarray(names, dtype=object)[mask[sites["site"].to_numpy()]]
    return sites.reset_index(drop=True)


def _site_technology_rows(work: pd.DataFrame) -> pd.DataFrame:
    """One row per (site, technology): cell count, summed samples, majority PLMN and area."""
    keys = ["site", "technology"]
    rows = (
        work.groupby(keys, sort=True)
        .agg(n_cells=("lon", "size"), samples=("samples", "sum"))
        .reset_index()
    )
    for cols in (["mcc", "mnc"], ["area"]):
        counts = work.groupby([*keys, *cols], sort=True).size().rename("count").reset_index()
        counts = counts.sort_values(
            [*keys, "count", *cols],
            ascending=[True, True, False, *[True] * len(cols)],
            kind="mergesort",
        )
        rows = rows.merge(
            counts.drop_duplicates(keys)[[*keys, *cols]], on=keys, how="left", validate="one_to_one"
        )
    return rows


def _empty_sites() -> gpd.GeoDataFrame:
    dtypes = {
        "site_id": object,
        "operator": object,
        "technology": object,
        "frequency_mhz": float,
        "height_m": float,
        "eirp_dbm": float,
        "name": object,
        "n_cells": np.int64,
        "technologies": object,
        "mcc": np.int64,
        "mnc": np.int64,
        "area": "Int64",
        "samples": np.int64,
        "source": object,
    }
    frame = pd.DataFrame({c: pd.Series([], dtype=dtypes[c]) for c in _OUTPUT_COLUMNS})
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries([], crs="EPSG:4326"), crs="EPSG:4326")


def import_cells(
    path: str | PathLike[str],
    *,
    operators_csv: str | PathLike[str] | None = None,
    site_radius_m: float | None = None,
    height_m: float | None = None,
    technology: str = "best",
    frequency_mhz: Mapping[str, float] | None = None,
    eirp_dbm: Mapping[str, float] | None = None,
) -> gpd.GeoDataFrame:
    """Read an OpenCelliD CSV and group its cells into a towers layer (``telcoplan import-cells``).

    ``operators_csv`` (``mcc,mnc,operator``) extends / overrides the packaged MCC/MNC table;
    ``site_radius_m``, ``height_m``, ``frequency_mhz`` and ``eirp_dbm`` (per technology, e.g.
    ``{"4G": 2600.0}``) override the defaults of :class:`ImportDefaults`.
    Bad option values raise :class:`telcoplan.errors.PlanError` (a clean CLI message).
    """
    from telcoplan.errors import PlanError

    overrides: dict[str, float] = {}
    if site_radius_m is not None:
        overrides["site_radius_m"] = site_radius_m
    if height_m is not None:
        overrides["height_m"] = height_m
    if frequency_mhz:
        overrides["frequency_mhz"] = dict(frequency_mhz)
    if eirp_dbm:
        overrides["eirp_dbm"] = dict(eirp_dbm)
    try:
        defaults = ImportDefaults(**overrides)
    except ValueError as exc:
        raise PlanError(f"import-cells: {exc}") from None
    operators = None if operators_csv is None else load_operator_table(operators_csv)
    cells = read_opencellid_csv(path)
    return cells_to_sites(cells, operators=operators, defaults=defaults, technology=technology)
