"""``telcoplan run`` reuses the stages that did not change and says so; ``--force`` computes
them all again; the outputs are the same bytes either way (issue 13 item 3)."""

from __future__ import annotations

import numpy as np
import yaml
from click.testing import CliRunner

from telcoplan.cli import cli
from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector


def _outputs(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}


def test_run_reuses_what_did_not_change_and_force_computes_it(tmp_path, areas4, towers5, grid10):
    write_vector(tmp_path / "areas.gpkg", areas4)
    write_vector(tmp_path / "towers.csv", towers5)
    write_raster(tmp_path / "population.tif", np.full(grid10.shape, 100.0), grid10)
    doc = {
        "name": "t",
        "layers": {"areas": "areas.gpkg", "towers": "towers.csv", "population": "population.tif"},
        "stages": {"map": False, "report": False},
    }
    plan, out = tmp_path / "plan.yml", tmp_path / "out"
    plan.write_text(yaml.safe_dump(doc), encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(cli, ["run", str(plan), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "reused 0 of 3 stages; computed coverage, gaps, sites" in res.output
    first = _outputs(out)
    res = runner.invoke(cli, ["run", str(plan), "--out", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert "coverage: reused" in res.output
    assert "reused 3 of 3 stages (coverage, gaps, sites: unchanged since an earlier run)" in (
        res.output
    )
    assert _outputs(out) == first
    res = runner.invoke(cli, ["run", str(plan), "--out", str(out), "--overwrite", "--force"])
    assert res.exit_code == 0, res.output
    assert "reused 0 of 3 stages" in res.output
    assert _outputs(out) == first
    res = runner.invoke(cli, ["run", "--help"])
    assert "--force" in res.output
