"""In-memory results are dropped as soon as every stage that reads them is done — also when the
last reader is a stage that is skipped (the national plan switches the sites stage off: its
coverage rasters, 1.4 GB, were held through the backbone stage, the run's peak)."""

from __future__ import annotations

import gc
import weakref
from dataclasses import replace

import pytest
import yaml

from telcoplan.pipeline import read_plan, run_plan
from telcoplan.pipeline.stages import STAGES


@pytest.mark.parametrize("concurrent", [False, True])
@pytest.mark.parametrize(
    "stages",
    [{"sites": False}, {"sites": False, "gaps": False}],
    ids=["sites-off", "sites-and-gaps-off"],
)
def test_coverage_rasters_are_dropped_when_the_last_reader_is_skipped(
    small_plan, tmp_path, stages, concurrent
):
    """With the sites stage (and the gaps stage) switched off, the coverage stage's result is
    no longer referenced once the backbone, map and report stages run."""
    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = stages
    small_plan.write_text(yaml.safe_dump(doc))
    seen: dict[str, object] = {}
    originals = {name: STAGES[name] for name in ("coverage", "backbone", "map", "report")}

    def coverage_run(inputs, params, staging):
        result = originals["coverage"].run(inputs, params, staging)
        seen["coverage"] = weakref.ref(result.value)
        return result

    def later(name):
        def run(inputs, params, staging):
            gc.collect()
            ref = seen.get("coverage")  # concurrent: the backbone may start first
            seen[name] = ref is not None and ref() is not None
            return originals[name].run(inputs, params, staging)

        return run

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(STAGES, "coverage", replace(originals["coverage"], run=coverage_run))
        for name in ("backbone", "map", "report"):
            mp.setitem(STAGES, name, replace(originals[name], run=later(name)))
        summary = run_plan(read_plan(small_plan), tmp_path / "out", concurrent=concurrent)
    assert summary["stages"]["sites"] == {
        "skipped": "switched off in the plan (stages.sites: false)"
    }
    assert "backbone" in summary
    # the backbone may run beside the coverage stage when nothing reads its result
    if not concurrent:
        assert seen["backbone"] is False
    assert seen["map"] is False
    assert seen["report"] is False
