"""``telcoplan run`` reuses the stages that did not change and says so; ``--force`` computes
them all again; the outputs are the same bytes either way (issue 13 item 3)."""

from __future__ import annotations

from telcoplan.cli import cli
from tests.cli.conftest import LAYERS
from tests.pipeline.conftest import output_bytes, write_plan


def test_run_reuses_what_did_not_change_and_force_computes_it(runner, plan_dir):
    doc = {"name": "t", "layers": LAYERS, "stages": {"map": False, "report": False}}
    plan, out = write_plan(plan_dir / "plan.yml", doc), plan_dir / "out"
    res = runner.invoke(cli, ["run", str(plan), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "reused 0 of 3 stages; computed coverage, gaps, sites" in res.output
    first = output_bytes(out)
    res = runner.invoke(cli, ["run", str(plan), "--out", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert "coverage: reused" in res.output
    assert "reused 3 of 3 stages (coverage, gaps, sites: unchanged since an earlier run)" in (
        res.output
    )
    assert output_bytes(out) == first
    res = runner.invoke(cli, ["run", str(plan), "--out", str(out), "--overwrite", "--force"])
    assert res.exit_code == 0, res.output
    assert "reused 0 of 3 stages" in res.output
    assert output_bytes(out) == first
    res = runner.invoke(cli, ["run", "--help"])
    assert "--force" in res.output
