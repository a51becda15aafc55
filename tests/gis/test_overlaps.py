"""Overlapping polygons are said, with the largest overlap's two rows: areas (a cell in an
overlap counts for one area only) and population polygons (each keeps its count)."""

from __future__ import annotations

import logging

import geopandas as gpd
from shapely.geometry import box

from telcoplan.gis.zonal import warn_overlaps


def test_overlaps_are_counted_and_the_largest_named(caplog):
    areas = gpd.GeoDataFrame(
        geometry=[
            box(0, 0, 1000, 1000),
            box(900, 0, 2000, 1000),
            box(0, 0, 1000, 1000),
            box(5000, 0, 6000, 10),
        ],
        index=["Hải Châu", "Thanh Khê", "Hải Châu (copy)", "Sơn Trà"],
        crs="EPSG:32649",
    )
    with caplog.at_level(logging.WARNING, logger="telcoplan"):
        n = warn_overlaps(areas, 100.0 * 100.0, "areas", "fix it")
    # Hải Châu and its copy (1 km²), each with Thanh Khê (0.1 km²); Sơn Trà apart
    assert n == 3
    assert (
        "3 pairs of areas overlap (1.200 km² in all; the largest 1.000 km², row 1 (Hải Châu) "
        "and row 3 (Hải Châu (copy))); fix it"
    ) in caplog.text


def test_slivers_smaller_than_a_quarter_cell_are_not_said(caplog):
    polys = gpd.GeoDataFrame(
        geometry=[box(0, 0, 1000, 1000), box(999, 0, 2000, 1000)], crs="EPSG:32649"
    )  # a 1 m x 1 km sliver: 0.1 of a 100 m cell
    with caplog.at_level(logging.WARNING, logger="telcoplan"):
        assert warn_overlaps(polys, 100.0 * 100.0, "population polygons", "x") == 0
    assert caplog.text == ""
