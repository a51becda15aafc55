"""Rendering the map page fast without changing it: the map a run saves is rendered in place
(not copied first), and folium's random element ids are renumbered in one pass over the page;
both give the page that copying and replacing one id after the other give."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from telcoplan.maps import map_from_outputs, write_plan_map
from telcoplan.maps.interactive import _renumber, render_map
from tests.maps.test_interactive import _write_outputs


def _in_turn(page: str, ids: list[str]) -> str:
    """The reference: each id replaced in turn with ``str.replace``."""
    for i, old in enumerate(ids):
        page = page.replace(old, f"{i + 1:032x}")
    return page


def _hex(rng: random.Random, n: int = 32) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


@pytest.mark.parametrize("seed", range(20))
def test_renumber_equals_replacing_the_ids_in_turn(seed: int) -> None:
    """Ids alone, side by side, inside longer hexadecimal runs (a SHA-256 holding one, at any
    offset), at the page's ends, beside upper-case hex and digits; ids that never occur."""
    rng = random.Random(seed)
    ids = [_hex(rng) for _ in range(rng.randint(1, 12))]
    pieces = []
    for _ in range(rng.randint(0, 60)):
        kind = rng.randrange(7)
        if kind == 0:
            pieces.append(rng.choice(ids))
        elif kind == 1:  # an id inside a longer run of hex digits
            pieces.append(
                _hex(rng, rng.randint(0, 40)) + rng.choice(ids) + _hex(rng, rng.randint(0, 40))
            )
        elif kind == 2:  # two ids side by side
            pieces.append(rng.choice(ids) + rng.choice(ids))
        elif kind == 3:
            pieces.append(_hex(rng, rng.randint(1, 70)))  # hex that is no id (a SHA-256: 64)
        elif kind == 4:
            pieces.append(rng.choice(ids).upper())
        elif kind == 5:
            pieces.append(str(rng.random()) + ",")
        else:
            pieces.append(rng.choice(["map_", '"', " ", "geo_json_", "\n", "-", "G"]))
    page = "".join(pieces)
    assert _renumber(page, ids) == _in_turn(page, ids)


def test_renumber_ids_that_are_not_32_hex_digits() -> None:
    """Other ids (not folium's) are replaced in turn, as before."""
    ids = ["element-id-number-one", "ABCDEF0123456789ABCDEF0123456789", "f" * 40]
    page = f"x {ids[0]} {ids[1]}{ids[0]} {ids[2]}f {'0' * 31}"
    assert _renumber(page, ids) == _in_turn(page, ids)


def test_renumber_an_id_that_a_replacement_makes() -> None:
    """A later id that an earlier replacement spells out is replaced too, as in turn."""
    ids = ["a" * 32, f"{1:032x}"]
    page = f"{'a' * 32} {1:032x} {'a' * 33}"
    assert _renumber(page, ids) == _in_turn(page, ids) == f"{2:032x} {2:032x} {2:032x}a"


def test_the_saved_map_is_the_rendered_copy(layers: dict, tmp_path: Path) -> None:
    """write_plan_map renders the map it built in place; the page is the one render_map gives
    of a map built the same way (rendered from a copy), byte for byte."""
    out = tmp_path / "outputs"
    _write_outputs(layers, out)
    given = {"fiber": layers["fiber"], "roads": layers["roads"], "towers": layers["towers"]}
    path = write_plan_map(out, given, summary={"plan": "same"})
    copied = render_map(map_from_outputs(out, given, summary={"plan": "same"}))
    assert path.read_text(encoding="utf-8") == copied
