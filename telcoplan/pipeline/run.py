"""Running a plan: load its inputs, run the registered stages into a staging folder, publish
the outputs all together (or not at all)."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from telcoplan import __version__, outputs
from telcoplan.errors import OutputExistsError, PlanError
from telcoplan.gis.vector import fixed_timestamps
from telcoplan.gis.zonal import label_polygons, zonal_sum_labels
from telcoplan.pipeline.inputs import PlanInputs, load_inputs
from telcoplan.pipeline.model import Plan
from telcoplan.pipeline.stages import STAGES, Staging

__all__ = [
    "available_memory",
    "batch_targets",
    "check_memory_for",
    "estimate_peak_bytes",
    "population_summary",
    "run_plan",
]

#: Memory of the process before the run's arrays: Python, numpy, GDAL, numba (bytes; measured).
BASE_BYTES = 450e6
#: Bytes per grid cell of a run, and per operator and cell (measured on the demo at 100, 50 and
#: 30 m with terrain, map and report: 110-122 B/cell with 3 operators), times a 1.25 margin.
CELL_BYTES, OPERATOR_CELL_BYTES, MARGIN = 60.0, 20.0, 1.25

log = logging.getLogger(__name__)


def run_plan(
    plan: Plan,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    check_memory: bool = True,
) -> dict[str, Any]:
    """Run every stage of ``plan`` and write the outputs into ``out_dir``.

    With ``check_memory`` the run's peak memory is estimated once the inputs are loaded
    (:func:`estimate_peak_bytes`) and the run is refused, naming the resolution that fits, when
    the estimate exceeds the memory available.

    All inputs are loaded and validated before anything is written. Stages write into a
    staging folder inside ``out_dir``; only when every stage has succeeded are the files moved
    into place (:data:`~telcoplan.outputs.SUMMARY` last), so a failure leaves the previous outputs as they were.
    Returns the summary (also written as :data:`~telcoplan.outputs.SUMMARY`).
    """
    out = Path(out_dir)
    if not overwrite and (out / outputs.SUMMARY).exists():
        raise OutputExistsError(
            f"{out / outputs.SUMMARY} already exists; pass --overwrite to replace the outputs in {out}"
        )
    inputs = load_inputs(plan)
    if check_memory:
        check_memory_for(inputs)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        # GeoPackages record a fixed last change: the same plan gives the same bytes
        with fixed_timestamps(), tempfile.TemporaryDirectory(dir=out, prefix=".staging-") as tmp:
            staging = Staging(Path(tmp), population_summary(inputs))
            _run_stages(inputs, staging)
            summary = staging.summary
            # the files of this run, listed in the summary: a later run with --overwrite removes
            # those it does not write again (an operator gone, a stage switched off)
            summary["outputs"] = [
                *sorted(p.name for p in staging.folder.iterdir()),
                outputs.SUMMARY,
            ]
            outputs.write_summary(staging.folder / outputs.SUMMARY, summary, overwrite=True)
            names = summary["outputs"]
            clash = [n for n in names if (out / n).exists()]
            if clash and not overwrite:
                raise OutputExistsError(
                    f"{out / clash[0]} already exists; pass --overwrite to replace the outputs in {out}"
                )
            _publish(staging.folder, out, names, outputs.previous_outputs(out) - set(names))
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()  # a failed first run leaves no empty folder behind
        raise
    log.info("wrote %d outputs to %s", len(names), out)
    return summary


def estimate_peak_bytes(cells: int, operators: int, technology_groups: int = 0) -> float:
    """Estimated peak memory (bytes) of a run over ``cells`` grid cells with ``operators``
    operators (and ``technology_groups`` per-technology rasters)."""
    per_cell = CELL_BYTES + OPERATOR_CELL_BYTES * operators + 4.0 * technology_groups
    return BASE_BYTES + MARGIN * per_cell * cells


def available_memory() -> float | None:
    """Memory available to a new allocation (bytes): Linux's MemAvailable, else free physical
    pages; None when the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory_for(inputs: PlanInputs, available: float | None = None) -> None:
    """Refuse a run whose estimated peak memory exceeds the memory available, with the
    estimate and the coarsest-needed resolution that fits (``run --no-memory-check`` tries
    anyway)."""
    available = available_memory() if available is None else available
    if available is None:
        return
    grid, plan = inputs.grid, inputs.plan
    towers = inputs.vectors.get("towers")
    operators = 0 if towers is None else towers["operator"].astype(str).nunique()
    groups = 0
    cov = plan.parameters.get("coverage")
    if towers is not None and cov is not None and getattr(cov, "per_technology", False):
        groups = len(towers[["operator", "technology"]].drop_duplicates())
    cells = grid.width * grid.height
    need = estimate_peak_bytes(cells, operators, groups)
    if need <= available:
        log.debug("memory: about %.1f GB needed, %.1f GB available", need / 1e9, available / 1e9)
        return
    per_cell = (need - BASE_BYTES) / cells
    fits = max(1.0, (0.9 * available - BASE_BYTES) / per_cell)
    resolution = math.ceil(grid.resolution * math.sqrt(cells / fits))
    raise PlanError(
        f"{plan.source}: a {grid.resolution:g} m grid has {cells:,} cells; with {operators} "
        f"operators the run needs about {need / 1e9:.1f} GB of memory but "
        f"{available / 1e9:.1f} GB is available; use resolution_m: {resolution} or coarser "
        f"(about {estimate_peak_bytes(int(cells * (grid.resolution / resolution) ** 2), operators, groups) / 1e9:.1f} GB), "
        "split the study area, or pass --no-memory-check to try anyway"
    )


def _run_stages(inputs: PlanInputs, staging: Staging) -> None:
    """Run the plan's enabled stages in registry order; each adds its part of the summary.

    A stage that does not run is listed under ``stages`` in the summary, with why:
    ``{"stages": {name: {"skipped": reason}}}`` (the key is there only when one was skipped).
    """
    plan = inputs.plan
    for name, stage in STAGES.items():
        if stage.presents and "provenance" not in staging.summary:
            # the map and the report draw on every output above, provenance included
            staging.summary["provenance"] = _provenance(plan)
        if not plan.enabled(name):
            reason = f"switched off in the plan (stages.{name}: false)"
        else:
            reason = stage.skip_reason(inputs, staging)
        if reason is not None:
            log.info("%s: skipped (%s)", name, reason)
            staging.summary.setdefault("stages", {})[name] = {"skipped": reason}
            continue
        params = plan.parameters.get(name)
        if params is None:  # a Plan built by hand, not by the parser: its defaults
            raw = plan.stages.get(name)
            params = stage.parse(raw if isinstance(raw, dict) else None, base=plan.base)
        result = stage.run(inputs, params, staging)
        staging.results[name] = result.value
        staging.summary[name] = result.summary
    staging.summary.setdefault("provenance", _provenance(plan))


def _publish(staging: Path, out: Path, names: list[str], stale: set[str]) -> None:
    """Move the staged ``names`` into ``out`` all together, or not at all.

    Files they replace, and the previous run's ``stale`` outputs, are first moved aside into
    the staging folder (removed with it); if any move fails, every move is undone and the
    previous outputs are back as they were.
    """
    for name in names:
        if (out / name).is_dir():
            raise OutputExistsError(
                f"{out / name} is a folder; the run writes a file {name} there: move the "
                "folder away (nothing was written)"
            )
    aside: list[tuple[Path, Path]] = []  # (where it went, where it was)
    placed: list[Path] = []
    removed = 0
    try:
        for name in sorted(stale):
            if (out / name).is_file():
                os.replace(out / name, staging / f".previous-{name}")
                aside.append((staging / f".previous-{name}", out / name))
                removed += 1
        for name in names:
            target = out / name
            if target.exists():
                os.replace(target, staging / f".previous-{name}")
                aside.append((staging / f".previous-{name}", target))
            os.replace(staging / name, target)
            placed.append(target)
    except OSError as exc:
        for target in placed:
            target.unlink(missing_ok=True)
        for held, target in reversed(aside):
            os.replace(held, target)
        raise OutputExistsError(
            f"cannot write the outputs into {out} ({exc.strerror or exc}); nothing was "
            "changed there"
        ) from None
    if removed:
        log.info("removed %d outputs of the previous run that this run did not write", removed)


def population_summary(inputs: PlanInputs) -> dict[str, Any]:
    """Key population figures: total and per area (zonal sums on the plan grid)."""
    labels = label_polygons(inputs.areas, inputs.grid)
    per_area = zonal_sum_labels(inputs.population, labels, len(inputs.areas))
    total = float(inputs.population.sum())
    outside = total - float(per_area.sum())
    names = inputs.areas.index.astype(str)
    km2 = inputs.areas.geometry.area.to_numpy() / 1e6
    return {
        "plan": inputs.plan.name,
        "synthetic": inputs.plan.synthetic,
        "telcoplan_version": __version__,
        "crs": inputs.crs,
        "grid": inputs.grid.to_dict(),
        "population_total": round(total, 3) if inputs.has_population else None,
        "population_outside_areas": round(outside, 3) if inputs.has_population else None,
        "area_km2_total": round(float(km2.sum()), 3),
        "areas": [
            {
                "name": n,
                "population": round(float(p), 3) if inputs.has_population else None,
                "area_km2": round(float(a), 3),
            }
            for n, p, a in zip(names, per_area, km2, strict=True)
        ],
        "layers": {name: len(g) for name, g in inputs.vectors.items()},
    }


def _provenance(plan: Plan) -> dict[str, Any]:
    """Parameters and inputs (paths relative to the plan file, SHA-256) of a run."""
    base = plan.base
    return {
        "plan_file": None if plan.path is None else plan.path.name,
        "parameters": {
            "crs": plan.crs,
            "resolution_m": plan.resolution_m,
            "study_area_margin_m": plan.study_area_margin_m,
            "stages": dict(plan.stages),
        },
        "inputs": {
            name: {"path": os.path.relpath(ref.path, base), "sha256": outputs.file_sha256(ref.path)}
            | {
                f"{key}_{part}": value
                for key, extra in (("weights", ref.weights), ("classes", ref.classes))
                if extra is not None
                for part, value in (
                    ("path", os.path.relpath(extra, base)),
                    ("sha256", outputs.file_sha256(extra)),
                )
            }
            for name, ref in plan.layers.items()
        },
    }


def batch_targets(plans: Sequence[Path], out_dir: Path | None) -> list[Path]:
    """Output folder of each plan of a batch; never the same folder for two plans.

    One plan: ``out_dir``, or ``outputs`` beside the plan file. Several: a sub-folder per plan
    named after the plan file's stem (``folder-stem`` when stems repeat, then ``-2``, ``-3``…) in
    ``out_dir``, or in ``outputs`` beside each plan file.
    """
    if len(plans) == 1:
        return [out_dir if out_dir is not None else Path(plans[0]).parent / "outputs"]
    stems = [Path(p).stem for p in plans]
    names = [
        f"{Path(p).resolve().parent.name}-{st}" if stems.count(st) > 1 else st
        for p, st in zip(plans, stems, strict=True)
    ]
    targets: list[Path] = []
    for p, name in zip(plans, names, strict=True):
        base = out_dir if out_dir is not None else Path(p).parent / "outputs"
        target, k = base / name, 1
        while any(target.resolve() == t.resolve() for t in targets):
            k += 1
            target = base / f"{name}-{k}"
        targets.append(target)
    return targets
