"""The stage registry: one list of stages for the plan parser, the run and the CLI; parameters
parsed once, their problems returned as data."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from telcoplan.errors import PlanError
from telcoplan.pipeline import parse_plan, read_plan, run_plan
from telcoplan.pipeline.checks import ParameterError
from telcoplan.pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]


def test_registry_lists_every_stage_module_once_in_running_order():
    assert list(STAGES) == ["coverage", "gaps", "sites", "backbone", "map", "report"]
    modules = {p.stem for p in (ROOT / "telcoplan" / "pipeline" / "stages").glob("[!_]*.py")}
    assert modules == set(STAGES)
    for name, stage in STAGES.items():
        params = stage.parse(None)
        assert dataclasses.is_dataclass(params), name
        assert type(params).__dataclass_params__.frozen, name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(params, dataclasses.fields(params)[0].name, None)


@pytest.mark.parametrize(
    ("stage", "raw", "n"),
    [
        ("coverage", {"model": "x", "h_rx_m": -1, "oops": 1}, 3),
        ("gaps", {"min_population": -5, "x": 1}, 2),
        ("backbone", {"protect": "rings", "own_fiber_factor": 0.5, "lease_factor": 0.1}, 2),
        ("map", {"simplify_m": -1, "signal": "yes"}, 2),
        ("report", {"top_gaps": -1, "currency": "", "figure": 1}, 3),
    ],
)
def test_parse_returns_every_problem_as_data(stage, raw, n):
    with pytest.raises(ParameterError) as info:
        STAGES[stage].parse(raw)
    assert info.value.stage == stage
    assert len(info.value.problems) == n
    assert all(p.startswith(f"stages.{stage}") for p in info.value.problems)


def test_plan_parser_collects_the_stages_problems_with_its_own(tmp_path):
    doc = {
        "layers": {"areas": "missing.gpkg"},
        "stages": {"gaps": {"min_population": -1}, "report": {"top_gaps": "all"}, "sitez": {}},
    }
    with pytest.raises(PlanError) as info:
        parse_plan(doc, base=tmp_path, source="p.yml")
    msg = str(info.value)
    assert msg.startswith("p.yml: 4 problems in the plan file")
    for needle in ("missing.gpkg", "min_population", "top_gaps", "'sitez'"):
        assert needle in msg


def test_a_plan_holds_its_parsed_parameters(tmp_path):
    doc = {
        "layers": {"areas": str(tmp_path)},  # a path that exists; not loaded here
        "stages": {"gaps": {"min_population": 50}, "map": False},
    }
    plan = parse_plan(doc, base=tmp_path)
    assert set(plan.parameters) == {"coverage", "gaps", "sites", "backbone", "report"}
    assert plan.parameters["gaps"].min_population == 50
    assert plan.parameters["coverage"] == STAGES["coverage"].parse(None)
    assert not plan.enabled("map")
    assert plan.enabled("report")


def test_calibration_file_is_read_once_per_run(small_plan, tmp_path, monkeypatch):
    """Parameters are parsed once: the calibration's params.json is read when the plan is read,
    not again by the coverage stage."""
    from telcoplan.coverage.calibration import Calibration

    cal = Calibration("hata", "urban", 2.0, 0.0, {}, 50, 9.0, 4.0, 5.0, 0.0)
    (small_plan.parent / "params.json").write_text(json.dumps(cal.to_dict()))
    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = {
        "coverage": {"model": "hata", "validity": "ignore", "calibration": "params.json"},
        "map": False,
        "report": False,
    }
    small_plan.write_text(yaml.safe_dump(doc))
    calls = []
    real = Calibration.from_dict.__func__

    def counting(cls, d):
        calls.append(1)
        return real(cls, d)

    monkeypatch.setattr(Calibration, "from_dict", classmethod(counting))
    summary = run_plan(read_plan(small_plan), tmp_path / "out")
    assert len(calls) == 1
    assert summary["coverage"]["parameters"]["calibration_fit"]["intercept_offset_db"] == 2.0


def test_skipped_stage_is_logged(small_plan, tmp_path, caplog):
    """A stage whose layers are missing is skipped with the reason in the log."""
    import logging

    doc = yaml.safe_load(small_plan.read_text())
    del doc["layers"]["roads"]
    small_plan.write_text(yaml.safe_dump(doc))
    with caplog.at_level(logging.INFO, logger="telcoplan"):
        summary = run_plan(read_plan(small_plan), tmp_path / "out")
    assert "backbone" not in summary
    assert "backbone: skipped (no layers.roads)" in caplog.text


def test_import_telcoplan_is_light_and_gives_the_api():
    code = (
        "import sys, telcoplan\n"
        "assert 'read_plan' in dir(telcoplan) and 'path_loss' in telcoplan.__all__\n"
        "heavy = [m for m in ('numba', 'rasterio', 'folium', 'geopandas') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
        "from telcoplan.pipeline import read_plan\n"
        "assert telcoplan.read_plan is read_plan\n"
        "assert round(float(telcoplan.path_loss('hata', freq_mhz=900, distance_km=10, h_tx_m=30)), 2) == 161.63\n"
        "try:\n    telcoplan.nope\nexcept AttributeError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out
    assert "has no attribute 'nope'" in out


def test_skipped_stages_in_summary_and_report(small_plan, tmp_path):
    """A stage switched off in the plan and one lacking its layers are listed, with why, in
    summary.json (``stages.<name>.skipped``) and in report.html; a run skipping none has no
    ``stages`` key."""
    doc = yaml.safe_load(small_plan.read_text())
    roads = doc["layers"].pop("roads")
    doc["stages"] = {"map": False}
    small_plan.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["stages"] == {
        "backbone": {"skipped": "no layers.roads"},
        "map": {"skipped": "switched off in the plan (stages.map: false)"},
    }
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Skipped stages" in report
    assert "<strong>backbone</strong>: no layers.roads" in report
    assert "<strong>map</strong>: switched off in the plan (stages.map: false)" in report
    # every stage runs: no "stages" in the summary, no note in the report
    doc["layers"]["roads"] = roads
    del doc["stages"]
    small_plan.write_text(yaml.safe_dump(doc))
    whole = run_plan(read_plan(small_plan), tmp_path / "all")
    assert "stages" not in whole
    assert whole["backbone"]["mode"] == "greenfield"  # roads and towers, no fiber
    assert "Skipped stages" not in (tmp_path / "all" / "report.html").read_text(encoding="utf-8")
