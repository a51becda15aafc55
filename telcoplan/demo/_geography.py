"""The land of the synthetic Đà Nẵng demo city: districts, terrain, residential weights, roads.

Everything here is SYNTHETIC and hand-made in code (see :mod:`telcoplan.demo.danang`, which
builds the whole scenario and describes how): the city outline and the Voronoi partition into
the 7 districts of 2019, the terrain (DEM), the residential weight field that spreads the
census counts, and the road network (hand-laid main roads and a procedural urban street grid).
Only the terrain noise depends on the seed; its generator is handed in by the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from telcoplan.gis.grid import GridSpec
from telcoplan.layers.schemas import ROAD_CLASSES

__all__ = [
    "CARRIER_FREQUENCIES_MHZ",
    "CENSUS_2019",
    "DEMO_CRS",
    "RURAL",
    "TECHNOLOGIES",
    "build_areas",
    "build_dem",
    "build_roads",
    "gdf",
    "residential_weights",
    "sea_polygon",
    "utm",
]

#: Mobile technologies of the synthetic towers, and each one's carrier frequencies (MHz) with
#: their probabilities (the city and the national demo alike).
TECHNOLOGIES = ("2G", "3G", "4G", "5G")
CARRIER_FREQUENCIES_MHZ = {
    "2G": ((900.0, 1800.0), (0.8, 0.2)),
    "3G": ((2100.0,), (1.0,)),
    "4G": ((1800.0, 2600.0, 900.0), (0.7, 0.15, 0.15)),
    "5G": ((3500.0,), (1.0,)),
}

log = logging.getLogger(__name__)

#: 2019 census population of the 7 districts of Đà Nẵng (persons); total 1,134,310.
CENSUS_2019: dict[str, int] = {
    "Hải Châu": 201522,
    "Liên Chiểu": 194913,
    "Thanh Khê": 185064,
    "Cẩm Lệ": 159295,
    "Sơn Trà": 157415,
    "Hòa Vang": 145749,
    "Ngũ Hành Sơn": 90352,
}

#: CRS of every layer of the demo: WGS 84 / UTM zone 49N (metres).
DEMO_CRS = "EPSG:32649"

_SOURCE = "synthetic telcoplan demo"
RURAL = frozenset({"Hòa Vang"})
_PRECISION_M = 0.01  # precision grid of the district polygons (1 cm)

# ----------------------------------------------------------------------------- hand-made geometry
#: Coarse city outline, lon/lat (°), clockwise from the north-west. Hand-authored.
_OUTLINE_LONLAT: tuple[tuple[float, float], ...] = (
    (107.830, 16.130), (107.870, 16.170), (107.930, 16.205), (108.000, 16.215),
    (108.060, 16.212), (108.110, 16.205), (108.140, 16.205),  # border with Huế along Hải Vân
    (108.175, 16.215),  # Hải Vân cape: the coast starts here
    (108.160, 16.185), (108.130, 16.155), (108.110, 16.120), (108.130, 16.090),
    (108.150, 16.075), (108.180, 16.068), (108.210, 16.078), (108.224, 16.092),  # Đà Nẵng bay
    (108.228, 16.118), (108.233, 16.143), (108.270, 16.160), (108.310, 16.145),
    (108.330, 16.120), (108.290, 16.100), (108.244, 16.094),  # Sơn Trà peninsula
    (108.250, 16.070), (108.265, 16.030), (108.280, 15.990),
    (108.290, 15.965),  # Non Nước: the coast ends here
    (108.250, 15.958), (108.200, 15.955), (108.150, 15.960), (108.100, 15.953),
    (108.040, 15.935), (107.975, 15.925),  # border with Quảng Nam (Điện Bàn, Đại Lộc)
    (107.968, 15.965), (107.972, 16.061), (107.920, 16.062), (107.870, 16.066),
    (107.823, 16.058), (107.820, 16.095),  # the mountainous west
)  # fmt: skip
_COAST = slice(7, 27)  # outline vertices from the Hải Vân cape to Non Nước

#: Sea beyond the coast (lon/lat): the coast plus far points to the east.
_SEA_EXTRA_LONLAT = ((108.360, 15.850), (108.700, 15.850), (108.700, 16.400), (108.175, 16.400))

#: Voronoi seeds per district, lon/lat (°). Hand-placed.
_DISTRICT_SEEDS: dict[str, tuple[tuple[float, float], ...]] = {
    "Hải Châu": ((108.218, 16.075), (108.215, 16.058), (108.215, 16.040), (108.215, 16.025)),
    "Liên Chiểu": (
        (108.130, 16.070), (108.140, 16.085), (108.120, 16.110), (108.130, 16.150),
        (108.150, 16.190), (108.125, 16.185),
    ),
    "Thanh Khê": ((108.175, 16.066), (108.190, 16.060), (108.196, 16.071)),
    "Cẩm Lệ": ((108.178, 16.036), (108.190, 16.020), (108.210, 16.005), (108.200, 16.036)),
    "Sơn Trà": (
        (108.235, 16.080), (108.240, 16.060), (108.245, 16.105), (108.270, 16.135),
        (108.310, 16.125),
    ),
    "Hòa Vang": (
        (107.900, 16.100), (107.990, 16.160), (108.050, 16.120), (108.000, 16.000),
        (108.050, 15.960), (108.090, 16.050), (108.120, 15.970), (108.170, 15.975),
        (108.225, 15.970), (108.060, 16.060), (108.070, 16.175), (108.140, 15.995),
        (107.870, 16.090),
    ),
    "Ngũ Hành Sơn": ((108.252, 16.030), (108.262, 16.000), (108.280, 15.975), (108.245, 16.005)),
}  # fmt: skip

# ----------------------------------------------------------------------------------------- terrain
#: Background terrain bumps: (lon °, lat °, height m, sigma_x m, sigma_y m).
_BUMPS: tuple[tuple[float, float, float, float, float], ...] = (
    (108.305, 16.128, 300.0, 1_400.0, 1_000.0),  # Sơn Trà east shoulder
    (108.245, 16.132, 220.0, 1_200.0, 1_000.0),  # Sơn Trà west shoulder
    (108.262, 16.003, 100.0, 350.0, 350.0),  # Marble Mountains (Ngũ Hành Sơn)
    (108.030, 16.200, 800.0, 4_000.0, 2_500.0),  # Hải Vân ridge, west
    (108.090, 16.205, 850.0, 3_000.0, 2_000.0),  # Hải Vân ridge, centre
    (108.165, 16.205, 600.0, 2_000.0, 1_500.0),  # Hải Vân ridge, east (cape)
    (107.900, 16.130, 700.0, 6_000.0, 4_000.0),  # western mountains, north
    (107.860, 16.090, 550.0, 4_000.0, 3_000.0),  # western mountains, far west
    (107.950, 16.100, 450.0, 5_000.0, 4_000.0),  # western mountains, centre
    (108.010, 15.960, 700.0, 4_000.0, 3_000.0),  # Bà Nà massif, south
    (108.040, 16.040, 400.0, 4_000.0, 3_000.0),  # Bà Nà massif, east foothills
)
#: Named peaks whose absolute height is set exactly (before noise): (lon °, lat °, m, sigma m).
_PEAKS: dict[str, tuple[float, float, float, float]] = {
    "Sơn Trà": (108.272, 16.128, 685.0, 1_500.0),
    "Bà Nà": (107.992, 15.998, 1_487.0, 2_500.0),
}
_RAMP_START_LON = 108.12  # the westward foothill ramp starts here (°E)
_RAMP_HEIGHT_M = 120.0
_RAMP_LENGTH_M = 15_000.0
_COAST_TAPER_M = 500.0  # relief fades to the coastal plain within ~1 km of the sea

# ------------------------------------------------------------------------------ residential mask
#: Population centres: (lon °, lat °, relative weight, sigma m).
_SETTLEMENTS: tuple[tuple[float, float, float, float], ...] = (
    (108.218, 16.068, 1.00, 1_800.0),  # Hải Châu centre
    (108.212, 16.045, 0.80, 1_500.0),  # Hòa Cường
    (108.185, 16.064, 0.90, 1_700.0),  # Thanh Khê
    (108.240, 16.070, 0.70, 1_500.0),  # An Hải
    (108.242, 16.095, 0.60, 1_200.0),  # Mân Thái, Thọ Quang
    (108.250, 16.035, 0.45, 1_800.0),  # Mỹ An, Khuê Mỹ
    (108.262, 16.000, 0.25, 1_500.0),  # Hòa Hải
    (108.195, 16.020, 0.60, 2_000.0),  # Hòa Thọ
    (108.175, 16.035, 0.50, 1_500.0),  # Hòa Phát, Hòa An
    (108.150, 16.070, 0.60, 1_800.0),  # Hòa Khánh
    (108.130, 16.095, 0.35, 1_500.0),  # Hòa Hiệp
    (108.200, 15.985, 0.30, 1_500.0),  # Hòa Châu
    (108.175, 15.970, 0.25, 1_500.0),  # Hòa Tiến
    (108.225, 15.975, 0.25, 1_200.0),  # Hòa Phước
    (108.140, 15.990, 0.25, 1_500.0),  # Hòa Phong (Túy Loan)
    (108.120, 16.035, 0.25, 1_500.0),  # Hòa Nhơn
    (108.100, 16.060, 0.20, 1_500.0),  # Hòa Sơn
    (108.110, 16.095, 0.20, 1_300.0),  # Hòa Liên
    (108.080, 15.965, 0.20, 1_500.0),  # Hòa Khương
    (108.040, 16.050, 0.12, 1_500.0),  # Hòa Ninh
    (108.030, 15.975, 0.12, 1_500.0),  # Hòa Phú
    (108.030, 16.125, 0.10, 1_500.0),  # Hòa Bắc
)
_WEIGHT_FLOOR = 0.01  # weight of any land cell far from every settlement

# ----------------------------------------------------------------------------------------- roads
#: Hand-laid main roads (name, class, lon/lat vertices), in priority order (higher class first).
_MAIN_ROADS: tuple[tuple[str, str, tuple[tuple[float, float], ...]], ...] = (
    ("Cao tốc Đà Nẵng – Quảng Ngãi (synthetic)", "motorway", (
        (108.113, 16.103), (108.100, 16.070), (108.105, 16.035), (108.120, 16.000),
        (108.140, 15.975), (108.160, 15.965),
    )),
    ("Quốc lộ 1A (synthetic)", "trunk", (
        (108.140, 16.198), (108.135, 16.175), (108.118, 16.150), (108.104, 16.125),
        (108.113, 16.103), (108.130, 16.085), (108.150, 16.065), (108.168, 16.042),
        (108.180, 16.018), (108.188, 15.995), (108.195, 15.975), (108.200, 15.960),
    )),
    ("Đường ven biển Sơn Trà – Điện Ngọc (synthetic)", "primary", (
        (108.240, 16.098), (108.246, 16.075), (108.256, 16.045), (108.266, 16.015),
        (108.276, 15.990), (108.283, 15.970),
    )),
    ("Đường ven vịnh Nguyễn Tất Thành (synthetic)", "primary", (
        (108.130, 16.085), (108.150, 16.071), (108.180, 16.064), (108.208, 16.073),
        (108.219, 16.084), (108.240, 16.098),
    )),
    ("Quốc lộ 14B (synthetic)", "primary", (
        (108.180, 16.018), (108.150, 16.005), (108.120, 15.995), (108.080, 15.985),
        (108.040, 15.975), (107.985, 15.960),
    )),
    ("Đường Hoàng Sa (synthetic)", "secondary", (
        (108.240, 16.098), (108.232, 16.115), (108.240, 16.135), (108.265, 16.148),
        (108.295, 16.140), (108.318, 16.122),
    )),
    ("Đường tỉnh 602 (synthetic)", "secondary", (
        (108.150, 16.065), (108.120, 16.055), (108.080, 16.045), (108.045, 16.030),
        (108.015, 16.012), (107.995, 16.003),
    )),
    ("Đường tỉnh 605 (synthetic)", "tertiary", (
        (108.188, 15.995), (108.215, 15.985), (108.245, 15.982), (108.276, 15.990),
    )),
    ("Đường Hòa Bắc (synthetic)", "tertiary", (
        (108.113, 16.103), (108.080, 16.115), (108.040, 16.125), (107.990, 16.130),
        (107.940, 16.120), (107.890, 16.110), (107.850, 16.100),
    )),
    ("Đường Hòa Sơn – Hòa Ninh (synthetic)", "tertiary", (
        (108.105, 16.035), (108.075, 16.075), (108.050, 16.095), (108.040, 16.125),
    )),
    ("Đường Hòa Phong – Hòa Khương (synthetic)", "tertiary", (
        (108.120, 15.995), (108.110, 15.975), (108.095, 15.958),
    )),
    ("Đường lên đỉnh Sơn Trà (synthetic)", "track", ((108.265, 16.148), (108.272, 16.128))),
    ("Đường mòn Hòa Bắc (synthetic)", "track", (
        (107.940, 16.120), (107.930, 16.160), (107.950, 16.190),
    )),
    ("Đường mòn Hòa Liên (synthetic)", "track", ((107.890, 16.110), (107.875, 16.075))),
)  # fmt: skip
#: Urban street grid: lon/lat box (°) and spacing (m).
_STREET_BOX = (108.140, 15.995, 108.255, 16.085)
_STREET_SPACING_M = 700.0
_CLASS_ORDER = ROAD_CLASSES  # most important first


@lru_cache(maxsize=1)
def _transformer() -> Transformer:
    return Transformer.from_crs("EPSG:4326", DEMO_CRS, always_xy=True)


def utm(lonlat: Sequence[tuple[float, float]]) -> np.ndarray:
    """Project lon/lat (°) to :data:`DEMO_CRS` (m); shape (n, 2)."""
    arr = np.asarray(lonlat, dtype=float).reshape(-1, 2)
    x, y = _transformer().transform(arr[:, 0], arr[:, 1])
    return np.column_stack([x, y])


def gdf(data: dict, geometry: Sequence) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(data)
    frame["source"] = _SOURCE
    return gpd.GeoDataFrame(
        frame, geometry=gpd.GeoSeries(list(geometry), crs=DEMO_CRS), crs=DEMO_CRS
    )


# -------------------------------------------------------------------------------------- districts
def _outline() -> shapely.Polygon:
    return shapely.Polygon(utm(_OUTLINE_LONLAT))


def sea_polygon() -> shapely.Geometry:
    coast = _OUTLINE_LONLAT[_COAST]
    ring = utm((*coast, *_SEA_EXTRA_LONLAT))
    return shapely.difference(shapely.Polygon(ring), _outline())


def build_areas() -> gpd.GeoDataFrame:
    """The 7 districts: Voronoi cells of hand-placed seeds, clipped to the outline, dissolved."""
    outline = _outline()
    names = list(CENSUS_2019)
    owner_of_seed = np.concatenate([[names.index(n)] * len(s) for n, s in _DISTRICT_SEEDS.items()])
    seeds = utm([p for s in _DISTRICT_SEEDS.values() for p in s])
    frame = shapely.box(*shapely.buffer(outline, 20_000.0).bounds)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=frame))
    # voronoi_polygons does not promise the seeds' order: find each cell's seed
    owner = np.empty(len(cells), dtype=np.int64)
    for i, cell in enumerate(cells):
        (hit,) = np.flatnonzero(shapely.contains_xy(cell, seeds[:, 0], seeds[:, 1]))
        owner[i] = owner_of_seed[hit]
    pieces = shapely.intersection(cells, outline, grid_size=_PRECISION_M)
    geoms = [
        shapely.union_all(pieces[owner == k], grid_size=_PRECISION_M) for k in range(len(names))
    ]
    return gdf(
        {
            "name": names,
            "population": np.array([CENSUS_2019[n] for n in names], dtype=np.int64),
            "urban": np.array([n not in RURAL for n in names], dtype=bool),
        },
        geoms,
    )


# ---------------------------------------------------------------------------------------- terrain
def _exp(x: np.ndarray) -> np.ndarray:
    """``exp`` of a float64 array through the C library's ``exp``, as numpy computes it on most
    CPUs: on CPUs with AVX-512 numpy uses an exponential of its own, whose last bit differs
    now and then, and the demo's population (float64, spread by these weights) must be the
    same on every machine (``tests/data/demo_fingerprint.json``)."""
    from telcoplan.demo._kernels import libm_exp

    x = np.ascontiguousarray(x, dtype=np.float64)
    return libm_exp(x.reshape(-1)).reshape(x.shape)


def _gauss(
    xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, h: float, sx: float, sy: float
) -> np.ndarray:
    return h * _exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))


def build_dem(rng: np.random.Generator, grid: GridSpec, sea: np.ndarray) -> np.ndarray:
    """Synthetic terrain (m, float32): coastal plain + ramp + Gaussian bumps + gentle noise.

    Notes
    -----
    ``h = plain + (ramp + Σ bumps + peaks) · (1 - exp(-d / 500 m)) + noise`` with
    ``plain = 1 + 9 (1 - exp(-d / 4 km))`` (``d`` the distance from the sea),
    ``ramp = 120 m · min(1, max(0, (x₀ - x) / 15 km))^1.5`` (rising west of 108.12° E) and noise = Gaussian-smoothed white noise (σ = 600 m) scaled to
    ``1 m + 0.4 %`` of the height. The named peaks' amplitudes are set so that the noise-free
    surface reaches their real heights (Sơn Trà 685 m, Bà Nà 1,487 m) near their summits.
    """
    res = grid.resolution
    xx, yy = grid.cell_centres()
    dist_sea = ndimage.distance_transform_edt(~sea) * res
    plain = 1.0 + 9.0 * (1.0 - _exp(-dist_sea / 4_000.0))
    taper = 1.0 - _exp(-dist_sea / _COAST_TAPER_M)  # hills slope down to the shore
    x0 = utm([(_RAMP_START_LON, 16.05)])[0, 0]
    relief = _RAMP_HEIGHT_M * np.clip((x0 - xx) / _RAMP_LENGTH_M, 0.0, 1.0) ** 1.5
    for lon, lat, height, sx, sy in _BUMPS:
        cx, cy = utm([(lon, lat)])[0]
        relief += _gauss(xx, yy, cx, cy, height, sx, sy)
    h = plain + relief * taper
    for lon, lat, target, sigma in _PEAKS.values():
        cx, cy = utm([(lon, lat)])[0]
        near = np.hypot(xx - cx, yy - cy) <= 2.0 * sigma
        shape = _gauss(xx, yy, cx, cy, 1.0, sigma, sigma) * taper
        # amplitude such that the highest point near the summit reaches the target height
        amp = target - float(h[near].max())
        for _ in range(4):
            amp += target - float((h + amp * shape)[near].max())
        h += amp * shape
    noise = ndimage.gaussian_filter(
        rng.standard_normal(grid.shape), sigma=600.0 / res, mode="reflect"
    )
    noise /= max(float(noise.std()), 1e-12)
    h += noise * (1.0 + 0.004 * h)
    h = np.where(sea, 0.0, np.maximum(h, 0.0))
    return h.astype(np.float32)


def residential_weights(grid: GridSpec, dem: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Synthetic residential mask (0–1): settlements, damped on high and steep ground.

    Notes
    -----
    ``w = (floor + Σ a·exp(-r²/2σ²)) · exp(-max(h - 15 m, 0) / 60 m) / (1 + (s / 0.06)²)``
    with ``h`` the terrain height and ``s`` the slope (m/m); 0 outside the districts.
    """
    xx, yy = grid.cell_centres()
    w = np.full(grid.shape, _WEIGHT_FLOOR)
    for lon, lat, a, sigma in _SETTLEMENTS:
        cx, cy = utm([(lon, lat)])[0]
        w += _gauss(xx, yy, cx, cy, a, sigma, sigma)
    h = dem.astype(np.float64)
    gy, gx = np.gradient(h, grid.resolution)
    slope = np.hypot(gx, gy)
    w *= _exp(-np.maximum(h - 15.0, 0.0) / 60.0) / (1.0 + (slope / 0.06) ** 2)
    w = np.where(labels >= 0, w, 0.0)
    return w / w.max()


# ------------------------------------------------------------------------------------------- roads
def _street_grid(outline: shapely.Polygon) -> list[tuple[str, str, shapely.LineString]]:
    """Axis-aligned urban streets: runs of grid edges that lie inside the outline."""
    (x0, y0), (x1, y1) = utm([_STREET_BOX[:2], _STREET_BOX[2:]])
    xs = np.arange(x0, x1 + 1.0, _STREET_SPACING_M)
    ys = np.arange(y0, y1 + 1.0, _STREET_SPACING_M)
    out: list[tuple[str, str, shapely.LineString]] = []
    for axis, (fixed, along) in enumerate(((xs, ys), (ys, xs))):
        for i, f in enumerate(fixed):
            cls = "secondary" if i % 4 == 0 else "tertiary" if i % 4 == 2 else "residential"
            name = f"Đường {'Dọc' if axis == 0 else 'Ngang'} {i + 1:02d} (synthetic)"
            pts = np.column_stack(
                [np.full(along.size, f), along] if axis == 0 else [along, np.full(along.size, f)]
            )
            edges = shapely.linestrings(np.stack([pts[:-1], pts[1:]], axis=1))
            keep = shapely.contains(outline, edges)
            start = None
            for j in range(len(edges) + 1):
                if j < len(edges) and keep[j]:
                    start = j if start is None else start
                elif start is not None:
                    out.append((name, cls, shapely.LineString(pts[start : j + 1])))
                    start = None
    return out


def build_roads(areas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Main roads + urban street grid, clipped to the study area and noded into one network."""
    study = shapely.union_all(areas.geometry.to_numpy())
    outline = _outline()
    lines = [(name, cls, shapely.LineString(utm(pts))) for name, cls, pts in _MAIN_ROADS]
    lines += _street_grid(outline)
    names, classes, parts = [], [], []
    for name, cls, line in lines:
        for part in shapely.get_parts(shapely.line_merge(shapely.intersection(line, study))):
            if part.geom_type == "LineString" and part.length > 1.0:
                names.append(name)
                classes.append(cls)
                parts.append(part)
    parts_arr = np.array(parts, dtype=object)
    pieces = shapely.get_parts(shapely.node(shapely.multilinestrings(parts_arr)))
    # attribute each noded piece to the highest-priority source line it lies on
    mids = shapely.line_interpolate_point(pieces, 0.5, normalized=True)
    src_idx, line_idx = shapely.STRtree(parts_arr).query(mids, predicate="dwithin", distance=0.01)
    owner = np.full(len(pieces), np.iinfo(np.int64).max)
    np.minimum.at(owner, src_idx, line_idx)
    along = shapely.line_locate_point(parts_arr[owner], mids)
    order = np.lexsort((along, owner))
    pieces, owner = pieces[order], owner[order]
    keep = _largest_component(pieces)
    if not keep.all():
        log.debug("dropping %d road pieces not connected to the main network", int((~keep).sum()))
    pieces, owner = pieces[keep], owner[keep]
    return gdf(
        {
            "road_id": [f"R-{i + 1:04d}" for i in range(len(pieces))],
            "road_class": [classes[o] for o in owner],
            "name": [names[o] for o in owner],
        },
        pieces,
    )


def _largest_component(lines: np.ndarray) -> np.ndarray:
    """Mask of the lines in the largest connected component (lines joined at shared endpoints)."""
    ends = np.concatenate([shapely.get_coordinates(shapely.get_point(lines, 0)),
                           shapely.get_coordinates(shapely.get_point(lines, -1))])  # fmt: skip
    _, node = np.unique(np.round(ends, 3), axis=0, return_inverse=True)
    node = node.ravel()
    n = len(lines)
    a, b = node[:n], node[n:]
    m = int(node.max()) + 1
    graph = coo_matrix((np.ones(n), (a, b)), shape=(m, m))
    _, comp = connected_components(graph, directed=False)
    biggest = np.bincount(comp[a], minlength=comp.max() + 1).argmax()
    return comp[a] == biggest
