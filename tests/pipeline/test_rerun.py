"""Re-runs reuse work (issue 13 item 3): a stage whose inputs and parameters did not change is
not computed again, ``force`` computes it, and whatever was reused, the outputs are the bytes
of a fresh run; a changed input file (a side-car file too), parameter or kept file is never
taken for an unchanged one."""

from __future__ import annotations

import logging
import pickle
from dataclasses import replace

import pytest
import yaml

import telcoplan.pipeline.run as run_module
from telcoplan.gis.vector import write_vector
from telcoplan.pipeline import read_plan, run_plan
from telcoplan.pipeline.stages import STAGES

#: The small plan runs every stage.
ALL = list(STAGES)


@pytest.fixture
def messages():
    """The messages the run logs (INFO and up), whatever the CLI did to logging before."""
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("telcoplan.pipeline")
    handler, level = Keep(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def _outputs(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}


def _reused(messages) -> list[str]:
    return [
        n
        for n in ALL
        if f"{n}: reused (inputs and parameters unchanged since an earlier run)" in messages
    ]


def _no_inputs(plan):
    raise AssertionError("the inputs were loaded: a stage was computed")


def _write_plan(path, doc):
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")


def test_an_unchanged_plan_is_not_computed_again(small_plan, tmp_path, monkeypatch, messages):
    """The second run reuses every stage without even loading the inputs; its outputs, and
    those of a run with force, are the bytes of a fresh run into another folder."""
    out = tmp_path / "out"
    first = run_plan(read_plan(small_plan), out, cache=True)
    assert "stages" not in first  # none skipped: every stage's result is kept
    assert f"reused 0 of {len(ALL)} stages; computed {', '.join(ALL)}" in messages
    fresh = run_plan(read_plan(small_plan), tmp_path / "fresh")  # no cache at all
    messages.clear()
    monkeypatch.setattr(run_module, "load_inputs", _no_inputs)
    again = run_plan(read_plan(small_plan), out, overwrite=True, cache=True)
    assert _reused(messages) == ALL
    assert any(m.startswith(f"reused {len(ALL)} of {len(ALL)} stages") for m in messages)
    assert _outputs(out) == _outputs(tmp_path / "fresh")
    assert again["outputs"] == fresh["outputs"]
    monkeypatch.undo()
    messages.clear()
    run_plan(read_plan(small_plan), out, overwrite=True, cache=True, force=True)
    assert _reused(messages) == []
    assert _outputs(out) == _outputs(tmp_path / "fresh")


def test_a_changed_parameter_recomputes_the_stages_that_depend_on_it(
    small_plan, tmp_path, messages
):
    """A gaps parameter changes: gaps (with the coverage result read back from the cache),
    the map and the report are computed again; coverage, sites and backbone are reused. The
    outputs are the bytes of a fresh run of the changed plan."""
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out, cache=True)
    doc = yaml.safe_load(small_plan.read_text(encoding="utf-8"))
    doc["stages"] = {"gaps": {"min_population": 50}}
    _write_plan(small_plan, doc)
    messages.clear()
    run_plan(read_plan(small_plan), out, overwrite=True, cache=True)
    assert _reused(messages) == ["coverage", "sites", "backbone"]
    run_plan(read_plan(small_plan), tmp_path / "fresh")
    assert _outputs(out) == _outputs(tmp_path / "fresh")


def test_a_changed_side_car_file_recomputes(small_plan, tmp_path, roads3, messages):
    """Roads from a shapefile: a new road class changes only its .dbf, not the .shp the plan
    names; nothing is reused (the inputs changed), and the outputs are a fresh run's."""
    doc = yaml.safe_load(small_plan.read_text(encoding="utf-8"))
    shp = tmp_path / "inputs" / "roads.shp"
    write_vector(shp, roads3)
    doc["layers"]["roads"] = {"path": "inputs/roads.shp"}
    _write_plan(small_plan, doc)
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out, cache=True)
    geometry = shp.read_bytes()
    write_vector(shp, roads3.assign(road_class=["residential"] * 3), overwrite=True)
    assert shp.read_bytes() == geometry  # only the side-car files changed
    messages.clear()
    run_plan(read_plan(small_plan), out, overwrite=True, cache=True)
    assert _reused(messages) == []
    run_plan(read_plan(small_plan), tmp_path / "fresh")
    assert _outputs(out) == _outputs(tmp_path / "fresh")


def test_a_kept_result_that_changed_is_computed_again(small_plan, tmp_path, messages):
    """An output edited in place (it is the kept file: a hard link) is not taken for the kept
    result: coverage is computed again and the output is whole again. A kept in-memory result
    that cannot be read is computed again when a later stage needs it."""
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out, cache=True)
    before = _outputs(out)
    with open(out / "signal_viettel.tif", "ab") as fh:  # e.g. a tool that rewrote the file
        fh.write(b"edited")
    messages.clear()
    run_plan(read_plan(small_plan), out, overwrite=True, cache=True)
    assert "coverage" not in _reused(messages)
    assert any("coverage: the result kept from an earlier run is unusable" in m for m in messages)
    assert _outputs(out) == before
    # the coverage result that gaps reads, damaged; gaps must run again (new parameters)
    (entry,) = (out / ".telcoplan-cache").glob("coverage-*")
    (entry / "value.pickle").write_bytes(pickle.dumps("not a coverage result"))
    doc = yaml.safe_load(small_plan.read_text(encoding="utf-8"))
    doc["stages"] = {"gaps": {"min_population": 50}}
    _write_plan(small_plan, doc)
    messages.clear()
    run_plan(read_plan(small_plan), out, overwrite=True, cache=True)
    assert "coverage" in _reused(messages)
    assert any("cannot be read" in m for m in messages)
    run_plan(read_plan(small_plan), tmp_path / "fresh")
    assert _outputs(out) == _outputs(tmp_path / "fresh")


def test_the_cache_keeps_what_the_last_run_used(small_plan, tmp_path):
    """After a run of another plan into the folder, the cache holds that run's results only:
    the inputs, each stage and the QGIS styles, each complete."""
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out, cache=True)
    doc = yaml.safe_load(small_plan.read_text(encoding="utf-8"))
    doc["stages"] = {"coverage": {"h_rx_m": 3.0}}
    _write_plan(small_plan, doc)
    run_plan(read_plan(small_plan), out, overwrite=True, cache=True)
    kept = sorted(p.name.split("-")[0] for p in (out / ".telcoplan-cache").iterdir())
    assert kept == sorted(["inputs", *ALL, "styles"])
    assert not list(out.glob(".staging-*"))


def test_a_stage_swapped_in_by_hand_is_never_reused(small_plan, tmp_path, monkeypatch):
    """A stage whose code is not telcoplan's (its key cannot tell the code) runs every time."""
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out, cache=True)
    calls = []

    def counted(inputs, params, staging, _run=STAGES["gaps"].run):
        calls.append(1)
        return _run(inputs, params, staging)

    monkeypatch.setitem(STAGES, "gaps", replace(STAGES["gaps"], run=counted))
    run_plan(read_plan(small_plan), out, overwrite=True, cache=True)
    run_plan(read_plan(small_plan), out, overwrite=True, cache=True)
    assert calls == [1, 1]
