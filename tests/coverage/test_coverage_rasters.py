"""The coverage stage's raster outputs against an independent numpy computation.

``signal_<operator>.tif``, ``server_<operator>.tif``, ``operators_count.tif`` and, with
``per_technology: true``, ``signal_<operator>-<technology>.tif`` (issue 3, item 4; README
"Outputs"). The truth is computed here cell by cell from the documented convention: received
power P = EIRP − L_hata(d) (omni antennas, flat earth, d = horizontal distance from the tower to
the cell centre, nothing beyond the maximum radius); the serving tower of an operator is the one
with the largest margin P − P_thr(technology), where P_thr = threshold − offset(technology) and
the offsets are 2G 0 dB, 3G −10 dB, 4G −10 log10(1200) dB; a cell is covered when that margin
is ≥ 0.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import Point, box

from telcoplan.cli import cli
from telcoplan.coverage import path_loss
from telcoplan.gis.vector import read_vector, write_vector
from telcoplan.pipeline import read_plan, run_plan

UTM49 = "EPSG:32649"
#: Lower-left corner of the study area (a multiple of the resolution: the grid starts there).
X0, Y0 = 830_000.0, 1_775_000.0
SIDE_M, RES_M = 30_000.0, 100.0
#: 300 x 300 cells: more than one 256-cell COG block, so GDAL must write an overview.
SHAPE = (300, 300)
#: The plan grid, derived by hand: origin at the areas' upper-left corner, 100 m cells.
TRANSFORM = Affine(RES_M, 0.0, X0, 0.0, -RES_M, Y0 + SIDE_M)
RADIUS_KM = 3.03
H_RX_M = 1.5
#: Thresholds of the plan (each technology's own metric, dBm) and the documented defaults.
PLAN_THRESHOLDS = {"2G": -80.0, "3G": -85.0, "4G": -103.0}
DEFAULT_THRESHOLDS = {"2G": -95.0, "3G": -100.0, "4G": -105.0}
#: Offset of each technology's metric from total power (README, "Signal convention").
METRIC_OFFSET = {"2G": 0.0, "3G": -10.0, "4G": -10.0 * math.log10(12 * 100)}
TOL_DB = 0.01


def _towers() -> gpd.GeoDataFrame:
    """Six omni 900 MHz towers of three operators; Alpha has 4G and 2G, the others one each.

    No tower stands on a cell centre; C-3G-2 is far from the rest, so one corner is covered by
    Gamma alone and the grid's corners are beyond every tower's radius.
    """
    return gpd.GeoDataFrame(
        {
            "site_id": ["A-4G-1", "A-4G-2", "A-2G-1", "B-2G-1", "C-3G-1", "C-3G-2"],
            "operator": ["Alpha Telecom"] * 3 + ["Beta", "Gamma", "Gamma"],
            "technology": ["4G", "4G", "2G", "2G", "3G", "3G"],
            "frequency_mhz": [900.0] * 6,
            "height_m": [30.0, 40.0, 35.0, 30.0, 45.0, 30.0],
            "eirp_dbm": [60.0, 63.0, 58.0, 55.0, 61.0, 59.0],
        },
        geometry=[
            Point(X0 + 10_020, Y0 + 10_030),
            Point(X0 + 12_520, Y0 + 11_030),
            Point(X0 + 11_010, Y0 + 8_970),
            Point(X0 + 11_020, Y0 + 10_530),
            Point(X0 + 10_510, Y0 + 11_540),
            Point(X0 + 21_030, Y0 + 21_020),
        ],
        crs=UTM49,
    )


SLUGS = {"Alpha Telecom": "alpha-telecom", "Beta": "beta", "Gamma": "gamma"}


def _reference(towers: gpd.GeoDataFrame, thresholds: dict[str, float]) -> dict[str, dict]:
    """Per operator: power (dBm, NaN out of reach), serving site id, margin, technology power.

    Brute force over every tower and every cell, with the public ``path_loss`` on the
    cell-centre distance; ``tie`` marks cells where the two best margins are within 0.05 dB.
    """
    rows, cols = np.indices(SHAPE)
    xc = X0 + (cols + 0.5) * RES_M
    yc = Y0 + SIDE_M - (rows + 0.5) * RES_M
    out: dict[str, dict] = {}
    for op, sel in towers.groupby("operator"):
        power, margin = [], []
        for _, t in sel.iterrows():
            d_m = np.hypot(xc - t.geometry.x, yc - t.geometry.y)
            # no cell centre on a radius: the reach cannot depend on rounding
            assert np.abs(d_m - RADIUS_KM * 1000).min() > 1e-3
            loss = path_loss(
                "hata",
                freq_mhz=t["frequency_mhz"],
                distance_km=d_m / 1000.0,
                h_tx_m=t["height_m"],
                h_rx_m=H_RX_M,
                environment="urban",
                validity="ignore",
                check_distance=False,
            )
            p = np.where(d_m <= RADIUS_KM * 1000, t["eirp_dbm"] - loss, -np.inf)
            power.append(p)
            p_thr = thresholds[t["technology"]] - METRIC_OFFSET[t["technology"]]
            margin.append(p - p_thr)
        power, margin = np.array(power), np.array(margin)
        best = np.argmax(margin, axis=0)
        top = np.take_along_axis(margin, best[None], 0)[0]
        reached = np.isfinite(top)
        # every reached cell is far above the stage's −60 dB margin floor: NaN only by distance
        assert top[reached].min() > -50.0
        finite = np.where(np.isfinite(margin), margin, -1e9)
        second = np.sort(finite, axis=0)[-2] if len(sel) > 1 else np.full(SHAPE, -1e9)
        site = np.where(reached, sel["site_id"].to_numpy()[best], None)
        techs = {}
        for tech in sel["technology"].unique():
            best_tech = power[(sel["technology"] == tech).to_numpy()].max(axis=0)
            techs[tech] = np.where(np.isfinite(best_tech), best_tech, np.nan)
        out[op] = {
            "power": np.where(reached, np.take_along_axis(power, best[None], 0)[0], np.nan),
            "margin": np.where(reached, top, np.nan),
            "site": site,
            "tie": reached & (np.where(reached, top, 0.0) - second < 0.05),
            "technology_power": techs,
        }
    return out


def _write_inputs(folder) -> None:
    (folder / "inputs").mkdir(parents=True)
    areas = gpd.GeoDataFrame(
        {"name": ["study"], "population": [10_000.0]},
        geometry=[box(X0, Y0, X0 + SIDE_M, Y0 + SIDE_M)],
        crs=UTM49,
    )
    write_vector(folder / "inputs" / "areas.gpkg", areas)
    write_vector(folder / "inputs" / "towers.gpkg", _towers())


@pytest.fixture(scope="module")
def plan_out(tmp_path_factory):
    """Output folder of a plan run: Hata urban, R = 3.03 km, PLAN_THRESHOLDS, per technology."""
    folder = tmp_path_factory.mktemp("rasters")
    _write_inputs(folder)
    doc = {
        "name": "raster outputs",
        "resolution_m": RES_M,
        "layers": {"areas": "inputs/areas.gpkg", "towers": "inputs/towers.gpkg"},
        "stages": {
            "coverage": {
                "model": "hata",
                "environment": "urban",
                "h_rx_m": H_RX_M,
                "max_radius_km": RADIUS_KM,
                "thresholds_dbm": PLAN_THRESHOLDS,
                "per_technology": True,
            },
            # the stages after coverage are not what this file checks (the sites stage alone
            # would take most of its time: HiGHS proving its selection optimal)
            "gaps": False,
            "sites": False,
            "backbone": False,
            "map": False,
            "report": False,
        },
    }
    (folder / "plan.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    run_plan(read_plan(folder / "plan.yml"), folder / "out")
    return folder / "out"


@pytest.fixture(scope="module")
def reference():
    return _reference(_towers(), PLAN_THRESHOLDS)


def _read(path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


def _sites(out) -> dict[int, tuple[str, str, str]]:
    """Row of coverage.gpkg layer ``sites`` → (site_id, operator, technology)."""
    sites = read_vector(out / "coverage.gpkg", layer="sites")
    # the ``row`` column is the feature's 1-based position in the layer
    assert list(sites["row"]) == list(range(1, len(sites) + 1))
    return {
        int(r): (s, o, t)
        for r, s, o, t in zip(
            sites["row"], sites["site_id"], sites["operator"], sites["technology"], strict=True
        )
    }


def _technology_files(out) -> list[str]:
    """Names of the signal rasters that are not an operator's ``signal_<operator>.tif``."""
    operators = {f"signal_{name}.tif" for name in SLUGS.values()}
    return sorted(p.name for p in out.glob("signal_*.tif") if p.name not in operators)


def _assert_cog(src, dtype: str) -> None:
    """A tiled, compressed GeoTIFF with overviews, IFDs before the data (GDAL's COG layout)."""
    assert src.driver == "GTiff"
    assert src.dtypes[0] == dtype
    assert src.profile["tiled"] is True
    assert src.profile["blockxsize"] == src.profile["blockysize"] == 256
    assert src.overviews(1) == [2]
    assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    # the ghost header GDAL's COG driver writes right after the 8-byte TIFF header
    with open(src.name, "rb") as f:
        head = f.read(400)
    assert head[:4] in (b"II*\x00", b"MM\x00*")
    assert b"GDAL_STRUCTURAL_METADATA_SIZE" in head
    assert b"LAYOUT=IFDS_BEFORE_DATA" in head
    assert b"BLOCK_ORDER=ROW_MAJOR" in head


def _assert_on_grid(src) -> None:
    assert src.crs.to_epsg() == 32649
    assert src.transform == TRANSFORM
    assert (src.height, src.width) == SHAPE


@pytest.mark.parametrize("op", list(SLUGS))
def test_signal_raster_is_a_cog_on_the_plan_grid(plan_out, op):
    with rasterio.open(plan_out / f"signal_{SLUGS[op]}.tif") as src:
        _assert_cog(src, "float32")
        _assert_on_grid(src)
        assert math.isnan(src.nodata)
        assert src.tags()["operator"] == op


@pytest.mark.parametrize("op", list(SLUGS))
def test_signal_equals_eirp_minus_hata_loss(plan_out, reference, op):
    ref = reference[op]
    got = _read(plan_out / f"signal_{SLUGS[op]}.tif").astype(np.float64)
    # NaN exactly where no tower of the operator is within its radius
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref["power"]))
    # the corners are beyond every radius
    assert np.isnan(got[0, 0])
    assert np.isnan(got[-1, -1])
    ok = np.isfinite(ref["power"]) & ~ref["tie"]
    assert ok.sum() > 1000
    np.testing.assert_allclose(got[ok], ref["power"][ok], rtol=0, atol=TOL_DB)


def test_signal_next_to_a_tower_by_hand(plan_out):
    """The cell holding A-4G-2 (row 189, col 125: its centre is 30 m east, 20 m north of it)."""
    got = _read(plan_out / "signal_alpha-telecom.tif")
    d_km = math.hypot(30.0, 20.0) / 1000.0
    loss = path_loss(
        "hata", freq_mhz=900.0, distance_km=d_km, h_tx_m=40.0, validity="ignore",
        check_distance=False,
    )  # fmt: skip
    assert got[189, 125] == pytest.approx(63.0 - float(loss), abs=TOL_DB)
    # and a cell 2.5 km due north of C-3G-2 (row 64, col 210) served by it alone
    gamma = _read(plan_out / "signal_gamma.tif")
    d_km = math.hypot(20.0, 2530.0) / 1000.0
    loss = path_loss("hata", freq_mhz=900.0, distance_km=d_km, h_tx_m=30.0, validity="ignore")
    assert gamma[64, 210] == pytest.approx(59.0 - float(loss), abs=TOL_DB)
    # 3.2 km from C-3G-2 and farther from every other tower: no signal
    assert np.isnan(gamma[58, 210])


@pytest.mark.parametrize("op", list(SLUGS))
def test_server_raster_points_to_the_best_site(plan_out, reference, op):
    ref = reference[op]
    path = plan_out / f"server_{SLUGS[op]}.tif"
    with rasterio.open(path) as src:
        _assert_cog(src, "int32")
        _assert_on_grid(src)
        assert src.nodata == 0
        assert "1-based row of coverage.gpkg layer 'sites'" in src.tags()["units"]
        server = src.read(1)
    signal = _read(plan_out / f"signal_{SLUGS[op]}.tif")
    # 0 = no server, exactly where there is no signal
    np.testing.assert_array_equal(server == 0, np.isnan(signal))
    sites = _sites(plan_out)
    assert set(np.unique(server[server > 0])) <= set(sites)
    pointed = {int(v): sites[int(v)] for v in np.unique(server[server > 0])}
    assert all(operator == op for _, operator, _ in pointed.values())
    ok = np.isfinite(ref["power"]) & ~ref["tie"]
    got_site = np.array([pointed[int(v)][0] for v in server[ok]])
    np.testing.assert_array_equal(got_site, ref["site"][ok].astype(str))
    # every site of the operator serves somewhere
    assert {s for s, _, _ in pointed.values()} == set(ref["site"][ok])
    # the raster attribute table beside it names the site of every value it can hold
    from telcoplan.gis.raster import read_attribute_table

    table = read_attribute_table(path)
    mine = {row: sid for row, (sid, operator, _) in sites.items() if operator == op}
    assert {v: t["site_id"] for v, t in table.items()} == mine
    assert all(table[row]["technology"] == sites[row][2] for row in mine)


def test_operators_count_from_the_signal_rasters(plan_out):
    """Count = operators whose serving carrier meets its technology's threshold (numpy)."""
    sites = _sites(plan_out)
    count = np.zeros(SHAPE, dtype=np.int64)
    for name in SLUGS.values():
        signal = _read(plan_out / f"signal_{name}.tif").astype(np.float64)
        server = _read(plan_out / f"server_{name}.tif")
        p_thr = np.full(SHAPE, np.inf)
        for row, (_, _, tech) in sites.items():
            p_thr[server == row] = PLAN_THRESHOLDS[tech] - METRIC_OFFSET[tech]
        count += np.nan_to_num(signal, nan=-np.inf) >= p_thr
    with rasterio.open(plan_out / "operators_count.tif") as src:
        _assert_cog(src, "uint8")
        _assert_on_grid(src)
        got = src.read(1)
    np.testing.assert_array_equal(got, count)
    assert set(np.unique(got)) == {0, 1, 2, 3}


def test_operators_count_against_reference_margins(plan_out, reference):
    """The same count from the independent margins (ties and threshold edges left out)."""
    got = _read(plan_out / "operators_count.tif")
    margins = np.array([reference[op]["margin"] for op in SLUGS])
    expected = (np.nan_to_num(margins, nan=-np.inf) >= 0).sum(axis=0)
    clear = np.all(np.isnan(margins) | (np.abs(margins) > TOL_DB), axis=0)
    assert clear.mean() > 0.99
    np.testing.assert_array_equal(got[clear], expected[clear])


def test_per_technology_rasters(plan_out, reference):
    names = _technology_files(plan_out)
    assert names == [
        "signal_alpha-telecom-2g.tif",
        "signal_alpha-telecom-4g.tif",
        "signal_beta-2g.tif",
        "signal_gamma-3g.tif",
    ]
    tech_rasters = {}
    for name in names:
        slug_tech = name.removeprefix("signal_").removesuffix(".tif")
        op = next(o for o, s in SLUGS.items() if slug_tech.startswith(s + "-"))
        tech = slug_tech.removeprefix(SLUGS[op] + "-").upper()
        with rasterio.open(plan_out / name) as src:
            _assert_cog(src, "float32")
            _assert_on_grid(src)
            assert src.tags()["operator"] == op
            assert src.tags()["technology"] == tech
            got = src.read(1).astype(np.float64)
        ref = reference[op]["technology_power"][tech]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        ok = np.isfinite(ref)
        np.testing.assert_allclose(got[ok], ref[ok], rtol=0, atol=TOL_DB)
        tech_rasters.setdefault(op, {})[tech] = got

    for op, name in SLUGS.items():
        signal = _read(plan_out / f"signal_{name}.tif").astype(np.float64)
        techs = tech_rasters[op]
        best_power = np.fmax.reduce(np.array(list(techs.values())), axis=0)
        # same reach as the operator's raster, and never below the serving carrier
        np.testing.assert_array_equal(np.isnan(best_power), np.isnan(signal))
        ok = np.isfinite(signal)
        assert np.all(signal[ok] <= best_power[ok] + TOL_DB)
        if len(techs) == 1:
            # one technology: the operator's raster is that technology's raster
            np.testing.assert_allclose(signal[ok], best_power[ok], rtol=0, atol=TOL_DB)
            continue
        # several: the serving carrier is the technology with the best margin (not the
        # strongest power: a 2G carrier 7.8 dB weaker than a 4G one still serves here)
        margin = np.array(
            [
                np.nan_to_num(techs[t], nan=-np.inf) - (PLAN_THRESHOLDS[t] - METRIC_OFFSET[t])
                for t in techs
            ]
        )
        by_margin = np.take_along_axis(
            np.array(list(techs.values())), np.argmax(margin, axis=0)[None], 0
        )[0]
        clear = ok & ~reference[op]["tie"]
        np.testing.assert_allclose(signal[clear], by_margin[clear], rtol=0, atol=TOL_DB)
        assert (signal[clear] < best_power[clear] - 1.0).sum() > 100


def test_coverage_command_writes_the_same_rasters(tmp_path):
    """``telcoplan coverage`` with the documented default thresholds; no per-technology files."""
    _write_inputs(tmp_path)
    out = tmp_path / "cov"
    res = CliRunner().invoke(
        cli,
        [
            "coverage",
            "--towers", str(tmp_path / "inputs" / "towers.gpkg"),
            "--area", str(tmp_path / "inputs" / "areas.gpkg"),
            "--resolution", str(RES_M),
            "--model", "hata",
            "--max-radius-km", str(RADIUS_KM),
            "--out", str(out),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not _technology_files(out)
    reference = _reference(_towers(), DEFAULT_THRESHOLDS)
    sites = _sites(out)
    margins = []
    for op, name in SLUGS.items():
        ref = reference[op]
        with rasterio.open(out / f"signal_{name}.tif") as src:
            _assert_cog(src, "float32")
            _assert_on_grid(src)
            signal = src.read(1).astype(np.float64)
        server = _read(out / f"server_{name}.tif")
        np.testing.assert_array_equal(np.isnan(signal), np.isnan(ref["power"]))
        np.testing.assert_array_equal(server == 0, np.isnan(signal))
        ok = np.isfinite(ref["power"]) & ~ref["tie"]
        np.testing.assert_allclose(signal[ok], ref["power"][ok], rtol=0, atol=TOL_DB)
        got_site = np.array([sites[int(v)][0] for v in server[ok]])
        np.testing.assert_array_equal(got_site, ref["site"][ok].astype(str))
        margins.append(ref["margin"])
    margins = np.array(margins)
    clear = np.all(np.isnan(margins) | (np.abs(margins) > TOL_DB), axis=0)
    expected = (np.nan_to_num(margins, nan=-np.inf) >= 0).sum(axis=0)
    np.testing.assert_array_equal(_read(out / "operators_count.tif")[clear], expected[clear])
