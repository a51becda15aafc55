"""The report stage reads every output layer once: the figure draws it and the report's tables are
its attributes. Checked against reading each file the way the report did before (each table
with :func:`telcoplan.outputs.read_table`, the figure reading its layers itself)."""

from __future__ import annotations

import re

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import LineString, Point

from telcoplan import outputs
from telcoplan.report.html import TABLES, attribute_table, load_outputs, render_report
from tests.report.conftest import UTM49, X0, Y0


def test_attribute_tables_are_the_tables_read_from_the_files(demo_outputs):
    _, out = demo_outputs
    present = 0
    for name in TABLES.values():
        want = outputs.read_table(out, name)
        for arrow in (False, True):
            layer = outputs.read_layer(out, name, arrow=arrow)
            if want is None:
                assert layer is None
                continue
            pd.testing.assert_frame_equal(attribute_table(out, name, layer), want)
        present += want is not None
    assert present >= 5  # areas, gaps, pois, sites, backbone links


def test_load_outputs_from_layers_equals_reading_the_files(demo_outputs):
    summary, out = demo_outputs
    layers = {name: outputs.read_layer(out, name) for name in TABLES.values()}
    handed = load_outputs(out, summary=summary, layers=layers)
    itself = load_outputs(out, summary=summary)
    assert handed.keys() == itself.keys()
    for key in itself.keys() - {"summary"}:
        pd.testing.assert_frame_equal(handed[key], itself[key])


def test_output_layers_through_arrow_are_the_same_frames(demo_outputs):
    _, out = demo_outputs
    for name in outputs.LAYERS:
        plain = outputs.read_layer(out, name)
        arrow = outputs.read_layer(out, name, arrow=True)
        if plain is None:
            assert arrow is None
            continue
        pd.testing.assert_frame_equal(arrow, plain)
        assert arrow.crs == plain.crs


def _gaps(tmp_path, layer: str = "gaps"):
    gdf = gpd.GeoDataFrame(
        {"population": [120.0, 80.0], "gap_id": [7, 3], "area_km2": [1.5, 0.5]},
        geometry=[Point(X0, Y0).buffer(100), Point(X0 + 500, Y0).buffer(50)],
        crs=UTM49,
    )
    pyogrio.write_dataframe(gdf, tmp_path / outputs.GAPS, layer=layer)


def test_attribute_table_keeps_the_id_column_where_the_file_has_it(tmp_path):
    _gaps(tmp_path)
    layer = outputs.read_layer(tmp_path, "gaps")
    assert layer.index.name == "gap_id"  # read_layer indexes the gaps by their id
    table = attribute_table(tmp_path, "gaps", layer)
    assert list(table.columns) == ["population", "gap_id", "area_km2"]
    pd.testing.assert_frame_equal(table, outputs.read_table(tmp_path, "gaps"))


def test_attribute_table_of_a_file_whose_only_layer_has_another_name(tmp_path):
    _gaps(tmp_path, layer="holes")
    layer = outputs.read_layer(tmp_path, "gaps")  # the file's only layer
    table = attribute_table(tmp_path, "gaps", layer)
    pd.testing.assert_frame_equal(table, outputs.read_table(tmp_path, "gaps"))


@pytest.mark.parametrize("figure", [True, False])
def test_stage_writes_what_reading_each_file_writes(demo_outputs, tmp_path, figure):
    """The stage's report and figure, byte for byte, against the report written from tables
    read one by one and the figure that reads its layers itself."""
    from telcoplan.maps.static import figure_from_outputs
    from telcoplan.pipeline import read_plan
    from telcoplan.pipeline.inputs import load_inputs
    from telcoplan.pipeline.stages import report
    from telcoplan.pipeline.stages.sites import DEFAULT_COSTS
    from telcoplan.report.html import report_from_outputs

    summary, out = demo_outputs
    layers = load_inputs(read_plan(out.parent / "plan.yml")).layers()
    before = {k: v for k, v in summary.items() if k not in {"map", "report", "outputs"}}
    params = report.parse({"top_gaps": 7, "figure": figure})
    staged = report.render(out, layers, params, path=tmp_path / "a" / "report.html", summary=before)
    png = figure_from_outputs(out, layers, summary=before) if figure else None
    reference = report_from_outputs(
        out,
        tmp_path / "b" / "report.html",
        summary=before,
        figure_png=png,
        tables=load_outputs(out, summary=before),
        top_gaps=7,
        currency=params.currency,
        population_source=params.population_source,
        site_costs=DEFAULT_COSTS,
    )
    assert staged.read_bytes() == reference.read_bytes()
    assert (b"data:image/png;base64," in staged.read_bytes()) is figure
    if figure:
        assert (staged.parent / outputs.FIGURE).read_bytes() == png
    else:
        assert not (staged.parent / outputs.FIGURE).exists()


def test_joint_network_by_number_of_operators():
    """Links grouped by how many operators use them, counting the names between ';' (blank
    and missing texts: none), against sums worked out by hand."""
    texts = ["A;B;C", "A; B", "A", " A ; ;B;", "", None, "C", "A;B;C", "B;;"]
    lengths = [1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0, 64000.0, 128000.0, 256000.0]
    links = gpd.GeoDataFrame(
        {"plan": "joint", "operators": texts, "length_m": lengths, "cost": 1.0},
        geometry=[LineString([(X0, Y0), (X0 + 1, Y0)])] * len(texts),
        crs=UTM49,
    )
    links = pd.concat([links, links.assign(plan="separate", length_m=1e6)], ignore_index=True)
    page = render_report({"plan": "p"}, links=links)
    part = page[page.index("Joint network: route length") :]
    table = part[: part.index("</table>")]
    rows = re.findall(r"<tr><td>([^<]*)</td><td[^>]*>([^<]*)</td></tr>", table)
    # 0: "" and None (48 km); 1: A, C, B;; (324 km); 2: "A; B", " A ; ;B;" (10 km); 3: 129 km
    assert [r[0] for r in rows] == ["0 operators", "1 operator", "2 operators", "3 operators"]
    assert [float(r[1].split()[0].replace(",", "")) for r in rows] == [48.0, 324.0, 10.0, 129.0]
