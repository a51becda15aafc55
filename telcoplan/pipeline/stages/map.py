"""The map stage: :data:`~telcoplan.outputs.MAP`, the self-contained interactive map of a run (``telcoplan map``
rebuilds it from a finished run with the same code)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telcoplan import outputs
from telcoplan.maps.choices import MAX_SIGNAL_LEVELS, tiles_problem
from telcoplan.pipeline.checks import ParameterError, is_number, merge_defaults
from telcoplan.pipeline.stages._base import StageResult, Staging

if TYPE_CHECKING:
    import geopandas as gpd

    from telcoplan.pipeline.inputs import PlanInputs

__all__ = ["DEFAULTS", "MapParams", "parse", "render", "run"]

log = logging.getLogger(__name__)

#: Options of the map stage (``stages: {map: {...}}``) with their defaults.
DEFAULTS: dict[str, Any] = {
    "tiles": "none",
    "simplify_m": 20.0,
    "signal": True,
    "signal_range_dbm": [-120.0, -50.0],
    "signal_step_db": 1.0,
}


@dataclass(frozen=True)
class MapParams:
    """Checked map parameters: the keyword arguments of
    :func:`telcoplan.maps.interactive.write_plan_map`."""

    tiles: str = "none"
    simplify_m: float = 20.0
    signal: bool = True
    signal_range_dbm: tuple[float, float] = (-120.0, -50.0)
    signal_step_db: float = 1.0


def parse(raw: Mapping[str, Any] | None, *, base: Path | None = None) -> MapParams:
    """Checked map-stage parameters (defaults filled in), all problems raised at once.
    folium is not imported."""
    params, errs = merge_defaults("map", raw, DEFAULTS)

    def number(v: object) -> bool:
        return is_number(v) and math.isfinite(v)

    problem = tiles_problem(params["tiles"])
    if problem:
        errs.append(f"stages.map.{problem}")
    if not (number(params["simplify_m"]) and 0 <= params["simplify_m"] <= 10_000):
        errs.append(
            f"stages.map.simplify_m must be metres in 0…10000, got {params['simplify_m']!r}"
        )
    if not isinstance(params["signal"], bool):
        errs.append("stages.map.signal must be true or false (draw the signal rasters)")
    rng, step = params["signal_range_dbm"], params["signal_step_db"]
    if not (
        isinstance(rng, list | tuple)
        and len(rng) == 2
        and all(number(v) and -200 <= v <= 50 for v in rng)
        and rng[0] < rng[1]
    ):
        errs.append(
            f"stages.map.signal_range_dbm must be [low, high] dBm with low < high, got {rng!r}"
        )
    elif not (number(step) and step > 0 and (rng[1] - rng[0]) / step < MAX_SIGNAL_LEVELS):
        errs.append(
            f"stages.map.signal_step_db must be > 0 dB with fewer than {MAX_SIGNAL_LEVELS} steps "
            f"in signal_range_dbm, got {step!r}"
        )
    if errs:
        raise ParameterError("map", errs)
    return MapParams(
        tiles=params["tiles"],
        simplify_m=float(params["simplify_m"]),
        signal=params["signal"],
        signal_range_dbm=(float(rng[0]), float(rng[1])),
        signal_step_db=float(step),
    )


def render(
    out_dir: str | os.PathLike,
    layers: Mapping[str, gpd.GeoDataFrame | None] | None,
    params: MapParams,
    *,
    path: str | os.PathLike | None = None,
    summary: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the map of the run in ``out_dir`` (its outputs, and the plan's input ``layers``
    when given) to ``path`` (default ``out_dir`` / :data:`~telcoplan.outputs.MAP`); returns the
    path. The run's own map is replaced without ``overwrite`` (:func:`telcoplan.outputs.derived`).
    """
    from telcoplan.maps.interactive import write_plan_map

    target = Path(path) if path is not None else Path(out_dir) / outputs.MAP
    overwrite = overwrite or outputs.derived(out_dir, target)
    return write_plan_map(
        out_dir, layers, path=target, summary=summary, overwrite=overwrite, **asdict(params)
    )


def run(inputs: PlanInputs, params: MapParams, staging: Staging) -> StageResult:
    """:data:`~telcoplan.outputs.MAP` of the run (needs folium)."""
    try:
        import folium  # noqa: F401
    except ImportError:
        log.warning(
            "map: folium is not installed (a dependency of telcoplan: reinstall it, pip install telcoplan); no %s",
            outputs.MAP,
        )
        return StageResult(None)
    path = render(staging.folder, inputs.layers(), params, summary=staging.summary, overwrite=True)
    return StageResult({"file": path.name, "bytes": path.stat().st_size})
