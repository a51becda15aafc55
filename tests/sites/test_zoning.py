"""Zoning: exclusion, tower types per zone, spacing (brute force), tenants, the plan mapping."""

from __future__ import annotations

import itertools
import math

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, box

from telcoplan.errors import CRSError
from telcoplan.sites.candidates import from_file
from telcoplan.sites.zoning import (
    DEFAULT_MIN_SPACING_M,
    Zoning,
    allowed,
    spacing_conflicts,
    tower_type_for,
    zoning_from_mapping,
)
from tests.conftest import UTM49, X0, Y0, assert_unchanged

CENTRE = box(X0, Y0, X0 + 1000, Y0 + 1000)  # A1 only
STREET = box(X0, Y0, X0 + 3000, Y0 + 100)  # A2a (overlaps the centre: the centre wins)
HERITAGE = box(X0 + 400, Y0 + 400, X0 + 600, Y0 + 600)


def _candidates(rows) -> gpd.GeoDataFrame:
    """Candidates from (id, x offset, y offset, kind, tower_type[, tenants]) rows."""
    gdf = gpd.GeoDataFrame(
        {
            "candidate_id": [r[0] for r in rows],
            "kind": [r[3] for r in rows],
            "tower_type": [r[4] for r in rows],
        },
        geometry=[Point(X0 + r[1], Y0 + r[2]) for r in rows],
        crs=UTM49,
    )
    c = from_file(gdf)
    c["tenants"] = [r[5] if len(r) > 5 else 0 for r in rows]
    return c


@pytest.fixture
def zoning() -> Zoning:
    """Heritage excluded; centre A1 only, then a main street A2a; elsewhere A2b or A2a."""
    return Zoning(
        exclusion=gpd.GeoSeries([HERITAGE], crs=UTM49),
        type_zones=[(CENTRE, ["A1"], "centre"), (STREET, ["a2a"])],
        elsewhere=["A2b", "A2a"],
        crs=UTM49,
    )


def test_defaults_and_values():
    z = Zoning()
    assert z.min_spacing_m == {"A1": 150.0, "A2a": 250.0, "A2b": 350.0}
    assert z.max_tenants == 4
    assert Zoning(min_spacing_m={"a1": 100}).min_spacing_m == {
        **DEFAULT_MIN_SPACING_M,
        "A1": 100.0,
    }
    with pytest.raises(ValueError, match="A3"):
        Zoning(min_spacing_m={"A3": 100})
    with pytest.raises(ValueError, match="tower type"):
        Zoning(type_zones=[(CENTRE, ["B1"])])
    with pytest.raises(ValueError, match="polygons"):
        Zoning(exclusion=LineString([(0, 0), (1, 1)]))
    with pytest.raises(ValueError, match="max_tenants"):
        Zoning(max_tenants=0)


def test_tower_type_for(zoning):
    c = _candidates(
        [
            ("centre", 500, 700, "rooftop", None),
            ("street", 2000, 50, "greenfield", None),
            ("both", 50, 50, "greenfield", None),  # in the centre and on the street
            ("rural", 5000, 5000, "greenfield", None),
            ("stated", 500, 700, "greenfield", "A2b"),  # kept, though not allowed
            ("existing", 2000, 50, "existing_tower", None),  # a fact the data lack
        ]
    )
    before = c.copy()
    t = tower_type_for(c, zoning)
    assert_unchanged(before, c)
    assert t.to_dict() == {
        "centre": "A1",
        "street": "A2a",
        "both": "A1",
        "rural": "A2b",
        "stated": "A2b",
        "existing": None,
    }


def test_allowed_reasons(zoning):
    c = _candidates(
        [
            ("ok", 100, 700, "rooftop", None),
            ("heritage", 500, 500, "rooftop", None),
            ("wrong_type", 100, 900, "greenfield", "A2b"),
            ("full", 3000, 3000, "existing_tower", "A2b", 4),
            ("room", 3500, 3000, "existing_tower", "A2b", 3),
            ("heritage_tower", 500, 500, "existing_tower", None, 1),  # already built: allowed
            ("edge", 400, 450, "rooftop", None),  # on the heritage boundary: excluded
        ]
    )
    mask, reasons = allowed(c, zoning)
    assert mask.to_dict() == {
        "ok": True,
        "heritage": False,
        "wrong_type": False,
        "full": False,
        "room": True,
        "heritage_tower": True,
        "edge": False,
    }
    assert reasons["ok"] == ""
    assert reasons["heritage"] == "in an exclusion zone"
    assert reasons["wrong_type"] == "tower type A2b is not allowed in centre (allowed: A1)"
    assert reasons["full"] == "already hosts 4 operators (maximum 4)"
    assert list(mask.index) == list(c.index)


def test_allowed_zone_without_types():
    z = Zoning(type_zones=[(CENTRE, [])], elsewhere=[], crs=UTM49)
    c = _candidates([("in", 10, 10, "greenfield", None), ("out", 5000, 0, "greenfield", None)])
    mask, reasons = allowed(c, z)
    assert not mask.any()
    assert reasons["in"] == "no tower type is allowed in zone 1"
    assert reasons["out"] == "no tower type is allowed outside the type zones"
    assert tower_type_for(c, z).isna().all()


def test_allowed_spacing_to_existing_towers(zoning):
    """Existing A2a tower E at (2000, 50) on the street; candidates at known distances."""
    existing = gpd.GeoDataFrame(
        {"operator": ["Viettel", "MobiFone"], "tower_type": ["A2a", None]},
        index=["E", "U"],
        geometry=[Point(X0 + 2000, Y0 + 50), Point(X0 + 2600, Y0 + 50)],
        crs=UTM49,
    )
    c = _candidates(
        [
            ("near", 2240, 50, "greenfield", None),  # 240 m < 250 m, A2a
            ("far", 1740, 50, "greenfield", None),  # 260 m
            ("self", 2000.5, 50, "rooftop", None),  # the structure itself (< 1 m)
            ("other_type", 2000, 200, "greenfield", None),  # 150 m but elsewhere: A2b
            ("untyped", 2650, 50, "greenfield", None),  # 50 m from U, whose type is unknown
            ("existing", 2100, 50, "existing_tower", "A2a"),  # already stands
        ]
    )
    mask, reasons = allowed(c, zoning, existing=existing)
    assert mask.to_dict() == {
        "near": False,
        "far": True,
        "self": True,
        "other_type": True,
        "untyped": True,
        "existing": True,
    }
    assert reasons["near"] == "240 m from existing tower E of type A2a (minimum 250 m)"
    with pytest.raises(CRSError):
        allowed(c, zoning, existing=existing.to_crs("EPSG:32648"))


def test_spacing_conflicts_known_pairs(zoning):
    c = _candidates(
        [
            ("a1", 100, 700, "rooftop", None),  # A1
            ("a1_near", 100, 840, "rooftop", None),  # A1, 140 m: conflict (150)
            ("a1_far", 100, 500, "rooftop", None),  # A1, 200 m from a1: none
            ("a2b", 5000, 5000, "greenfield", None),  # A2b
            ("a1_by_a2b", 5300, 5000, "greenfield", "A1"),  # 300 m < max(150, 350): conflict
            ("ex1", 8000, 8000, "existing_tower", "A2b"),
            ("ex2", 8100, 8000, "existing_tower", "A2b"),  # existing pair: never
            ("new_a2a", 8000, 8200, "greenfield", "A2a"),  # 200 m from ex1, another type
            ("new_a2b", 8100, 8300, "greenfield", "A2b"),  # 300 m from ex2, same type
        ]
    )
    pairs = spacing_conflicts(c, zoning)
    ids = {(c.index[i], c.index[j]) for i, j in pairs}
    assert ids == {
        ("a1", "a1_near"),
        ("a2b", "a1_by_a2b"),
        ("ex1", "new_a2b"),  # 316 m < 350 m, both A2b
        ("ex2", "new_a2b"),  # 300 m
        ("new_a2a", "new_a2b"),  # two new ones, 141 m < max(250, 350)
    }  # not (ex1, new_a2a): 200 m but another type than the existing tower
    assert pairs.dtype == np.int64
    assert (pairs[:, 0] < pairs[:, 1]).all()


def _brute_force(c, zoning) -> set[tuple[int, int]]:
    """Every pair checked, O(n²): the rule of spacing_conflicts written out plainly."""
    types = list(tower_type_for(c, zoning))
    kinds = list(c["kind"])
    xy = [(p.x, p.y) for p in c.geometry]
    out = set()
    for i, j in itertools.combinations(range(len(c)), 2):
        d = math.hypot(xy[i][0] - xy[j][0], xy[i][1] - xy[j][1])
        ei, ej = kinds[i] == "existing_tower", kinds[j] == "existing_tower"
        si, sj = zoning.spacing(types[i]), zoning.spacing(types[j])
        if not ei and not ej:
            limit = max(si, sj)
        elif ei != ej and types[i] is not None and types[i] == types[j]:
            limit = si
        else:
            continue
        if d < limit:
            out.add((i, j))
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 1500, allow_nan=False),
            st.floats(0, 1500, allow_nan=False),
            st.sampled_from([None, "A1", "A2a", "A2b"]),
            st.sampled_from(["greenfield", "rooftop", "existing_tower"]),
        ),
        min_size=0,
        max_size=40,
    ),
    st.integers(0, 2),
)
def test_spacing_conflicts_match_brute_force(points, layout):
    zoning = Zoning(
        type_zones=[[], [(box(X0, Y0, X0 + 700, Y0 + 700), ["A1", "A2a"])]][min(layout, 1)],
        elsewhere=["A2b"] if layout < 2 else [],
        min_spacing_m={"A1": 150.0, "A2a": 250.0, "A2b": 350.0},
        crs=UTM49,
    )
    c = _candidates([(f"c{k}", x, y, kind, t) for k, (x, y, t, kind) in enumerate(points)])
    got = spacing_conflicts(c, zoning)
    assert {tuple(p) for p in got.tolist()} == _brute_force(c, zoning)
    assert len({tuple(p) for p in got.tolist()}) == len(got)  # no pair twice


def test_spacing_exactly_at_the_limit_is_allowed(zoning):
    c = _candidates(
        [("a", 100, 300, "rooftop", None), ("b", 100, 450, "rooftop", None)]  # 150 m, A1
    )
    assert len(spacing_conflicts(c, zoning)) == 0


def test_crs_mismatch(zoning):
    c = _candidates([("a", 100, 300, "rooftop", None)]).to_crs("EPSG:32648")
    with pytest.raises(CRSError, match="reproject"):
        spacing_conflicts(c, zoning)


def _loader(calls):
    def load(path):
        calls.append(path)
        if path == "missing.gpkg":
            raise FileNotFoundError("no such file")
        if path == "lines.gpkg":
            return gpd.GeoSeries([LineString([(X0, Y0), (X0 + 1, Y0)])], crs=UTM49)
        return gpd.GeoDataFrame(
            geometry=[CENTRE if "centre" in path else HERITAGE], crs=UTM49
        ).to_crs("EPSG:32648" if "foreign" in path else UTM49)

    return load


def test_zoning_from_mapping():
    calls: list[str] = []
    z, problems = zoning_from_mapping(
        {
            "exclude": ["heritage.gpkg", "foreign_heritage.gpkg"],
            "zones": [{"path": "centre.gpkg", "types": "a1", "name": "trung tâm"}],
            "elsewhere": ["A2a", "A2b"],
            "min_spacing_m": {"A1": 120},
            "max_tenants": 3,
        },
        load_polygons=_loader(calls),
        crs=UTM49,
    )
    assert problems == []
    assert calls == ["heritage.gpkg", "foreign_heritage.gpkg", "centre.gpkg"]
    assert z.min_spacing_m["A1"] == 120.0
    assert z.max_tenants == 3
    assert z.type_zones[0].types == ("A1",)
    assert z.type_zones[0].name == "trung tâm"
    # the copy given in another CRS is reprojected onto the same square
    assert z.exclusion.symmetric_difference(HERITAGE).area < 1e-3
    empty, none = zoning_from_mapping(None, load_polygons=_loader([]))
    assert none == []
    assert empty.exclusion is None


def test_zoning_from_mapping_reports_everything():
    z, problems = zoning_from_mapping(
        {
            "exclud": "x.gpkg",
            "exclude": "missing.gpkg",
            "zones": [
                {"path": "centre.gpkg", "types": ["A3"]},
                {"types": []},
                {"path": "lines.gpkg", "types": ["A1"], "typo": 1},
            ],
            "min_spacing_m": {"A1": -5, "B2": 10},
            "max_tenants": 2.5,
        },
        load_polygons=_loader([]),
        key="stages.sites.zoning",
    )
    assert z is None
    text = "\n".join(problems)
    for expected in (
        "stages.sites.zoning.exclud: unknown key; did you mean 'exclude'?",
        "stages.sites.zoning.exclude: missing.gpkg: no such file",
        "stages.sites.zoning.zones[1].types: 'A3' is not a tower type",
        "stages.sites.zoning.zones[2]: path is missing",
        "stages.sites.zoning.zones[2].types: expected a list of tower types",
        "stages.sites.zoning.zones[3].typo: unknown key",
        "stages.sites.zoning.zones[3].path: lines.gpkg: ",
        "stages.sites.zoning.min_spacing_m.A1: -5 must be a distance",
        "stages.sites.zoning.min_spacing_m.B2: not a tower type",
        "stages.sites.zoning.max_tenants: 2.5 must be a whole number",
    ):
        assert expected in text, expected
    assert len(problems) == 10
    _, bad = zoning_from_mapping(["a"], load_polygons=_loader([]))
    assert bad == ["zoning: expected a mapping, got list"]


def test_to_crs(zoning):
    """The zoning moved to another CRS decides the same for the candidates moved there."""
    c = _candidates(
        [
            ("centre", 500, 700, "rooftop", None),
            ("street", 2000, 50, "greenfield", None),
            ("heritage", 500, 500, "rooftop", None),
            ("rural", 5000, 5000, "greenfield", None),
        ]
    )
    moved = zoning.to_crs("EPSG:32648")
    c2 = c.to_crs("EPSG:32648")
    assert tower_type_for(c2, moved).equals(tower_type_for(c, zoning))
    assert allowed(c2, moved)[1].equals(allowed(c, zoning)[1])
    assert zoning.to_crs(UTM49) is zoning
    with pytest.raises(CRSError, match="no CRS"):
        Zoning().to_crs(UTM49)


def test_zoning_from_mapping_takes_the_first_files_crs():
    """Without a plan CRS: the first file's CRS, the others reprojected to it."""
    z, problems = zoning_from_mapping(
        {"exclude": ["foreign_heritage.gpkg", "heritage.gpkg"]}, load_polygons=_loader([])
    )
    assert problems == []
    assert z.crs == "EPSG:32648"
    back = z.to_crs(UTM49)
    assert back.exclusion.symmetric_difference(HERITAGE).area < 1e-3
