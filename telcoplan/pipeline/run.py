"""Running a plan: load its inputs, run the registered stages into a staging folder, publish
the outputs all together (or not at all).

Stages that do not depend on each other (:func:`stage_dependencies`) may run at the same time
(:mod:`~telcoplan.pipeline.concurrency`; ``telcoplan run``: the backbone and the report in
child processes forked from the run). Each stage sees exactly what a sequential run shows it,
so the outputs are the same bytes either way.

**Re-runs reuse work** (``cache=True``, as ``telcoplan run``): each stage's files, summary
part and in-memory result are kept in :data:`~telcoplan.outputs.CACHE` under a key of all it
depends on (:func:`_stage_key`); a stage whose key is kept is not run again (its files linked
back, checked by SHA-256; its in-memory result read only when a stage that runs needs it), and
when every stage is kept the inputs are not even loaded. ``force=True`` computes them all.

**Killed runs**: the staging folder is owned by its run
(:func:`telcoplan.gis.atomic.owned_folder`) and publishing is journaled in it, under a lock on
the output folder; every run first undoes a dead run's half-done publishing and removes dead
runs' staging folders (:func:`telcoplan.outputs.remove_abandoned_runs`), never a live one's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telcoplan import outputs
from telcoplan.errors import OutputExistsError
from telcoplan.gis.atomic import (
    folder_lock,
    link,
    link_files,
    move_files,
    new_files,
    owned_folder,
    remove_tree,
)
from telcoplan.gis.cores import cores_limit, limit_cores, usable_cores
from telcoplan.gis.vector import fixed_timestamps
from telcoplan.pipeline.cache import (
    CACHE_FORMAT,
    BrokenEntryError,
    CacheEntry,
    FileHashes,
    ResultCache,
    code_fingerprint,
)
from telcoplan.pipeline.concurrency import Forked, StageProcessError, run_mode
from telcoplan.pipeline.execution import Cluster, cluster_errors, resolve
from telcoplan.pipeline.guards import check_inputs_outside_outputs, check_outputs_absent
from telcoplan.pipeline.inputs import (
    PlanInputs,
    load_inputs,
    population_summary,
    source_provenance,
)
from telcoplan.pipeline.memory import check_memory_for
from telcoplan.pipeline.model import Plan, UnkeyableError, digest, plan_inputs
from telcoplan.pipeline.stages import STAGES, Stage, StageResult, Staging

__all__ = ["run_plan", "stage_dependencies"]

#: A stage's own folder in the staging folder: ``.stage-<name>``.
STAGE_FOLDER = ".stage-"

log = logging.getLogger(__name__)


def run_plan(
    plan: Plan,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    check_memory: bool = True,
    concurrent: bool | None = False,
    cache: bool = False,
    force: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Run every stage of ``plan`` and write the outputs into ``out_dir``.

    ``concurrent`` (:mod:`~telcoplan.pipeline.concurrency`; the same bytes either way): False
    (default), the stages in turn in this thread; None (``telcoplan run``), independent stages at
    once with 2+ cores and memory for it: the :attr:`~telcoplan.pipeline.stages.Stage.separate`
    ones in child processes forked from this one (Linux, no Dask cluster; a fork copies no other
    thread of an application that embeds the run), the others in turn here; True, every stage in
    a thread (Python < 3.14's ``warnings.catch_warnings`` is process-wide: a warning one stage
    silences may surface in another; the map and report hold the GIL).

    With ``cache`` (as ``telcoplan run`` does) a stage whose inputs and parameters have not
    changed since a run into the same folder is not run again: its results are taken from
    the folder's :data:`~telcoplan.outputs.CACHE` (see the module's docstring); the log says
    which stages were reused. ``force`` computes every stage again (and keeps the results).

    ``workers`` (a local Dask cluster of that many processes, started for the run) or
    ``scheduler`` (an existing cluster's ``tcp://host:port``) replace the plan's ``execution:``
    (:mod:`~telcoplan.pipeline.execution`); the tiled work (coverage and its population tables,
    gaps) then runs on the cluster, with the same results. The cluster is started only if a
    stage is computed, and closed at the end of the run.

    With ``check_memory`` the run's peak memory is estimated once the inputs are loaded
    (:func:`~telcoplan.pipeline.memory.estimate_peak_bytes`) and the run is refused, naming the
    resolution that fits, when the estimate exceeds the memory available.

    All inputs are loaded and validated before anything is written (unless every stage's
    result is kept: then they are not loaded at all). Stages write into a staging folder
    inside ``out_dir``; only when every stage has succeeded are the files moved into place
    (:data:`~telcoplan.outputs.SUMMARY` last), so a failure — or a kill — leaves the previous
    outputs as they were. Returns the summary (also written as :data:`~telcoplan.outputs.SUMMARY`).
    """
    out = Path(out_dir)
    if not overwrite and (out / outputs.SUMMARY).exists():
        raise OutputExistsError(
            f"{out / outputs.SUMMARY} already exists; pass --overwrite to replace the outputs in {out}"
        )
    check_inputs_outside_outputs(plan, out)
    if not overwrite:
        check_outputs_absent(plan, out)
    execution = resolve(plan.execution, workers=workers, scheduler=scheduler)
    started = time.time()
    hashes = FileHashes()
    source = _Source(plan, check_memory)
    store = ResultCache(out / outputs.CACHE) if cache else None
    inputs_key = _inputs_key(plan, hashes) if store is not None else None
    facts = None
    if store is not None and inputs_key is not None and not force:
        facts = _Facts.kept(store, inputs_key)
    if facts is None:
        facts = _Facts.of(source.get())  # every input loaded and checked before anything is written
    if store is not None and inputs_key is None and source.loaded:
        # layers read from a database are keyed by the SHA-256 of the rows just read
        inputs_key = _inputs_key(source.get().plan, hashes)
    provenance = _provenance(plan, hashes)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        outputs.remove_abandoned_runs(out)
        # GeoPackages record a fixed last change: the same plan gives the same bytes
        with (
            fixed_timestamps(),
            owned_folder(out, outputs.STAGING) as tmp,
            Cluster(execution) as cluster,
        ):
            try:
                if store is not None and inputs_key is not None and source.loaded:
                    store.put("inputs", inputs_key, None, (), facts, None, tmp)
                staging = Staging(tmp, dict(facts.summary))
                run = _Run(plan, source, facts, provenance, store, inputs_key, force, cluster)
                files = _run_stages(
                    run,
                    staging,
                    mode=run_mode(concurrent, facts.cells, facts.operators, execution.in_process),
                )
                summary = staging.summary
                files = {*files, *_styles(run, staging)}  # QGIS styles of the outputs
                # the files of this run, listed in the summary: a later run with --overwrite
                # removes those it does not write again (an operator gone, a stage switched off)
                summary["outputs"] = [*sorted(files), outputs.SUMMARY]
                outputs.write_summary(tmp / outputs.SUMMARY, summary, overwrite=True)
                names = summary["outputs"]
                if store is not None:
                    _wait_for_cache(store)  # the stages' results kept in the background
                with folder_lock(out):
                    outputs.publish(tmp, out, names, overwrite=overwrite)
                    if store is not None:
                        store.prune(started, tmp)
            except Exception:
                if store is not None:  # what the stages before the failure made stays kept
                    store.wait()
                raise
            finally:
                if store is not None:  # interrupted: stop keeping, before its folder goes
                    store.wait(cancel=True)
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()  # a failed first run leaves no empty folder behind
        raise
    log.info("wrote %d outputs to %s", len(names), out)
    return summary


def _wait_for_cache(store: ResultCache) -> None:
    """Wait for the results the cache is still keeping (:meth:`ResultCache.put`), logging the
    wait when there was one."""
    started = time.perf_counter()
    store.wait()
    waited = time.perf_counter() - started
    if waited >= 0.05:
        log.info("waited %s for the re-run cache", _duration(waited))


def _write_styles(plan: Plan, staging: Staging) -> list[str]:
    """QGIS styles of the run's outputs (GeoPackage default styles, a ``.qml`` beside each
    raster, ``project.qgs``), the signal ramp over the map stage's range; the files written."""
    from telcoplan.maps.styles import run_styles, write_run_styles
    from telcoplan.pipeline.stages import STAGES

    raw = plan.stages.get("map")
    params = STAGES["map"].parse(dict(raw) if isinstance(raw, dict) else {})
    styles = run_styles(
        staging.folder, summary=staging.summary, signal_range_dbm=params.signal_range_dbm
    )
    return write_run_styles(staging.folder, styles)


def _styles(run: _Run, staging: Staging) -> list[str]:
    """:func:`_write_styles`, or the files it wrote in an earlier run of the same stage results
    (kept like a stage's)."""
    key, root = None, staging.folder
    if run.store is not None and None not in run.keys.values():
        doc = {"format": CACHE_FORMAT, "step": "styles", "inputs": run.inputs_key}
        doc |= {"stages": run.keys, "map": run.plan.stages.get("map"), "summary": staging.summary}
        with contextlib.suppress(UnkeyableError):
            key = digest(doc)
    kept = _restore(run, "styles", key, root / f"{STAGE_FOLDER}styles", root)
    if kept is not None:
        return kept[1]
    files = _write_styles(run.plan, staging)
    if key is not None:
        run.store.put("styles", key, root, files, None, None, root)
    return files


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
    """How a stage ended: skipped (and why), or ran (its result, the files it wrote, the key
    of its result and whether it was kept from an earlier run)."""

    skipped: str | None = None
    result: StageResult | None = None
    files: tuple[str, ...] = ()
    key: str | None = None
    reused: bool = False


@dataclass(frozen=True)
class _Facts:
    """What the run needs to know of its inputs before any stage runs: the population figures
    (the summary's start), the vector layers, the grid's cells and the operators."""

    summary: dict[str, Any]
    layers: tuple[str, ...]
    cells: int
    operators: int

    @staticmethod
    def kept(store: ResultCache, key: str) -> _Facts | None:
        """The facts an earlier run kept for inputs of ``key``."""
        entry = store.get("inputs", key)
        try:
            facts = None if entry is None else entry.summary()
        except (OSError, BrokenEntryError):
            return None
        return facts if isinstance(facts, _Facts) else None

    @classmethod
    def of(cls, inputs: PlanInputs) -> _Facts:
        towers = inputs.vectors.get("towers")
        return cls(
            summary=population_summary(inputs),
            layers=tuple(inputs.vectors),
            cells=int(inputs.grid.width * inputs.grid.height),
            operators=0 if towers is None else int(towers["operator"].astype(str).nunique()),
        )


class _Source:
    """The plan's inputs, loaded (and the run's memory checked) when first needed, once."""

    def __init__(self, plan: Plan, check_memory: bool) -> None:
        self.plan, self.check_memory = plan, check_memory
        self._inputs: PlanInputs | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._inputs is not None

    def get(self) -> PlanInputs:
        with self._lock:
            if self._inputs is None:
                inputs = load_inputs(self.plan)
                if self.check_memory:
                    check_memory_for(inputs)
                self._inputs = inputs
            return self._inputs


@dataclass(frozen=True)
class _Run:
    """What every stage of a run shares."""

    plan: Plan
    source: _Source
    facts: _Facts
    provenance: dict[str, Any]
    store: ResultCache | None = None
    inputs_key: str | None = None
    force: bool = False
    cluster: Cluster | None = None
    #: each stage's key once it ran (None: not kept), or why it was skipped
    keys: dict[str, Any] = field(default_factory=dict)


def _run_stages(run: _Run, staging: Staging, *, mode: str = "sequential") -> list[str]:
    """Run the plan's enabled stages; each adds its part of the summary, in registry order.
    Returns the names of the files they wrote into ``staging.folder``.

    A stage starts once the stages it depends on (:func:`stage_dependencies`) have finished
    or were skipped; ``mode`` (:func:`~telcoplan.pipeline.concurrency.run_mode`) says how:
    "sequential", "threads" or "forks" (the separate stages forked, before this thread runs
    the others in turn). Either way a stage sees the same
    :class:`Staging` (:func:`_view`): its own folder holding the files of the stages it depends
    on, their results, and the summary as it stands before the stage in a sequential run, less
    the parts of the stages it does not depend on (only the map and the report read the
    summary; neither reads the other's). What it adds to its folder is its output.

    A stage that does not run is listed under ``stages`` in the summary, with why:
    ``{"stages": {name: {"skipped": reason}}}`` (the key is there only when one was skipped).
    When a stage fails no further stage starts; the run ends the child processes and waits for
    the threads still running (none is left writing into the staging folder) and raises the
    error of the first failed stage in registry order: the error a sequential run raises.
    """
    plan = run.plan
    stages = dict(STAGES)
    names = list(stages)
    deps = stage_dependencies(stages)
    off = frozenset(n for n in names if not plan.enabled(n))
    outcomes: dict[str, _Outcome] = {}
    errors: dict[str, BaseException] = {}

    def job(name: str) -> Callable[..., Callable[[], _Outcome]] | None:
        """The call that starts stage ``name`` (:func:`_start`); None (logged) if it is skipped."""
        stage = stages[name]
        seen = {n: o for n, o in outcomes.items() if n in deps[name] or n in off}
        folder = staging.folder / f"{STAGE_FOLDER}{name}"
        reason = f"switched off in the plan (stages.{name}: false)" if name in off else None
        if reason is None:
            view = _view(name, stages, deps[name], seen, staging.summary, run, folder)
            reason = stage.skip_reason_for(run.facts.layers, view.results)
        if reason is not None:
            log.info("%s: skipped (%s)", name, reason)
            outcomes[name] = _Outcome(skipped=reason)
            run.keys[name] = {"skipped": reason}
            return None
        params = plan.parameters.get(name)
        if params is None:  # a Plan built by hand, not by the parser: its defaults
            raw = plan.stages.get(name)
            params = stage.parse(raw if isinstance(raw, dict) else None, base=plan.base)
        after = {d: outcomes[d] for d in deps[name]}
        key = run.keys[name] = _stage_key(run, name, stage, params, after, view)
        linked = tuple(f for d in deps[name] for f in outcomes[d].files)
        return functools.partial(
            _start, run, name, stage, params, view, key, linked, staging.folder
        )

    workers = 0 if mode == "sequential" else min(len(names), max(2, usable_cores()))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="telcoplan-stage") if workers else None
    running: dict[Future, str] = {}
    children: dict[str, Forked] = {}  # the stages started in child processes
    cancelled: set[str] = set()
    pending = list(names)

    readers = _readers(stages)
    cores, limit = usable_cores(), cores_limit()

    def share_cores() -> None:
        """Leave a core to each forked stage not yet collected here (a child that ends while
        a stage runs here counts until this thread is back in the loop): this process's GDAL
        and map threads take the others (a national run's rasters no longer crowd out the
        backbone's child: 1.3 s less by medians of 5 interleaved runs)."""
        live = sum(1 for n in running.values() if n in children)
        limit_cores(max(1, cores - live) if live else limit)

    def run_here(name: str, start: Callable[[], Callable[[], _Outcome]]) -> None:
        try:
            outcomes[name] = start()()
            _release(outcomes, readers, run.store)
        except BaseException as exc:  # raised below, once the running stages are done
            errors[name] = exc

    def give_up() -> None:  # a stage failed: those still running in children are not needed
        cancelled.update(children.keys() - outcomes.keys())
        for name in cancelled:
            children[name].cancel()

    try:
        while True:
            ready = [] if errors else _ready(pending, deps, outcomes, job, one=not pool, off=off)
            _release(outcomes, readers, run.store)  # a skipped stage may have been the last reader
            if not ready and not running:
                break
            here = []
            for name, start in ready:
                if pool is not None and mode == "forks" and stages[name].separate:
                    try:  # forked now, before this thread runs another stage
                        finish = start(children=children)
                    except BaseException as exc:
                        errors[name] = exc
                        continue
                    if name in children:
                        running[pool.submit(finish)] = name
                    else:  # no child (kept from an earlier run, or no fork): in turn, here
                        here.append((name, lambda f=finish: f))
                elif mode == "threads" and (len(ready) > 1 or running):
                    running[pool.submit(lambda s=start: s()())] = name
                else:
                    # nothing else can start until it ends: run it in this thread (profilers
                    # and debuggers see it)
                    here.append((name, start))
            share_cores()
            for name, start in here:
                if not errors:
                    run_here(name, start)
            if errors:
                give_up()
            if here or not running:
                continue
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                exc = future.exception()
                if exc is None:
                    outcomes[name] = future.result()
                    _release(outcomes, readers, run.store)
                elif not (name in cancelled and isinstance(exc, StageProcessError)):
                    errors[name] = exc
            del done, future  # the futures hold the results, which _release may drop
            share_cores()
    finally:
        limit_cores(limit)
        try:  # interrupted: no child left writing
            for child in children.values():
                child.cancel()
        finally:
            if pool is not None:  # never leave a stage writing into the staging folder as it goes
                pool.shutdown(wait=True, cancel_futures=True)
    if errors:
        raise errors[min(errors, key=names.index)]
    _assemble(staging.summary, stages, outcomes, run.provenance, len(names))
    staging.summary.setdefault("provenance", run.provenance)
    if run.store is not None:
        ran = [n for n in names if outcomes[n].result is not None]
        reused = [n for n in ran if outcomes[n].reused]
        computed = [n for n in ran if not outcomes[n].reused]
        log.info(
            "reused %d of %d stages%s%s",
            len(reused),
            len(ran),
            f" ({', '.join(reused)}: unchanged since an earlier run)" if reused else "",
            f"; computed {', '.join(computed)}" if computed else "",
        )
    return sorted({f for o in outcomes.values() for f in o.files})


def _readers(stages: Mapping[str, Stage]) -> dict[str, frozenset[str]]:
    """The stages that read each stage's in-memory result: those that need it (``after``) or
    use it when it is there (:data:`OPTIONAL_INPUTS`). The map and the report read files."""
    return {
        d: frozenset(n for n, s in stages.items() if d in (*s.after, *OPTIONAL_INPUTS.get(n, ())))
        for d in stages
    }


def _release(
    outcomes: dict[str, _Outcome],
    readers: Mapping[str, frozenset[str]],
    store: ResultCache | None = None,
) -> None:
    """Drop the in-memory results that every stage reading them is done with (the coverage
    rasters once gaps and sites have run: 1.5 GB on a national plan), so that the stages after
    them do not hold them; with the run's ``store``, once it has kept them (it keeps them in
    the background: :meth:`ResultCache.put`), so that they are gone then."""
    for name, o in list(outcomes.items()):
        if o.result is not None and o.result.value is not None and readers[name] <= outcomes.keys():
            if store is not None and not o.reused:
                store.wait_for_value(name)
            released = dataclasses.replace(o.result, value=None)
            outcomes[name] = dataclasses.replace(o, result=released)


def _start(
    run: _Run,
    name: str,
    stage: Stage,
    params: Any,
    view: Staging,
    key: str | None,
    linked: tuple[str, ...],
    root: Path,
    children: dict[str, Forked] | None = None,
) -> Callable[[], _Outcome]:
    """Begin stage ``name`` in ``view.folder``: its result kept in the cache under ``key``, or
    the files of the stages before linked and — with ``children`` — a child process forked now
    to run it (recorded there). Returns the call that ends it: runs the stage (or waits for its
    child) and moves the files it wrote into ``root``."""
    folder = view.folder
    kept = _restore(run, name, key, folder, root)
    if kept is not None:
        entry, files, summary = kept
        value = None
        if entry.has_value:  # read when a stage that runs needs it
            held = root / f".value-{name}.pickle"
            with contextlib.suppress(OSError):  # if not, it is computed again when needed
                link(entry.value_path, held)
            value = Staging.later(
                functools.partial(entry.load_value, held),
                functools.partial(_again, run, name, stage, params, view, linked, root),
            )
        log.info("%s: reused (inputs and parameters unchanged since an earlier run)", name)
        result = StageResult(summary, value)
        outcome = _Outcome(result=result, files=tuple(files), key=key, reused=True)
        return lambda: outcome
    link_files(root, folder, linked)
    compute = functools.partial(stage.run, run.source.get(), params, view)
    if children is not None:
        for d in view.results:  # results kept from an earlier run read here, not in the child
            view.results[d]
        try:
            children[name] = Forked(compute, name)
            compute = children[name].result
        except OSError as exc:  # no memory or process left for a child: run it here, in turn
            log.warning("%s: no child process (%s); it runs in this process", name, exc)
    return functools.partial(_finish, run, name, compute, folder, key, linked, root)


def _finish(
    run: _Run,
    name: str,
    compute: Callable[[], StageResult],
    folder: Path,
    key: str | None,
    linked: tuple[str, ...],
    root: Path,
) -> _Outcome:
    """Stage ``name``'s result (``compute()``), kept in the cache, its files moved to ``root``."""
    started = time.perf_counter()
    with cluster_errors(f"the {name} stage"):
        result = compute()
    files = new_files(folder, root, linked)
    if run.store is not None and key is not None:
        run.store.put(name, key, folder, files, result.summary, result.value, root)
    move_files(folder, root, files)
    log.info("%s: done in %s", name, _duration(time.perf_counter() - started))
    return _Outcome(result=result, files=tuple(files), key=key)


def _duration(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``2 min 05 s``: a stage's time for the log."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _restore(
    run: _Run, what: str, key: str | None, folder: Path, root: Path
) -> tuple[CacheEntry, list[str], Any] | None:
    """The entry kept for ``what`` under ``key``, its files (linked into ``folder``, checked,
    moved into ``root``) and its summary part; None when none is kept or it is unusable."""
    entry = None
    if run.store is not None and key is not None and not run.force:
        entry = run.store.get(what, key)
    if entry is None:
        return None
    try:
        files = entry.restore(folder)
        summary = entry.summary()
    except (OSError, BrokenEntryError) as exc:
        log.warning(
            "%s: the result kept from an earlier run is unusable (%s); computing it", what, exc
        )
        remove_tree(folder)
        return None
    move_files(folder, root, files)
    return entry, files, summary


def _again(
    run: _Run,
    name: str,
    stage: Stage,
    params: Any,
    view: Staging,
    linked: tuple[str, ...],
    root: Path,
) -> Any:
    """Stage ``name``'s in-memory result computed again (when the kept one cannot be read),
    in a folder of its own whose files are dropped: they are the ones already in place."""
    folder = root / f"{STAGE_FOLDER}{name}-again"
    remove_tree(folder)
    try:
        link_files(root, folder, linked)
        return stage.run(run.source.get(), params, dataclasses.replace(view, folder=folder)).value
    finally:
        remove_tree(folder)


def _ready(
    pending: list[str],
    deps: Mapping[str, tuple[str, ...]],
    outcomes: Mapping[str, _Outcome],
    job: Callable[[str], Callable[..., Callable[[], _Outcome]] | None],
    *,
    one: bool,
    off: frozenset[str] = frozenset(),
) -> list[tuple[str, Callable[..., Callable[[], _Outcome]]]]:
    """Take from ``pending`` the stages whose dependencies are done, in registry order, with
    the calls that start them (``one``: the first only); a skipped stage is done at once, which
    may make the stages after it ready; a stage switched ``off`` is skipped at once."""
    ready: list[tuple[str, Callable[..., Callable[[], _Outcome]]]] = []
    look = True
    while look:
        look = False
        for name in list(pending):
            if name not in off and not all(d in outcomes for d in deps[name]):
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
    run: _Run,
    folder: Path,
) -> Staging:
    """The :class:`Staging` stage ``name`` runs with: its own ``folder``, the results of the
    stages it depends on (``deps``), and the summary before it as a sequential run builds it
    (from ``base``, the population figures) from the outcomes ``seen``: those of the stages it
    depends on and of the stages switched off in the plan, never of a stage that may run
    alongside it."""
    summary = dict(base)
    _assemble(summary, stages, seen, run.provenance, list(stages).index(name))
    results = {d: seen[d].result.value for d in deps if seen[d].result is not None}
    connect = None if run.cluster is None else run.cluster.client
    return Staging(folder, summary, results, connect)


def _stage_key(
    run: _Run,
    name: str,
    stage: Stage,
    params: Any,
    after: Mapping[str, _Outcome],
    view: Staging,
) -> str | None:
    """The key of stage ``name``'s result in this run; None when it is not kept.

    It covers what the result depends on: the stage and its code (telcoplan's sources, its
    version and those of its dependencies: :func:`_code`), the inputs (:func:`_inputs_key`),
    the stage's checked parameters (files they name are in them, loaded), the stages it
    depends on (each one's key, or that and why it was skipped) and, for a stage that
    presents the run (map, report), the summary it draws. A stage run by code outside
    telcoplan (a stage swapped in by hand) is not kept: its code cannot be told.
    """
    if run.store is None or run.inputs_key is None:
        return None
    module = getattr(stage.run, "__module__", None) or ""
    qualname = getattr(stage.run, "__qualname__", None) or "<locals>"
    if not module.startswith("telcoplan.") or "<locals>" in qualname:
        return None
    deps: dict[str, Any] = {}
    for d, o in after.items():
        if o.skipped is not None:
            deps[d] = {"skipped": o.skipped}
        elif o.key is None:
            return None
        else:
            deps[d] = o.key
    doc = {
        "format": CACHE_FORMAT,
        "stage": name,
        "run": f"{module}:{qualname}",
        "inputs": run.inputs_key,
        "parameters": params,
        "after": deps,
        "summary": view.summary if stage.presents else None,
    }
    try:
        return digest(doc)
    except UnkeyableError as exc:
        log.debug("%s: result not kept for re-runs (%s)", name, exc)
        return None


def _inputs_key(plan: Plan, hashes: FileHashes) -> str | None:
    """The key of the plan's inputs: telcoplan's code (:func:`~telcoplan.pipeline.cache.code_fingerprint`)
    and :func:`~telcoplan.pipeline.model.plan_inputs`, the files by content (side-car files too:
    :meth:`~telcoplan.pipeline.cache.FileHashes.files`), not by path."""
    try:
        doc = {"format": CACHE_FORMAT, "code": code_fingerprint()}
        return digest(doc | {"plan": plan_inputs(plan, hashes.files)})
    except (UnkeyableError, OSError) as exc:
        log.debug("results not kept for re-runs: %s", exc)
        return None


def _provenance(plan: Plan, hashes: FileHashes | None = None) -> dict[str, Any]:
    """Parameters and inputs (paths relative to the plan file, SHA-256) of a run."""
    base = plan.base
    sha = (hashes or FileHashes()).sha
    return {
        "plan_file": None if plan.path is None else plan.path.name,
        "parameters": {
            "crs": plan.crs,
            "resolution_m": plan.resolution_m,
            "study_area_margin_m": plan.study_area_margin_m,
            "stages": dict(plan.stages),
        },
        "inputs": {name: source_provenance(ref, base, sha) for name, ref in plan.layers.items()},
    }
