"""Read a plan's output folder (and its input layers) into the layers the map and figure draw.

The plan stage and ``telcoplan map`` hand over an output folder; this module is the one place in
``telcoplan.maps`` that reads it, through :mod:`telcoplan.outputs` (the owner of its layout).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np

from telcoplan import outputs
from telcoplan.errors import InputFileError
from telcoplan.maps._raster import MAX_PIXELS
from telcoplan.maps._threads import one_after_another

__all__ = ["MAP_LAYERS", "PlanLayers", "read_display_signal", "read_plan_layers"]

log = logging.getLogger(__name__)

#: Vector layers the map and figure know, by name (plan input layer names where they exist).
MAP_LAYERS = (
    "areas",
    "towers",
    "coverage",
    "gaps",
    "pois",
    "fiber",
    "roads",
    "sites",
    "backbone",
    "review",
    "review_footprint",
)
#: Layers whose plan output carries more than the input (coverage %, service status): the
#: output wins over an input layer of the same name. For the others the input wins.
_OUTPUT_WINS = frozenset({"areas", "pois"})


@dataclass(frozen=True)
class PlanLayers:
    """What a map or figure of a plan draws.

    Attributes
    ----------
    vectors : dict of str to GeoDataFrame
        Layers by name (see :data:`MAP_LAYERS`); missing layers are absent.
    signal : mapping of str to (ndarray, RasterInfo or GridSpec)
        Operator → received power (dBm, NaN = no signal) and its georeferencing, sorted by
        operator; read by :func:`read_plan_layers` in the background: the operators are known
        at once, a value waits for the reading.
    summary : dict
        :data:`~telcoplan.outputs.SUMMARY` (empty when there is none).
    """

    vectors: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)
    signal: Mapping[str, tuple[np.ndarray, Any]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def wait(self) -> None:
        """Wait until the signal rasters are read (for a caller that failed before it drew
        them: no thread outlives it)."""
        if isinstance(self.signal, _SignalLater):
            self.signal.wait()


def read_plan_layers(
    out_dir: str | os.PathLike,
    layers: Mapping[str, gpd.GeoDataFrame | None] | None = None,
    *,
    signal: bool = True,
    summary: Mapping[str, Any] | None = None,
) -> PlanLayers:
    """Collect the layers of a plan from its output folder and its input layers.

    Parameters
    ----------
    out_dir
        The plan's output folder (:data:`~telcoplan.outputs.COVERAGE`, :data:`~telcoplan.outputs.GAPS`, :func:`~telcoplan.outputs.signal_file`,
        :data:`~telcoplan.outputs.SITES`, :data:`~telcoplan.outputs.BACKBONE`, :data:`~telcoplan.outputs.SUMMARY`; each optional).
    layers
        Input layers by name (``areas``, ``towers``, ``fiber``, ``roads``, ``pois``, … — e.g.
        ``{**inputs.vectors, "areas": inputs.areas}``). The outputs' ``areas`` (with coverage
        %) and ``pois`` (with service status) win over inputs of the same name; for every
        other layer an input wins over the output.
    signal
        Read the signal rasters (they are the largest part of a map).
    summary
        The plan's summary; default: :data:`~telcoplan.outputs.SUMMARY` in ``out_dir`` when present.

    Raises
    ------
    InputFileError
        If ``out_dir`` is not a folder, or it and ``layers`` give no ``areas`` layer.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise InputFileError(f"{out}: not a folder; give a plan's output folder")
    given = {k: v for k, v in (layers or {}).items() if v is not None and k in MAP_LAYERS}
    unknown = sorted(set(layers or {}) - set(MAP_LAYERS))
    if unknown:
        log.debug("map: ignoring layers %s", ", ".join(unknown))
    # the signal rasters are read in the background (GDAL releases the GIL) while the
    # vector layers are read and the map is built: their operators are known at once, their
    # values when they are drawn
    rasters = _SignalLater(_signal_sources(out, MAX_PIXELS)) if signal else None
    try:
        vectors = _read_vectors(out, given)
        if "areas" not in vectors:
            raise InputFileError(
                f"{out}: no {outputs.COVERAGE} with an 'areas' layer; run the coverage stage "
                "first or pass the plan's layers (telcoplan map|report OUT_DIR --plan PLAN.yml)"
            )
        if summary is None:
            path = out / outputs.SUMMARY
            summary = outputs.read_summary(path) if path.exists() else {}
    except BaseException:
        if rasters is not None:
            rasters.wait()  # no thread outlives a failed call
        raise
    return PlanLayers(
        vectors=vectors, signal=rasters if rasters is not None else {}, summary=dict(summary or {})
    )


def _read_vectors(out: Path, given: Mapping[str, gpd.GeoDataFrame]) -> dict[str, gpd.GeoDataFrame]:
    vectors: dict[str, gpd.GeoDataFrame] = {}
    for name in MAP_LAYERS:
        if name in given and name not in _OUTPUT_WINS:
            vectors[name] = given[name]
            continue
        # through GDAL's Arrow stream: the same frames, 3 times faster on a national backbone
        read = outputs.read_layer(out, name, arrow=True) if name in outputs.LAYERS else None
        if read is not None:
            vectors[name] = read
        elif name in given:
            vectors[name] = given[name]
    return vectors


def read_display_signal(
    out_dir: str | os.PathLike, max_pixels: int = MAX_PIXELS
) -> dict[str, tuple[np.ndarray, Any]]:
    """Operator → (received power in dBm, NaN = no signal; georeferencing) of the run's
    ``signal_<operator>.tif`` (per-technology rasters left out), sorted by operator, as the map
    needs them: a raster more than twice ``max_pixels`` on its longest side is read decimated.

    The map draws at most ``max_pixels`` on a side (:func:`telcoplan.maps._raster.warp_for_leaflet`),
    so a raster of ``n`` cells on its longest side is read on a grid of the same CRS and
    origin with cells ``k = n // max_pixels`` times larger (nearest neighbour: every value is
    one of the raster's own), never whole: a national signal raster of 5,900² cells (280 MB
    as float64) is read as 2,950² (70 MB). Smaller rasters are read as they are
    (:func:`telcoplan.outputs.read_signal` gives the same).

    The coarse grid's cell ``(i, j)`` takes the value of the raster's cell
    ``(i·k + k//2, j·k + k//2)``, the one under its centre, as a nearest-neighbour warp onto
    that grid (:func:`telcoplan.gis.raster.read_raster_on_grid`) gives; it is read as every
    ``k``-th cell of bands of rows (:func:`_every_kth`; 0.5 s instead of 1-2 s a national
    raster).
    """
    sources = _signal_sources(out_dir, max_pixels)
    return {operator: _read_source(source) for operator, source in sources.items()}


@dataclass(frozen=True)
class _Source:
    """A signal raster to read: whole (``coarse`` None) or every ``k``-th cell onto ``coarse``."""

    path: Path
    k: int = 1
    coarse: Any = None


def _signal_sources(out_dir: str | os.PathLike, max_pixels: int) -> dict[str, _Source]:
    """Operator → how to read its ``signal_<operator>.tif`` (from the rasters' headers), sorted
    by operator (of two rasters of one operator, the later one)."""
    from affine import Affine
    from pyproj import CRS

    from telcoplan.gis.grid import GridSpec
    from telcoplan.gis.raster import open_raster

    found: dict[str, _Source] = {}
    for path, name in outputs.per_operator_rasters(out_dir, "signal"):
        with open_raster(path) as src:
            tags, crs, t = src.tags(), src.crs.to_string(), src.transform
            width, height = src.width, src.height
        if tags.get("technology"):
            continue
        operator = tags.get("operator") or name
        k = max(width, height) // max_pixels
        if k < 2 or not CRS.from_user_input(crs).is_projected or t.b or t.d or t.e >= 0:
            found[operator] = _Source(path)
            continue
        coarse = GridSpec(
            crs=crs,
            transform=Affine(t.a * k, 0.0, t.c, 0.0, t.e * k, t.f),
            width=-(-width // k),
            height=-(-height // k),
        )
        found[operator] = _Source(path, k, coarse)
    return dict(sorted(found.items()))


def _read_source(source: _Source) -> tuple[np.ndarray, Any]:
    from telcoplan.gis.raster import read_raster

    if source.coarse is None:
        values, info, _ = read_raster(source.path)
        return values, info
    log.debug(
        "map: %s read at 1/%d resolution (%d x %d)",
        source.path.name,
        source.k,
        source.coarse.width,
        source.coarse.height,
    )
    return _every_kth(source.path, source.k, source.coarse.shape), source.coarse


class _SignalLater(Mapping[str, tuple[np.ndarray, Any]]):
    """Operator → (values, georeferencing) of signal rasters read in a background thread: the
    operators are known at once, a value waits for its raster's reading (one raster after the
    other, in operator order: GDAL keeps the blocks of an open raster in its cache, 140 MB of
    a national one, read side by side they would add up)."""

    def __init__(self, sources: dict[str, _Source]) -> None:
        reads = one_after_another([partial(_read_source, s) for s in sources.values()])
        self._values = dict(zip(sources, reads, strict=True))

    def __getitem__(self, operator: str) -> tuple[np.ndarray, Any]:
        return self._values[operator].result()

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def wait(self) -> None:
        """Wait for the reading to end (an error is raised by ``[]``)."""
        wait(list(self._values.values()))


def _every_kth(path: Path, k: int, shape: tuple[int, int], band_rows: int = 256) -> np.ndarray:
    """Cells ``(i·k + k//2, j·k + k//2)`` of band 1 of ``path`` as float64 of ``shape``
    (NaN at nodata and beyond the raster's edge), read ``band_rows`` coarse rows at a time."""
    from rasterio.enums import MaskFlags
    from rasterio.windows import Window

    from telcoplan.gis.raster import open_raster

    out = np.full(shape, np.nan, dtype="float64")
    with open_raster(path) as src:
        rows = min(shape[0], (src.height - k // 2 + k - 1) // k)  # centre rows in the raster
        cols = min(shape[1], (src.width - k // 2 + k - 1) // k)
        # a float raster whose only mask is its NaN nodata: read without the mask
        nan_nodata = (
            src.dtypes[0].startswith("float")
            and src.nodata is not None
            and np.isnan(src.nodata)
            and src.mask_flag_enums[0] == [MaskFlags.nodata]
        )
        for i0 in range(0, rows if cols > 0 else 0, band_rows):
            i1 = min(i0 + band_rows, rows)
            r0 = i0 * k + k // 2
            window = Window(k // 2, r0, (cols - 1) * k + 1, (i1 - 1 - i0) * k + 1)
            if nan_nodata:  # NaN where masked already
                out[i0:i1, :cols] = src.read(1, window=window)[::k, ::k]
                continue
            data = src.read(1, window=window, masked=True)[::k, ::k]
            out[i0:i1, :cols] = np.ma.filled(data.astype("float64"), np.nan)
    return out
