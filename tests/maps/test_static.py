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
