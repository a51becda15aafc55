"""The raster writers against independent references: the attribute table's bytes against
ElementTree's serialisation of the same tree, the COG's pixels and profile against the array."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import rasterio

from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import read_attribute_table, write_attribute_table, write_raster
from tests.conftest import UTM49, X0, Y0

_INVALID = "".join(chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)))


def _reference_xml(values: np.ndarray, columns: dict[str, np.ndarray], name: str) -> bytes:
    """The attribute table as an ElementTree tree, serialised by ElementTree (the writer's
    earlier implementation, cell by cell)."""
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    table = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    types = {"i": 0, "u": 0, "b": 0, "f": 1}
    kinds = [("value", 0, 5)] + [
        (k, types.get(v.dtype.kind, 2), 2 if k == name else 0) for k, v in columns.items()
    ]
    for i, (field_name, kind, usage) in enumerate(kinds):
        defn = ET.SubElement(table, "FieldDefn", index=str(i))
        ET.SubElement(defn, "Name").text = field_name
        ET.SubElement(defn, "Type").text = str(kind)
        ET.SubElement(defn, "Usage").text = str(usage)
    for r, value in enumerate(values.tolist()):
        row = ET.SubElement(table, "Row", index=str(r))
        ET.SubElement(row, "F").text = str(int(value))
        for (_, kind, _), v in zip(kinds[1:], columns.values(), strict=True):
            cell = v[r]
            if kind == 1:
                text = repr(float(cell))
            elif kind == 0:
                text = str(int(cell))
            else:
                missing = not isinstance(cell, list) and bool(pd.isna(cell))
                text = "" if missing else str(cell)
                for ch in _INVALID + "\ufffe\uffff":
                    text = text.replace(ch, "\ufffd")
            ET.SubElement(row, "F").text = text
    import io

    buf = io.BytesIO()
    ET.ElementTree(root).write(buf, encoding="UTF-8", xml_declaration=False)
    return buf.getvalue()


def test_attribute_table_bytes_equal_elementtree(tmp_path):
    rng = np.random.default_rng(7)
    n = 40
    texts = np.array(
        [
            "a&b<c>d",
            "",
            None,
            float("nan"),
            pd.NA,
            "Đà Nẵng ☎",
            "tab\tand\x01bell\x07",
            "\ud800 lone surrogate",
            "quote \" and ' apostrophe",
            ["a", "list"],
            "line\nbreak\rreturn",
            "\ufffe\uffff",
        ]
        * 4,
        dtype=object,
    )[:n]
    columns = {
        "site_id": np.array([f"S{i:03d}&" for i in range(n)]),
        "name": texts,
        "frequency_mhz": rng.uniform(700, 3500, n).astype(np.float32),
        "height": rng.uniform(10, 60, n),
        "big": np.arange(n, dtype=np.uint64) * np.uint64(2**62 // n),
        "flag": rng.random(n) < 0.5,
        "when": np.array(["2020-01-01", "NaT"] * (n // 2), dtype="datetime64[s]"),
        "": np.array(["x"] * n),
    }
    values = np.arange(1, n + 1, dtype=np.int64) * 3
    raster = tmp_path / "r.tif"
    sidecar = write_attribute_table(raster, values, columns, name="site_id")
    assert sidecar.read_bytes() == _reference_xml(values, columns, "site_id")
    # a lone surrogate becomes a character reference XML parsers refuse (as ElementTree writes
    # it); the rest reads back
    columns["name"] = np.array(
        [t if t is pd.NA or t != "\ud800 lone surrogate" else "x" for t in texts], dtype=object
    )
    write_attribute_table(raster, values, columns, name="site_id")
    table = read_attribute_table(raster)
    assert (table[3]["site_id"], table[3]["name"]) == ("S000&", "a&b<c>d")
    assert [table[v]["name"] for v in (6, 9, 12)] == ["", "", ""]


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "int32", "uint8"])
def test_written_cog_holds_the_array_and_profile(tmp_path, dtype, fast):
    grid = GridSpec(
        crs=UTM49, transform=rasterio.Affine(50, 0, X0, 0, -50, Y0), width=700, height=530
    )
    rng = np.random.default_rng(3)
    data = (rng.random(grid.shape) * 200).astype(dtype)
    if dtype == "float32":
        data[rng.random(grid.shape) < 0.2] = np.nan
    nodata = float("nan") if dtype == "float32" else 0
    before = data.copy()
    path = write_raster(tmp_path / "a.tif", data, grid, nodata=nodata, tags={"k": "v"}, fast=fast)
    assert np.array_equal(data, before, equal_nan=True)  # the caller's array is not touched
    with rasterio.open(path) as src:
        back = src.read(1)
        assert (src.dtypes[0], src.tags()["k"], src.transform) == (dtype, "v", grid.transform)
        assert src.overviews(1)  # COG with overviews
        assert (src.profile["compress"], src.profile["tiled"]) == ("deflate", True)
    assert np.array_equal(back, data, equal_nan=dtype == "float32")
    if fast:  # another DEFLATE level: other bytes, the same pixels and profile
        slow = write_raster(tmp_path / "b.tif", data, grid, nodata=nodata, tags={"k": "v"})
        assert slow.read_bytes() != path.read_bytes()
        with rasterio.open(slow) as a, rasterio.open(path) as b:
            pa, pb = dict(a.profile), dict(b.profile)
            assert repr(pa.pop("nodata")) == repr(pb.pop("nodata"))  # NaN != NaN
            assert pa == pb


@pytest.mark.parametrize("dtype", ["int32", "uint8"])
def test_categorical_rasters_are_written_without_a_predictor(tmp_path, dtype):
    """Ids and classes are written without a predictor, other integers with horizontal
    differencing: the same pixels either way."""
    grid = GridSpec(
        crs=UTM49, transform=rasterio.Affine(50, 0, X0, 0, -50, Y0), width=400, height=300
    )
    rng = np.random.default_rng(5)
    # serving-site-like ids: each cell the id of its nearest of 200 random sites
    sites = rng.random((200, 2)) * [300, 400]
    rows, cols = np.mgrid[0:300, 0:400]
    d2 = (rows[..., None] - sites[:, 0]) ** 2 + (cols[..., None] - sites[:, 1]) ** 2
    data = (np.argmin(d2, axis=-1) + 1).astype(dtype)
    for categorical in (False, True):
        path = tmp_path / f"c{categorical}.tif"
        write_raster(path, data, grid, nodata=0, categorical=categorical, fast=True)
        with rasterio.open(path) as src:
            assert src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == (None if categorical else "2")
            assert np.array_equal(src.read(1), data)
            assert src.overviews(1)


def _rasterio_cog(path, data, grid, nodata, tags, description, level):
    """The COG as rasterio's own COG writer makes it (the writer's earlier implementation)."""
    profile = {
        "driver": "COG", "width": grid.width, "height": grid.height, "count": 1,
        "dtype": data.dtype.name, "crs": grid.crs, "transform": grid.transform,
        "nodata": nodata, "compress": "DEFLATE", "blocksize": 256,
        "predictor": 3 if data.dtype.kind == "f" else 2,
        "overview_resampling": "average" if data.dtype.kind == "f" else "nearest",
    } | ({} if level is None else {"level": level})  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        if tags:
            dst.update_tags(**tags)
        if description:
            dst.set_band_description(1, description)
    return path


@pytest.mark.parametrize(
    ("dtype", "nodata", "tags", "description", "fast"),
    [
        ("float32", float("nan"), {"operator": "A", "units": "dBm"}, "A power", True),
        ("float64", None, None, None, False),
        ("int32", 0, {"k": "v"}, "server", True),
        ("uint8", 255, {"k": "v"}, None, False),
        (">f4", float("nan"), None, None, True),  # not native: copied into a new dataset
        ("strided", float("nan"), {"k": "v"}, "every other column", True),  # made contiguous
    ],
)
def test_written_cog_is_rasterio_cog_writers_bytes(
    tmp_path, dtype, nodata, tags, description, fast
):
    """The COG is copied from an in-memory dataset (GIL released): the very bytes of rasterio's
    COG writer, with overviews (a grid of more than one 256-cell block). The reference keeps
    GDAL's default level for the temporary overview file (ZSTD 9; ours 1): the same bytes."""
    from telcoplan.gis.raster import FAST_DEFLATE_LEVEL

    grid = GridSpec(
        crs=UTM49, transform=rasterio.Affine(50, 0, X0, 0, -50, Y0), width=611, height=529
    )
    rng = np.random.default_rng(5)
    if dtype == "strided":
        data = (rng.random((grid.height, 2 * grid.width)) * 120).astype(np.float32)[:, ::2]
    else:
        data = (rng.random(grid.shape) * 120).astype(dtype)
    if data.dtype.kind == "f":
        data[rng.random(grid.shape) < 0.1] = np.nan
    path = write_raster(
        tmp_path / "a.tif", data, grid, nodata=nodata, tags=tags, description=description,
        fast=fast,
    )  # fmt: skip
    expect = nodata if nodata is not None or data.dtype.kind != "f" else grid.nodata
    ref = _rasterio_cog(
        tmp_path / "ref.tif", np.ascontiguousarray(data), grid, expect, tags, description,
        FAST_DEFLATE_LEVEL if fast else None,
    )  # fmt: skip
    assert path.read_bytes() == ref.read_bytes()
    with rasterio.open(path) as src:
        assert src.overviews(1)
