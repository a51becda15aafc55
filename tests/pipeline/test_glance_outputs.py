"""The gaps stage's accounts of a real run (the demo at 500 m), checked against the run's own
rasters on disk and the coverage stage's area table — not against the code that wrote them
(issue 15):

- persons not covered = in the ranked gaps + scattered (pockets under ``min_population``
  persons, cells under ``min_density_per_km2``), recomputed from ``operators_count.tif`` and
  the plan's population grid with scipy;
- each POI's level in its serving technology's metric (RSRP for 4G, …), its requirement in
  the same metric and the margin, recomputed from ``signal_<op>.tif``, ``server_<op>.tif``
  and the coverage layer ``sites``, with the metric offsets from their definitions;
- the report shows those numbers, and its parts add up.
"""

from __future__ import annotations

import math
import re

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.transform import rowcol
from scipy import ndimage

from telcoplan import outputs
from tests.report.test_glance import _dbm, _Tables

pytestmark = pytest.mark.slow

#: Offset of each technology's metric from total received power (dB): 2G RxLev is the BCCH
#: carrier's power; 3G CPICH ≈ 10 % of the carrier; 4G RSRP is one of 12 × 100 resource
#: elements (20 MHz); 5G SS-RSRP one of 12 × 273 (100 MHz at 30 kHz).
OFFSET_DB = {
    "2G": 0.0,
    "3G": -10.0,
    "4G": -10 * math.log10(12 * 100),
    "5G": -10 * math.log10(12 * 273),
}
METRIC = {"2G": "RxLev", "3G": "RSCP", "4G": "RSRP", "5G": "SS-RSRP"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The demo plan at 500 m cells, every stage: (plan, summary, output folder)."""
    from telcoplan.demo import write_demo
    from telcoplan.pipeline import read_plan, run_plan

    folder = tmp_path_factory.mktemp("glance")
    plan = read_plan(write_demo(folder, resolution_m=500.0))
    out = folder / "outputs"
    return plan, run_plan(plan, out), out


@pytest.fixture(scope="module")
def population(run) -> np.ndarray:
    """Persons per cell of the plan's grid (the plan's input, as every stage reads it)."""
    from telcoplan.pipeline.inputs import load_inputs

    return np.nan_to_num(load_inputs(run[0]).population)


def test_not_covered_is_in_gaps_plus_scattered(run, population) -> None:
    _, summary, out = run
    nc = summary["gaps"]["not_covered"]
    min_pop = nc["small_pockets"]["below_persons"]
    min_density = nc["sparse_cells"]["below_persons_per_km2"]
    assert (min_pop, min_density) == (10.0, 10.0)  # the gaps stage's defaults
    with rasterio.open(out / outputs.OPERATORS_COUNT) as src:
        count = src.read(1)
        cell_km2 = abs(src.transform.a * src.transform.e) / 1e6
    pop = population
    uncovered = (count == 0) & (pop > 0)
    sparse = uncovered & (pop < min_density * cell_km2)
    dense = uncovered & ~sparse
    labels, n = ndimage.label(dense, structure=np.ones((3, 3)))
    persons = np.asarray(ndimage.sum(pop, labels, np.arange(1, n + 1)))
    ranked = persons >= min_pop
    gaps = gpd.read_file(out / outputs.GAPS, layer="gaps")
    # the ranked gaps are the regions that pass both rules
    assert len(gaps) == int(ranked.sum()) == summary["gaps"]["count"] == nc["in_gaps"]["count"]
    assert gaps["population"].sum() == pytest.approx(persons[ranked].sum(), abs=0.01)
    # the rest, counted and summed
    assert nc["small_pockets"]["count"] == int((~ranked).sum())
    assert nc["small_pockets"]["population"] == pytest.approx(persons[~ranked].sum(), abs=0.06)
    assert nc["sparse_cells"]["count"] == int(sparse.sum())
    assert nc["sparse_cells"]["population"] == pytest.approx(pop[sparse].sum(), abs=0.06)
    assert nc["population"] == pytest.approx(pop[uncovered].sum(), abs=0.06)
    # the coverage stage's area table (zonal sums) says the same total
    areas = gpd.read_file(out / outputs.COVERAGE, layer="areas")
    assert summary["population_outside_areas"] == 0
    assert areas["uncovered_any"].sum() == pytest.approx(nc["population"], abs=0.5)
    assert nc["population"] > nc["in_gaps"]["population"] > 0  # something is scattered

    # the report: the same numbers, whole persons that add up
    report = (out / outputs.REPORT).read_text(encoding="utf-8")
    table = next(t for t in _Tables(report).tables if t["head"] == ["", "Count", "Persons"])
    shown = [int(r[2].replace(",", "")) for r in table["rows"]]
    *parts, total = shown
    assert sum(parts) == total == round(pop[uncovered].sum())
    truth = [persons[ranked].sum(), persons[~ranked].sum(), pop[sparse].sum()]
    for got, exact in zip(parts, truth, strict=True):
        assert abs(got - exact) < 1.1  # whole persons from the summary's 0.1 roundings
    counts = [r[1] for r in table["rows"][:3]]
    assert counts[0].startswith(f"{len(gaps):,} gap")
    assert counts[1].startswith(f"{int((~ranked).sum()):,} pocket")
    assert counts[2].startswith(f"{int(sparse.sum()):,} cell")
    areas_row = re.search(r"Not covered: ([\d,]+) persons = ([\d,]+) in ([\d,]+) ranked", report)
    assert areas_row.groups() == (f"{total:,}", f"{parts[0]:,}", f"{len(gaps):,}")


def _raster_levels(summary: dict, out, pois: gpd.GeoDataFrame) -> dict[str, np.ndarray]:
    """Per POI, from the rasters on disk: the best margin over the operators of (level in the
    serving tower's metric − requirement in that metric), with that operator's technology,
    level and requirement."""
    sites = gpd.read_file(out / outputs.COVERAGE, layer="sites")
    tech_of_row = dict(
        zip(sites["row"].astype(int), sites["technology"].astype(str).str.upper(), strict=True)
    )
    thr = summary["coverage"]["parameters"]["thresholds"]
    indoor = thr["indoor_margin_db"] if thr["indoor"] else 0.0
    threshold = {t: v + indoor for t, v in thr["threshold_dbm"].items()}
    required = pois["required_dbm"].to_numpy(dtype=float)
    xs, ys = pois.geometry.x.to_numpy(), pois.geometry.y.to_numpy()
    n = len(pois)
    best = {
        "margin": np.full(n, -np.inf),
        "level": np.full(n, np.nan),
        "need": np.full(n, np.nan),
        "tech": np.full(n, None, dtype=object),
        "op": np.full(n, None, dtype=object),
    }
    for op in summary["backbone"]["share_proportional"]:
        with (
            rasterio.open(out / outputs.signal_file(op)) as sig,
            rasterio.open(out / outputs.server_file(op)) as srv,
        ):
            rows, cols = (np.asarray(v) for v in rowcol(sig.transform, xs, ys))
            inside = (rows >= 0) & (rows < sig.height) & (cols >= 0) & (cols < sig.width)
            rows, cols = np.where(inside, rows, 0), np.where(inside, cols, 0)
            power = np.where(inside, sig.read(1)[rows, cols].astype(float), np.nan)
            server = np.where(inside, srv.read(1)[rows, cols], 0)
        for j in range(n):
            if server[j] <= 0 or not np.isfinite(power[j]):
                continue
            tech = tech_of_row[int(server[j])]
            level = power[j] + OFFSET_DB[tech]
            need = required[j] if np.isfinite(required[j]) else threshold[tech]
            if level - need > best["margin"][j]:
                for k, v in (("margin", level - need), ("level", level), ("need", need)):
                    best[k][j] = v
                best["tech"][j], best["op"][j] = tech, op
    best["margin"][~np.isfinite(best["margin"])] = np.nan
    return best


def test_poi_levels_are_in_the_requirements_metric(run) -> None:
    _, summary, out = run
    pois = gpd.read_file(out / outputs.GAPS, layer="pois")
    truth = _raster_levels(summary, out, pois)
    has = np.isfinite(truth["margin"])
    np.testing.assert_allclose(pois["margin_db"].to_numpy(dtype=float), truth["margin"], atol=0.01)
    np.testing.assert_allclose(pois["level_dbm"].to_numpy(dtype=float), truth["level"], atol=0.01)
    np.testing.assert_allclose(
        pois["required_level_dbm"].to_numpy(dtype=float)[has], truth["need"][has], atol=1e-6
    )
    assert list(pois["level_technology"].where(has, None)) == list(truth["tech"])
    assert list(pois["level_operator"].where(has, None)) == list(truth["op"])
    assert all(
        m == METRIC[t] for m, t in zip(pois["level_metric"][has], truth["tech"][has], strict=True)
    )
    # served exactly when the best margin is ≥ 0 (the coverage package's own check)
    assert list(pois["served"]) == list(np.nan_to_num(truth["margin"], nan=-1.0) >= 0)
    unserved = pois[~pois["served"]]
    assert len(unserved) > 0
    # in the report: the layer's figures, level and requirement in the same metric
    report = (out / outputs.REPORT).read_text(encoding="utf-8")
    table = _Tables(report).one("unserved-pois")
    head = table["head"]
    rows = {r[0]: r for r in table["rows"]}
    assert set(rows) == set(unserved["poi_id"])
    for _, p in unserved.iterrows():
        row = rows[p["poi_id"]]
        level = _dbm(row[head.index("Best level")])
        need = _dbm(row[head.index("Required (same metric)")])
        if np.isfinite(p["level_dbm"]):
            assert level == (round(p["level_dbm"], 1), p["level_metric"])
            assert need == (round(p["required_level_dbm"], 1), p["level_metric"])
            assert row[head.index("Margin (best − required)")] == f"{p['margin_db']:.1f} dB"
        else:
            assert level is None
            assert row[3] == "no signal"
