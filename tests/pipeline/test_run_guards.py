"""Guards of a run: the memory estimate refuses a run too big for the machine before any stage
runs (naming the estimate and a resolution that fits); GeoPackages are byte-reproducible."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest
import yaml

from telcoplan.errors import PlanError
from telcoplan.pipeline import load_inputs, read_plan, run_plan
from telcoplan.pipeline.memory import available_memory, check_memory_for, estimate_peak_bytes


def test_estimate_grows_with_cells_and_operators():
    assert estimate_peak_bytes(4_000_000, 3) > estimate_peak_bytes(1_000_000, 3)
    assert estimate_peak_bytes(1_000_000, 4) > estimate_peak_bytes(1_000_000, 3)
    # the 4 m Đà Nẵng grid that once took 9.5 GB: 61 M cells, 3 operators
    assert 8e9 < estimate_peak_bytes(61_000_000, 3) < 11e9


def test_available_memory_is_known_here():
    got = available_memory()
    assert got is None or got > 1e8


def test_too_big_is_refused_with_a_resolution_that_fits(small_plan, tmp_path):
    inputs = load_inputs(read_plan(small_plan))
    need = estimate_peak_bytes(100, 3)
    with pytest.raises(PlanError) as info:
        check_memory_for(inputs, available=need - 1)
    msg = str(info.value)
    assert "needs about" in msg
    assert "--no-memory-check" in msg
    resolution = int(re.search(r"resolution_m: (\d+)", msg).group(1))
    assert resolution > 100
    # the suggested resolution fits (90 % of what is available)
    cells = math.ceil(100 * (100 / resolution) ** 2)
    assert estimate_peak_bytes(cells, 3) <= need - 1
    check_memory_for(inputs, available=need + 1)  # enough: no error


def test_run_checks_memory_first_and_the_cli_can_skip_it(small_plan, tmp_path, monkeypatch):
    import telcoplan.pipeline.memory as run_mod

    monkeypatch.setattr(run_mod, "available_memory", lambda: 1.0)
    with pytest.raises(PlanError, match="needs about"):
        run_plan(read_plan(small_plan), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    run_plan(read_plan(small_plan), tmp_path / "out", check_memory=False)
    assert (tmp_path / "out" / "summary.json").exists()


def test_cli_no_memory_check(small_plan, tmp_path):
    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = {"map": False, "report": False}
    small_plan.write_text(yaml.safe_dump(doc))
    code = (
        "import sys, telcoplan.pipeline.memory as r\n"
        "r.available_memory = lambda: 1.0\n"
        "from telcoplan.cli import main\n"
        "sys.argv = ['telcoplan', 'run', sys.argv[1], '--out', sys.argv[2]] + sys.argv[3:]\n"
        "main()\n"
    )
    refused = subprocess.run(
        [sys.executable, "-c", code, str(small_plan), str(tmp_path / "a")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 1
    assert "needs about" in refused.stderr
    assert "Traceback" not in refused.stderr
    forced = subprocess.run(
        [sys.executable, "-c", code, str(small_plan), str(tmp_path / "b"), "--no-memory-check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert forced.returncode == 0, forced.stderr


def test_run_geopackages_are_byte_reproducible(small_plan, tmp_path):
    """Two runs of one plan write identical GeoPackages (their last change is pinned)."""
    doc = yaml.safe_load(small_plan.read_text())
    doc["stages"] = {"map": False, "report": False}
    small_plan.write_text(yaml.safe_dump(doc))
    run_plan(read_plan(small_plan), tmp_path / "a")
    run_plan(read_plan(small_plan), tmp_path / "b")
    gpkgs = sorted(p.name for p in (tmp_path / "a").glob("*.gpkg"))
    assert gpkgs
    for name in gpkgs:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
