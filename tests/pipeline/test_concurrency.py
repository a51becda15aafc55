"""Independent stages run at the same time (issue 12), and the run is the same bytes as a
sequential one: each stage sees the same results and summary, the summary keeps its order,
and a failure raises the error a sequential run raises, with nothing published."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from telcoplan.errors import PlanError
from telcoplan.pipeline import read_plan, run_plan
from telcoplan.pipeline.run import stage_dependencies
from telcoplan.pipeline.stages import STAGES

#: On Python < 3.14 ``warnings.catch_warnings`` is process-wide: rasterio's own silencing of
#: this warning (features.shapes on an in-memory raster) can be undone by a library in the other
#: thread, and pytest turns the warning into an error. Why concurrency is opt-in.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_dependencies_of_the_registry():
    deps = stage_dependencies()
    assert deps["coverage"] == ()
    assert deps["gaps"] == ("coverage",)
    assert deps["sites"] == ("coverage",)
    # the backbone connects the sites stage's planned masts when that stage runs
    assert deps["backbone"] == ("sites",)
    # the map and the report draw on every analysis stage, not on each other
    assert deps["map"] == deps["report"] == ("coverage", "gaps", "sites", "backbone")


def test_concurrent_and_sequential_runs_write_the_same_bytes(small_plan, tmp_path):
    seq = run_plan(read_plan(small_plan), tmp_path / "seq", concurrent=False)
    conc = run_plan(read_plan(small_plan), tmp_path / "conc", concurrent=True)
    assert list(seq) == list(conc)  # the summary's keys in the same order
    assert seq == conc
    assert {"map.html", "report.html", "backbone.gpkg"} <= set(_files(tmp_path / "seq"))
    assert _files(tmp_path / "seq") == _files(tmp_path / "conc")


def _spy(monkeypatch, names, log, barrier=None):
    """Wrap the stages ``names``: record (stage, thread, summary keys, result keys); wait at
    ``barrier`` (each of them must reach it: they run at the same time)."""
    for name in names:
        stage = STAGES[name]

        def run(inputs, params, staging, _run=stage.run, _name=name):
            log.append(
                (
                    _name,
                    threading.current_thread().name,
                    list(staging.summary),
                    set(staging.results),
                )
            )
            if barrier is not None:
                barrier.wait()
            return _run(inputs, params, staging)

        monkeypatch.setitem(STAGES, name, replace(stage, run=run))


def test_map_and_report_run_at_the_same_time_and_see_the_same_summary(
    small_plan, tmp_path, monkeypatch
):
    seen_seq: list = []
    with monkeypatch.context() as m:
        _spy(m, ("map", "report"), seen_seq)
        run_plan(read_plan(small_plan), tmp_path / "seq", concurrent=False)
    seen_conc: list = []
    with monkeypatch.context() as m:
        # both must be inside their run at once, or the barrier breaks (and the run fails)
        _spy(m, ("map", "report"), seen_conc, threading.Barrier(2, timeout=60))
        run_plan(read_plan(small_plan), tmp_path / "conc", concurrent=True)
    assert [s[0] for s in seen_seq] == ["map", "report"]
    assert {s[1] for s in seen_seq} == {"MainThread"}
    assert sorted(s[0] for s in seen_conc) == ["map", "report"]
    assert len({s[1] for s in seen_conc}) == 2
    # the same summary before each, in the same order, in both modes; "map" not in the report's
    by_seq = {s[0]: s[2:] for s in seen_seq}
    by_conc = {s[0]: s[2:] for s in seen_conc}
    assert by_seq == by_conc
    assert "provenance" in by_seq["report"][0]
    assert "map" not in by_seq["report"][0]
    assert _files(tmp_path / "seq") == _files(tmp_path / "conc")


def test_a_stage_sees_only_the_results_it_depends_on(small_plan, tmp_path, monkeypatch):
    seen: list = []
    _spy(monkeypatch, ("gaps", "backbone"), seen)
    run_plan(read_plan(small_plan), tmp_path / "out", concurrent=True)
    results = {s[0]: s[3] for s in seen}
    assert results["gaps"] == {"coverage"}
    assert results["backbone"] <= {"sites"}  # the small plan's sites stage may be skipped


@pytest.mark.parametrize("concurrent", [False, True])
def test_the_first_failed_stage_in_registry_order_is_raised(
    small_plan, tmp_path, monkeypatch, concurrent
):
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out)
    before = _files(out)
    finished = []

    def fails(message):
        def run(inputs, params, staging):
            (staging.folder / "map.html").write_bytes(b"half")
            raise PlanError(message)

        return run

    def slow_ok(inputs, params, staging, _run=STAGES["map"].run):
        result = _run(inputs, params, staging)
        finished.append("map")
        return result

    monkeypatch.setitem(STAGES, "map", replace(STAGES["map"], run=slow_ok))
    monkeypatch.setitem(STAGES, "report", replace(STAGES["report"], run=fails("report fails")))
    with pytest.raises(PlanError, match="report fails"):
        run_plan(read_plan(small_plan), out, overwrite=True, concurrent=concurrent)
    assert finished == ["map"]  # the stage alongside ran to its end before the run gave up
    assert _files(out) == before  # nothing published, no staging folder left
    # two failures: the earlier stage's error, as in a sequential run
    monkeypatch.setitem(STAGES, "map", replace(STAGES["map"], run=fails("map fails")))
    with pytest.raises(PlanError, match="map fails"):
        run_plan(read_plan(small_plan), out, overwrite=True, concurrent=concurrent)
    assert _files(out) == before


def test_without_a_thread_safe_numba_layer_stages_run_one_after_the_other(
    small_plan, tmp_path, monkeypatch
):
    """numba's "workqueue" layer aborts the process when two threads launch kernels at once
    (the kernels release the GIL): with it, --concurrent runs the stages in turn."""
    import telcoplan.pipeline.concurrency as concurrency

    monkeypatch.setattr(concurrency, "thread_safe_kernels", lambda: False)
    seen: list = []
    _spy(monkeypatch, ("map", "report"), seen)
    run_plan(read_plan(small_plan), tmp_path / "out", concurrent=True)
    assert [s[0] for s in seen] == ["map", "report"]
    assert {s[1] for s in seen} == {"MainThread"}


def test_the_threading_layer_named_workqueue_is_not_thread_safe(monkeypatch):
    import numba

    import telcoplan.pipeline.concurrency as concurrency

    monkeypatch.setattr(numba.config, "THREADING_LAYER", "workqueue")
    assert not concurrency.thread_safe_kernels()
