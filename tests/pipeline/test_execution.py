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
        assert problem in got and "tcp://HOST:PORT" in got


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


def test_unreachable_scheduler_is_a_clear_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Cluster(Execution(scheduler=f"tcp://127.0.0.1:{port}")) as cluster:
        with pytest.raises(ClusterError) as info:
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
        summary = run_plan(read_plan(small_plan), tmp_path / "out")
    assert "backbone" in summary and "gaps" in summary
    assert seen["alive at backbone"] is False
