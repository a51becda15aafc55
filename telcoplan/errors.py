"""The exception hierarchy of telcoplan.

Every error the library raises on purpose derives from :class:`TelcoplanError`, and also from
the matching built-in exception, so callers can catch either. The CLI catches
``TelcoplanError`` and prints its message: a traceback is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CRSError",
    "DatabaseError",
    "InputFileError",
    "LayerValidationError",
    "OutputExistsError",
    "PlanError",
    "Problem",
    "TelcoplanError",
    "TelcoplanWarning",
    "did_you_mean",
]


class TelcoplanError(Exception):
    """Root of all errors raised on purpose by telcoplan."""


class TelcoplanWarning(UserWarning):
    """Root of all warnings issued by telcoplan."""


@dataclass(frozen=True)
class Problem:
    """One problem found by a validator.

    Attributes
    ----------
    row : int or None
        1-based data row in the source file (the header is not counted), or None when the
        problem concerns the whole layer.
    column : str or None
        Column name, ``"geometry"``, or None for the whole layer.
    message : str
        What is wrong and how to fix it.
    feature_id : str or None
        The feature's id (``site_id``, …) when the layer has one.
    """

    row: int | None
    column: str | None
    message: str
    feature_id: str | None = None

    def format(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.feature_id is not None:
            where.append(f"id {self.feature_id!r}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        prefix = ", ".join(where) if where else "layer"
        return f"{prefix}: {self.message}"


class LayerValidationError(TelcoplanError, ValueError):
    """A layer failed validation; ``problems`` lists every problem found."""

    def __init__(self, source: str, layer: str, problems: Sequence[Problem]):
        self.source = source
        self.layer = layer
        self.problems = tuple(problems)
        n = len(self.problems)
        lines = [f"{source}: {layer} layer has {n} problem{'s' if n != 1 else ''}:"]
        lines += [f"  - {p.format()}" for p in self.problems]
        super().__init__("\n".join(lines))


class InputFileError(TelcoplanError, OSError):
    """An input file is missing, unreadable or in an unsupported format."""


class DatabaseError(TelcoplanError, OSError):
    """A database (PostGIS) cannot be reached, read or written; the message never holds a
    password."""


class ClusterError(TelcoplanError, RuntimeError):
    """A Dask cluster cannot be started or reached, or lost what a run sent it."""


class CRSError(TelcoplanError, ValueError):
    """A layer has no CRS, or CRSs do not match where they must."""


class PlanError(TelcoplanError, ValueError):
    """The plan file is malformed or refers to something that does not exist."""


class OutputExistsError(TelcoplanError, FileExistsError):
    """An output exists and ``overwrite`` was not requested."""


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """ "; did you mean 'x'?" for the closest of ``choices`` to a mistyped ``name`` (difflib's
    close matches), or "" when none is close: the one wording every message uses."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
