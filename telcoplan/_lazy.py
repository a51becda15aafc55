"""Names a package loads on first use (PEP 562), so that importing it stays light."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module

__all__ = ["lazy_names"]


def lazy_names(
    package: str, api: Mapping[str, str], names: Iterable[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: a name of ``api`` (name → the module
    that defines it) is imported the first time it is looked up, then kept in the package (later
    look-ups do not come back here); ``dir()`` lists ``names``."""
    listed = sorted(names)

    def getattr_(name: str) -> object:
        if name in api:
            value = getattr(import_module(api[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return list(listed)

    return getattr_, dir_
