"""Where a run's tiled work goes (issue 13 item 1): the plan's ``execution:`` key and ``run``'s
``--workers`` / ``--scheduler`` are checked before anything runs, a cluster is started only when
a stage asks for it, and the run drops in-memory results as soon as every stage reading them is
done (the coverage rasters of a national plan are 1.5 GB)."""

from __future__ import annotations

import gc
import weakref
from dataclasses import replace

import pytest
import yaml

from telcoplan.errors import ClusterError, PlanError
from telcoplan.pipeline import read_plan, run_plan
from telcoplan.pipeline.execution import Cluster, resolve, scheduler_problem
from telcoplan.pipeline.model import Execution
from telcoplan.pipeline.stages import STAGES


def _with(plan_path, **top):
    doc = yaml.safe_load(plan_path.read_text())
    doc.update(top)
    plan_path.write_text(yaml.safe_dump(doc))
    return plan_path


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("tcp://10.0.0.5:8786", None),
        ("tls://scheduler.example:8786", None),
        ("10.0.0.5:8786", "no tcp:// or tls:// scheme"),
        ("tcp://10.0.0.5", "not HOST:PORT"),
        ("tcp://10.0.0.5:99999", "not HOST:PORT"),
        ("tcp://:8786", "not HOST:PORT"),
        ("", "not an address"),
        (8786, "not an address"),
    ],
)
def test_scheduler_addresses(address, problem):
    got = scheduler_problem(address)
    if problem is None:
        assert got is None
    else:
        assert problem in got
        assert "tcp://HOST:PORT" in got


def test_plan_execution_key(small_plan):
    assert read_plan(small_plan).execution == Execution()
    assert read_plan(_with(small_plan, execution={"workers": 2})).execution == Execution(workers=2)
    plan = read_plan(_with(small_plan, execution={"scheduler": "tcp://127.0.0.1:8786"}))
    assert plan.execution == Execution(scheduler="tcp://127.0.0.1:8786")


def test_plan_execution_problems_are_reported_at_once(small_plan):
    bad = {"workers": 0, "scheduler": "localhost:8786", "wokers": 2}
    with pytest.raises(PlanError) as info:
        read_plan(_with(small_plan, execution=bad))
    msg = str(info.value)
    assert "3 problems" in msg
    assert "execution.workers must be a whole number of processes ≥ 1, got 0" in msg
    assert "execution.scheduler: 'localhost:8786' has no tcp:// or tls:// scheme" in msg
    assert "execution: unknown key 'wokers'; did you mean 'workers'?" in msg
    with pytest.raises(PlanError, match="not both"):
        read_plan(_with(small_plan, execution={"workers": 2, "scheduler": "tcp://h:1"}))
    with pytest.raises(PlanError, match="must be a mapping"):
        read_plan(_with(small_plan, execution=2))


def test_command_line_replaces_the_plan():
    plan = Execution(scheduler="tcp://h:1")
    assert resolve(plan) == plan
    assert resolve(plan, workers=3) == Execution(workers=3)
    assert resolve(Execution(workers=2), scheduler="tcp://h:2") == Execution(scheduler="tcp://h:2")
    with pytest.raises(ClusterError, match="not both"):
        resolve(Execution(), workers=1, scheduler="tcp://h:1")
    with pytest.raises(ClusterError, match="--scheduler: 'h:1' has no tcp://"):
        resolve(Execution(), scheduler="h:1")
    with pytest.raises(ClusterError, match="≥ 1"):
        resolve(Execution(), workers=0)


def test_in_process_starts_nothing():
    with Cluster(Execution()) as cluster:
        assert cluster.client() is None
        assert not cluster.started


def test_unreachable_scheduler_is_a_clear_error(monkeypatch):
    import socket

    from telcoplan.pipeline import execution

    # distributed retries a refused connection until the timeout: a short one here
    monkeypatch.setattr(execution, "CONNECT_TIMEOUT_S", 1.0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        Cluster(Execution(scheduler=f"tcp://127.0.0.1:{port}")) as cluster,
        pytest.raises(ClusterError) as info,
    ):
        cluster.client()
    msg = str(info.value)
    assert f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in msg
    assert "run without --scheduler" in msg


def test_a_run_that_computes_nothing_on_a_cluster_never_starts_one(small_plan, tmp_path):
    """No stage asks for the client (its work is too small to tile): no cluster is started
    even with workers requested."""
    started = []
    real = Cluster.client

    def spy(self):
        started.append(self.execution)
        return real(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Cluster, "client", spy)
        for name in ("coverage", "gaps"):  # the stages that would ask: switched off
            mp.setitem(STAGES, name, replace(STAGES[name], layers=("no-such-layer",)))
        run_plan(read_plan(small_plan), tmp_path / "out", workers=2)
    assert started == []


def test_coverage_rasters_are_dropped_once_gaps_and_sites_are_done(small_plan, tmp_path):
    """The backbone, the map and the report run without the coverage stage's in-memory result
    (they read files): it is released as soon as the gaps and sites stages are done."""
    seen: dict[str, object] = {}
    cov_stage, bb_stage = STAGES["coverage"], STAGES["backbone"]

    def coverage_run(inputs, params, staging):
        result = cov_stage.run(inputs, params, staging)
        seen["coverage"] = weakref.ref(result.value)
        return result

    def backbone_run(inputs, params, staging):
        gc.collect()
        seen["alive at backbone"] = seen["coverage"]() is not None
        return bb_stage.run(inputs, params, staging)

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(STAGES, "coverage", replace(cov_stage, run=coverage_run))
        mp.setitem(STAGES, "backbone", replace(bb_stage, run=backbone_run))
        # in this process: a forked backbone's observations are not the test's
        summary = run_plan(read_plan(small_plan), tmp_path / "out", concurrent=False)
    assert "backbone" in summary
    assert "gaps" in summary
    assert seen["alive at backbone"] is False


# --- runs on a local cluster --------------------------------------------------------------------


def _town(tmp_path, resolution_m=25):
    """The site tests' town with its ridge, at ``resolution_m`` (240 x 120 cells at 25 m: several
    blocks of tiles), with the coverage, gaps, sites and backbone stages. The sites are chosen
    greedily: the exact MILP (≈ 5 s here, in this process either way) is not what these tests
    are about, and each runs the plan several times."""
    from tests.pipeline.town import town_plan

    path = town_plan(
        tmp_path, dem=True, stages={"gaps": {}, "sites": {"method": "greedy"}, "backbone": {}}
    )
    doc = yaml.safe_load(path.read_text())
    doc["resolution_m"] = resolution_m
    doc["stages"]["gaps"] = {"min_population": 1}
    path.write_text(yaml.safe_dump(doc))
    return path


def _frames_equal(a, b):
    """Two GeoPackage layers: the same rows and columns, numbers to 1e-9 relative, geometries
    equal as point sets (tiled polygons come back normalized)."""
    import numpy as np
    import pandas as pd
    import shapely

    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        if col == a.geometry.name:
            ga, gb = a.geometry.to_numpy(), b.geometry.to_numpy()
            assert shapely.equals(ga, gb).all() or np.array_equal(ga, gb), col
        elif pd.api.types.is_numeric_dtype(a[col]):
            np.testing.assert_allclose(a[col], b[col], rtol=1e-9, atol=1e-9, err_msg=col)
        else:
            assert a[col].tolist() == b[col].tolist(), col


def _numbers_equal(a, b, where="summary"):
    import math

    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            if k != "provenance":
                _numbers_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _numbers_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=0.05), (where, a, b)  # sums rounded to 0.1
    else:
        assert a == b, (where, a, b)


@pytest.mark.slow
def test_a_run_on_two_workers_equals_the_run_in_process(tmp_path, monkeypatch):
    """Coverage with terrain and its population tables, gaps, sites and backbone on a local
    cluster of 2 worker processes: the rasters are the same bytes, the tables and the summary
    the same numbers (sums to 1e-9), the polygons the same point sets. The coverage stage (its
    shared rasters and its blocks) and the gaps stage (its chunk maps) open several exchanges
    with the run's cluster; its workers are probed once."""
    import json

    import geopandas as gpd
    import pyogrio

    from telcoplan.gis import cluster_io

    opened, probed = [], []
    known, shares = cluster_io._known_answer, cluster_io._shares_files

    def counting_known(client):
        opened.append(client)
        return known(client)

    def counting_shares(client, folder):
        probed.append(client)
        return shares(client, folder)

    monkeypatch.setattr(cluster_io, "_known_answer", counting_known)
    monkeypatch.setattr(cluster_io, "_shares_files", counting_shares)
    plan = read_plan(_town(tmp_path / "town"))
    here = run_plan(plan, tmp_path / "here")
    assert not opened  # in process: no exchange
    there = run_plan(plan, tmp_path / "there", workers=2)
    assert len(opened) >= 3  # coverage, its blocks, and the gaps' chunk maps
    assert len(probed) == 1
    assert len({id(c) for c in opened}) == 1  # one client for the run
    _numbers_equal(here, there)
    tifs = sorted(p.name for p in (tmp_path / "here").glob("*.tif"))
    assert len(tifs) >= 5
    for name in tifs:
        assert (tmp_path / "here" / name).read_bytes() == (
            tmp_path / "there" / name
        ).read_bytes(), name
    for gpkg in sorted((tmp_path / "here").glob("*.gpkg")):
        for layer, _ in pyogrio.list_layers(gpkg):
            if layer == "layer_styles":
                continue
            a = gpd.read_file(gpkg, layer=layer)
            b = gpd.read_file(tmp_path / "there" / gpkg.name, layer=layer)
            _frames_equal(a, b)
    assert json.loads((tmp_path / "there" / "summary.json").read_text())["gaps"]["count"] > 0


def test_a_rerun_whose_stages_are_all_kept_starts_no_cluster(tmp_path):
    started = []
    real = Cluster.client

    def spy(self):
        started.append(self.execution)
        return real(self)

    plan = read_plan(_town(tmp_path / "town", resolution_m=100))
    run_plan(plan, tmp_path / "out", cache=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Cluster, "client", spy)
        run_plan(plan, tmp_path / "out", cache=True, overwrite=True, workers=2)
    assert started == []  # the results do not depend on where they are computed


def _worker_processes(besides=frozenset()):
    """The worker processes of the local clusters this process started (spawned children),
    but those of ``besides`` (pids: e.g. the session's own test cluster)."""
    import psutil

    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.pid not in besides and "spawn_main" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:  # gone meanwhile
            pass
    return found


@pytest.mark.slow
def test_runs_whose_workers_are_killed_lose_nothing(tmp_path):
    """A worker process of the run's local cluster SIGKILLed at random moments (while the
    cluster starts, while blocks are computed, while the stages after it run): the run either
    ends with the outputs of a run in this process — Dask computes the lost blocks again on the
    other worker or on the one its nanny restarts — or fails with one ClusterError and leaves
    the previous outputs byte for byte; the next run succeeds either way."""
    import os
    import random
    import shutil
    import signal
    import threading
    import time

    plan = read_plan(_town(tmp_path / "town"))
    run_plan(plan, tmp_path / "ref")
    expected = {p.name: p.read_bytes() for p in sorted((tmp_path / "ref").glob("*.tif"))}
    out = tmp_path / "out"
    shutil.copytree(tmp_path / "ref", out)  # a previous run's outputs (the same run again)
    rng = random.Random(2026)
    killed, outcomes = [], []
    # other clusters of this process (the session's test cluster, its restarted workers): never
    # killed, never taken for the run's
    others = frozenset(p.pid for p in _worker_processes())
    for second in range(4):  # one kill in each second after the workers are up (0-1 s, …)
        before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        delay = rng.uniform(second, second + 1.0)
        done = threading.Event()

        def killer(delay=delay, done=done):
            first = None
            while not done.wait(0.02):
                workers = _worker_processes(others)
                if len(workers) < 2:
                    continue
                first = first or time.monotonic()
                if time.monotonic() - first >= delay:
                    victim = rng.choice(workers)
                    os.kill(victim.pid, signal.SIGKILL)
                    killed.append(delay)
                    return

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        try:
            run_plan(plan, out, overwrite=True, workers=2)
        except ClusterError as exc:
            outcomes.append(str(exc))
            after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
            assert after == before  # the previous outputs, byte for byte
        else:
            outcomes.append("completed")
            for name, data in expected.items():
                assert (out / name).read_bytes() == data, name
        finally:
            done.set()
            thread.join()
        assert not _worker_processes(others)  # the run's cluster is gone with it
        assert not list(out.glob(".staging-*"))
    assert len(killed) >= 3, killed  # most runs did lose a worker
    failed = [o for o in outcomes if o != "completed"]
    assert all("lost the work" in o or "could not start" in o for o in failed), failed
    run_plan(plan, out, overwrite=True, workers=2)
    for name, data in expected.items():
        assert (out / name).read_bytes() == data, name


def test_errors_of_dask_itself_become_one_clear_error_and_ours_stay_ours():
    import distributed  # noqa: F401 - cluster_errors looks at distributed's exceptions

    from telcoplan.pipeline.execution import cluster_errors

    inside: dict = {"__name__": "distributed.scheduler"}
    exec("def workers_list(w):\n    return {}[w]\n", inside)  # a KeyError raised in Dask's code
    lost = "the coverage stage: the Dask cluster lost the work"
    with pytest.raises(ClusterError, match=lost), cluster_errors("the coverage stage"):
        inside["workers_list"]("tcp://127.0.0.1:1")
    with pytest.raises(KeyError), cluster_errors("the coverage stage"):
        {}["ours"]  # telcoplan's own bug: raised as it is
