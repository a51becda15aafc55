"""The backbone and the report in child processes forked from the run (issue 12:
``run_plan(..., concurrent=None)``, what ``telcoplan run`` does): the same bytes as a sequential run, the stages really in
other processes beside the others, a child's error raised as a sequential run raises it, a
child that dies a clear error, a failure here ending the children, nothing published then; a
child may read and write rasters although its parent used GDAL's thread pool."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import yaml

import telcoplan.pipeline.concurrency as concurrency
from telcoplan.errors import PlanError
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import read_raster, write_raster
from telcoplan.pipeline import read_plan, run_plan
from telcoplan.pipeline.concurrency import Forked, StageProcessError, run_mode
from telcoplan.pipeline.stages import STAGES

from .conftest import output_bytes

pytestmark = [
    pytest.mark.skipif(not concurrency.can_fork(), reason="stages fork on Linux with 2+ cores"),
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]


def _without_sites(plan):
    """``plan`` with the sites stage switched off (as the national demo): the backbone, which
    otherwise connects the sites stage's masts, needs no stage and starts with the coverage."""
    doc = yaml.safe_load(plan.read_text())
    doc["stages"] = {"sites": False}
    plan.write_text(yaml.safe_dump(doc))
    return plan


def _pids(monkeypatch, folder, names):
    """Wrap the stages ``names`` so that each writes the id of the process it runs in into
    ``folder/<name>`` (a forked child's lists are not the test's)."""
    folder.mkdir()
    for name in names:

        def run(inputs, params, staging, _run=STAGES[name].run, _name=name):
            (folder / _name).write_text(str(os.getpid()))
            return _run(inputs, params, staging)

        monkeypatch.setitem(STAGES, name, replace(STAGES[name], run=run))


def test_forked_and_sequential_runs_write_the_same_bytes(small_plan, tmp_path, monkeypatch):
    seq = run_plan(read_plan(small_plan), tmp_path / "seq", concurrent=False)
    pids = tmp_path / "pids"
    _pids(monkeypatch, pids, ["coverage", "backbone", "map", "report"])
    forked = run_plan(read_plan(small_plan), tmp_path / "forked", concurrent=None)
    here = str(os.getpid())
    # the separate stages ran in two other processes, the rest here
    assert (pids / "coverage").read_text() == (pids / "map").read_text() == here
    children = {(pids / "backbone").read_text(), (pids / "report").read_text()}
    assert here not in children
    assert len(children) == 2
    assert list(seq) == list(forked)
    assert seq == forked
    assert {"backbone.gpkg", "report.html", "map.html"} <= set(output_bytes(tmp_path / "seq"))
    assert output_bytes(tmp_path / "seq") == output_bytes(tmp_path / "forked")


@pytest.mark.parametrize("cache", [False, True])
def test_with_the_backbone_forked_before_coverage_the_same_bytes(small_plan, tmp_path, cache):
    """The national demo's layout: no sites stage, the backbone forked first (and, with the
    re-run cache, kept and reused)."""
    plan = _without_sites(small_plan)
    seq = run_plan(read_plan(plan), tmp_path / "seq", concurrent=False, cache=cache)
    forked = run_plan(read_plan(plan), tmp_path / "forked", cache=cache, concurrent=None)
    assert seq == forked
    assert output_bytes(tmp_path / "seq") == output_bytes(tmp_path / "forked")
    if cache:  # run again: every stage reused, the same files
        again = run_plan(
            read_plan(plan), tmp_path / "forked", overwrite=True, cache=True, concurrent=None
        )
        assert again == forked
        assert output_bytes(tmp_path / "seq") == output_bytes(tmp_path / "forked")


def test_without_a_child_process_the_stage_runs_here(small_plan, tmp_path, monkeypatch, caplog):
    """No memory or process left for a fork: a warning, and the stage runs in this process."""
    import logging

    import telcoplan.pipeline.run as run_module

    def no_fork(call, name):
        raise OSError(12, "Cannot allocate memory")

    seq = run_plan(read_plan(small_plan), tmp_path / "seq", concurrent=False)
    monkeypatch.setattr(run_module, "Forked", no_fork)
    threads = []
    for name in ("backbone", "report"):

        def run(inputs, params, staging, _run=STAGES[name].run):
            threads.append(threading.current_thread().name)
            return _run(inputs, params, staging)

        monkeypatch.setitem(STAGES, name, replace(STAGES[name], run=run))
    with caplog.at_level(logging.WARNING, logger="telcoplan"):
        out = run_plan(read_plan(small_plan), tmp_path / "out", concurrent=None)
    assert "no child process" in caplog.text
    # in turn, in the run's thread: never beside another stage in a thread
    assert threads == ["MainThread", "MainThread"]
    assert out == seq
    assert output_bytes(tmp_path / "seq") == output_bytes(tmp_path / "out")


def test_the_backbone_runs_beside_coverage(small_plan, tmp_path, monkeypatch):
    """The backbone's child starts before the coverage stage and both are inside their run
    at once (each waits for the other's mark)."""
    marks = tmp_path / "marks"
    marks.mkdir()

    def meet(me, other, _run):
        def run(inputs, params, staging):
            (marks / me).touch()
            deadline = time.monotonic() + 60
            while not (marks / other).exists():
                if time.monotonic() > deadline:
                    raise PlanError(f"{me} never saw {other} running")
                time.sleep(0.01)
            return _run(inputs, params, staging)

        return run

    for me, other in (("coverage", "backbone"), ("backbone", "coverage")):
        monkeypatch.setitem(STAGES, me, replace(STAGES[me], run=meet(me, other, STAGES[me].run)))
    summary = run_plan(read_plan(_without_sites(small_plan)), tmp_path / "out", concurrent=None)
    assert "backbone" in summary
    assert "coverage" in summary


def test_a_stage_here_leaves_a_core_to_each_forked_stage(small_plan, tmp_path, monkeypatch):
    """While the backbone's child runs, the coverage stage here counts one core less (GDAL's
    threads, the map's), and so does the map beside the report's child; a sequential run
    counts them all; after a run, also a failed one, the limit is the caller's again."""
    from telcoplan.gis.cores import cores_limit, limit_cores, usable_cores

    all_cores = usable_cores()
    seen = {}

    def counting(name):
        def run(inputs, params, staging, _run=STAGES[name].run):
            seen[name] = usable_cores()
            return _run(inputs, params, staging)

        return run

    for name in ("coverage", "map"):
        monkeypatch.setitem(STAGES, name, replace(STAGES[name], run=counting(name)))
    run_plan(read_plan(_without_sites(small_plan)), tmp_path / "out", concurrent=None)
    assert seen["coverage"] == all_cores - 1  # the backbone's child was forked just before
    assert seen["map"] == all_cores - 1  # beside the report's child
    assert cores_limit() is None
    # a sequential run forks nothing: every core
    seen.clear()
    run_plan(read_plan(small_plan), tmp_path / "seq", concurrent=False)
    assert seen["coverage"] == seen["map"] == all_cores
    # the caller's own limit comes back, after a failure too
    limit_cores(5)
    try:

        def fails(inputs, params, staging):
            raise PlanError("gaps fail")

        monkeypatch.setitem(STAGES, "gaps", replace(STAGES["gaps"], run=fails))
        with pytest.raises(PlanError, match="gaps fail"):
            run_plan(read_plan(small_plan), tmp_path / "failed", concurrent=None)
        assert cores_limit() == 5
    finally:
        limit_cores(None)


def test_an_error_in_a_forked_stage_is_raised_with_its_message(small_plan, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out, concurrent=None)
    before = output_bytes(out)

    def fails(inputs, params, staging):
        (staging.folder / "backbone.gpkg").write_bytes(b"half")
        raise PlanError("no road reaches site 7")

    monkeypatch.setitem(STAGES, "backbone", replace(STAGES["backbone"], run=fails))
    with pytest.raises(PlanError, match="no road reaches site 7") as caught:
        run_plan(read_plan(small_plan), out, overwrite=True, concurrent=None)
    # the child's traceback is the cause (a bug there shows where it happened)
    assert isinstance(caught.value.__cause__, concurrency.ChildTraceback)
    assert "in fails" in str(caught.value.__cause__)
    assert output_bytes(out) == before  # nothing published
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]


def test_a_forked_stage_that_dies_is_a_clear_error(small_plan, tmp_path, monkeypatch):
    def dies(inputs, params, staging):
        os._exit(3)

    monkeypatch.setitem(STAGES, "report", replace(STAGES["report"], run=dies))
    with pytest.raises(
        StageProcessError, match=r"report stage.s process ended without a result \(exit code 3\)"
    ):
        run_plan(read_plan(small_plan), tmp_path / "out", concurrent=None)
    assert not (tmp_path / "out").exists()  # a failed first run leaves no folder


def test_a_failure_here_ends_the_forked_stages(small_plan, tmp_path, monkeypatch):
    """The coverage stage fails while the backbone's child would run for minutes: the run
    ends it and raises the coverage stage's error at once."""
    pid_file = tmp_path / "backbone.pid"

    def slow(inputs, params, staging):
        # written whole, then renamed: the file exists only with its pid in it (the parent
        # polls for it; a file still empty when it looked made the test fail now and then)
        partial = pid_file.with_suffix(".partial")
        partial.write_text(str(os.getpid()))
        partial.replace(pid_file)
        time.sleep(300)

    def fails(inputs, params, staging):
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        raise PlanError("coverage fails")

    monkeypatch.setitem(STAGES, "backbone", replace(STAGES["backbone"], run=slow))
    monkeypatch.setitem(STAGES, "coverage", replace(STAGES["coverage"], run=fails))
    started = time.monotonic()
    with pytest.raises(PlanError, match="coverage fails"):
        run_plan(read_plan(_without_sites(small_plan)), tmp_path / "out", concurrent=None)
    assert time.monotonic() - started < 60
    with pytest.raises(ProcessLookupError):  # the child is gone (and reaped)
        os.kill(int(pid_file.read_text()), 0)


def test_sequential_and_threads_modes_run_no_child(small_plan, tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    _pids(monkeypatch, pids, ["backbone", "report"])
    run_plan(read_plan(small_plan), tmp_path / "seq", concurrent=False)
    assert {p.read_text() for p in pids.iterdir()} == {str(os.getpid())}
    for p in pids.iterdir():
        p.unlink()
    run_plan(read_plan(small_plan), tmp_path / "threads", concurrent=True)
    assert {p.read_text() for p in pids.iterdir()} == {str(os.getpid())}


def test_run_mode(monkeypatch):
    monkeypatch.setattr(concurrency, "thread_safe_kernels", lambda: True)
    assert run_mode(True, 100, 3, True) == "threads"
    monkeypatch.setattr(concurrency, "thread_safe_kernels", lambda: False)
    assert run_mode(True, 100, 3, True) == "sequential"
    assert run_mode(False, 100, 3, True) == "sequential"
    assert run_mode(None, 100, 3, True) == "forks"
    assert run_mode(None, 100, 3, False) == "sequential"  # a Dask client's threads: no fork
    assert run_mode(None, 10**12, 3, True) == "sequential"  # no memory for two stages at once


def test_forked_returns_the_value_and_raises_the_error():
    assert Forked(lambda: {"a": np.arange(3).tolist()}, "x").result() == {"a": [0, 1, 2]}

    def raises():
        raise PlanError("bad")

    with pytest.raises(PlanError, match="bad"):
        Forked(raises, "x").result()

    class OddError(Exception):
        def __init__(self, a, b):  # does not unpickle from its args
            super().__init__(f"{a}-{b}")

    def odd():
        raise OddError(1, 2)

    with pytest.raises(RuntimeError, match="OddError: 1-2"):
        Forked(odd, "x").result()


def test_a_child_reads_and_writes_rasters_after_the_parent_used_gdals_threads(tmp_path):
    """GDAL's thread pool, started here by a compressed write and a threaded read, has no
    threads in a forked child: a job sent there would never end. The child runs GDAL on one
    thread (limit_cores) and finishes."""
    grid = GridSpec.from_bounds((0, 0, 51200, 51200), 50, "EPSG:32648")
    data = np.random.default_rng(0).random(grid.shape, dtype=np.float32)
    write_raster(tmp_path / "a.tif", data, grid)
    read_raster(tmp_path / "a.tif")

    def child():
        back = read_raster(tmp_path / "a.tif")[0]
        write_raster(tmp_path / "b.tif", back, grid)
        return float(back.sum())

    forked = Forked(child, "rasters")
    done: list = []
    waiter = threading.Thread(target=lambda: done.append(forked.result()), daemon=True)
    waiter.start()
    waiter.join(60)
    if waiter.is_alive():
        forked.cancel()
        pytest.fail("the forked child hung in GDAL's thread pool")
    assert done == [pytest.approx(float(data.sum()), rel=1e-6)]
    assert np.array_equal(read_raster(tmp_path / "b.tif")[0], data)
