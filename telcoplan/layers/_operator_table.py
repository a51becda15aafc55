"""The MCC/MNC → operator name table used to name the operators of OpenCelliD cells."""

from __future__ import annotations

import csv
import functools
from importlib import resources
from os import PathLike
from pathlib import Path

from telcoplan.errors import InputFileError, LayerValidationError, Problem

__all__ = ["load_operator_table"]


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
