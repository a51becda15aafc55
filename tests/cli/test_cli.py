"""CLI contract: exit codes, clean messages, no tracebacks, fast --help."""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
import yaml

from telcoplan import __version__
from telcoplan.cli import cli
from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector

BAD_TOWERS = """site_id,operator,technology,frequency_mhz,height_m,eirp_dbm,lon,lat
T1,Viettel,4G,1800,30,60,108.20,16.05
T2,Viettel,4G,1800,-5,60,108.21,16.05
T3,MobiFone,6G,1800,30,60,108.22,16.06
T1,VinaPhone,4G,1800,30,60,108.23,16.04
T5,VinaPhone,4G,abc,30,60,108.19,16.03
T6,Viettel,4G,1800,30,60,16.07,108.2
"""


def test_version(runner):
    res = runner.invoke(cli, ["--version"])
    assert res.exit_code == 0
    assert __version__ in res.output


def test_the_process_ends_without_teardown_but_after_its_exit_handlers(tmp_path):
    """`telcoplan` (main) ends its process with os._exit once the command is done: the exit
    handlers have run (a file written by one), what it printed is all there, the status is the
    command's (0, click's 2 for a usage error), the collector's thresholds are the CLI's."""
    marker = tmp_path / "handler-ran"
    code = (
        "import atexit, gc, sys, threading, time\n"
        "marker = sys.argv[1]\n"
        "atexit.register(lambda: open(marker, 'w').write(str(gc.get_threshold())))\n"
        # a thread left running: an interpreter that tears itself down waits for it (600 s)
        "threading.Thread(target=time.sleep, args=(600,)).start()\n"
        "from telcoplan.cli import main\n"
        "sys.argv = ['telcoplan'] + sys.argv[2:]\n"
        "main()\n"
        "print('NOT REACHED')\n"
    )
    ok = subprocess.run(
        [sys.executable, "-c", code, str(marker), "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert __version__ in ok.stdout
    assert "NOT REACHED" not in ok.stdout
    assert marker.read_text() == "(10000, 10, 10)"
    marker.unlink()
    bad = subprocess.run(
        [sys.executable, "-c", code, str(marker), "run", "--no-such-option"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "No such option '--no-such-option'" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert marker.exists()


def test_under_a_profiler_the_process_exits_as_usual(tmp_path):
    """`python -m cProfile -m telcoplan ...` still writes its profile (no os._exit)."""
    prof = tmp_path / "out.prof"
    res = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "telcoplan", "--version"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert __version__ in res.stdout
    assert prof.stat().st_size > 0


def test_a_monitoring_tool_counts_as_a_profiler(monkeypatch):
    """Python 3.12+ profilers (cProfile) and coverage.py hook in through sys.monitoring, not
    sys.setprofile: one registered there also makes the process exit as usual."""
    import types

    from telcoplan.cli.process import _observed

    tools = {}
    fake = types.SimpleNamespace(get_tool=lambda i: tools.get(i))
    monkeypatch.setattr(sys, "monitoring", fake, raising=False)
    monkeypatch.setattr(sys, "getprofile", lambda: None)
    monkeypatch.setattr(sys, "gettrace", lambda: None)
    assert not _observed()
    tools[2] = "cProfile"
    assert _observed()


def test_exit_status_of_system_exit_codes(capsys):
    from telcoplan.cli.process import _exit_status

    assert [_exit_status(c) for c in (None, 0, 1, 2, 256 + 3)] == [0, 0, 1, 2, 3]
    assert _exit_status("a message") == 1
    assert "a message" in capsys.readouterr().err


def test_help_imports_no_heavy_modules():
    code = (
        "import sys; from telcoplan.cli import cli\n"
        "try:\n    cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('folium', 'matplotlib', 'numba', 'dask', 'geopandas', 'rasterio') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in out


def test_validate_reports_five_problems_on_five_rows(runner, tmp_path):
    path = tmp_path / "towers.csv"
    path.write_text(BAD_TOWERS)
    res = runner.invoke(cli, ["validate", str(path)])
    assert res.exit_code == 1
    out = res.output
    for row, needle in [
        (2, "height_m"),
        (3, "technology"),
        (4, "duplicate"),
        (5, "not a number"),
        (6, "swapped"),
    ]:
        line = next(ln for ln in out.splitlines() if f"row {row}," in ln)
        assert needle in line
    assert "towers layer has 5 problems" in out
    assert "Traceback" not in out
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_validate_real_subprocess_exit_status(tmp_path):
    path = tmp_path / "bad_towers.csv"
    path.write_text(BAD_TOWERS)
    proc = subprocess.run(
        [sys.executable, "-m", "telcoplan.cli", "validate", str(path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "row 6" in proc.stderr


def test_validate_ok_and_layer_guess(runner, tmp_path, towers5, areas4):
    write_vector(tmp_path / "towers_2024.gpkg", towers5)
    write_vector(tmp_path / "areas.gpkg", areas4)
    res = runner.invoke(
        cli,
        ["validate", str(tmp_path / "towers_2024.gpkg"), "--area", str(tmp_path / "areas.gpkg")],
    )
    assert res.exit_code == 0, res.output
    write_vector(tmp_path / "stuff.gpkg", towers5)
    res = runner.invoke(cli, ["validate", str(tmp_path / "stuff.gpkg")])
    assert res.exit_code == 1
    assert "--type" in res.output
    res = runner.invoke(cli, ["validate", "--type", "towers", str(tmp_path / "stuff.gpkg")])
    assert res.exit_code == 0


def test_validate_missing_file(runner, tmp_path):
    res = runner.invoke(cli, ["validate", str(tmp_path / "towers.gpkg")])
    assert res.exit_code == 1
    assert "not found" in res.output
    assert "Traceback" not in res.output


def test_run_and_overwrite(runner, plan_dir):
    out = plan_dir / "out"
    res = runner.invoke(cli, ["run", str(plan_dir / "good.yml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "summary.json").read_text())["population_total"] == pytest.approx(
        100.0
    )
    res = runner.invoke(cli, ["run", str(plan_dir / "good.yml"), "--out", str(out)])
    assert res.exit_code == 1
    assert "--overwrite" in res.output
    res = runner.invoke(
        cli, ["-q", "run", str(plan_dir / "good.yml"), "--out", str(out), "--overwrite"]
    )
    assert res.exit_code == 0


def test_run_bad_plan_clean_error(runner, plan_dir):
    res = runner.invoke(cli, ["run", str(plan_dir / "bad.yml"), "--out", str(plan_dir / "o")])
    assert res.exit_code == 1
    assert "nope.gpkg not found" in res.output
    assert "Traceback" not in res.output
    assert not (plan_dir / "o").exists()


def test_batch_keeps_going_and_fails_at_end(runner, plan_dir):
    res = runner.invoke(
        cli,
        [
            "run",
            str(plan_dir / "bad.yml"),
            str(plan_dir / "good.yml"),
            "--out",
            str(plan_dir / "b"),
        ],
    )
    assert res.exit_code == 1
    assert "FAILED" in res.output
    assert "1 of 2 plans failed" in res.output
    assert (plan_dir / "b" / "good" / "summary.json").exists()
    assert not (plan_dir / "b" / "bad").exists()


OPENCELLID = """radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal
LTE,452,4,100,1,0,108.2200,16.0600,500,10,1,1,1,0
LTE,452,4,100,2,0,108.2201,16.0601,500,10,1,1,1,0
GSM,452,1,200,3,0,108.2300,16.0500,800,5,1,1,1,0
"""


def test_import_cells_technologies_of_a_site(runner, tmp_path, caplog):
    """A mast with LTE and GSM cells of one operator: by default one row (LTE, its newest), with
    a warning counting the GSM cells modelled only by it; --technology all gives a 2G and a 4G
    row at the same point, each with its own band; --technology 2G the GSM row alone."""
    import logging

    from telcoplan.layers.towers import load_towers

    src = tmp_path / "cells.csv"
    src.write_text(OPENCELLID + "GSM,452,4,100,7,0,108.2200,16.0600,800,5,1,1,1,0\n")
    rows = {}
    for choice in ("best", "all", "2G"):
        out = tmp_path / f"{choice}.gpkg"
        with caplog.at_level(logging.WARNING, logger="telcoplan"):
            caplog.clear()
            res = runner.invoke(
                cli, ["import-cells", str(src), "-o", str(out), "--technology", choice]
            )
        assert res.exit_code == 0, res.output
        towers = load_towers(out)
        mast = towers[towers["operator"] == "Viettel"]  # 452-04 at 108.22, 16.06
        rows[choice] = sorted(zip(mast["technology"], mast["frequency_mhz"], strict=True))
        said = res.output + caplog.text  # the CLI's log handler, or the logger's records
        warned = "1 of 2 sites also carry older technologies" in said
        assert ("telcoplan import-cells --technology all" in said) == warned
        assert warned == (choice == "best"), said
        if warned:
            assert "2G at 1 sites, 1 cells" in said
        if choice == "all":
            assert mast.geometry.nunique() == 1  # one mast: both rows at its point
            assert "rows (a site and a technology each) written" in res.output
    assert rows == {
        "best": [("4G", 1800.0)],
        "all": [("2G", 900.0), ("4G", 1800.0)],
        "2G": [("2G", 900.0)],
    }


def test_import_cells(runner, tmp_path):
    from telcoplan.layers.towers import load_towers

    src = tmp_path / "cells.csv"
    src.write_text(OPENCELLID)
    out = tmp_path / "towers.gpkg"
    res = runner.invoke(cli, ["import-cells", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    towers = load_towers(out)
    assert sorted(towers["operator"]) == ["MobiFone", "Viettel"]
    assert set(towers["technology"]) == {"2G", "4G"}
    assert set(towers["frequency_mhz"]) == {900.0, 1800.0}  # the documented defaults
    # band and EIRP per technology from the command line
    res = runner.invoke(
        cli,
        ["import-cells", str(src), "-o", str(tmp_path / "bands.gpkg"), "--band", "4G=2600",
         "--band", "2g=1800", "--eirp", "4G=63.5"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    bands = load_towers(tmp_path / "bands.gpkg")
    by_tech = bands.groupby("technology")
    assert by_tech["frequency_mhz"].unique().to_dict() == {"2G": [1800.0], "4G": [2600.0]}
    assert set(bands.loc[bands["technology"] == "4G", "eirp_dbm"]) == {63.5}
    assert set(bands.loc[bands["technology"] == "2G", "eirp_dbm"]) == {58.0}
    for args, fragment in (
        (["--band", "4G:2600"], "give TECH=MHZ"),
        (["--band", "6G=2600"], "unknown technologies"),
        (["--eirp", "4G=120"], "out of range"),
    ):
        res = runner.invoke(cli, ["import-cells", str(src), "-o", str(tmp_path / "x.gpkg"), *args])
        assert res.exit_code in (1, 2), res.output
        assert fragment in res.output
        assert "Traceback" not in res.output
    res = runner.invoke(cli, ["import-cells", str(src), "-o", str(out)])
    assert res.exit_code == 1
    assert "--overwrite" in res.output
    res = runner.invoke(
        cli, ["import-cells", str(src), "-o", str(tmp_path / "t2.gpkg"), "--height", "-3"]
    )
    assert res.exit_code == 1
    assert "height_m" in res.output
    assert "Traceback" not in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text(
        OPENCELLID.replace("108.2300,16.0500", "108.2300,96.0500").replace(
            "LTE,452,4,100,2", "LTX,452,4,100,2"
        )
    )
    res = runner.invoke(cli, ["import-cells", str(bad), "-o", str(tmp_path / "t3.gpkg")])
    assert res.exit_code == 1
    assert "LTX" in res.output
    assert "96.05" in res.output
    assert not (tmp_path / "t3.gpkg").exists()


@pytest.mark.slow
def test_demo_end_to_end(runner, tmp_path):
    """`telcoplan demo` writes inputs/, plan.yml and outputs/summary.json with the census total."""
    from telcoplan.pipeline import read_plan

    census_2019 = {  # GSO 2019 census, persons (PRODUCT.md), typed here independently of the code
        "Hải Châu": 201_522,
        "Liên Chiểu": 194_913,
        "Thanh Khê": 185_064,
        "Cẩm Lệ": 159_295,
        "Sơn Trà": 157_415,
        "Hòa Vang": 145_749,
        "Ngũ Hành Sơn": 90_352,
    }

    out = tmp_path / "demo"
    res = runner.invoke(cli, ["demo", "--out", str(out)])
    assert res.exit_code == 0, res.output
    for name in (
        "areas.gpkg",
        "towers.gpkg",
        "fiber.gpkg",
        "roads.gpkg",
        "candidates.gpkg",
        "pois.gpkg",
        "population.tif",
        "dem.tif",
    ):
        assert (out / "inputs" / name).exists(), name
    summary = json.loads((out / "outputs" / "summary.json").read_text(encoding="utf-8"))
    # coverage polygons stay inside the study area (the grid's box also holds the sea)
    cov = gpd.read_file(out / "outputs" / "coverage.gpkg", layer="coverage")
    study = gpd.read_file(out / "inputs" / "areas.gpkg").to_crs(cov.crs).union_all()
    any_ = cov[cov["operator"] == "any"]
    assert float(any_["area_km2"].iloc[0]) <= summary["area_km2_total"] + 1.0
    assert any_.geometry.iloc[0].difference(study.buffer(100)).area < 1.0
    assert summary["synthetic"] is True
    assert abs(summary["population_total"] - 1_134_310) <= 1
    for area in summary["areas"]:
        assert abs(area["population"] - census_2019[area["name"]]) <= 0.5
    plan = read_plan(out / "plan.yml")
    assert plan.synthetic
    assert set(plan.layers) >= {"areas", "towers", "population", "dem"}
    # a second run refuses to overwrite, and leaves everything as it was
    before = (out / "outputs" / "summary.json").read_bytes()
    res = runner.invoke(cli, ["demo", "--out", str(out)])
    assert res.exit_code == 1
    assert "--overwrite" in res.output
    assert (out / "outputs" / "summary.json").read_bytes() == before
    res = runner.invoke(cli, ["demo", "--out", str(out), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert (out / "outputs" / "summary.json").read_bytes() == before
    # same seed, identical files, wherever they are written
    other = tmp_path / "again"
    assert runner.invoke(cli, ["-q", "demo", "--out", str(other)]).exit_code == 0
    for f in sorted(out.rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (other / f.relative_to(out)).read_bytes(), f
    res = runner.invoke(cli, ["validate", str(out / "plan.yml")])
    assert res.exit_code == 0, res.output


def test_coverage_and_gaps_commands(runner, tmp_path, areas4, towers5):
    import rasterio

    write_vector(tmp_path / "areas.gpkg", areas4)
    write_vector(tmp_path / "towers.csv", towers5)
    args = [
        "--towers",
        str(tmp_path / "towers.csv"),
        "--area",
        str(tmp_path / "areas.gpkg"),
        "--resolution",
        "50",
        "--model",
        "auto",
        "--max-radius-km",
        "2",
    ]
    res = runner.invoke(cli, ["coverage", *args, "--out", str(tmp_path / "cov")])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "cov" / "signal_viettel.tif") as src:
        assert src.res == (50.0, 50.0)
    summary = json.loads((tmp_path / "cov" / "summary.json").read_text())
    assert summary["population_total"] == pytest.approx(10_000.0)
    assert "gaps" not in summary
    assert not list((tmp_path / "cov").glob("signal_*-*.tif"))  # per technology on request
    res = runner.invoke(cli, ["coverage", *args, "--per-technology", "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "t").glob("signal_*-*.tif")} == {
        "signal_viettel-4g.tif",
        "signal_viettel-5g.tif",
        "signal_vinaphone-4g.tif",
        "signal_mobifone-3g.tif",
    }
    # gaps outdoors and indoors (10 dB more needed): indoors, coverage shrinks on every
    # operator and a gap opens (90 persons here; outdoors the five towers cover everyone)
    runs = {}
    for where, extra in (("outdoor", []), ("indoor", ["--indoor"])):
        res = runner.invoke(cli, ["gaps", *args, *extra, "--out", str(tmp_path / where)])
        assert res.exit_code == 0, res.output
        runs[where] = json.loads((tmp_path / where / "summary.json").read_text())
    for where, run in runs.items():
        gaps, nc = run["gaps"], run["gaps"]["not_covered"]
        # every person is covered or not: the uncovered are the population less the covered
        assert nc["population"] == pytest.approx(
            run["population_total"] - run["coverage"]["any"]["population_covered"], abs=0.1
        ), where
        # ... and are in the ranked gaps, in small pockets or in sparse cells
        parts = [nc["in_gaps"], nc["small_pockets"], nc["sparse_cells"]]
        assert sum(p["population"] for p in parts) == pytest.approx(nc["population"], abs=0.2)
        assert nc["in_gaps"] == {"count": gaps["count"], "population": gaps["population"]}
        # the summary counts the gaps layer the command wrote
        layer = gpd.read_file(tmp_path / where / "gaps.gpkg", layer="gaps")
        assert len(layer) == gaps["count"], where
        assert float(layer["population"].sum()) == pytest.approx(gaps["population"], abs=0.1)
    indoor, outdoor = runs["indoor"], runs["outdoor"]
    for op in ("Viettel", "VinaPhone", "MobiFone", "any"):
        covered = [r["coverage"][op]["population_covered"] for r in (indoor, outdoor)]
        assert covered[0] <= covered[1], op
    assert indoor["coverage"]["any"]["population_covered"] < 10_000.0
    assert outdoor["gaps"]["not_covered"]["population"] == 0.0
    assert indoor["gaps"]["not_covered"]["population"] > 0.0
    assert indoor["gaps"]["population"] > outdoor["gaps"]["population"]
    assert indoor["gaps"]["count"] > outdoor["gaps"]["count"] == 0
    res = runner.invoke(
        cli, ["coverage", *args[:4], "--out", str(tmp_path / "x"), "--model", "okumura"]
    )
    assert res.exit_code == 2
    assert "okumura" in res.output


def test_calibrate_command(runner, tmp_path):
    """Noiseless measurements from Hata + 6 dB - 4 dB/decade: the command recovers both."""
    import math

    from telcoplan.coverage.propagation import path_loss

    (tmp_path / "towers.csv").write_text(
        "site_id,operator,technology,frequency_mhz,height_m,eirp_dbm,lon,lat\nT1,Viettel,2G,900,30,60,108.2,16.05\n"
    )
    rng = np.random.default_rng(0)
    lines = ["lon,lat,site_id,rssi_dbm"]
    bias = []  # measured − Hata's prediction
    for _ in range(60):
        d_km, bearing = rng.uniform(0.3, 6.0), rng.uniform(0, 2 * math.pi)
        bias.append(-(6.0 - 4.0 * math.log10(d_km)))
        lat = 16.05 + d_km / 110.574 * math.cos(bearing)
        lon = 108.2 + d_km / (111.320 * math.cos(math.radians(16.05))) * math.sin(bearing)
        loss = path_loss("hata", freq_mhz=900, distance_km=d_km, h_tx_m=30, check_distance=False)
        loss += 6.0 - 4.0 * math.log10(d_km)
        lines.append(f"{lon:.7f},{lat:.7f},T1,{60.0 - loss:.4f}")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "params.json"

    def calibrate(measurements, out, *more):
        argv = ["calibrate", "--towers", tmp_path / "towers.csv", "--measurements", measurements]
        return runner.invoke(cli, [str(a) for a in (*argv, *more, "-o", out)])

    res = calibrate(tmp_path / "m.csv", out, "--validate", tmp_path / "m.csv")
    assert res.exit_code == 0, res.output
    params = json.loads(out.read_text())
    # the flat-earth distance approximation above is good to ~0.3 %, i.e. < 0.05 dB
    assert params["intercept_offset_db"] == pytest.approx(6.0, abs=0.1)
    assert params["slope_offset_db_per_decade"] == pytest.approx(-4.0, abs=0.2)
    assert params["rmse_db_after"] < 0.1 < params["rmse_db_before"]
    assert params["validation_rmse_db"] < 0.1
    printed = json.loads(res.stdout)
    assert printed["rmse_db_after"] == params["rmse_db_after"]
    # mean_error_db: the model's bias before the fit; the calibrated model's on --validate
    assert printed["mean_error_db"] == pytest.approx(np.mean(bias), abs=0.05)
    assert np.mean(bias) < -2.0
    assert printed["validation_mean_error_db"] == pytest.approx(0.0, abs=0.05)
    assert params["mean_error_db"] == printed["mean_error_db"]
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "lon,lat,site_id,rssi_dbm\n108.2,16.06,T9,-80\n108.2,16.07,T1,-85\n108.2,16.08,T1,-88\n"
    )
    res = calibrate(bad, tmp_path / "p2.json")
    assert res.exit_code == 1
    assert "T9" in res.output
    assert "row 1" in res.output
    assert not (tmp_path / "p2.json").exists()


def test_batch_targets_never_collide(tmp_path):
    from telcoplan.pipeline import batch_targets

    plans = [tmp_path / "a" / "plan.yml", tmp_path / "b" / "plan.yml", tmp_path / "a" / "other.yml"]
    targets = batch_targets(plans, tmp_path / "out")
    assert len({t.resolve() for t in targets}) == 3
    assert targets[2] == tmp_path / "out" / "other"
    default = batch_targets(plans, None)
    assert len({t.resolve() for t in default}) == 3
    assert batch_targets(plans[:1], None) == [tmp_path / "a" / "outputs"]


@pytest.mark.parametrize(
    "args",
    [["--resolution", "0"], ["--resolution", "nan"], ["--resolution", "100000"], ["--seed", "-1"]],
)
def test_demo_rejects_bad_options(runner, tmp_path, args):
    res = runner.invoke(cli, ["demo", "--out", str(tmp_path / "d"), *args])
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    assert not (tmp_path / "d").exists()


def test_plan_with_bad_layer_crs_and_margin(runner, plan_dir):
    doc = yaml.safe_load((plan_dir / "good.yml").read_text())
    doc["layers"]["towers"] = {"path": "towers.gpkg", "crs": "FOO"}
    doc["study_area_margin_m"] = float("inf")
    (plan_dir / "odd.yml").write_text(yaml.safe_dump(doc))
    res = runner.invoke(cli, ["run", str(plan_dir / "odd.yml"), "--out", str(plan_dir / "o")])
    assert res.exit_code == 1
    assert "'FOO' is not a CRS" in res.output
    assert "study_area_margin_m" in res.output


@pytest.mark.parametrize(
    ("args", "info_shown"),
    [
        (["run", "{plan}", "--out", "{out}"], True),
        (["run", "{plan}", "--out", "{out}", "-q"], False),  # -q after the sub-command
        (["-q", "run", "{plan}", "--out", "{out}"], False),
        (["run", "{plan}", "-v", "--out", "{out}"], True),
        (["-q", "run", "{plan}", "--out", "{out}", "-v"], True),  # counts add up: -q -v = 0
    ],
)
def test_verbosity_before_and_after_the_sub_command(plan_dir, args, info_shown):
    """``-v``/``-q`` are accepted on either side of the sub-command and add up."""
    plan, out = plan_dir / "good.yml", plan_dir / f"out-{len(args)}-{args.index('run')}"
    argv = [a.format(plan=plan, out=out) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "telcoplan", *argv, "--overwrite"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert ("grid:" in proc.stderr) == info_shown, proc.stderr


def test_choices_come_from_the_library_registries(runner):
    from telcoplan.backbone.rings import PROTECT_CHOICES
    from telcoplan.coverage.propagation import ENVIRONMENTS, MODELS
    from telcoplan.coverage.terrain import DIFFRACTION_METHODS
    from telcoplan.pipeline.model import LAYER_NAMES
    from telcoplan.pipeline.validate import LAYER_TYPES

    def choices(command: str, option: str) -> tuple[str, ...]:
        param = next(p for p in cli.commands[command].params if p.name == option)
        return tuple(param.type.choices)

    assert choices("coverage", "model") == ("auto", *MODELS)
    assert choices("calibrate", "model") == tuple(MODELS)
    assert choices("coverage", "environment") == tuple(ENVIRONMENTS)
    assert choices("calibrate", "diffraction") == tuple(DIFFRACTION_METHODS)
    assert choices("backbone", "protect") == tuple(PROTECT_CHOICES)
    assert choices("validate", "layer_type") == LAYER_TYPES
    assert set(LAYER_TYPES) == set(LAYER_NAMES)  # every plan layer can be validated
    res = runner.invoke(cli, ["backbone", "--protect", "rings"])
    assert res.exit_code == 2
    assert "Invalid value for '--protect'" in res.output
    assert "shared+pois" in res.output


def test_validate_land_use(runner, tmp_path, grid10, areas4):
    codes = np.ones(grid10.shape, dtype=np.int16)
    write_raster(tmp_path / "landuse.tif", codes, grid10, nodata=0)
    res = runner.invoke(cli, ["validate", str(tmp_path / "landuse.tif")])
    assert res.exit_code == 0, res.output
    assert "land_use raster 10x10, 1 classes" in res.output
    write_raster(tmp_path / "cover.tif", codes * 1.5, grid10)
    res = runner.invoke(cli, ["validate", "--type", "land_use", str(tmp_path / "cover.tif")])
    assert res.exit_code == 1
    assert "whole numbers" in res.output
    write_vector(tmp_path / "lu.gpkg", areas4)
    res = runner.invoke(cli, ["validate", "--type", "land_use", str(tmp_path / "lu.gpkg")])
    assert res.exit_code == 0, res.output
    write_vector(tmp_path / "lu_points.gpkg", areas4.set_geometry(areas4.centroid))
    res = runner.invoke(cli, ["validate", "--type", "land_use", str(tmp_path / "lu_points.gpkg")])
    assert res.exit_code == 1
    assert "must be polygons" in res.output


def test_map_and_report_redraw_a_finished_run_without_overwrite(runner, plan_dir):
    """The run's own map, report and figure are derived: drawn again without --overwrite; the
    run's data are untouched; a file elsewhere still needs --overwrite."""
    out = plan_dir / "out"
    assert runner.invoke(cli, ["run", str(plan_dir / "good.yml"), "--out", str(out)]).exit_code == 0
    data = {p.name: p.read_bytes() for p in out.iterdir() if p.suffix in (".tif", ".gpkg", ".json")}
    stamp = {n: (out / n).stat().st_mtime_ns for n in ("map.html", "report.html", "figure.png")}
    for command in ("map", "report"):
        res = runner.invoke(cli, [command, str(out), "--plan", str(plan_dir / "good.yml")])
        assert res.exit_code == 0, res.output
    assert all((out / n).stat().st_mtime_ns > t for n, t in stamp.items())
    assert {n: (out / n).read_bytes() for n in data} == data
    other = plan_dir / "elsewhere.html"
    other.write_text("mine")
    for command in ("map", "report"):
        res = runner.invoke(cli, [command, str(out), "-o", str(other)])
        assert res.exit_code == 1
        assert "already exists; pass --overwrite" in res.output
        assert "overwrite=" not in res.output
    assert other.read_text() == "mine"


def test_ctrl_c_exits_with_the_shells_status(tmp_path):
    """SIGINT during a run: exit status 130 (128 + SIGINT, what shells and batch schedulers
    read as "interrupted"), a one-line message, no traceback, no published output."""
    import signal
    import time

    from telcoplan.demo import write_demo

    plan = write_demo(tmp_path / "demo")
    proc = subprocess.Popen(
        [sys.executable, "-m", "telcoplan", "run", str(plan), "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a pytest-xdist worker ignores SIGINT, and a process started
        # with SIGINT ignored keeps ignoring it (Python then installs no handler)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    said = []
    for line in proc.stderr:  # once the run computes its first stage
        said.append(line)
        if line.startswith("coverage: best server"):
            break
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = "".join(said) + err
    assert proc.returncode == 130, err
    assert "interrupted: outputs are written whole or not at all" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "summary.json").exists()
