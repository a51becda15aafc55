"""``telcoplan demo``: write a synthetic scenario and its plan file (and run the city's).

Two scales (:data:`SCALES`): ``city``, the synthetic Đà Nẵng of :mod:`telcoplan.demo.danang`
(written and run in seconds), and ``national``, the synthetic Vietnam-sized country of
:mod:`telcoplan.demo.national` (~35 M cells, 100,000 sites), which ``telcoplan demo --scale
national`` writes without running it: its run takes minutes and gigabytes (see the README).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from telcoplan.errors import OutputExistsError

__all__ = ["SCALES", "demo_plan_document", "national_plan_document", "run_demo", "write_demo"]

log = logging.getLogger(__name__)

#: The demo scenarios, by scale.
SCALES = ("city", "national")


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


def national_plan_document(
    layer_paths: dict[str, Path], base: Path, *, resolution_m: float, size: float = 1.0
) -> dict[str, Any]:
    """The national demo's plan file as a YAML-able mapping (paths relative to ``base``)."""
    from telcoplan.demo.national import NATIONAL_CRS

    full = size == 1.0
    return {
        "name": "National demo (synthetic data)" + ("" if full else f", scale {size:g}"),
        "description": (
            "Built-in synthetic country of Vietnam's land area (331,000 km²"
            + ("" if full else f" x {size:g}²")
            + "): 63 provinces, the 3 operators' sites, 2019 census population. A compact "
            "made-up shape, not Vietnam's; not real data."
        ),
        "synthetic": True,
        "crs": NATIONAL_CRS,
        "resolution_m": resolution_m,
        "layers": {name: os.path.relpath(path, base) for name, path in layer_paths.items()},
        "stages": {
            # outdoor service, urban Okumura-Hata everywhere (conservative in the countryside),
            # flat earth: the national demo writes no DEM (terrain for 100,000 sites over
            # ~35 M cells has not been measured against the run's targets)
            "coverage": {"terrain": False, "environment": "urban"},
            "gaps": {},
            # no site planning at this scale: the demo shows coverage, gaps and the backbone
            "sites": False,
            # sites connect to the operators' existing fiber along the highways
            "backbone": {},
            # coverage and gap outlines simplified to 2 cells (100 m cells: 27.6 -> 3.3 MB of
            # the map's polygons); the backbone and towers still dominate the map's size
            "map": {"tiles": "none", "simplify_m": 2.0 * resolution_m},
            "report": {},
        },
    }


def write_demo(
    out_dir: str | os.PathLike,
    *,
    seed: int = 2019,
    resolution_m: float = 100.0,
    overwrite: bool = False,
    scale: str = "city",
    size: float = 1.0,
) -> Path:
    """Write ``out_dir/inputs/*`` and ``out_dir/plan.yml``; return the plan path.

    ``scale`` is ``city`` (the synthetic Đà Nẵng) or ``national`` (the synthetic Vietnam-sized
    country); ``size`` (0.02–1) shrinks the national country's lengths (1: full size; small
    sizes are for tests).
    """
    from telcoplan.gis.vector import fixed_timestamps
    from telcoplan.pipeline import write_plan

    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if scale == "city" and size != 1.0:
        raise ValueError("size applies to the national demo only")
    out = Path(out_dir)
    plan_path = out / "plan.yml"
    if not overwrite and (plan_path.exists() or (out / "inputs").exists()):
        raise OutputExistsError(f"{out} already holds a demo; pass --overwrite to replace it")
    if scale == "national":
        from telcoplan.demo.national import build_national, write_national

        log.info(
            "building the synthetic national scenario (seed %d, %g m cells, size %g)",
            seed,
            resolution_m,
            size,
        )
        national = build_national(seed, scale=size, resolution_m=resolution_m)
        with fixed_timestamps():  # same seed, byte-identical files
            paths = write_national(national, out / "inputs", overwrite=overwrite)
        del national
        doc = national_plan_document(paths, out, resolution_m=resolution_m, size=size)
    else:
        from telcoplan.demo.danang import build_scenario, write_scenario

        log.info(
            "building the synthetic Đà Nẵng scenario (seed %d, %g m cells)", seed, resolution_m
        )
        scenario = build_scenario(seed, resolution_m=resolution_m)
        with fixed_timestamps():  # same seed, byte-identical files
            paths = write_scenario(scenario, out / "inputs", overwrite=overwrite)
        doc = demo_plan_document(paths, out, resolution_m=resolution_m)
    write_plan(plan_path, doc, overwrite=overwrite)
    return plan_path


def run_demo(
    out_dir: str | os.PathLike,
    *,
    seed: int = 2019,
    resolution_m: float = 100.0,
    overwrite: bool = False,
    scale: str = "city",
    size: float = 1.0,
) -> dict[str, Any]:
    """Write the demo scenario and plan into ``out_dir``, run it into ``out_dir/outputs``."""
    from telcoplan.gis.vector import fixed_timestamps
    from telcoplan.pipeline import read_plan, run_plan

    plan_path = write_demo(
        out_dir, seed=seed, resolution_m=resolution_m, overwrite=overwrite, scale=scale, size=size
    )
    with fixed_timestamps():  # the demo's outputs are byte-reproducible too
        return run_plan(read_plan(plan_path), Path(out_dir) / "outputs", overwrite=overwrite)
