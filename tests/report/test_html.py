"""report.html from a hand-built summary and small tables: content, formatting, escaping, files."""

from __future__ import annotations

import base64
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from telcoplan.errors import OutputExistsError
from telcoplan.report.html import render_report, write_report
from tests.report.conftest import (
    DISTRICTS,
    OPERATORS,
    SHARES,
    areas_frame,
    build_summary,
    gaps_frame,
    links_frame,
    make_png,
    sites_frame,
)

EVIL = "<img src=x onerror=alert(1)>"
EVIL_QUOTE = '"><script>alert(2)</script>'
#: Plot width of a chart (720 px wide, 170 px of labels, 110 px for the value text).
PLOT_WIDTH = 720 - 170 - 110


class _Page(HTMLParser):
    """Collects section bodies, chart bars, and every src/href attribute of a page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, list[str]] = {}
        self.bars: dict[str, list[tuple[float, float]]] = {}
        self.links: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self._section: str | None = None
        self._chart: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self._section = a.get("id")
            self.sections[self._section] = []
        if tag == "svg":
            self._chart = a.get("data-chart")
            self.bars[self._chart] = []
        if tag == "rect" and a.get("class") == "bar":
            self.bars[self._chart].append((float(a["width"]), float(a["data-value"])))
        for name in ("src", "href"):
            if name in a:
                self.links.append((tag, name, a[name]))

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._section is not None:
            self.sections[self._section].append(data)

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.sections[section]).split())


def full_report(**kw) -> str:
    summary = kw.pop("summary", None) or build_summary()
    return render_report(
        summary,
        areas=kw.pop("areas", areas_frame()),
        gaps=kw.pop("gaps", gaps_frame()),
        sites=kw.pop("sites", sites_frame()),
        links=kw.pop("links", links_frame()),
        **kw,
    )


# ----------------------------------------------------------------------------- content
def test_full_report_has_every_section_and_formatted_numbers(summary):
    page = _Page(full_report(summary=summary))
    assert list(page.sections) == [
        "headline",
        "coverage",
        "areas",
        "gaps",
        "sites",
        "backbone",
        "provenance",
    ]
    head = page.text("headline")
    assert "1,134,310" in head  # population, thousands separators
    assert "99.9 %" in head  # any operator, 99.927 %
    assert "1,133,482 persons" in head
    assert "242 / 247" in head  # POIs served
    assert "30.0 %" in head  # backbone saving
    cov = page.text("coverage")
    for op in OPERATORS:
        assert op in cov
    assert "Best single operator (Viettel)" in cov
    assert "1,122,967" in cov  # Viettel: 0.99 × 1,134,310 = 1,122,966.9
    assert "500.0 km²" in cov
    assert "5G+" in cov
    assert "30.7 %" in cov
    assert "Urban" in cov
    assert "Rural" in cov
    gaps = page.text("gaps")
    assert "3 ranked coverage gaps" in gaps
    assert "1,234 persons" in gaps
    assert "12.5 km²" in gaps
    assert "1,500 m" in gaps
    assert "250 m" in gaps
    assert "2.50 km²" in gaps
    assert "783" in gaps
    assert "45" in gaps
    bb = page.text("backbone")
    assert "120.5 km" in bb
    assert "80.4 km" in bb
    assert "40.1 km" in bb
    assert "USD 3,000,000" in bb
    assert "USD 2,100,000" in bb
    assert "USD 900,000 (30.0 % of the separate-build cost)" in bb
    assert "USD 1,050,000" in bb
    assert "USD 650,000" in bb
    assert "Ring protection" in bb
    assert "S-9" in bb
    assert "on a dead-end road" in bb
    prov = page.text("provenance")
    assert "ab" * 32 in prov
    assert "cd" * 32 in prov
    assert "9.8.7" in prov
    assert "548 × 322 cells of 100 m" in prov
    assert "600" in prov  # towers feature count


def test_area_table_from_layer_with_percentages_and_types(summary):
    page = _Page(full_report(summary=summary))
    text = page.text("areas")
    for name, (pop, _) in DISTRICTS.items():
        assert name in text
        assert f"{pop:,}" in text
    assert "urban" in text
    assert "rural" in text
    assert "95.0 %" in text
    assert "90.0 %" in text
    assert "Total" in text
    assert "1,134,310" in text
    assert "Density (persons/km²)" in text
    assert "9,461" in text  # Hải Châu: 201,522 persons / 21.3 km²


def test_area_table_falls_back_to_summary(summary):
    page = _Page(render_report(summary))
    text = page.text("areas")
    assert "Liên Chiểu" in text
    assert "194,913" in text
    assert "79.1 km²" in text
    assert "rural" not in text  # no urban column in the summary's areas


def test_top_gaps_only(summary):
    page = _Page(full_report(summary=summary, top_gaps=5))
    text = page.text("gaps")
    assert "The 5 largest gaps" in text
    assert "and 25 smaller gaps" in text
    assert "960" in text
    assert "950" not in text


def test_gaps_from_summary_without_layer(summary):
    page = _Page(render_report(summary))
    text = page.text("gaps")
    assert "1,257 m" in text  # largest gap's distance to the nearest tower
    assert "Unserved POIs: POI-0035, POI-0036" in text


def test_links_summary(summary):
    text = _Page(full_report(summary=summary)).text("backbone")
    assert "3 operators 2.0 km" in text  # joint trench used by all three operators
    assert "2 operators 1.0 km" in text
    assert "1 operator 0.5 km" in text
    assert "ring ring 1 0.3 km USD 9,000" in text


def test_sites_table(summary):
    text = _Page(full_report(summary=summary)).text("sites")
    assert "Proposed sites (2)" in text
    assert "Trạm Sơn Trà mới" in text
    assert "new shared" in text
    assert "1,520" in text
    assert "USD 80,000" in text


# ----------------------------------------------------------------------------- optional sections
def test_minimal_summary_has_only_headline():
    out = render_report({"population_total": 1000.0})
    page = _Page(out)
    assert list(page.sections) == ["headline"]
    assert "<nav" not in out
    assert "<figure" not in out
    assert "<svg" not in out
    assert "SYNTHETIC" not in out
    assert "1,000" in page.text("headline")


def test_empty_summary_renders():
    out = render_report({})
    assert out.startswith("<!DOCTYPE html>")
    assert "<section" not in out


@pytest.mark.parametrize("absent", ["coverage", "gaps", "backbone", "provenance"])
def test_section_absent_without_its_data(summary, absent):
    del summary[absent]
    out = render_report(summary)
    page = _Page(out)
    if absent == "provenance":  # plan, version, CRS and grid are still there; the inputs not
        assert "SHA-256" not in out
        assert "Inputs" not in page.text("provenance")
        return
    assert absent not in page.sections
    assert f'href="#{absent}"' not in out
    if absent == "backbone":
        assert "USD" not in out
        assert 'data-chart="backbone-cost"' not in out


def test_backbone_without_rings_or_shapley(summary):
    bb = summary["backbone"]
    del bb["rings"], bb["share_shapley"]
    page = _Page(render_report(summary))
    text = page.text("backbone")
    assert "Ring protection" not in text
    assert "USD 650,000" in text
    assert len(page.bars["backbone-shares"]) == 2 * len(OPERATORS)  # alone and proportional


def test_backbone_from_links_only():
    page = _Page(render_report({"plan": "p"}, links=links_frame()))
    assert "backbone" in page.sections
    assert "joint" in page.text("backbone")


def test_synthetic_banner():
    out = render_report(build_summary(synthetic=True))
    assert 'id="synthetic"' in out
    assert "SYNTHETIC DATA" in out
    assert 'id="synthetic"' not in render_report(build_summary())


# ----------------------------------------------------------------------------- charts
def test_bar_widths_are_proportional_to_values(summary):
    page = _Page(full_report(summary=summary))
    assert {
        "coverage-operators",
        "coverage-areas",
        "backbone-cost",
        "backbone-shares",
    } <= set(page.bars)
    for chart, bars in page.bars.items():
        assert bars, chart
        assert all(width >= 0 for width, _ in bars)
        positive = [(w, v) for w, v in bars if v > 0]
        k = positive[0][0] / positive[0][1]
        for width, value in positive:
            assert width == pytest.approx(k * value, abs=1e-3), chart
    # percentage charts: 100 % is the full plot width
    for chart in ("coverage-operators", "coverage-areas"):
        for width, value in page.bars[chart]:
            assert width == pytest.approx(PLOT_WIDTH * value / 100.0, abs=1e-3)
    # money charts: the largest bar fills the plot
    cost = {v: w for w, v in page.bars["backbone-cost"]}
    assert cost == {3_000_000.0: pytest.approx(PLOT_WIDTH), 2_100_000.0: pytest.approx(308.0)}


def test_area_chart_values_match_the_table(summary):
    page = _Page(full_report(summary=summary))
    values = [v for _, v in page.bars["coverage-areas"]]
    per_area = [100.0 * SHARES[op] for op in OPERATORS] + [100.0]
    assert values == pytest.approx(per_area * len(DISTRICTS))


# ----------------------------------------------------------------------------- safety
def _evil_inputs():
    names = (EVIL, EVIL_QUOTE, *list(DISTRICTS)[2:])
    ops = (EVIL, "VinaPhone", EVIL_QUOTE)
    summary = build_summary(
        plan=EVIL, names=names, operators=ops, path=EVIL, site=EVIL_QUOTE, param=EVIL
    )
    summary["gaps"]["pois"]["unserved"] = [EVIL]
    gaps = gaps_frame(3).rename(index={1: EVIL})
    pois = (
        sites_frame(EVIL)
        .rename(columns={"site_id": "poi_id"})
        .assign(served=[False, True], category=EVIL_QUOTE)
    )
    return {
        "summary": summary,
        "areas": areas_frame(names, ops),
        "gaps": gaps,
        "pois": pois,
        "sites": sites_frame(EVIL).assign(kind=EVIL_QUOTE),
        "links": links_frame(ops),
        "title": None,
    }


def test_every_input_text_is_escaped():
    out = full_report(**_evil_inputs())
    # no live markup from the inputs anywhere on the page
    assert "<img" not in out
    assert "<script" not in out
    assert "onerror=alert(1)>" not in out
    escaped = html.escape(EVIL, quote=True)
    escaped_quote = html.escape(EVIL_QUOTE, quote=True)
    assert escaped == "&lt;img src=x onerror=alert(1)&gt;"
    # ... and each name appears as text in every section that shows it
    page = _Page(out)
    for section in ("headline", "coverage", "areas", "gaps", "sites", "backbone", "provenance"):
        assert EVIL in page.text(section), section
    for section in ("coverage", "areas", "sites", "backbone"):
        assert EVIL_QUOTE in page.text(section), section
    for part in re.split(r"<section", out)[1:]:
        assert escaped in part or escaped_quote in part
    assert out.count(escaped) >= 20
    assert f"<title>telcoplan report — {escaped}</title>" in out
    # page structure intact: the quote did not break out of an attribute
    assert set(page.tags) <= {
        "html", "head", "meta", "title", "style", "body", "header", "h1", "p", "strong",
        "nav", "ul", "li", "a", "section", "h2", "h3", "h4", "div", "table", "thead", "tbody",
        "tr", "th", "td", "svg", "rect", "text", "em", "code", "details", "summary", "pre",
        "footer", "span", "small",
    }  # fmt: skip


def test_custom_title_is_escaped(summary):
    out = render_report(summary, title=EVIL)
    assert "<img" not in out
    assert f"<h1>{html.escape(EVIL)}</h1>" in out


def test_no_external_references(summary):
    out = full_report(summary=summary, figure_png=make_png())
    assert "http://" not in out
    assert "https://" not in out
    assert "<script" not in out
    assert "<link" not in out
    assert "@import" not in out
    page = _Page(out)
    assert page.links
    for tag, name, value in page.links:
        if name == "href":
            assert tag == "a"
            assert value.startswith("#")
        else:
            assert tag == "img"
            assert value.startswith("data:image/png;base64,")


# ----------------------------------------------------------------------------- figure
def test_figure_embeds_as_png_data_uri(summary):
    png = make_png(5, 4)
    page = _Page(full_report(summary=summary, figure_png=png))
    assert "figure" in page.sections
    [src] = [v for tag, name, v in page.links if tag == "img"]
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    data = base64.b64decode(src[len(prefix) :], validate=True)
    assert data == png
    assert data.startswith(b"\x89PNG\r\n\x1a\n")


def test_figure_must_be_png(summary):
    with pytest.raises(ValueError, match="not a PNG"):
        render_report(summary, figure_png=b"GIF89a....")
    with pytest.raises(TypeError, match="bytes"):
        render_report(summary, figure_png="figure.png")


# ----------------------------------------------------------------------------- files
def test_write_report_is_utf8_with_diacritics(tmp_path, summary):
    path = write_report(tmp_path / "report.html", summary, areas=areas_frame())
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    assert text.startswith("<!DOCTYPE html>")
    head = text[: text.index("</head>")]
    assert '<meta charset="utf-8">' in head
    assert head.index('<meta charset="utf-8">') < head.index("<title>")
    for name in DISTRICTS:
        assert name in text
        assert name.encode("utf-8") in raw  # literal UTF-8, not character references
    assert "Đà Nẵng test plan" in text


def test_write_report_refuses_to_overwrite(tmp_path, summary):
    path = tmp_path / "report.html"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_report(path, summary)
    assert path.read_text(encoding="utf-8") == "old"
    write_report(path, summary, overwrite=True)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_failed_render_leaves_no_file(tmp_path, summary):
    path = tmp_path / "out" / "report.html"
    with pytest.raises(ValueError, match="PNG"):
        write_report(path, summary, figure_png=b"not a png")
    assert not path.exists()
    assert not path.parent.exists() or not any(path.parent.iterdir())
    # an existing report survives a failed overwrite
    path.parent.mkdir(exist_ok=True)
    path.write_text("old", encoding="utf-8")
    with pytest.raises(ValueError, match="PNG"):
        write_report(path, summary, figure_png=b"not a png", overwrite=True)
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_failed_write_leaves_no_partial_file(tmp_path, summary, monkeypatch):
    path = tmp_path / "report.html"
    real = Path.write_bytes

    def half_then_fail(self, data):
        real(self, data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_report(path, summary)
    assert list(tmp_path.iterdir()) == []


def test_inputs_not_modified(summary):
    import copy

    areas, gaps, links = areas_frame(), gaps_frame(), links_frame()
    before = copy.deepcopy(summary), areas.copy(), gaps.copy(), links.copy()
    full_report(summary=summary, areas=areas, gaps=gaps, links=links)
    assert summary == before[0]
    for b, a in zip(before[1:], (areas, gaps, links), strict=True):
        assert b.equals(a)
        assert list(b.index) == list(a.index)


# ------------------------------------------------------- skipped stages, greenfield backbone
def test_skipped_stages_are_listed_with_their_reasons_escaped(summary):
    summary = dict(summary)
    summary["stages"] = {
        "backbone": {"skipped": "no layers.roads"},
        EVIL: {"skipped": EVIL_QUOTE},
    }
    out = full_report(summary=summary)
    assert "<img" not in out
    assert "<script" not in out
    assert 'id="skipped-stages"' in out
    assert "<li><strong>backbone</strong>: no layers.roads</li>" in out
    assert f"<li><strong>{html.escape(EVIL)}</strong>: {html.escape(EVIL_QUOTE)}</li>" in out
    del summary["stages"]
    assert "Skipped stages" not in full_report(summary=summary)


def test_greenfield_backbone_and_left_out_sites(summary):
    summary = dict(summary)
    bb = dict(summary["backbone"], mode="greenfield")
    bb["operators_without_fiber"] = ["Viettel", "VinaPhone", "MobiFone"]
    bb["left_out"] = [{"site_id": EVIL, "reason": "no road path to Viettel's other sites"}]
    summary["backbone"] = bb
    out = full_report(summary=summary)
    text = _Page(out).text("backbone")
    assert "Greenfield plan : no existing fibre was given, so every link is a new trench" in text
    assert "1 site cannot be connected in every plan and is left out of both" in text
    assert f"{EVIL} no road path to Viettel's other sites" in text
    assert "<img" not in out
    assert "Without any fibre to start from" not in text  # said once, as greenfield
    # with existing fibre, the section says the sites are connected to it
    summary["backbone"] = dict(bb, mode="existing fiber", left_out=[])
    text = _Page(full_report(summary=summary)).text("backbone")
    assert "to the fibre network" in text
    assert "Greenfield" not in text
    assert "left out" not in text


def test_calibration_states_the_error_to_quote(summary):
    """A cross-validated calibration gives the planner the error to quote (not the fit's)."""
    fit = {
        "n_measurements": 1530,
        "intercept_offset_db": 3.0,
        "slope_offset_db_per_decade": -1.5,
        "rmse_db_before": 21.6,
        "rmse_db_after": 13.2,
        "site_offsets_db": {"GW1": 2.0, "GW2": -1.0},
        "cv": {
            "folds": 5,
            "mode": "spatial",
            "cv_rmse_db": 30.7,
            "candidates": 40,
            "chosen": {"name": "3gpp-rma+sites(λ=64) <b>"},
        },
    }
    summary["coverage"]["parameters"]["calibration_fit"] = fit
    text = _Page(render_report(summary)).text("coverage")
    assert "RMS error 21.6 → 13.2 dB" in text
    assert "per-site offsets for 2 sites" in text
    assert (
        "Error to quote at a new place: 30.7 dB RMS, cross-validated over 5 spatial folds" in text
    )
    assert "(the best of 40 configurations: 3gpp-rma+sites(λ=64) <b>)" in text  # escaped
    assert "<b>)" not in render_report(summary)
    del fit["cv"]
    fit["validation_rmse_db"] = 9.4
    text = _Page(render_report(summary)).text("coverage")
    assert "Error to quote: 9.4 dB RMS on held-out measurements" in text
