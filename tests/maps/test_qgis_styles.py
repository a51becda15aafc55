"""QGIS styles of a run (issue 14, item 3): the demo pipeline at 500 m, as ``telcoplan run``
writes it — every GeoPackage layer's default style in ``layer_styles``, a ``.qml`` beside each
raster, ``project.qgs``.

The documents are checked against the elements QGIS reads (parsed as XML), against the run's own
data (every operator, serving site, area and link has a symbol), and, when Debian's QGIS Python
bindings are installed (``make qgis-deps``), by QGIS itself: it opens the project headless, every
layer is valid with its renderer, every feature is drawn by a category or rule, and a bare layer
opened from its file picks up the default style.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio

from telcoplan import outputs
from telcoplan.maps._style import COVERAGE_CLASSES, SITE_KIND_LABELS, site_classes
from telcoplan.outputs import operator_colours

SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The demo plan at 500 m cells, every stage: its output folder."""
    from telcoplan.demo import write_demo
    from telcoplan.pipeline import read_plan, run_plan

    folder = tmp_path_factory.mktemp("qgis-styles")
    run_plan(read_plan(write_demo(folder, resolution_m=500.0)), folder / "outputs")
    return folder / "outputs"


def _qml(text: str) -> ET.Element:
    root = ET.fromstring(text.split("\n", 1)[1] if text.startswith("<!DOCTYPE") else text)
    assert root.tag == "qgis"
    assert root.get("version", "").startswith("3.")
    return root


def _styles(gpkg: Path) -> dict[str, dict]:
    table = pyogrio.read_dataframe(gpkg, layer="layer_styles", read_geometry=False)
    assert table["f_table_name"].is_unique, "one default style per layer"
    return {r["f_table_name"]: r for r in table.to_dict("records")}


def _rgb(option_value: str) -> str:
    r, g, b, _ = (int(v) for v in option_value.split(","))
    return f"#{r:02x}{g:02x}{b:02x}"


def _symbol_colours(root: ET.Element) -> dict[str, str]:
    """Symbol name → its colour (fill, marker or line colour)."""
    out = {}
    for sym in root.iter("symbol"):
        opts = {o.get("name"): o.get("value") for o in sym.iter("Option") if o.get("name")}
        out[sym.get("name")] = _rgb(opts.get("color") or opts["line_color"])
    return out


def test_project_opens_every_output_by_relative_path(run: Path) -> None:
    root = ET.parse(run / outputs.PROJECT).getroot()
    assert root.tag == "qgis"
    assert root.get("version", "").startswith("3.")
    assert (
        root.find("projectCrs/spatialrefsys/authid").text
        == json.loads((run / outputs.SUMMARY).read_text(encoding="utf-8"))["crs"]
    )
    assert root.find("properties/Paths/Absolute").text == "false"
    layers = {m.find("id").text: m for m in root.iter("maplayer")}
    tree = list(root.find("layer-tree-group").iter("layer-tree-layer"))
    assert [t.get("id") for t in tree]
    assert {t.get("id") for t in tree} == set(layers)
    files = set()
    for lid, m in layers.items():
        for tag in ("datasource", "layername", "srs/spatialrefsys/authid", "provider"):
            assert m.find(tag) is not None, (lid, tag)
            assert m.find(tag).text, (lid, tag)
        source, provider = m.find("datasource").text, m.find("provider").text
        if provider == "wms":  # the online basemap: listed, never on by default
            assert "tile.openstreetmap.org" in source
            assert next(t for t in tree if t.get("id") == lid).get("checked") == "Qt::Unchecked"
            continue
        path, _, layer = source.partition("|layername=")
        assert path.startswith("./"), source
        assert (run / path[2:]).is_file(), source
        files.add(path[2:])
        if provider == "ogr":
            assert layer in dict(pyogrio.list_layers(run / path[2:])), source
            assert m.find("renderer-v2") is not None
        else:
            assert m.get("type") == "raster"
            assert m.find("pipe/rasterrenderer") is not None
    # every raster and every styled GeoPackage of the run is in the project
    assert {p.name for p in run.glob("*.tif")} <= files
    assert {p.name for p in run.glob("*.gpkg")} <= files


def test_every_raster_has_its_qml_beside_it(run: Path) -> None:
    for tif in run.glob("*.tif"):
        root = _qml((run / f"{tif.stem}.qml").read_text(encoding="utf-8"))
        renderer = root.find("pipe/rasterrenderer")
        expected = "singlebandpseudocolor" if tif.name.startswith("signal_") else "paletted"
        assert renderer.get("type") == expected, tif.name
    # the signal ramp spans the map's range, viridis from weak to strong
    sig = _qml(next(run.glob("signal_*.qml")).read_text(encoding="utf-8"))
    shader = sig.find("pipe/rasterrenderer/rastershader/colorrampshader")
    assert (float(shader.get("minimumValue")), float(shader.get("maximumValue"))) == (-120, -50)
    items = shader.findall("item")
    assert items[0].get("color") == "#440154"
    assert items[-1].get("color") == "#fde725"


def test_serving_site_palette_names_every_serving_site(run: Path) -> None:
    """Every value of each server raster has a palette entry labelled with the tower's site id
    (row → site id joined from the run's sites layer), in its operator's colour family."""
    sites = pyogrio.read_dataframe(run / outputs.COVERAGE, layer="sites", read_geometry=False)
    site_of = dict(zip(sites["row"], sites["site_id"].astype(str), strict=True))
    for op in sorted(sites["operator"].unique()):
        tif = run / outputs.server_file(op)
        with rasterio.open(tif) as src:
            present = set(np.unique(src.read(1)).tolist()) - {0}
        root = _qml((run / f"{tif.stem}.qml").read_text(encoding="utf-8"))
        entries = {int(e.get("value")): e.get("label") for e in root.iter("paletteEntry")}
        assert present, op
        assert present <= set(entries), op
        assert all(entries[v] == site_of[v] for v in present)
        own = set(sites.loc[sites["operator"] == op, "row"])
        assert set(entries) == own


@pytest.mark.parametrize("without", ["row", "operator", "site_id", "coverage.gpkg"])
def test_styles_of_a_folder_whose_sites_lack_a_column(run: Path, tmp_path: Path, without) -> None:
    """A folder whose sites layer lacks ``row``, ``operator`` or ``site_id`` (an older run, a
    hand-edited file), or has no coverage.gpkg beside its server rasters: styles all the same,
    each server raster with a palette or ramp (no error)."""
    import shutil

    from telcoplan.gis.vector import read_vector, write_vector_layers
    from telcoplan.maps.styles import run_styles

    folder = tmp_path / "out"
    shutil.copytree(run, folder)
    gpkg = folder / outputs.COVERAGE
    if without == "coverage.gpkg":
        gpkg.unlink()
    else:
        layers = {n: read_vector(gpkg, layer=n) for n in ("coverage", "areas", "sites")}
        layers["sites"] = layers["sites"].drop(columns=without)
        write_vector_layers(gpkg, layers, overwrite=True)
    styles = run_styles(folder)
    rasters = styles.raster_styles()
    servers = [p.name for p, _ in outputs.per_operator_rasters(folder, "server")]
    assert servers
    assert all(name in rasters for name in servers)
    if without == "site_id":  # rows still listed: labelled by their row number
        root = _qml(rasters[servers[0]])
        labels = [e.get("label") for e in root.iter("paletteEntry")]
        assert labels
        assert labels == [e.get("value") for e in root.iter("paletteEntry")]


def test_geopackage_layers_carry_their_default_style(run: Path) -> None:
    geometry_kind = {"Point": 0, "MultiPoint": 0, "LineString": 1, "MultiLineString": 1}
    for gpkg in run.glob("*.gpkg"):
        styles = _styles(gpkg)
        layers = dict(pyogrio.list_layers(gpkg))
        assert set(styles) <= set(layers)
        for layer, row in styles.items():
            assert bool(row["useAsDefault"])
            assert row["styleName"] == layer
            info = pyogrio.read_info(gpkg, layer=layer)
            assert row["f_geometry_column"] == info["geometry_name"]
            root = _qml(row["styleQML"])
            assert root.find("renderer-v2") is not None
            kind = geometry_kind.get(layers[layer], 2)
            assert int(root.find("layerGeometryType").text) == kind, (gpkg.name, layer)
    # the layers of the map are all styled
    styled = {(g.name, layer) for g in run.glob("*.gpkg") for layer in _styles(g)}
    for name, (file, layer, _) in outputs.LAYERS.items():
        if (run / file).is_file() and layer in dict(pyogrio.list_layers(run / file)):
            assert (file, layer) in styled, name


def test_operator_colours_are_the_maps(run: Path) -> None:
    towers = pyogrio.read_dataframe(run / outputs.COVERAGE, layer="sites", read_geometry=False)
    root = _qml(_styles(run / outputs.COVERAGE)["sites"]["styleQML"])
    colours = _symbol_colours(root)
    cats = {c.get("value"): colours[c.get("symbol")] for c in root.iter("category")}
    expected = operator_colours(towers["operator"])
    assert {k: v for k, v in cats.items() if k} == expected
    assert len(set(expected.values())) == len(expected)


def test_area_classes_are_the_maps_and_hold_every_area(run: Path) -> None:
    areas = pyogrio.read_dataframe(run / outputs.COVERAGE, layer="areas", read_geometry=False)
    root = _qml(_styles(run / outputs.COVERAGE)["areas"]["styleQML"])
    assert root.find("renderer-v2").get("attr") == "pct_any"
    colours = _symbol_colours(root)
    ranges = [
        (float(r.get("lower")), float(r.get("upper")), colours[r.get("symbol")])
        for r in root.iter("range")
    ]
    assert [(lo, c) for lo, _, c in ranges] == list(COVERAGE_CLASSES)
    spans = sorted((lo, hi) for lo, hi, _ in ranges)
    assert spans[0][0] == 0
    assert spans[-1][1] >= 100  # 100.00000000000001 % is full coverage too
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    for pct in areas["pct_any"].dropna():
        assert sum(lo <= pct <= hi for lo, hi in spans) >= 1


QGIS_CHECK = textwrap.dedent(
    """
    import json, os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from qgis.core import (QgsApplication, QgsExpression, QgsExpressionContext,
                           QgsExpressionContextUtils, QgsMapRendererParallelJob, QgsMapSettings,
                           QgsProject, QgsRasterLayer, QgsRenderContext, QgsRuleBasedRenderer,
                           QgsVectorLayer)
    from qgis.PyQt.QtCore import QSize
    app = QgsApplication([], False)
    app.initQgis()
    project = QgsProject.instance()
    out = {"read": project.read(sys.argv[1]), "layers": {}}
    for layer in project.mapLayers().values():
        rec = {"valid": layer.isValid(), "provider": layer.providerType(),
               "renderer": type(layer.renderer()).__name__ if layer.renderer() else None}
        if isinstance(layer, QgsVectorLayer) and layer.isValid():
            r = layer.renderer()
            if isinstance(r, QgsRuleBasedRenderer):  # every feature matches exactly one rule
                rules = [QgsExpression(x.filterExpression()) for x in r.rootRule().children()]
                ctx = QgsExpressionContext()
                ctx.appendScopes(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
                labels = [x.label() for x in r.rootRule().children()]
                wrong, matched = 0, []
                for f in layer.getFeatures():
                    ctx.setFeature(f)
                    hits = [k for k, e in enumerate(rules) if bool(e.evaluate(ctx))]
                    wrong += len(hits) != 1
                    matched.append(labels[hits[0]] if hits else None)
                rec["matched"] = matched
                rec["hidden_rules"] = sum(not x.active() for x in r.rootRule().children())
            else:  # every feature is drawn by a category or range
                ctx = QgsRenderContext()
                r = r.clone()
                r.startRender(ctx, layer.fields())
                wrong = sum(not r.willRenderFeature(f, ctx) for f in layer.getFeatures())
                r.stopRender(ctx)
            rec |= {"features": layer.featureCount(), "undrawn": wrong}
        out["layers"][layer.name()] = rec
    folder = os.path.dirname(sys.argv[1])
    bare = QgsVectorLayer(os.path.join(folder, "gaps.gpkg|layername=gaps"), "bare", "ogr")
    out["bare_vector"] = type(bare.renderer()).__name__
    tif = sorted(p for p in os.listdir(folder) if p.startswith("signal_") and p.endswith(".tif"))[0]
    raster = QgsRasterLayer(os.path.join(folder, tif), "bare")
    out["bare_raster"] = raster.renderer().type()
    checked = [l for l in project.layerTreeRoot().checkedLayers() if l.providerType() != "wms"]
    settings = QgsMapSettings()
    settings.setLayers(checked)
    settings.setOutputSize(QSize(400, 300))
    settings.setDestinationCrs(project.crs())
    settings.setExtent(checked[-1].extent())
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    out["render_errors"] = [e.message for e in job.errors()]
    print(json.dumps(out))
    sys.stdout.flush()
    os._exit(0)  # QGIS 3.22 may crash on exit after a headless run
    """
)


def _has_qgis() -> bool:
    if not SYSTEM_PYTHON.is_file():
        return False
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import qgis.core"], capture_output=True, timeout=120
    )
    return probe.returncode == 0


def test_qgis_opens_the_project_headless(run: Path, tmp_path: Path) -> None:
    if os.environ.get("TELCOPLAN_SKIP_QGIS"):
        pytest.skip("TELCOPLAN_SKIP_QGIS is set")
    if not _has_qgis():
        if os.environ.get("CI"):
            pytest.fail("QGIS's Python bindings are missing in CI: `make qgis-deps` installs them")
        pytest.skip("Debian's QGIS Python bindings are not installed (make qgis-deps)")
    script = tmp_path / "check.py"
    script.write_text(QGIS_CHECK, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in {"PROJ_DATA", "PROJ_LIB"}}
    env |= {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path)}
    done = subprocess.run(
        [str(SYSTEM_PYTHON), str(script), str(run / outputs.PROJECT)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["read"]
    layers = got["layers"]
    root = ET.parse(run / outputs.PROJECT).getroot()
    assert set(layers) == {m.find("layername").text for m in root.iter("maplayer")}
    for name, rec in layers.items():
        assert rec["valid"], name
        if rec["provider"] == "ogr":
            assert rec["renderer"] in {
                "QgsCategorizedSymbolRenderer",
                "QgsGraduatedSymbolRenderer",
                "QgsRuleBasedRenderer",
            }, name
            assert rec["features"] > 0, name
            assert rec["undrawn"] == 0, (name, rec)
        elif rec["provider"] == "gdal":
            assert rec["renderer"] in {
                "QgsPalettedRasterRenderer",
                "QgsSingleBandPseudoColorRenderer",
            }, name
    # proposed sites in the web map's classes
    sites = pyogrio.read_dataframe(run / outputs.SITES, layer="sites", read_geometry=False)
    expected = [SITE_KIND_LABELS.get(c, "other") for c in site_classes(sites)]
    assert layers["Proposed sites"]["matched"] == expected
    assert len(set(expected)) > 1
    # the backbone's separate plans are listed but unchecked, as on the web map
    assert layers["Backbone links"]["hidden_rules"] > 0
    assert got["bare_vector"] == "QgsCategorizedSymbolRenderer"  # from layer_styles
    assert got["bare_raster"] == "singlebandpseudocolor"  # from the .qml beside it
    assert got["render_errors"] == []
