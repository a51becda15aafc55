"""``telcoplan demo``: write the synthetic Đà Nẵng scenario and its plan file, then run it."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from telcoplan.errors import OutputExistsError

__all__ = ["demo_plan_document", "run_demo", "write_demo"]

log = logging.getLogger(__name__)


def demo_plan_document(
    layer_paths: dict[str, Path], base: Path, *, resolution_m: float
) -> dict[str, Any]:
    """The demo's plan file as a YAML-able mapping (paths relative to ``base``)."""
    return {
        "name": "Đà Nẵng demo (synthetic data)",
        "description": "Built-in synthetic scenario modelled on the 2019 city of Đà Nẵng. Not real data.",
        "synthetic": True,
        "crs": "EPSG:32649",
        "resolution_m": resolution_m,
        "layers": {name: os.path.relpath(path, base) for name, path in layer_paths.items()},
        "stages": {
            # indoor service (a 10 dB building-penetration margin): what ward offices, schools
            # and homes need; the under-served rural west then has gaps to fill
            "coverage": {"terrain": True, "indoor": True},
            "gaps": {},
            # where to build: 2 M USD per operator, new masts shared where operators meet
            "sites": {"mode": "joint", "budget_usd": 2_000_000},
            # shared masts and the sites serving ward offices, schools and clinics get rings
            "backbone": {"protect": "shared+pois"},
            "map": {"tiles": "none"},
            "report": {},
        },
    }


def write_demo(
    out_dir: str | os.PathLike,
    *,
    seed: int = 2019,
    resolution_m: float = 100.0,
    overwrite: bool = False,
) -> Path:
    """Write ``out_dir/inputs/*`` and ``out_dir/plan.yml``; return the plan path."""
    from telcoplan.demo.danang import build_scenario, write_scenario
    from telcoplan.gis.vector import fixed_timestamps
    from telcoplan.pipeline import write_plan

    out = Path(out_dir)
    plan_path = out / "plan.yml"
    if not overwrite and (plan_path.exists() or (out / "inputs").exists()):
        raise OutputExistsError(f"{out} already holds a demo; pass --overwrite to replace it")
    log.info("building the synthetic Đà Nẵng scenario (seed %d, %g m cells)", seed, resolution_m)
    scenario = build_scenario(seed, resolution_m=resolution_m)
    with fixed_timestamps():  # same seed, byte-identical files
        paths = write_scenario(scenario, out / "inputs", overwrite=overwrite)
    write_plan(
        plan_path, demo_plan_document(paths, out, resolution_m=resolution_m), overwrite=overwrite
    )
    return plan_path


def run_demo(
    out_dir: str | os.PathLike,
    *,
    seed: int = 2019,
    resolution_m: float = 100.0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the demo scenario and plan into ``out_dir``, run it into ``out_dir/outputs``."""
    from telcoplan.gis.vector import fixed_timestamps
    from telcoplan.pipeline import read_plan, run_plan

    plan_path = write_demo(out_dir, seed=seed, resolution_m=resolution_m, overwrite=overwrite)
    with fixed_timestamps():  # the demo's outputs are byte-reproducible too
        return run_plan(read_plan(plan_path), Path(out_dir) / "outputs", overwrite=overwrite)
