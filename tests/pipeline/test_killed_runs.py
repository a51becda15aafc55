"""Runs killed with SIGKILL (issue 13 item 4): the previous outputs stay as they were byte for
byte, no partial file ever carries an output's name, no partial result enters the cache, and
the next run succeeds and removes what the killed ones left behind; two runs may share an
output folder, and a run never removes what a live one is writing.

The runs are ``telcoplan`` command lines in children forked from one process that has
imported telcoplan already (:mod:`tests.pipeline.runner`): a kill test needs dozens of runs."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import LineString, Point, box

from telcoplan.gis.atomic import owned_folder
from telcoplan.gis.grid import GridSpec
from telcoplan.outputs import remove_abandoned_runs
from telcoplan.pipeline import read_plan, run_plan
from tests.conftest import UTM49, X0, Y0
from tests.pipeline.conftest import output_bytes, write_plan
from tests.pipeline.runner import Runner, killed, step_of, wait_for, wait_for_lines

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="runs are forked (POSIX)")

#: Runs killed at random moments (each at a random line of its log, plus up to 20 ms).
KILLS = 24
#: Hidden entries a run leaves in its output folder: the cache, staging folders of killed runs.
HIDDEN = re.compile(r"\.telcoplan-cache|\.staging-[a-z0-9_]{8}")


@pytest.fixture(scope="module")
def runner():
    r = Runner()
    yield r
    r.close()


@pytest.fixture(scope="module")
def plans(tmp_path_factory, runner):
    """Plan A and plan B (B's signal rasters differ), with the outputs of a clean run of each
    (``ref_a``, ``ref_b``: folders; ``a``, ``b``: their outputs) and B's log lines with ``-v``."""
    tmp = tmp_path_factory.mktemp("plans")
    areas = gpd.GeoDataFrame(
        {"name": ["W", "E"], "population": [1000.0, 3000.0]},
        geometry=[box(X0, Y0, X0 + 1000, Y0 + 1000), box(X0 + 1000, Y0, X0 + 2000, Y0 + 1000)],
        crs=UTM49,
    )
    towers = gpd.GeoDataFrame(
        {
            "site_id": ["V1", "V2", "M1", "N1"],
            "operator": ["Viettel", "Viettel", "MobiFone", "VinaPhone"],
            "technology": ["4G", "4G", "4G", "4G"],
            "frequency_mhz": [1800.0, 1800.0, 2100.0, 2100.0],
            "height_m": [30.0, 30.0, 25.0, 30.0],
            "eirp_dbm": [60.0, 60.0, 58.0, 59.0],
        },
        geometry=[
            Point(X0 + 200, Y0 + 300),
            Point(X0 + 1500, Y0 + 700),
            Point(X0 + 900, Y0 + 500),
            Point(X0 + 1800, Y0 + 200),
        ],
        crs=UTM49,
    )
    roads = gpd.GeoDataFrame(
        {"road_id": ["r1", "r2"], "road_class": ["primary", "secondary"]},
        geometry=[
            LineString([(X0 + 50, Y0 + 500), (X0 + 1950, Y0 + 500)]),
            LineString([(X0 + 900, Y0 + 50), (X0 + 900, Y0 + 950)]),
        ],
        crs=UTM49,
    )
    grid = GridSpec.from_bounds((X0, Y0, X0 + 2000, Y0 + 1000), 100.0, UTM49)
    doc = {
        "name": "killed runs",
        "resolution_m": 100,
        "layers": {n: f"{n}.gpkg" for n in ("areas", "towers", "roads")}
        | {"population": "population.tif"},
    }
    files = {
        "areas.gpkg": areas,
        "towers.gpkg": towers,
        "roads.gpkg": roads,
        "population.tif": (np.full(grid.shape, 20.0), grid),
    }
    plan_a = write_plan(tmp / "plan_a.yml", doc, files)
    # every signal raster changes
    plan_b = write_plan(tmp / "plan_b.yml", doc | {"stages": {"coverage": {"h_rx_m": 3.0}}})
    ref_a, ref_b = tmp / "ref_a", tmp / "ref_b"
    runner.run(["run", str(plan_a), "--out", str(ref_a)], tmp / "a.log")
    log = runner.run(["-v", "run", str(plan_b), "--out", str(ref_b)], tmp / "b.log")
    a, b = output_bytes(ref_a), output_bytes(ref_b)
    assert a.keys() == b.keys()
    assert a != b  # the kills have something to break
    assert {"map.html", "report.html", "sites.gpkg", "backbone.gpkg"} <= b.keys()
    return SimpleNamespace(
        a=plan_a, b=plan_b, ref_a=ref_a, ref_b=ref_b, outputs_a=a, outputs_b=b,
        lines_b=log.splitlines(),
    )  # fmt: skip


def _previous(plans, tmp_path):
    """A folder holding plan A's outputs (and its run's cache): what the runs replace."""
    out = tmp_path / "out"
    shutil.copytree(plans.ref_a, out)
    return out


def _staging(folder):
    return sorted(folder.glob(".staging-*"))


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_cache(folder) -> int:
    """Every cache entry is complete: its files are those its manifest lists, with their
    SHA-256 (nothing half-written, nothing changed since); the number of entries."""
    cache = folder / ".telcoplan-cache"
    if not cache.exists():
        return 0
    entries = sorted(cache.iterdir())
    for entry in entries:
        assert re.fullmatch(r"[a-z][a-z0-9_]*-[0-9a-f]{64}", entry.name), entry
        manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
        files = entry / "files"
        found = {p.relative_to(files).as_posix(): _sha(p) for p in files.rglob("*") if p.is_file()}
        assert found == manifest["files"], entry
        assert _sha(entry / "summary.pickle") == manifest["summary"], entry
        if manifest["value"] is not None:
            assert _sha(entry / "value.pickle") == manifest["value"], entry
    return len(entries)


def _check_hidden(folder):
    hidden = [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert all(HIDDEN.fullmatch(n) for n in hidden), hidden


def test_only_the_folders_of_ended_runs_are_removed(tmp_path):
    """A live run's staging folder, folders telcoplan did not make, files and links stay; the
    folder of a run killed by SIGKILL goes, and so does one without an owner that has not
    changed for minutes (left by a telcoplan before owner files)."""
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import sys, time\n"
        "from telcoplan.gis.atomic import owned_folder\n"
        "with owned_folder(sys.argv[1], '.staging-') as f:\n"
        "    (f / 'half.tif').write_bytes(b'half')\n"
        "    print(f, flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    )
    dead = out / os.path.basename(proc.stdout.readline().strip())
    assert (dead / "half.tif").exists()
    with owned_folder(out, ".staging-") as live:
        assert remove_abandoned_runs(out) == []  # the child is alive: its folder stays
        proc.kill()  # SIGKILL: no clean-up runs
        proc.wait()
        proc.stdout.close()
        assert dead.exists()
        old = out / ".staging-abcd1234"
        old.mkdir()
        (old / "signal_x.tif").write_bytes(b"x")
        an_hour_ago = time.time() - 3600
        os.utime(old, (an_hour_ago, an_hour_ago))
        young = out / ".staging-wxyz5678"  # no owner yet: being made right now
        young.mkdir()
        mine = out / ".staging-notes"  # not a name telcoplan makes
        mine.mkdir()
        a_file = out / ".staging-abcdefgh"
        a_file.write_text("mine")
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        (elsewhere / "keep.txt").write_text("mine")
        (out / ".staging-linklink").symlink_to(elsewhere)
        removed = remove_abandoned_runs(out)
        assert sorted(removed) == sorted([dead, old])
        assert not dead.exists()
        assert not old.exists()
        assert live.is_dir()
        assert (live / ".owner").exists()
        assert young.is_dir()
        assert mine.is_dir()
        assert a_file.read_text() == "mine"
        assert (out / ".staging-linklink" / "keep.txt").read_text() == "mine"
    assert not live.exists()  # the run's own folder goes at its end


def test_runs_killed_at_random_moments(runner, plans, tmp_path):
    """24 runs of plan B killed at random lines of their log, from loading the inputs to
    publishing: after each, the outputs are A's or B's complete set byte for byte (B's when the
    kill came after publishing), every cache entry is complete; the next run removes every
    staging folder the kills left and writes B's outputs, byte for byte those of a clean run."""
    out, logs = _previous(plans, tmp_path), tmp_path / "logs"
    logs.mkdir()
    expected, lines = plans.outputs_b, plans.lines_b
    rng = random.Random(13)
    span = len(lines) - 3  # up to the line before "wrote …" (then the CLI's line, <<exit>>)
    kills, steps = 0, set()
    for i in range(KILLS):
        before = output_bytes(out)
        k = 1 + int((i + rng.random()) * span / KILLS)
        log = logs / f"kill{i}.log"
        args = ["-v", "run", str(plans.b), "--out", str(out), "--overwrite", "--force"]
        pid = runner.start(args, log)
        seen = wait_for_lines(log, k)
        time.sleep(rng.uniform(0.0, 0.02))
        status = runner.kill(pid)
        if killed(status):
            kills += 1
            steps.add(step_of(seen))
        after = output_bytes(out)
        if any((s / ".publish.json").exists() for s in _staging(out)):
            # killed while moving its outputs into place: each file is whole, and the next run
            # (or any clean-up) puts the previous outputs back
            assert all(data in (before.get(n), expected[n]) for n, data in after.items())
            remove_abandoned_runs(out)
            after = output_bytes(out)
        assert after in (before, expected), f"kill {i} at line {k}: {step_of(seen)}"
        _check_hidden(out)
        _check_cache(out)
    assert kills >= 20
    assert len(steps) >= 5, steps  # loading, coverage, gaps, sites, backbone, map, report, …
    left = _staging(out)
    assert left  # what the killed runs left behind
    log = runner.run(["-v", "run", str(plans.b), "--out", str(out), "--overwrite"], logs / "b.log")
    n = len(left)
    assert f"removed {n} staging folder{'s' if n > 1 else ''} left in {out}" in log
    assert output_bytes(out) == expected
    assert not _staging(out)
    _check_hidden(out)
    assert _check_cache(out) >= 7  # inputs, six stages (and the QGIS styles)


def test_a_run_killed_while_moving_its_outputs_into_place_is_undone(runner, plans, tmp_path):
    """Killed between two moves of its outputs into the folder, a run leaves a mixed folder
    for a moment (each file whole, A's or B's); the clean-up every run starts with puts A's
    outputs back byte for byte, from the journal in the dead run's staging folder."""
    out, logs = _previous(plans, tmp_path), tmp_path / "logs"
    logs.mkdir()
    previous, expected = plans.outputs_a, plans.outputs_b
    moves = len(expected)  # one move into the folder per output, summary.json last
    args = ["run", str(plans.b), "--out", str(out), "--overwrite"]
    for die_at in sorted({1, 2, *range(5, moves, 6), moves}):
        log = logs / f"die{die_at}.log"
        status = runner.wait(runner.start(args, log, out=out, die_at=die_at))
        assert killed(status), log.read_text(encoding="utf-8")
        mixed = output_bytes(out)
        assert mixed != previous  # the kill came in the middle of the moves
        assert all(data in (previous.get(n), expected[n]) for n, data in mixed.items())
        assert remove_abandoned_runs(out)
        assert output_bytes(out) == previous
        assert not _staging(out)
        _check_cache(out)
    runner.run(args, logs / "b.log")
    assert output_bytes(out) == expected


def test_a_run_interrupted_while_moving_its_outputs_puts_them_back(plans, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) between two moves of the outputs into the folder: the moves
    are undone at once, A's outputs are back byte for byte and the staging folder is gone."""
    out = _previous(plans, tmp_path)
    real, moves = os.replace, []

    def interrupted(src, dst, *args, **kwargs):
        if os.path.dirname(os.fspath(dst)) == str(out) and ".staging-" in os.fspath(src):
            moves.append(dst)
            if len(moves) == 5:
                raise KeyboardInterrupt
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_plan(read_plan(plans.b), out, overwrite=True, cache=True)
    monkeypatch.undo()
    assert output_bytes(out) == plans.outputs_a
    assert not _staging(out)


def test_two_runs_into_one_folder_at_once(runner, plans, tmp_path):
    """Two runs of different plans into one folder at the same time: both succeed, the
    folder holds one plan's outputs whole (never a mix), and a clean-up while they run leaves
    their staging folders alone."""
    out, logs = _previous(plans, tmp_path), tmp_path / "logs"
    logs.mkdir()
    runs = [
        runner.start(
            ["-v", "run", str(plan), "--out", str(out), "--overwrite", "--force"],
            logs / f"{n}.log",
        )
        for n, plan in (("a", plans.a), ("b", plans.b))
    ]
    assert wait_for(logs / "a.log", "coverage:")  # run a is computing in its staging folder
    live = _staging(out)
    assert live
    remove_abandoned_runs(out)
    assert all(s.exists() for s in live)
    statuses = [runner.wait(pid) for pid in runs]
    assert all(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses)
    assert output_bytes(out) in (plans.outputs_a, plans.outputs_b)
    assert not _staging(out)
    _check_hidden(out)
    _check_cache(out)
