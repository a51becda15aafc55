"""The static plan figure (PNG via matplotlib's Agg canvas)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest

from telcoplan.errors import OutputExistsError
from telcoplan.maps import figure_from_outputs, plan_figure, save_figure

from .conftest import XSS

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib")

DISTRICTS = ["Hải Châu", "Liên Chiểu", "Thanh Khê", "Cẩm Lệ", "Sơn Trà", "Hòa Vang", "Ngũ Hành Sơn"]


def _png(data: bytes):
    return Image.open(io.BytesIO(data))


def _rgb(data: bytes) -> np.ndarray:
    return np.asarray(_png(data).convert("RGB"))


def _hex(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]


def _pixel(areas, x: float, y: float, width_px: int, height_px: int) -> tuple[int, int]:
    """(row, column) of the point (x, y) (the areas' projected CRS) in the figure, from the
    layout the figure documents: the map's axes at (0.01, 0.01, 0.72, 0.92) of the figure, the
    areas' bounds padded by 2% of their larger side, equal scales, centred in the axes."""
    xmin, ymin, xmax, ymax = areas.total_bounds
    pad = 0.02 * max(xmax - xmin, ymax - ymin)
    dx, dy = xmax - xmin + 2 * pad, ymax - ymin + 2 * pad
    left, bottom, w, h = 0.01 * width_px, 0.01 * height_px, 0.72 * width_px, 0.92 * height_px
    scale = min(w / dx, h / dy)
    px = left + (w - scale * dx) / 2 + scale * (x - xmin + pad)
    py = bottom + (h - scale * dy) / 2 + scale * (y - ymin + pad)
    return int(height_px - py), int(px)


def _map_columns(width_px: int) -> int:
    """Columns of the map (left of the legend's axes, which start at 0.74 of the width)."""
    return int(0.735 * width_px)


def test_figure_decodes_with_the_requested_size(layers: dict) -> None:
    png = plan_figure(
        areas=layers["areas"],
        coverage=layers["coverage"],
        gaps=layers["gaps"],
        towers=layers["towers"],
        backbone=layers["backbone"],
        sites=layers["sites"],
        title=f"Plan {XSS}",
        width_px=900,
        height_px=600,
        dpi=100,
    )
    img = _png(png)
    img.load()
    assert img.format == "PNG"
    assert img.size == (900, 600)
    rgb = np.asarray(img.convert("RGB"))
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50  # not blank
    # each layer is drawn: without it, the map's pixels differ
    full = {k: layers[k] for k in ("coverage", "gaps", "towers", "backbone", "sites")}
    cols = _map_columns(900)
    for name in full:
        rest = {k: v for k, v in full.items() if k != name}
        other = _rgb(
            plan_figure(
                areas=layers["areas"],
                **rest,
                title=f"Plan {XSS}",
                width_px=900,
                height_px=600,
                dpi=100,
            )
        )
        assert (other[:, :cols] != rgb[:, :cols]).any(), name


def test_towers_are_drawn_where_they_stand_in_their_operators_colour(layers: dict) -> None:
    """Two towers of two operators (not shared): the map changes only around each tower's
    position (computed from the figure's layout), whose pixel has its operator's colour (the
    web map's colours, :func:`telcoplan.outputs.operator_colours`)."""
    from telcoplan.outputs import operator_colours

    towers = layers["towers"].loc[["VT-3", "VNP-1"]]  # Viettel and VinaPhone
    colours = operator_colours(towers["operator"])
    assert colours["Viettel"] != colours["VinaPhone"]
    size = {"width_px": 600, "height_px": 400, "dpi": 100, "labels": False}
    bare = _rgb(plan_figure(areas=layers["areas"], **size))
    drawn = _rgb(plan_figure(areas=layers["areas"], towers=towers, **size))
    cols = _map_columns(600)
    changed = (bare[:, :cols] != drawn[:, :cols]).any(axis=2)
    near = np.zeros_like(changed)
    for site_id, tower in towers.iterrows():
        r, c = _pixel(layers["areas"], tower.geometry.x, tower.geometry.y, 600, 400)
        # the marker (3.5 pt across, 5 px at 100 dpi) is centred on the tower: its middle
        # pixel is the operator's colour, exactly
        assert drawn[r, c].tolist() == _hex(colours[tower["operator"]]), site_id
        assert changed[r, c], site_id
        near[r - 5 : r + 6, c - 5 : c + 6] = True
    assert changed.any()
    assert not (changed & ~near).any()  # nothing drawn anywhere else on the map


def test_vietnamese_district_names_render_without_missing_glyphs(layers: dict) -> None:
    """matplotlib warns 'Glyph … missing from font' for letters the font lacks."""
    import geopandas as gpd
    from shapely.geometry import box

    from .conftest import UTM49, X0, Y0

    areas = gpd.GeoDataFrame(
        {"name": DISTRICTS},
        geometry=[box(X0 + 1000 * i, Y0, X0 + 1000 * (i + 1), Y0 + 1000) for i in range(7)],
        crs=UTM49,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain = plan_figure(areas=areas, title="Đà Nẵng – Ngũ Hành Sơn", labels=False)
        labelled = plan_figure(areas=areas, title="Đà Nẵng – Ngũ Hành Sơn")
    assert [str(w.message) for w in caught] == []
    # the labels draw text: the images differ
    assert plain != labelled


def test_figure_is_deterministic_and_inputs_unchanged(layers: dict) -> None:
    before = layers["towers"].copy()
    a = plan_figure(areas=layers["areas"], towers=layers["towers"], width_px=400, height_px=300)
    b = plan_figure(areas=layers["areas"], towers=layers["towers"], width_px=400, height_px=300)
    assert a == b
    assert layers["towers"].equals(before)


def test_figure_in_geographic_crs(layers: dict) -> None:
    png = plan_figure(
        areas=layers["areas"].to_crs("EPSG:4326"),
        backbone=layers["backbone"],
        width_px=300,
        height_px=200,
    )
    assert _png(png).size == (300, 200)


def test_figure_bad_inputs(layers: dict) -> None:
    with pytest.raises(TypeError, match="towers must be a GeoDataFrame"):
        plan_figure(areas=layers["areas"], towers=layers["towers"].drop(columns="geometry"))
    with pytest.raises(ValueError, match="at least"):
        plan_figure(areas=layers["areas"], width_px=10)


def test_save_figure(layers: dict, tmp_path: Path) -> None:
    png = plan_figure(areas=layers["areas"], width_px=200, height_px=150)
    target = tmp_path / "plan.png"
    assert save_figure(png, target) == target
    assert target.read_bytes() == png
    with pytest.raises(OutputExistsError):
        save_figure(png, target)
    save_figure(png, target, overwrite=True)
    with pytest.raises(ValueError, match="PNG"):
        save_figure(b"not a png", tmp_path / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.png"]


def test_figure_from_outputs(layers: dict, tmp_path: Path) -> None:
    from .test_interactive import _write_outputs

    out = tmp_path / "outputs"
    _write_outputs(layers, out)
    png = figure_from_outputs(out, width_px=500, height_px=400)
    assert _png(png).size == (500, 400)
    # the layers read back are drawn: a tower of each operator that stands alone has its
    # operator's colour at its position, over the coverage and the backbone
    from telcoplan.outputs import operator_colours

    rgb = _rgb(figure_from_outputs(out, width_px=500, height_px=400, labels=False))
    colours = operator_colours(layers["towers"]["operator"], layers["coverage"]["operator"])
    for site_id in ("VT-2", "VNP-1", "VT-3"):
        tower = layers["towers"].loc[site_id]
        r, c = _pixel(layers["areas"], tower.geometry.x, tower.geometry.y, 500, 400)
        assert rgb[r, c].tolist() == _hex(colours[tower["operator"]]), site_id


def test_figure_does_not_use_pyplot() -> None:
    """No pyplot: no global backend or figure state in a long-running process."""
    import subprocess
    import sys

    code = (
        "import sys, geopandas as gpd; from shapely.geometry import box; "
        "from telcoplan.maps import plan_figure; "
        "a = gpd.GeoDataFrame({'name': ['Sơn Trà']}, "
        "geometry=[box(0, 0, 1000, 1000).difference(box(200, 200, 400, 400))], crs='EPSG:32649'); "
        "png = plan_figure(areas=a, width_px=200, height_px=200); "
        "print(png[:4] == b'\\x89PNG', 'matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_many_areas_are_not_labelled_by_default() -> None:
    import geopandas as gpd
    from shapely.geometry import box

    from telcoplan.maps.static import MAX_AUTO_LABELS

    from .conftest import UTM49

    n = MAX_AUTO_LABELS + 1
    areas = gpd.GeoDataFrame(
        {"name": [f"Phường {i}" for i in range(n)]},
        geometry=[box(100 * i, 0, 100 * (i + 1), 100) for i in range(n)],
        crs=UTM49,
    )
    size = {"width_px": 300, "height_px": 200}
    assert plan_figure(areas=areas, **size) == plan_figure(areas=areas, labels=False, **size)
    assert plan_figure(areas=areas, **size) != plan_figure(areas=areas, labels=True, **size)


def test_dollar_signs_in_names_are_text_not_math(layers) -> None:
    """A '$' pair in a plan or area name is drawn literally (matplotlib would parse TeX and
    fail on '$a^$')."""
    from telcoplan.maps import plan_figure

    areas = layers["areas"].copy()
    areas["name"] = [f"Phường $\\foo{{x$ {i}" for i in range(len(areas))]
    png = plan_figure(areas=areas, title="Kế hoạch $a^$ 2025")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
