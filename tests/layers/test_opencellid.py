"""Tests of the OpenCelliD importer (telcoplan.layers.opencellid).

Every fixture is a tiny synthetic CSV or frame built here. Cell positions are given as
offsets in metres east / north of a point in Hải Châu, Đà Nẵng, in UTM zone 49N (EPSG:32649,
the zone the importer picks for Đà Nẵng), so expected distances are exact.
"""

from __future__ import annotations

import gzip
import itertools
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from telcoplan.errors import InputFileError, LayerValidationError
from telcoplan.layers._cell_sites import single_linkage
from telcoplan.layers.opencellid import (
    DEFAULT_EIRP_DBM,
    DEFAULT_FREQUENCY_MHZ,
    DEFAULT_HEIGHT_M,
    DEFAULT_SITE_RADIUS_M,
    OPENCELLID_COLUMNS,
    ImportDefaults,
    cells_to_sites,
    load_operator_table,
    read_opencellid_csv,
)
from telcoplan.layers.schemas import TOWERS

BASE_LONLAT = (108.2208, 16.0544)
UTM = "EPSG:32649"
_TO_UTM = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
_TO_LONLAT = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
X0, Y0 = _TO_UTM.transform(*BASE_LONLAT)


def lonlat(east_m: float, north_m: float) -> tuple[float, float]:
    """Longitude / latitude (°) of the point ``east_m``, ``north_m`` metres from the base."""
    lon, lat = _TO_LONLAT.transform(X0 + east_m, Y0 + north_m)
    return float(lon), float(lat)


def metres(geometry: gpd.GeoSeries) -> np.ndarray:
    """(east, north) offsets in metres from the base of EPSG:4326 points."""
    x, y = _TO_UTM.transform(geometry.x.to_numpy(), geometry.y.to_numpy())
    return np.column_stack([np.asarray(x) - X0, np.asarray(y) - Y0])


def cell(
    east: float = 0.0,
    north: float = 0.0,
    *,
    radio: str = "LTE",
    mcc: int = 452,
    net: int = 4,
    area: int = 10521,
    cell_id: int = 1,
    samples: int = 5,
) -> dict[str, object]:
    """One OpenCelliD cell record (all 14 columns)."""
    lon, lat = lonlat(east, north)
    return {
        "radio": radio,
        "mcc": mcc,
        "net": net,
        "area": area,
        "cell": cell_id,
        "unit": 150,
        "lon": lon,
        "lat": lat,
        "range": 1000,
        "samples": samples,
        "changeable": 1,
        "created": 1459813904,
        "updated": 1611843125,
        "averageSignal": 0,
    }


def cells_frame(*records: dict[str, object]) -> pd.DataFrame:
    """Cells as :func:`read_opencellid_csv` returns them (typed columns)."""
    frame = pd.DataFrame(list(records), columns=list(OPENCELLID_COLUMNS))
    return frame.astype(dict.fromkeys(("mcc", "net", "area", "cell", "samples"), "int64"))


def write_csv(path: Path, records: list[dict[str, object]], *, header: bool) -> Path:
    """Write OpenCelliD-format lines (full float precision) to ``path``."""
    lines = [",".join(OPENCELLID_COLUMNS)] if header else []
    lines += [
        ",".join(repr(r[c]) if isinstance(r[c], float) else str(r[c]) for c in OPENCELLID_COLUMNS)
        for r in records
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def triangle_and_far_cell() -> list[dict[str, object]]:
    """Three Viettel LTE cells on a 20 m equilateral triangle, and one 500 m east."""
    h = 20.0 * np.sqrt(3.0) / 2.0
    return [
        cell(0.0, 0.0, cell_id=11),
        cell(20.0, 0.0, cell_id=12),
        cell(10.0, h, cell_id=13),
        cell(500.0, 0.0, cell_id=21),
    ]


# ----------------------------------------------------------------------------- reading
def test_header_and_headerless_files_parse_identically(tmp_path: Path) -> None:
    records = [
        *triangle_and_far_cell(),
        cell(radio="GSM", net=1, area=105, cell_id=2611, samples=0),
    ]
    with_header = read_opencellid_csv(write_csv(tmp_path / "h.csv", records, header=True))
    headerless = read_opencellid_csv(write_csv(tmp_path / "n.csv", records, header=False))
    pd.testing.assert_frame_equal(with_header, headerless)
    assert list(headerless.columns) == list(OPENCELLID_COLUMNS)
    assert len(headerless) == 5
    assert headerless["mcc"].dtype == np.int64
    assert headerless["lat"].dtype == np.float64
    assert headerless.loc[4, "radio"] == "GSM"
    assert headerless.loc[4, "cell"] == 2611
    assert headerless.loc[0, "lon"] == records[0]["lon"]


def test_real_export_lines_gzip_blank_lines_and_case(tmp_path: Path) -> None:
    text = (
        "LTE,452,4,10521,26115586,150,108.2208,16.0544,1000,12,1,1459813904,1611843125,0\n"
        "\n"
        "umts,452,2,30012,2304561,,108.2300,16.0600,,3,1,1459813904,1611843125,0\n"
    )
    path = tmp_path / "452.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)
    cells = read_opencellid_csv(path)
    assert cells["radio"].tolist() == ["LTE", "UMTS"]
    assert cells["cell"].tolist() == [26115586, 2304561]
    assert np.isnan(cells.loc[1, "unit"])
    assert np.isnan(cells.loc[1, "range"])


def test_header_may_reorder_rename_and_omit_optional_columns(tmp_path: Path) -> None:
    path = tmp_path / "cells.csv"
    path.write_text(
        "LAT,lon,Radio,mcc,mnc,lac,cid\n16.0544,108.2208,NR,452,4,7,99\n", encoding="utf-8"
    )
    cells = read_opencellid_csv(path)
    row = cells.iloc[0]
    assert (row["radio"], row["mcc"], row["net"], row["area"], row["cell"]) == ("NR", 452, 4, 7, 99)
    assert (row["lon"], row["lat"], row["samples"]) == (108.2208, 16.0544, 0)
    assert np.isnan(row["range"])


def test_bad_rows_are_all_listed_in_one_error_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    good = "LTE,452,4,10521,1,150,108.2208,16.0544,1000,12,1,1459813904,1611843125,0"
    lines = [
        ",".join(OPENCELLID_COLUMNS),  # line 1
        good,  # line 2
        "WIFI,452,4,10521,1,150,abc,16.0544,1000,12,1,1459813904,1611843125,0",  # line 3
        good,  # line 4
        "LTE,x52,4,10521,1,150,108.2208,95.5,1000,12,1,1459813904,1611843125,0",  # line 5
        "GSM,452,,10521,1,150,200,-16,1000,12,1,1459813904,1611843125,0",  # line 6
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LayerValidationError) as info:
        read_opencellid_csv(path)
    err = info.value
    assert {(p.row, p.column) for p in err.problems} == {
        (3, "radio"),
        (3, "lon"),
        (5, "mcc"),
        (5, "lat"),
        (6, "net"),
        (6, "lon"),
    }
    assert [p.row for p in err.problems] == sorted(p.row for p in err.problems)
    message = str(err)
    assert str(path) in message
    assert "6 problems" in message
    assert "row 3, column 'radio': unknown radio 'WIFI'" in message
    assert "outside ±90°" in message
    assert "outside ±180°" in message
    assert isinstance(err, ValueError)


def test_headerless_bad_rows_use_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    records = [cell(), cell(cell_id=2), cell(cell_id=3)]
    records[1]["lat"] = "north"
    write_csv(path, records, header=False)
    with pytest.raises(LayerValidationError) as info:
        read_opencellid_csv(path)
    assert [(p.row, p.column) for p in info.value.problems] == [(2, "lat")]


def test_missing_columns_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "cells.csv"
    path.write_text("radio,mcc,net,area,cell,lon\nLTE,452,4,1,1,108.2\n", encoding="utf-8")
    with pytest.raises(LayerValidationError) as info:
        read_opencellid_csv(path)
    assert [(p.row, p.column) for p in info.value.problems] == [(None, "lat")]


def test_headerless_file_needs_fourteen_fields(tmp_path: Path) -> None:
    path = tmp_path / "cells.csv"
    path.write_text("LTE;452;4;10521;1;150;108.2208;16.0544\n", encoding="utf-8")
    with pytest.raises(LayerValidationError, match="1 field"):
        read_opencellid_csv(path)


def test_lines_with_extra_fields_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "cells.csv"
    records = [cell(cell_id=i) for i in range(4)]
    write_csv(path, records, header=False)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] += ",1"
    lines[3] += ",1,2"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LayerValidationError) as info:
        read_opencellid_csv(path)
    assert [p.row for p in info.value.problems] == [2, 4]


def test_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_opencellid_csv(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(LayerValidationError, match="empty"):
        read_opencellid_csv(empty)


# ----------------------------------------------------------------------------- operators
def test_packaged_operator_table() -> None:
    assert load_operator_table() == {
        (452, 1): "MobiFone",
        (452, 2): "VinaPhone",
        (452, 4): "Viettel",
        (452, 5): "Vietnamobile",
        (452, 7): "Gmobile",
    }


def test_operator_table_from_csv_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "ops.csv"
    good.write_text(
        "country,mcc,mnc,operator\nVietnam,452,04,Viettel Group\nLaos,457,01,LTC\n",
        encoding="utf-8",
    )
    assert load_operator_table(good) == {(452, 4): "Viettel Group", (457, 1): "LTC"}
    bad = tmp_path / "bad.csv"
    bad.write_text("mcc,mnc,operator\n452,x,A\n452,4,\n452,5,B\n452,05,C\n", encoding="utf-8")
    with pytest.raises(LayerValidationError) as info:
        load_operator_table(bad)
    assert [(p.row, p.column) for p in info.value.problems] == [
        (2, "mnc"),
        (3, "operator"),
        (5, "operator"),
    ]
    with pytest.raises(InputFileError):
        load_operator_table(tmp_path / "nope.csv")


def test_mcc_mnc_mapped_to_operator_names() -> None:
    cells = cells_frame(cell(net=4), cell(3000.0, net=1), cell(6000.0, net=2))
    sites = cells_to_sites(cells)
    assert dict(zip(sites["mnc"], sites["operator"], strict=True)) == {
        4: "Viettel",
        1: "MobiFone",
        2: "VinaPhone",
    }
    assert (sites["mcc"] == 452).all()


def test_operator_mapping_can_be_overridden(caplog: pytest.LogCaptureFixture) -> None:
    cells = cells_frame(cell(net=4), cell(3000.0, net=1), cell(6000.0, net=99))
    with caplog.at_level(logging.WARNING, logger="telcoplan.layers.opencellid"):
        sites = cells_to_sites(cells, operators={(452, 4): "Viettel Telecom", (452, 99): "TestNet"})
    assert not caplog.records
    assert sorted(sites["operator"]) == ["MobiFone", "TestNet", "Viettel Telecom"]
    assert "ViettelTelecom-00001-4G" in set(sites["site_id"])


def test_unknown_network_gets_a_code_name_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    cells = cells_frame(cell(mcc=457, net=3), cell(30.0, mcc=457, net=3))
    with caplog.at_level(logging.WARNING, logger="telcoplan.layers.opencellid"):
        sites = cells_to_sites(cells)
    assert sites["operator"].tolist() == ["MCC457-MNC03"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "MCC 457 / MNC 03 (2 cells)" in warnings[0].getMessage()


# ----------------------------------------------------------------------------- sites
def test_cells_within_the_radius_form_one_site_and_a_far_cell_another() -> None:
    sites = cells_to_sites(cells_frame(*triangle_and_far_cell()))
    assert sites["site_id"].tolist() == ["Viettel-00001-4G", "Viettel-00002-4G"]
    assert sites["n_cells"].tolist() == [3, 1]
    assert sites["samples"].tolist() == [15, 5]
    xy = metres(sites.geometry)
    centroid = np.array([10.0, 20.0 * np.sqrt(3.0) / 6.0])
    np.testing.assert_allclose(xy[0], centroid, atol=1e-3)
    np.testing.assert_allclose(xy[1], [500.0, 0.0], atol=1e-3)


def test_sites_chain_by_single_linkage_and_radius_is_overridable() -> None:
    # 0 - 40 - 80 m: each within 50 m of the next, so one site although the ends are 80 m apart
    chain = cells_frame(cell(0.0), cell(40.0, cell_id=2), cell(80.0, cell_id=3))
    assert cells_to_sites(chain)["n_cells"].tolist() == [3]
    assert cells_to_sites(chain, defaults=ImportDefaults(site_radius_m=30.0))[
        "n_cells"
    ].tolist() == [1, 1, 1]
    pair = cells_frame(cell(0.0), cell(80.0, cell_id=2))
    assert len(cells_to_sites(pair)) == 2
    assert len(cells_to_sites(pair, defaults=ImportDefaults(site_radius_m=100.0))) == 1


def test_two_operators_at_the_same_place_stay_separate_sites() -> None:
    cells = cells_frame(
        cell(net=4), cell(net=1), cell(10.0, net=4, cell_id=2), cell(10.0, net=1, cell_id=2)
    )
    sites = cells_to_sites(cells)
    assert sites["site_id"].tolist() == ["MobiFone-00001-4G", "Viettel-00001-4G"]
    assert sites["n_cells"].tolist() == [2, 2]
    xy = metres(sites.geometry)
    np.testing.assert_allclose(xy[0], xy[1], atol=1e-6)


def test_site_position_is_weighted_by_samples() -> None:
    weighted = cells_frame(cell(0.0, samples=3), cell(40.0, cell_id=2, samples=1))
    np.testing.assert_allclose(metres(cells_to_sites(weighted).geometry)[0], [10.0, 0.0], atol=1e-3)
    # no samples: every cell weighs like one sample
    unweighted = cells_frame(cell(0.0, samples=0), cell(40.0, cell_id=2, samples=0))
    np.testing.assert_allclose(
        metres(cells_to_sites(unweighted).geometry)[0], [20.0, 0.0], atol=1e-3
    )


def test_technology_from_radio() -> None:
    radios = ["GSM", "UMTS", "CDMA", "LTE", "NR"]
    cells = cells_frame(*[cell(1000.0 * i, radio=r, cell_id=i) for i, r in enumerate(radios)])
    sites = cells_to_sites(cells).sort_values("n_cells", kind="mergesort")
    by_position = sorted(
        zip(metres(sites.geometry)[:, 0].round(), sites["technology"], strict=True)
    )
    assert [t for _, t in by_position] == ["2G", "3G", "3G", "4G", "5G"]


def test_technology_modes() -> None:
    mast = cells_frame(
        cell(0.0, radio="GSM", area=105, cell_id=1),
        cell(5.0, radio="GSM", area=105, cell_id=2),
        cell(10.0, radio="LTE", cell_id=3),
        cell(2000.0, radio="GSM", cell_id=4),
    )
    everything = cells_to_sites(mast, technology="all")
    assert everything["site_id"].tolist() == [
        "Viettel-00001-2G",
        "Viettel-00002-2G",
        "Viettel-00001-4G",
    ]
    assert everything["technologies"].tolist() == ["2G,4G", "2G", "2G,4G"]
    assert everything["area"].tolist() == [105, 10521, 10521]
    xy = metres(everything.geometry)
    np.testing.assert_allclose(xy[0], xy[2], atol=1e-9)  # one mast, one position
    best = cells_to_sites(mast)
    assert best["site_id"].tolist() == ["Viettel-00002-2G", "Viettel-00001-4G"]
    assert best["n_cells"].tolist() == [1, 1]
    only_2g = cells_to_sites(mast, technology="2G")
    assert only_2g["site_id"].tolist() == ["Viettel-00001-2G", "Viettel-00002-2G"]
    assert cells_to_sites(mast, technology="5G").empty
    with pytest.raises(ValueError, match="technology"):
        cells_to_sites(mast, technology="LTE")


def test_documented_defaults_are_applied() -> None:
    radios = ["GSM", "UMTS", "LTE", "NR"]
    cells = cells_frame(*[cell(1000.0 * i, radio=r, cell_id=i) for i, r in enumerate(radios)])
    sites = cells_to_sites(cells).set_index("technology")
    assert sites["frequency_mhz"].to_dict() == {
        "2G": 900.0,
        "3G": 2100.0,
        "4G": 1800.0,
        "5G": 3500.0,
    }
    assert sites["eirp_dbm"].to_dict() == {"2G": 58.0, "3G": 58.0, "4G": 60.0, "5G": 62.0}
    assert (sites["height_m"] == 30.0).all()
    assert dict(DEFAULT_FREQUENCY_MHZ) == sites["frequency_mhz"].to_dict()
    assert dict(DEFAULT_EIRP_DBM) == sites["eirp_dbm"].to_dict()
    assert DEFAULT_HEIGHT_M == 30.0
    assert DEFAULT_SITE_RADIUS_M == 50.0
    assert (sites["source"] == "OpenCelliD").all()


def test_defaults_are_overridable() -> None:
    cells = cells_frame(cell(radio="GSM"), cell(1000.0, radio="LTE", cell_id=2))
    defaults = ImportDefaults(frequency_mhz={"4G": 2600.0}, height_m=45.0, eirp_dbm={"4G": 63.0})
    sites = cells_to_sites(cells, defaults=defaults).set_index("technology")
    assert sites.loc["4G", ["frequency_mhz", "height_m", "eirp_dbm"]].tolist() == [
        2600.0,
        45.0,
        63.0,
    ]
    assert sites.loc["2G", ["frequency_mhz", "height_m", "eirp_dbm"]].tolist() == [
        900.0,
        45.0,
        58.0,
    ]
    assert defaults.frequency_mhz == {"2G": 900.0, "3G": 2100.0, "4G": 2600.0, "5G": 3500.0}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frequency_mhz": {"LTE": 1800.0}}, "unknown technologies"),
        ({"frequency_mhz": {"4G": 50.0}}, "out of range"),
        ({"eirp_dbm": {"4G": 120.0}}, "out of range"),
        ({"height_m": 0.0}, "out of range"),
        ({"height_m": "high"}, "not a number"),
        ({"site_radius_m": -1.0}, "negative"),
        ({"site_radius_m": float("nan")}, "not a finite number"),
    ],
)
def test_invalid_defaults_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ImportDefaults(**kwargs)


def test_output_satisfies_the_towers_schema(tmp_path: Path) -> None:
    records = [
        *triangle_and_far_cell(),
        cell(0.0, radio="GSM", cell_id=5),
        cell(0.0, net=1, radio="UMTS", cell_id=6),
        cell(3000.0, net=5, radio="NR", cell_id=7),
        cell(9000.0, net=7, radio="CDMA", cell_id=8),
    ]
    cells = read_opencellid_csv(write_csv(tmp_path / "cells.csv", records, header=False))
    for technology in ("best", "all"):
        sites = cells_to_sites(cells, technology=technology)
        assert TOWERS.problems(sites) == []
        assert sites.crs.to_epsg() == 4326
        assert sites["site_id"].is_unique
        assert (sites.geom_type == "Point").all()
        assert list(sites.columns[:7]) == [
            "site_id",
            "operator",
            "technology",
            "frequency_mhz",
            "height_m",
            "eirp_dbm",
            "name",
        ]
        extra = {"n_cells", "technologies", "mcc", "mnc", "area", "samples", "source"}
        assert extra <= set(sites.columns)
        keys = list(zip(sites["operator"], sites["technology"], sites.geometry.x, strict=True))
        assert keys == sorted(keys)
    # the layer can be written as it is
    out = tmp_path / "towers.gpkg"
    sites.to_file(out, driver="GPKG")
    assert len(gpd.read_file(out)) == len(sites)


def test_input_frame_is_not_modified() -> None:
    cells = cells_frame(*triangle_and_far_cell(), cell(radio="gsm", net=1, cell_id=9))
    cells.index = pd.Index([10, 20, 30, 40, 50], name="cell_row")
    before = cells.copy(deep=True)
    cells_to_sites(cells, technology="all")
    pd.testing.assert_frame_equal(cells, before)
    text = cells.astype(str)
    before_text = text.copy(deep=True)
    cells_to_sites(text)
    pd.testing.assert_frame_equal(text, before_text)


def test_output_does_not_depend_on_row_order() -> None:
    rng = np.random.default_rng(7)
    records = [
        cell(float(x), float(y), net=int(n), radio=str(r), cell_id=i, samples=int(s))
        for i, (x, y, n, r, s) in enumerate(
            zip(
                rng.uniform(0, 600, 60),
                rng.uniform(0, 600, 60),
                rng.choice([1, 4], 60),
                rng.choice(["GSM", "LTE"], 60),
                rng.integers(0, 9, 60),
                strict=True,
            )
        )
    ]
    cells = cells_frame(*records)
    shuffled = cells.sample(frac=1.0, random_state=3).reset_index(drop=True)
    for technology in ("best", "all"):
        a = cells_to_sites(cells, technology=technology)
        b = cells_to_sites(shuffled, technology=technology)
        pd.testing.assert_frame_equal(
            pd.DataFrame(a.drop(columns="geometry")), pd.DataFrame(b.drop(columns="geometry"))
        )
        np.testing.assert_array_equal(a.geometry.x, b.geometry.x)
        np.testing.assert_array_equal(a.geometry.y, b.geometry.y)


def test_frames_are_validated_like_files() -> None:
    cells = cells_frame(cell(), cell(cell_id=2), cell(cell_id=3))
    cells.loc[1, "lat"] = 91.0
    cells = cells.drop(columns="radio")
    with pytest.raises(LayerValidationError) as info:
        cells_to_sites(cells)
    assert [(p.row, p.column) for p in info.value.problems] == [(None, "radio"), (2, "lat")]


def test_empty_input_gives_an_empty_layer() -> None:
    sites = cells_to_sites(cells_frame())
    assert sites.empty
    assert sites.crs.to_epsg() == 4326
    assert {"site_id", "operator", "technology", "frequency_mhz", "n_cells"} <= set(sites.columns)


# ----------------------------------------------------------------------------- clustering
def _brute_force_single_linkage(xy: np.ndarray, radius: float) -> list[frozenset[int]]:
    """Clusters by union-find over all O(n²) pairs at most ``radius`` apart."""
    parent = list(range(len(xy)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in itertools.combinations(range(len(xy)), 2):
        if np.hypot(*(xy[i] - xy[j])) <= radius:
            parent[root(i)] = root(j)
    groups: dict[int, set[int]] = {}
    for i in range(len(xy)):
        groups.setdefault(root(i), set()).add(i)
    return [frozenset(g) for g in groups.values()]


def test_clustering_matches_brute_force_single_linkage() -> None:
    rng = np.random.default_rng(42)
    xy = rng.uniform(0.0, 1000.0, size=(200, 2))
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    assert np.abs(d - DEFAULT_SITE_RADIUS_M).min() > 1e-3  # no pair on the boundary
    expected = _brute_force_single_linkage(xy, DEFAULT_SITE_RADIUS_M)
    assert 20 < len(expected) < 190  # a mix of singletons and multi-cell sites

    labels = single_linkage(xy, DEFAULT_SITE_RADIUS_M)
    got = {frozenset(np.flatnonzero(labels == k).tolist()) for k in np.unique(labels)}
    assert got == set(expected)

    # the public function, through lon/lat and back, finds the same sites at the same places
    cells = cells_frame(
        *[cell(float(x), float(y), cell_id=i, samples=1) for i, (x, y) in enumerate(xy)]
    )
    sites = cells_to_sites(cells)
    found = sorted(zip(sites["n_cells"], *metres(sites.geometry).round(2).T, strict=True))
    want = sorted((len(g), *xy[sorted(g)].mean(axis=0).round(2)) for g in expected)
    assert len(found) == len(want)
    for (n1, x1, y1), (n2, x2, y2) in zip(found, want, strict=True):
        assert n1 == n2
        assert abs(x1 - x2) <= 0.011
        assert abs(y1 - y2) <= 0.011
