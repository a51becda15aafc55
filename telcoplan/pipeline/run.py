"""Running a plan: load its inputs, run the registered stages into a staging folder, publish
the outputs all together (or not at all).

With ``run_plan(..., concurrent=True)`` (``telcoplan run --concurrent``) stages that do not
depend on each other (:func:`stage_dependencies`) run at the same time, in threads. Each stage
sees exactly what a sequential run shows it, so the outputs are the same bytes either way.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telcoplan import __version__, outputs
from telcoplan.errors import OutputExistsError, PlanError
from telcoplan.gis.vector import fixed_timestamps
from telcoplan.gis.zonal import label_polygons, zonal_sum_labels
from telcoplan.pipeline.inputs import PlanInputs, load_inputs
from telcoplan.pipeline.model import Plan
from telcoplan.pipeline.stages import STAGES, Stage, StageResult, Staging

__all__ = [
    "available_memory",
    "batch_targets",
    "check_memory_for",
    "estimate_peak_bytes",
    "population_summary",
    "run_plan",
    "stage_dependencies",
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
    concurrent: bool = False,
) -> dict[str, Any]:
    """Run every stage of ``plan`` and write the outputs into ``out_dir``.

    With ``concurrent``, stages that do not depend on each other run at the same time in
    threads (when the machine has more than one core and memory for it, see
    :func:`_concurrent_ok`); the outputs are the same bytes either way. It is off by default:
    on Python < 3.14 ``warnings.catch_warnings`` is not thread-safe and rasterio, pyogrio and
    matplotlib use it inside, so a warning one stage silences may surface in the other (an
    error under ``-W error``), and the gain is small (the map and the report hold the GIL).

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
            _run_stages(inputs, staging, concurrent=concurrent and _concurrent_ok(inputs))
            summary = staging.summary
            _write_styles(inputs, staging)
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


#: Results a stage uses when the stage that makes them runs, without needing it (``after``
#: lists the stages it needs): the backbone connects the sites stage's planned masts too.
OPTIONAL_INPUTS: dict[str, tuple[str, ...]] = {"backbone": ("sites",)}


def stage_dependencies(stages: Mapping[str, Stage] | None = None) -> dict[str, tuple[str, ...]]:
    """The stages each stage of the registry waits for, in registry order: those it needs
    (``after``), those whose results it uses when they run (:data:`OPTIONAL_INPUTS`) and, for a
    stage that presents the run (map, report), every stage before it that does not present it.

    Other pairs are independent and may run at the same time: gaps and sites (both after
    coverage), the backbone and coverage/gaps when the plan has no sites stage, the map and
    the report.
    """
    stages = STAGES if stages is None else stages
    names = list(stages)
    deps: dict[str, tuple[str, ...]] = {}
    for i, (name, stage) in enumerate(stages.items()):
        wanted = {*stage.after, *OPTIONAL_INPUTS.get(name, ())}
        if stage.presents:
            wanted |= {n for n in names[:i] if not stages[n].presents}
        deps[name] = tuple(n for n in names[:i] if n in wanted)
    return deps


@dataclass(frozen=True)
class _Outcome:
    """How a stage ended: skipped (and why), or ran (its result)."""

    skipped: str | None = None
    result: StageResult | None = None


def _concurrent_ok(inputs: PlanInputs) -> bool:
    """Whether to run independent stages at the same time: with more than one core, when
    numba's kernels may be launched from several threads at once, and when the run's estimated
    peak memory leaves room for two stages' arrays at once."""
    if _cpu_count() < 2:
        return False
    if not _thread_safe_kernels():
        log.debug("stages run one after the other: numba's threading layer is not thread-safe")
        return False
    available = available_memory()
    if available is None:
        return True
    towers = inputs.vectors.get("towers")
    operators = 0 if towers is None else towers["operator"].astype(str).nunique()
    need = estimate_peak_bytes(inputs.grid.width * inputs.grid.height, operators)
    if need > 0.5 * available:
        log.debug("stages run one after the other: the run may need half the memory available")
        return False
    return True


def _thread_safe_kernels() -> bool:
    """Whether numba's threading layer lets several threads run parallel kernels at once: TBB
    and OpenMP do; the fallback "workqueue" layer (no TBB or OpenMP runtime, or chosen with
    NUMBA_THREADING_LAYER) aborts the process when two threads launch kernels together — the
    kernels release the GIL, so concurrent stages would."""
    import importlib

    import numba

    if numba.config.THREADING_LAYER == "workqueue":
        return False
    for layer in ("numba.np.ufunc.tbbpool", "numba.np.ufunc.omppool"):
        try:
            importlib.import_module(layer)
        except ImportError:
            continue
        return True
    return False


def _cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run_stages(inputs: PlanInputs, staging: Staging, *, concurrent: bool = False) -> None:
    """Run the plan's enabled stages; each adds its part of the summary, in registry order.

    A stage starts once the stages it depends on (:func:`stage_dependencies`) have finished
    or were skipped. With ``concurrent``, independent stages run at the same time in threads;
    otherwise one after the other in registry order. Either way a stage sees the same
    :class:`Staging` (:func:`_view`): the results of the stages it depends on, and the summary
    as it stands before the stage in a sequential run, less the parts of the stages it does
    not depend on (only the map and the report read the summary; neither reads the other's).

    A stage that does not run is listed under ``stages`` in the summary, with why:
    ``{"stages": {name: {"skipped": reason}}}`` (the key is there only when one was skipped).
    When a stage fails no further stage starts; the run waits for the stages still running
    (none is left writing into the staging folder) and raises the error of the first failed
    stage in registry order: the error a sequential run raises.
    """
    plan = inputs.plan
    stages = dict(STAGES)
    names = list(stages)
    deps = stage_dependencies(stages)
    provenance = _provenance(plan)
    off = frozenset(n for n in names if not plan.enabled(n))
    outcomes: dict[str, _Outcome] = {}
    errors: dict[str, BaseException] = {}

    def job(name: str) -> Callable[[], StageResult] | None:
        """The call that runs stage ``name``; None (recorded, logged) when it is skipped."""
        stage = stages[name]
        seen = {n: o for n, o in outcomes.items() if n in deps[name] or n in off}
        view = _view(name, stages, deps[name], seen, staging.summary, provenance, staging.folder)
        if name in off:
            reason = f"switched off in the plan (stages.{name}: false)"
        else:
            reason = stage.skip_reason(inputs, view)
        if reason is not None:
            log.info("%s: skipped (%s)", name, reason)
            outcomes[name] = _Outcome(skipped=reason)
            return None
        params = plan.parameters.get(name)
        if params is None:  # a Plan built by hand, not by the parser: its defaults
            raw = plan.stages.get(name)
            params = stage.parse(raw if isinstance(raw, dict) else None, base=plan.base)
        return lambda: stage.run(inputs, params, view)

    workers = min(len(names), max(2, _cpu_count())) if concurrent else 0
    pool = ThreadPoolExecutor(workers, thread_name_prefix="telcoplan-stage") if workers else None
    running: dict[Future, str] = {}
    pending = list(names)

    def run_here(name: str, call: Callable[[], StageResult]) -> None:
        try:
            outcomes[name] = _Outcome(result=call())
        except BaseException as exc:  # raised below, once the running stages are done
            errors[name] = exc

    try:
        while True:
            ready = _ready(pending, deps, outcomes, job, one=pool is None) if not errors else []
            if not ready and not running:
                break
            if pool is None or (len(ready) == 1 and not running):
                # nothing else can start until it ends: run it in this thread (profilers and
                # debuggers see it)
                for name, call in ready:
                    run_here(name, call)
                continue
            for name, call in ready:
                running[pool.submit(call)] = name
            if not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                exc = future.exception()
                if exc is None:
                    outcomes[name] = _Outcome(result=future.result())
                else:
                    errors[name] = exc
    finally:
        if pool is not None:
            # never leave a stage writing into the staging folder as it is removed
            pool.shutdown(wait=True, cancel_futures=True)
    if errors:
        raise errors[min(errors, key=names.index)]
    _assemble(staging.summary, stages, outcomes, provenance, len(names))
    staging.summary.setdefault("provenance", provenance)
    staging.results.update({n: o.result.value for n, o in outcomes.items() if o.result is not None})


def _ready(
    pending: list[str],
    deps: Mapping[str, tuple[str, ...]],
    outcomes: Mapping[str, _Outcome],
    job: Callable[[str], Callable[[], StageResult] | None],
    *,
    one: bool,
) -> list[tuple[str, Callable[[], StageResult]]]:
    """Take from ``pending`` the stages whose dependencies are done, in registry order, with
    the calls that run them (``one``: the first only); a skipped stage is done at once, which
    may make the stages after it ready."""
    ready: list[tuple[str, Callable[[], StageResult]]] = []
    look = True
    while look:
        look = False
        for name in list(pending):
            if not all(d in outcomes for d in deps[name]):
                continue
            pending.remove(name)
            call = job(name)
            if call is None:
                look = True
                break
            ready.append((name, call))
            if one:
                return ready
    return ready


def _assemble(
    summary: dict[str, Any],
    stages: Mapping[str, Stage],
    outcomes: Mapping[str, _Outcome],
    provenance: dict[str, Any],
    upto: int,
) -> None:
    """Add to ``summary``, in registry order, the parts of the first ``upto`` stages with an
    outcome in ``outcomes``, and the run's provenance before the first stage that presents
    the run (the map and the report draw on it) — where a sequential run adds them."""
    for i, (name, stage) in enumerate(stages.items()):
        if stage.presents and "provenance" not in summary:
            summary["provenance"] = provenance
        if i >= upto:
            return
        outcome = outcomes.get(name)
        if outcome is None:
            continue
        if outcome.skipped is not None:
            summary.setdefault("stages", {})[name] = {"skipped": outcome.skipped}
        elif outcome.result is not None:
            summary[name] = outcome.result.summary


def _view(
    name: str,
    stages: Mapping[str, Stage],
    deps: tuple[str, ...],
    seen: Mapping[str, _Outcome],
    base: Mapping[str, Any],
    provenance: dict[str, Any],
    folder: Path,
) -> Staging:
    """The :class:`Staging` stage ``name`` runs with: the staging folder, the results of the
    stages it depends on (``deps``), and the summary before it as a sequential run builds it
    (from ``base``, the population figures) from the outcomes ``seen``: those of the stages it
    depends on and of the stages switched off in the plan, never of a stage that may run
    alongside it."""
    summary = dict(base)
    _assemble(summary, stages, seen, provenance, list(stages).index(name))
    results = {d: seen[d].result.value for d in deps if seen[d].result is not None}
    return Staging(folder, summary, results)


def _write_styles(inputs: PlanInputs, staging: Staging) -> None:
    """QGIS styles of the run's outputs (GeoPackage default styles, a ``.qml`` beside each
    raster, ``project.qgs``), the signal ramp over the map stage's range."""
    from telcoplan.maps.styles import run_styles, write_run_styles
    from telcoplan.pipeline.stages import STAGES

    raw = inputs.plan.stages.get("map")
    params = STAGES["map"].parse(dict(raw) if isinstance(raw, dict) else {})
    styles = run_styles(
        staging.folder, summary=staging.summary, signal_range_dbm=params.signal_range_dbm
    )
    write_run_styles(staging.folder, styles)


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
