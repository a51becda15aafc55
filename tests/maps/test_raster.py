"""Signal overlays: quantised palette PNGs warped for Leaflet."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
from pyproj import Transformer

from telcoplan.gis.grid import GridSpec
from telcoplan.maps._raster import (
    encode_png_palette,
    level_values,
    palette,
    quantise,
    signal_png,
    warp_for_leaflet,
)

from .conftest import UTM49, X0, Y0

Image = pytest.importorskip("PIL.Image")


def _decode(uri: str):
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


@pytest.fixture
def grid() -> GridSpec:
    """A 40 x 30 grid of 100 m cells in UTM 49N at (X0, Y0)."""
    return GridSpec.from_bounds((X0, Y0, X0 + 4000, Y0 + 3000), 100.0, UTM49)


def test_quantise_reproduces_values_within_half_a_step() -> None:
    rng = np.random.default_rng(1)
    vmin, vmax, step = -120.0, -50.0, 1.0
    values = rng.uniform(vmin, vmax, 10_000)
    index = quantise(values, vmin, vmax, step)
    back = level_values(vmin, vmax, step)[index]
    assert np.abs(back - values).max() <= step / 2 + 1e-9
    assert index.dtype == np.uint8
    assert int(index.max()) == len(level_values(vmin, vmax, step)) - 1 == 71


def test_quantise_edges() -> None:
    vmin, vmax, step = -100.0, -60.0, 2.5
    got = quantise(np.array([np.nan, -100.1, -100.0, -98.76, -60.0, -10.0]), vmin, vmax, step)
    # NaN and below vmin transparent; vmin level 1; above vmax capped at the top level
    assert got.tolist() == [0, 0, 1, 1, 17, 17]
    assert level_values(vmin, vmax, step)[17] == -60.0
    assert math.isnan(level_values(vmin, vmax, step)[0])
    with pytest.raises(ValueError, match="vmax > vmin"):
        quantise(np.zeros(2), -50.0, -60.0, 1.0)
    with pytest.raises(ValueError, match="levels"):
        quantise(np.zeros(2), -140.0, 0.0, 0.1)
    with pytest.raises(ValueError, match="step"):
        quantise(np.zeros(2), -140.0, 0.0, 0.0)


def test_palette_colours_are_distinct() -> None:
    for n in (2, 71, 141):  # 1 dB and 0.5 dB steps over -120…-50 dBm
        rgb = palette(n)
        assert rgb.shape == (n, 3)
        assert len({tuple(c) for c in rgb}) == n


def test_png_palette_round_trip() -> None:
    index = np.arange(12, dtype=np.uint8).reshape(3, 4) % 5
    rgb = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]], np.uint8)
    alpha = np.array([0, 255, 255, 255, 128], np.uint8)
    img = Image.open(io.BytesIO(encode_png_palette(index, rgb, alpha)))
    assert img.mode == "P"
    assert img.size == (4, 3)
    np.testing.assert_array_equal(np.asarray(img), index)
    assert img.getpalette()[:15] == rgb.ravel().tolist()
    assert img.info["transparency"][:5] == bytes(alpha)
    with pytest.raises(ValueError, match="beyond"):
        encode_png_palette(index + 10, rgb, alpha)


def test_signal_png_reproduces_warped_values(grid: GridSpec) -> None:
    """Every pixel's colour names a level within half a step of the warped value."""
    rng = np.random.default_rng(7)
    values = rng.uniform(-125.0, -40.0, grid.shape).astype(np.float32)
    values[:5, :] = np.nan
    vmin, vmax, step = -120.0, -50.0, 1.0
    uri, bounds = signal_png(values, grid, vmin, vmax, step=step)
    img = _decode(uri)
    warped, _ = warp_for_leaflet(values, grid)
    index = np.asarray(img)
    assert index.shape == warped.shape
    # colour → level value, through the PNG's own palette
    pal = np.array(img.getpalette()[: 3 * (int(index.max()) + 1)]).reshape(-1, 3)
    levels = level_values(vmin, vmax, step)
    colour_to_value = {tuple(pal[k]): levels[k] for k in range(1, len(pal))}
    shown = np.array(
        [colour_to_value.get(tuple(pal[k]), np.nan) if k else np.nan for k in index.ravel()]
    ).reshape(index.shape)
    inside = np.isfinite(warped) & (warped >= vmin)
    assert inside.sum() > 0.5 * warped.size
    clipped = np.minimum(warped[inside], vmax)
    assert np.abs(shown[inside] - clipped).max() <= step / 2 + 1e-6
    assert np.isnan(shown[~inside]).all()  # transparent: index 0, alpha 0
    alpha = np.asarray(img.convert("RGBA"))[..., 3]
    assert (alpha[index == 0] == 0).all()
    assert (alpha[index > 0] == 255).all()
    # values are taken from the source (nearest neighbour): no new values appear
    assert set(np.unique(warped[np.isfinite(warped)])) <= set(
        np.unique(values[np.isfinite(values)])
    )
    (south, west), (north, east) = bounds
    assert south < north
    assert west < east


def test_overlay_bounds_match_the_grid(grid: GridSpec) -> None:
    values = np.full(grid.shape, -80.0, dtype=np.float32)
    _, ((south, west), (north, east)) = signal_png(values, grid, -120.0, -50.0)
    to_deg = Transformer.from_crs(UTM49, "EPSG:4326", always_xy=True)
    xmin, ymin, xmax, ymax = grid.bounds
    lons, lats = to_deg.transform([xmin, xmin, xmax, xmax], [ymin, ymax, ymin, ymax])
    cell_deg = 100.0 / 111_000
    assert west == pytest.approx(min(lons), abs=2 * cell_deg)
    assert east == pytest.approx(max(lons), abs=2 * cell_deg)
    assert south == pytest.approx(min(lats), abs=2 * cell_deg)
    assert north == pytest.approx(max(lats), abs=2 * cell_deg)


def test_warp_keeps_resolution_and_caps_size(grid: GridSpec) -> None:
    values = np.arange(grid.width * grid.height, dtype=np.float32).reshape(grid.shape)
    warped, _ = warp_for_leaflet(values, grid)
    # Web Mercator cells at 16° N are ~1.04 x larger than metres: about the same pixel count
    assert 0.9 * grid.width <= warped.shape[1] <= 1.3 * grid.width
    assert 0.9 * grid.height <= warped.shape[0] <= 1.3 * grid.height
    small, _ = warp_for_leaflet(values, grid, max_pixels=16)
    assert max(small.shape) <= 16
    with pytest.raises(ValueError, match="shape"):
        warp_for_leaflet(values[:-1], grid)


def test_nodata_of_the_grid_is_transparent(grid: GridSpec) -> None:
    values = np.full(grid.shape, grid.nodata, dtype=np.float32)
    values[10:20, 10:20] = -70.0
    img = _decode(signal_png(values, grid, -120.0, -50.0)[0])
    index = np.asarray(img)
    assert (index == 0).mean() > 0.8
    assert set(np.unique(index)) == {0, int(quantise(np.array([-70.0]), -120, -50, 1)[0])}
