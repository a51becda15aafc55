"""What a plan file may choose for the map, checked without importing the web map's modules
(its builder and line simplification load scipy's sparse graphs: ~70 ms of every command's
start)."""

from __future__ import annotations

import re

__all__ = ["MAX_SIGNAL_LEVELS", "tiles_problem"]

#: Most levels a signal overlay's palette PNG holds besides the transparent index 0.
MAX_SIGNAL_LEVELS = 255

_URL_TEMPLATE = re.compile(r"^https?://[^\s\"'<>`]+$")


def tiles_problem(tiles: object) -> str | None:
    """Why ``tiles`` is not 'none', 'osm' or an http(s) URL template (None when it is)."""
    if tiles in ("none", "osm"):
        return None
    if (
        isinstance(tiles, str)
        and _URL_TEMPLATE.match(tiles)
        and all(p in tiles for p in ("{z}", "{x}", "{y}"))
    ):
        return None
    return (
        "tiles must be 'none', 'osm' or an http(s) URL template with {z}, {x} and {y} "
        f"(e.g. https://tile.example.org/{{z}}/{{x}}/{{y}}.png), got {tiles!r}"
    )
