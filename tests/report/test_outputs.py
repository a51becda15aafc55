"""report.html from the outputs of a real (coarse, 500 m) run of the synthetic Đà Nẵng demo."""

from __future__ import annotations

import base64
import json
import re

import pytest

from telcoplan.errors import InputFileError, OutputExistsError
from telcoplan.outputs import REPORT as REPORT_NAME
from telcoplan.report.html import load_outputs, report_from_outputs
from tests.report.conftest import DISTRICTS, make_png


def test_report_from_demo_outputs(demo_outputs):
    summary, out = demo_outputs
    # the plan's report stage wrote it already; it is refused, then rewritten on request
    staged = (out / REPORT_NAME).read_bytes()
    with pytest.raises(OutputExistsError):
        report_from_outputs(out)
    assert (out / REPORT_NAME).read_bytes() == staged
    path = report_from_outputs(out, overwrite=True)
    assert path == out / REPORT_NAME
    text = path.read_bytes().decode("utf-8")
    assert 'id="synthetic"' in text  # the demo says it is synthetic
    for section in ("headline", "coverage", "areas", "gaps", "backbone", "provenance"):
        assert f'<section id="{section}">' in text
    for name in DISTRICTS:
        assert name in text
    for ref in summary["provenance"]["inputs"].values():
        assert ref["sha256"] in text
    assert f"{round(summary['population_total']):,}" in text  # 1,134,310
    assert f"{summary['coverage']['any']['population_pct']:.1f} %" in text
    bb = summary["backbone"]
    assert f"{bb['length_km_joint']:,.1f} km" in text
    assert f"USD {bb['cost_joint']:,.0f}" in text
    assert f"{bb['savings_pct']:.1f} %" in text
    assert "<script" not in text
    assert "http://" not in text
    assert "https://" not in text
    with pytest.raises(OutputExistsError):
        report_from_outputs(out)


def test_load_outputs_reads_layers(demo_outputs):
    summary, out = demo_outputs
    data = load_outputs(out)
    assert data["summary"] == json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert list(data["areas"]["name"]) == list(DISTRICTS)
    assert len(data["gaps"]) == summary["gaps"]["count"]
    assert len(data["pois"]) == summary["gaps"]["pois"]["count"]
    assert set(data["links"]["plan"]) >= {"joint", "separate"}
    assert "geometry" not in data["areas"].columns  # attribute tables only
    # the sites stage's structures: one row per structure the summary counts
    assert len(data["sites"]) == summary["sites"]["selected"]
    assert int(data["sites"]["new_build"].sum()) == summary["sites"]["new_builds"]


def test_report_from_staging_with_summary_and_figure_file(demo_outputs, tmp_path):
    summary, out = demo_outputs
    png = tmp_path / "figure.png"
    png.write_bytes(make_png())
    target = report_from_outputs(out, tmp_path / "r.html", summary=summary, figure_png=png)
    # the page's one image is the file's bytes, all of them (decoded from the page's base64)
    embedded = re.findall(
        r'src="data:image/png;base64,([A-Za-z0-9+/=]*)"', target.read_text(encoding="utf-8")
    )
    assert embedded == [base64.b64encode(png.read_bytes()).decode("ascii")]
    assert base64.b64decode(embedded[0], validate=True) == png.read_bytes()


def test_missing_summary(tmp_path):
    with pytest.raises(InputFileError, match=r"summary\.json not found"):
        report_from_outputs(tmp_path)
    assert not (tmp_path / REPORT_NAME).exists()
    (tmp_path / "summary.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputFileError, match=r"not a summary\.json"):
        report_from_outputs(tmp_path)


def test_report_with_tables_read_beforehand_is_the_same(demo_outputs, tmp_path):
    """The report stage reads the tables while the figure is drawn and hands them over: the
    report is the one report_from_outputs writes reading them itself."""
    summary, out = demo_outputs
    png = make_png()
    itself = report_from_outputs(out, tmp_path / "a.html", summary=summary, figure_png=png)
    handed = report_from_outputs(
        out,
        tmp_path / "b.html",
        summary=summary,
        figure_png=png,
        tables=load_outputs(out, summary=summary),
    )
    assert handed.read_bytes() == itself.read_bytes()
    assert b"<table" in handed.read_bytes()
