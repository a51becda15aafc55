"""Running a plan: load its inputs, run the registered stages into a staging folder, publish
the outputs all together (or not at all)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from telcoplan import __version__, outputs
from telcoplan.errors import OutputExistsError
from telcoplan.gis.zonal import label_polygons, zonal_sum_labels
from telcoplan.pipeline.inputs import PlanInputs, load_inputs
from telcoplan.pipeline.model import Plan
from telcoplan.pipeline.stages import STAGES, Staging

__all__ = ["batch_targets", "population_summary", "run_plan"]

log = logging.getLogger(__name__)


def run_plan(
    plan: Plan,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run every stage of ``plan`` and write the outputs into ``out_dir``.

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
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=out, prefix=".staging-") as tmp:
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


def _run_stages(inputs: PlanInputs, staging: Staging) -> None:
    """Run the plan's enabled stages in registry order; each adds its part of the summary."""
    plan = inputs.plan
    for name, stage in STAGES.items():
        if stage.presents and "provenance" not in staging.summary:
            # the map and the report draw on every output above, provenance included
            staging.summary["provenance"] = _provenance(plan)
        if not plan.enabled(name):
            continue
        reason = stage.skip_reason(inputs, staging)
        if reason is not None:
            log.info("%s: skipped (%s)", name, reason)
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
