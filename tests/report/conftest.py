"""Hand-built report inputs: a summary with round figures and small tables, in UTM 49N."""

from __future__ import annotations

import struct
import zlib

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, box

UTM49 = "EPSG:32649"
X0, Y0 = 830_000.0, 1_775_000.0

#: The seven districts of the 2019 city with their census population (persons) and area (km²).
DISTRICTS = {
    "Hải Châu": (201_522, 21.3),
    "Liên Chiểu": (194_913, 79.1),
    "Thanh Khê": (185_064, 9.4),
    "Cẩm Lệ": (159_295, 35.7),
    "Sơn Trà": (157_415, 59.3),
    "Hòa Vang": (145_749, 707.3),
    "Ngũ Hành Sơn": (90_352, 38.6),
}
OPERATORS = ("Viettel", "VinaPhone", "MobiFone")
#: Share of each district's population each operator covers (and any operator).
SHARES = {"Viettel": 0.99, "VinaPhone": 0.95, "MobiFone": 0.90, "any": 1.0}


def make_png(width: int = 3, height: int = 2) -> bytes:
    """A valid RGB PNG (grey pixels), built with zlib only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def area_records(names=tuple(DISTRICTS), operators=OPERATORS) -> list[dict]:
    """Per-area coverage as the coverage stage lists it in ``summary["coverage"]["areas"]``."""
    out = []
    for i, name in enumerate(names):
        pop = float(list(DISTRICTS.values())[i % len(DISTRICTS)][0])
        rec = {"name": name, "population": pop, "covered_any": pop * SHARES["any"]}
        rec["uncovered_any"] = pop - rec["covered_any"]
        for j, op in enumerate(operators):
            rec[f"covered_{op}"] = pop * SHARES[OPERATORS[j % len(OPERATORS)]]
        out.append(rec)
    return out


def build_summary(
    *,
    plan: str = "Đà Nẵng test plan",
    names=tuple(DISTRICTS),
    operators=OPERATORS,
    path: str = "inputs/towers.gpkg",
    site: str = "S-9",
    param: str = "urban",
    synthetic: bool = False,
) -> dict:
    """A complete summary.json with round figures; names can be replaced (for escaping tests)."""
    total = float(sum(p for p, _ in DISTRICTS.values()))  # 1,134,310
    coverage = {
        "parameters": {"model": "auto", "environment": param},
        **{
            op: {
                "population_covered": total * SHARES[OPERATORS[j % 3]],
                "population_pct": 100.0 * SHARES[OPERATORS[j % 3]],
                "area_km2": 500.0 - 100 * j,
            }
            for j, op in enumerate(operators)
        },
        "any": {"population_covered": 1_133_482.2, "population_pct": 99.927, "area_km2": 626.32},
        "best_single_operator": {
            "operator": operators[0],
            "population_covered": total * 0.99,
            "population_pct": 99.0,
        },
        "by_technology": {
            "4G_plus": {"population_covered": 1_110_134.4, "population_pct": 97.869},
            "5G_plus": {"population_covered": 347_898.9, "population_pct": 30.671},
        },
        "urban_rural": {
            "urban": {"population": 988_561.0, "covered_any": 988_052.6},
            "rural": {"population": 145_749.0, "covered_any": 145_429.6},
        },
        "limit": {"population_not_covered_distance": 783.2, "population_not_covered_terrain": 44.6},
        "areas": area_records(names, operators),
    }
    return {
        "plan": plan,
        "synthetic": synthetic,
        "telcoplan_version": "9.8.7",
        "crs": "EPSG:32649",
        "grid": {"width": 548, "height": 322, "resolution_m": 100.0},
        "population_total": total,
        "area_km2_total": 950.7,
        "areas": [
            {
                "name": n,
                "population": float(list(DISTRICTS.values())[i % 7][0]),
                "area_km2": list(DISTRICTS.values())[i % 7][1],
            }
            for i, n in enumerate(names)
        ],
        "layers": {"towers": 600, "roads": 572},
        "coverage": coverage,
        "gaps": {
            "count": 3,
            "population": 1234.4,
            "area_km2": 12.5,
            "largest": [
                {"gap_id": 1, "population": 900.0, "area_km2": 7.0, "dist_tower_m": 1256.9},
                {"gap_id": 2, "population": 300.0, "area_km2": 4.5, "dist_tower_m": 700.0},
            ],
            "single_operator": {op: 100.0 * (j + 1) for j, op in enumerate(operators)},
            "pois": {"count": 247, "served": 242, "unserved": ["POI-0035", "POI-0036"]},
        },
        "backbone": {
            "parameters": {"own_fiber_factor": 0.02},
            "sites": 450,
            "shared_sites": 120,
            "length_km_joint": 80.4,
            "length_km_separate": 120.5,
            "cost_joint": 2_100_000.0,
            "cost_separate": 3_000_000.0,
            "savings_pct": 30.0,
            "separate": {
                operators[0]: {"length_km": 60.0, "cost": 1_500_000.0},
                operators[1]: {"length_km": 40.0, "cost": 900_000.0},
                operators[2]: {"length_km": 20.5, "cost": 600_000.0},
            },
            "share_proportional": {
                operators[0]: 1_000_000.0,
                operators[1]: 650_000.0,
                operators[2]: 450_000.0,
            },
            "share_shapley": {
                operators[0]: 1_050_000.0,
                operators[1]: 630_000.0,
                operators[2]: 420_000.0,
            },
            "rings": {
                "protected": 12,
                "length_km": 5.5,
                "cost": 150_000.0,
                "unprotected": {site: "on a dead-end road"},
            },
        },
        "provenance": {
            "plan_file": "plan.yml",
            "parameters": {"crs": "EPSG:32649", "resolution_m": 100.0, "stages": {}},
            "inputs": {
                "towers": {"path": path, "sha256": "ab" * 32},
                "roads": {"path": "inputs/roads.gpkg", "sha256": "cd" * 32},
            },
        },
    }


@pytest.fixture
def summary() -> dict:
    """The full hand-built summary (all sections present)."""
    return build_summary()


def areas_frame(names=tuple(DISTRICTS), operators=OPERATORS) -> gpd.GeoDataFrame:
    """The ``areas`` layer of coverage.gpkg: one 1 km box per area, an ``urban`` flag."""
    recs = area_records(names, operators)
    return gpd.GeoDataFrame(
        recs,
        geometry=[box(X0 + 1000 * i, Y0, X0 + 1000 * (i + 1), Y0 + 1000) for i in range(len(recs))],
        crs=UTM49,
    ).assign(urban=[i != 5 for i in range(len(recs))])


def gaps_frame(n: int = 30) -> gpd.GeoDataFrame:
    """``n`` gaps as find_gaps returns them: index gap_id, population 1000, 990, … persons."""
    return gpd.GeoDataFrame(
        {
            "rank": range(1, n + 1),
            "population": [1000.0 - 10 * i for i in range(n)],
            "area_km2": [2.5] * n,
            "dist_tower_m": [1500.4] * n,
            "dist_fiber_m": [250.0] * n,
        },
        geometry=[box(X0, Y0, X0 + 100, Y0 + 100)] * n,
        index=pd.Index(range(1, n + 1), name="gap_id"),
        crs=UTM49,
    )


def links_frame(operators=OPERATORS) -> gpd.GeoDataFrame:
    """Backbone links of the joint plan (shared by 1 to 3 operators) and one separate link."""
    a, b, c = operators
    rows = [
        ("joint", f"{a};{b};{c}", 2000.0, 60_000.0, "new"),
        ("joint", f"{a};{b}", 1000.0, 30_000.0, "new"),
        ("joint", a, 500.0, 300.0, "reused"),
        ("separate", a, 700.0, 21_000.0, "new"),
        ("ring", "", 300.0, 9_000.0, "ring"),
    ]
    return gpd.GeoDataFrame(
        [
            dict(zip(("plan", "operators", "length_m", "cost", "status"), r, strict=True))
            for r in rows
        ],
        geometry=[LineString([(X0, Y0), (X0 + r[2], Y0)]) for r in rows],
        crs=UTM49,
    )


def sites_frame(name: str = "Trạm Sơn Trà mới") -> gpd.GeoDataFrame:
    """Two proposed sites: a new shared build and a co-location."""
    return gpd.GeoDataFrame(
        {
            "site_id": ["P-1", "P-2"],
            "name": [name, "Trạm Hòa Vang 7"],
            "kind": ["new shared", "co-located"],
            "operators": ["Viettel;MobiFone", "VinaPhone"],
            "population_added": [1520.0, 310.0],
            "cost": [80_000.0, 5_000.0],
        },
        geometry=[Point(X0, Y0), Point(X0 + 500, Y0)],
        crs=UTM49,
    )


@pytest.fixture(scope="session")
def demo_outputs(tmp_path_factory):
    """Every stage of the demo plan at 500 m cells (a few seconds): (summary, output folder).
    Shared by the modules of tests/report: write into it only what the run wrote there."""
    from telcoplan.demo import write_demo
    from telcoplan.pipeline import read_plan, run_plan

    folder = tmp_path_factory.mktemp("demo")
    plan_path = write_demo(folder, resolution_m=500.0)
    out = folder / "outputs"
    return run_plan(read_plan(plan_path), out), out
