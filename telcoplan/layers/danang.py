"""The built-in Đà Nẵng demo scenario: a deterministic, **synthetic** city of 2019.

Everything this module produces is SYNTHETIC. Only a handful of public *facts* are real: the
names of the 7 districts and 56 wards/communes of the 2019 city, the 2019 census population of
each district, the mobile operators' market shares (2024) and the heights of the Sơn Trà and Bà Nà
peaks. Every coordinate, boundary, road, tower, cable and building is made up here, in code, from a
seed; nothing is read from or copied out of any real data set. Every written file says so (raster
tags ``synthetic=true``, a ``source`` column in every vector layer).

How the scenario is built
-------------------------
1. **City outline.** A hand-authored coarse polygon of ~40 vertices in lon/lat (the mainland city
   without the Hoàng Sa island district): the Hải Vân ridge in the north, the coast running down
   from the Hải Vân pass around Đà Nẵng bay, the Sơn Trà peninsula sticking out to the north-east,
   the straight sandy coast running SSE to Non Nước, the southern border with Quảng Nam and the
   mountainous west. It is projected to UTM zone 49N (:data:`DEMO_CRS`); its area is ≈ 980 km².
2. **District partition.** A constrained Voronoi tessellation: 4–12 hand-placed seed points per
   district (placed from knowledge of where the districts lie: Hải Châu on the west bank of the Hàn
   river, Thanh Khê west of it, Sơn Trà on the east bank and the peninsula, Ngũ Hành Sơn on the
   south-east coast, Cẩm Lệ south-west of Hải Châu, Liên Chiểu north-west along the bay up to Hải
   Vân, Hòa Vang the large rural west including Bà Nà). The Voronoi cells are clipped to the
   outline on a 1 cm precision grid and dissolved per district, so the 7 districts form an exact
   partition of the outline (no gaps, no overlaps).
3. **Terrain (DEM).** A smooth surface: a coastal plain rising from 1 m at the shore to ≈ 10 m
   inland, a gentle westward ramp, and a sum of Gaussian bumps (Sơn Trà hill ≈ 690 m on the
   peninsula, the Hải Vân ridge in the north, the western Trường Sơn foothills, Bà Nà ≈ 1,487 m in
   western Hòa Vang, the small Marble Mountains), plus gentle seeded noise; 0 m on the sea, never
   negative.
4. **Population.** A synthetic residential weight mask (Gaussian urban cores and village centres,
   damped on high and steep terrain) drives :func:`~telcoplan.layers.population.spread_population`,
   which spreads each district's census count onto the 100 m grid and conserves it exactly.
5. **Towers, roads, fiber, candidates, POIs.** Sampled from the population raster with a seeded
   :class:`numpy.random.Generator` (minimum spacings keep sites apart), or laid out by hand (main
   roads) and procedurally (the urban street grid), then noded into one connected road network.

Determinism: only ``numpy.random.default_rng(seed)`` is used, in a fixed order; the same seed gives
identical layers and arrays.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from telcoplan.errors import OutputExistsError
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector
from telcoplan.gis.zonal import label_polygons
from telcoplan.layers.population import spread_population
from telcoplan.layers.schemas import ROAD_CLASSES

__all__ = ["CENSUS_2019", "DEMO_CRS", "Scenario", "build_scenario", "write_scenario"]

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
_RASTER_SOURCE = "telcoplan built-in Đà Nẵng demo (synthetic)"
_RURAL = frozenset({"Hòa Vang"})
_GRID_MARGIN_M = 2_000.0
_PRECISION_M = 0.01  # precision grid of the district polygons (1 cm)

#: The 56 wards (phường) and communes (xã, Hòa Vang) of 2019, per district (names are facts;
#: their synthetic positions are not).
_WARDS_2019: dict[str, tuple[str, ...]] = {
    "Hải Châu": (
        "Thạch Thang", "Hải Châu I", "Hải Châu II", "Phước Ninh", "Hòa Thuận Tây",
        "Hòa Thuận Đông", "Nam Dương", "Bình Hiên", "Bình Thuận", "Hòa Cường Bắc",
        "Hòa Cường Nam", "Thuận Phước", "Thanh Bình",
    ),
    "Liên Chiểu": ("Hòa Hiệp Bắc", "Hòa Hiệp Nam", "Hòa Khánh Bắc", "Hòa Khánh Nam", "Hòa Minh"),
    "Thanh Khê": (
        "Tam Thuận", "Thanh Khê Tây", "Thanh Khê Đông", "Xuân Hà", "Tân Chính", "Chính Gián",
        "Vĩnh Trung", "Thạc Gián", "An Khê", "Hòa Khê",
    ),
    "Cẩm Lệ": ("Khuê Trung", "Hòa Phát", "Hòa An", "Hòa Thọ Tây", "Hòa Thọ Đông", "Hòa Xuân"),
    "Sơn Trà": (
        "Thọ Quang", "Nại Hiên Đông", "Mân Thái", "An Hải Bắc", "Phước Mỹ", "An Hải Tây",
        "An Hải Đông",
    ),
    "Hòa Vang": (
        "Hòa Bắc", "Hòa Liên", "Hòa Ninh", "Hòa Sơn", "Hòa Nhơn", "Hòa Phú", "Hòa Phong",
        "Hòa Châu", "Hòa Tiến", "Hòa Phước", "Hòa Khương",
    ),
    "Ngũ Hành Sơn": ("Mỹ An", "Khuê Mỹ", "Hòa Quý", "Hòa Hải"),
}  # fmt: skip

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

#: Centre of the Hải Châu core (A1 camouflaged towers), lon/lat (°), and its radius (m).
_CORE_CENTRE = (108.219, 16.066)
_CORE_RADIUS_M = 1_800.0

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

# ---------------------------------------------------------------------------------------- towers
#: Mobile market shares (2024); site counts follow them, normalised to the three operators.
_MARKET_SHARE = {"Viettel": 0.56, "VinaPhone": 0.21, "MobiFone": 0.18}
_OPERATOR_PREFIX = {"Viettel": "VT", "VinaPhone": "VNP", "MobiFone": "MBF"}
_N_SITES = 600
#: Shared structures: tenant combination -> number of structures.
_SHARED = {
    ("Viettel", "VinaPhone", "MobiFone"): 18,
    ("Viettel", "VinaPhone"): 30,
    ("Viettel", "MobiFone"): 26,
    ("VinaPhone", "MobiFone"): 10,
}
_SITE_SPACING_M = {"urban": 250.0, "rural": 700.0}
#: Technology mix (urban, rural) and carrier frequencies (MHz) with their probabilities.
_TECH_P = {"urban": (0.05, 0.10, 0.75, 0.10), "rural": (0.15, 0.15, 0.70, 0.0)}
_TECHS = ("2G", "3G", "4G", "5G")
_FREQS = {
    "2G": ((900.0, 1800.0), (0.8, 0.2)),
    "3G": ((2100.0,), (1.0,)),
    "4G": ((1800.0, 2600.0, 900.0), (0.7, 0.15, 0.15)),
    "5G": ((3500.0,), (1.0,)),
}

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

# ----------------------------------------------------------------------------------------- fiber
#: Probability that an operator's fiber follows a road of each class (whole roads are chosen).
_FIBER_P = {
    "Viettel": {"motorway": 1.0, "trunk": 1.0, "primary": 1.0, "secondary": 1.0, "tertiary": 0.6},
    "VinaPhone": {"trunk": 1.0, "primary": 1.0, "secondary": 0.6, "tertiary": 0.25},
    "MobiFone": {"trunk": 1.0, "primary": 0.8, "secondary": 0.45, "tertiary": 0.15},
}
_FIBER_CORES = {"motorway": 96, "trunk": 96, "primary": 48, "secondary": 24, "tertiary": 12}

# ------------------------------------------------------------------------------------------ POIs
_N_SCHOOLS = 120
_HOSPITALS = {
    "Hải Châu": 3,
    "Thanh Khê": 1,
    "Sơn Trà": 1,
    "Liên Chiểu": 1,
    "Cẩm Lệ": 1,
    "Hòa Vang": 1,
}
_REQUIRED_DBM = {
    "ward_office": -95.0,
    "clinic": -95.0,
    "hospital": -90.0,
    "police": -95.0,
    "school": -100.0,
}
_SCHOOL_KINDS = ("Tiểu học", "THCS", "THPT")

# ------------------------------------------------------------------------------------ candidates
_N_CANDIDATES = {"existing_tower": 60, "rooftop": 80, "greenfield": 60, "public_land": 30}

_VECTOR_LAYERS = ("areas", "towers", "fiber", "roads", "candidates", "pois")


@dataclass(frozen=True, eq=False)
class Scenario:
    """The synthetic Đà Nẵng demo scenario: every layer of a plan, in :data:`DEMO_CRS`.

    Attributes
    ----------
    areas : geopandas.GeoDataFrame
        The 7 districts of 2019 (``name``, ``population`` in persons, ``urban``, ``source``);
        an exact partition of the study area (≈ 980 km²).
    towers : geopandas.GeoDataFrame
        Existing sites of Viettel, VinaPhone and MobiFone (one row per operator site), see
        :data:`telcoplan.layers.schemas.TOWERS`; shared structures repeat the location.
    fiber : geopandas.GeoDataFrame
        Existing fiber cables per operator, LineStrings lying on the road centre lines.
    roads : geopandas.GeoDataFrame
        One connected road network, LineString segments between junctions.
    candidates : geopandas.GeoDataFrame
        Candidate sites (existing towers, rooftops, greenfield, public land).
    pois : geopandas.GeoDataFrame
        Ward offices (56), clinics, schools, hospitals and police stations.
    population : numpy.ndarray
        float64 persons per cell on ``grid``; each district sums to its 2019 census count.
    dem : numpy.ndarray
        float32 terrain height above sea level (m) on ``grid``; 0 on the sea.
    grid : telcoplan.gis.grid.GridSpec
        The plan grid (square cells of ``resolution_m``, 100 m by default) in :data:`DEMO_CRS`.
    landuse_weights : numpy.ndarray
        float64 residential weight (0–1) on ``grid`` used to spread the population.
    seed : int
        Seed of the random generator that made the scenario.

    Notes
    -----
    The arrays are read-only, so the scenario cannot be changed in place by accident.
    """

    areas: gpd.GeoDataFrame
    towers: gpd.GeoDataFrame
    fiber: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    candidates: gpd.GeoDataFrame
    pois: gpd.GeoDataFrame
    population: np.ndarray
    dem: np.ndarray
    grid: GridSpec
    landuse_weights: np.ndarray
    seed: int

    def __repr__(self) -> str:
        counts = ", ".join(f"{n}={len(getattr(self, n))}" for n in _VECTOR_LAYERS)
        return (
            f"Scenario(seed={self.seed}, {counts}, grid={self.grid.width}x{self.grid.height}"
            f"@{self.grid.resolution:g}m {self.grid.crs}, population={self.population.sum():.0f})"
        )


# ===================================================================================== public API
def build_scenario(seed: int = 2019, *, resolution_m: float = 100.0) -> Scenario:
    """Build the synthetic Đà Nẵng demo scenario.

    Parameters
    ----------
    seed
        Seed of :func:`numpy.random.default_rng`; the same seed gives identical layers.
    resolution_m
        Cell size of the plan grid (m).

    Returns
    -------
    Scenario
        Every layer in :data:`DEMO_CRS` (UTM zone 49N, metres); see :class:`Scenario`.

    Notes
    -----
    District boundaries, the road network and the terrain bumps do not depend on ``seed``; the
    terrain noise, population details, towers, fiber choices, candidates and POIs do. Takes about
    a second at 100 m.

    Examples
    --------
    >>> sc = build_scenario()
    >>> round(float(sc.population.sum()))
    1134310
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    areas = _build_areas()
    xmin, ymin, xmax, ymax = areas.total_bounds
    m = _GRID_MARGIN_M
    grid = GridSpec.from_bounds((xmin - m, ymin - m, xmax + m, ymax + m), resolution_m, DEMO_CRS)
    labels = label_polygons(areas, grid)
    sea = _rasterize_mask(_sea_polygon(), grid) & (labels < 0)
    dem = _build_dem(rng, grid, sea)
    weights = _residential_weights(grid, dem, labels)
    population = spread_population(areas, grid, column="population", weights=weights)

    ctx = _Context(rng=rng, grid=grid, areas=areas, labels=labels, population=population, dem=dem)
    towers = _build_towers(ctx)
    roads = _build_roads(areas)
    fiber = _build_fiber(rng, roads)
    pois = _build_pois(ctx)
    candidates = _build_candidates(ctx, towers, pois)

    for arr in (population, dem, weights):
        arr.flags.writeable = False
    log.debug("built the Đà Nẵng demo scenario (seed %d) in %.2f s", seed, time.perf_counter() - t0)
    return Scenario(
        areas=areas,
        towers=towers,
        fiber=fiber,
        roads=roads,
        candidates=candidates,
        pois=pois,
        population=population,
        dem=dem,
        grid=grid,
        landuse_weights=weights,
        seed=int(seed),
    )


def write_scenario(
    scenario: Scenario, inputs_dir: Path, *, overwrite: bool = False
) -> dict[str, Path]:
    """Write every layer of ``scenario`` into ``inputs_dir`` (GeoPackage and GeoTIFF files).

    Parameters
    ----------
    scenario
        A scenario from :func:`build_scenario`.
    inputs_dir
        Folder to write into (created when missing).
    overwrite
        Replace existing files. Without it, nothing is written when any target file exists.

    Returns
    -------
    dict of str to pathlib.Path
        ``{layer name: path}``: ``areas``, ``towers``, ``fiber``, ``roads``, ``candidates``,
        ``pois`` (``<name>.gpkg``, one layer named like the file) and ``population``, ``dem``
        (``<name>.tif``, Cloud-Optimized GeoTIFF on ``scenario.grid``).

    Raises
    ------
    telcoplan.errors.OutputExistsError
        When a target file exists and ``overwrite`` is False (before anything is written).

    Notes
    -----
    Each file is written atomically (temporary name, then rename). Every file is marked as
    synthetic: vector layers carry a ``source`` column, rasters the tags ``synthetic=true`` and
    ``source``. The same scenario always gives byte-identical GeoTIFFs.
    """
    folder = Path(inputs_dir)
    paths = {name: folder / f"{name}.gpkg" for name in _VECTOR_LAYERS}
    paths["population"] = folder / "population.tif"
    paths["dem"] = folder / "dem.tif"
    if not overwrite:
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing:
            raise OutputExistsError(
                f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                "pass --overwrite (overwrite=True) to replace the demo inputs"
            )
    for name in _VECTOR_LAYERS:
        write_vector(paths[name], getattr(scenario, name), layer=name, overwrite=overwrite)
    common = {"synthetic": "true", "source": _RASTER_SOURCE, "seed": str(scenario.seed)}
    write_raster(
        paths["population"],
        scenario.population,
        scenario.grid,
        overwrite=overwrite,
        tags={**common, "units": "persons per cell", "census": "2019 district totals"},
        description="population (persons per cell, SYNTHETIC)",
    )
    write_raster(
        paths["dem"],
        scenario.dem,
        scenario.grid,
        overwrite=overwrite,
        tags={**common, "units": "m above sea level"},
        description="terrain height (m, SYNTHETIC)",
    )
    return paths


# ====================================================================================== internals
@dataclass(frozen=True, eq=False)
class _Context:
    """What the point samplers share: generator, grid, districts and rasters."""

    rng: np.random.Generator
    grid: GridSpec
    areas: gpd.GeoDataFrame
    labels: np.ndarray
    population: np.ndarray
    dem: np.ndarray

    def district(self, name: str) -> int:
        return int(np.flatnonzero(self.areas["name"].to_numpy() == name)[0])

    def name_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Name of the district containing each point (object array; points lie inside)."""
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        r, c = self.grid.rowcol(x, y)
        names = self.areas["name"].to_numpy()
        out = names[self.labels[r, c]].astype(object)
        for name, poly in zip(names, self.areas.geometry.to_numpy(), strict=True):
            out[shapely.contains_xy(poly, x, y)] = name
        return out


@lru_cache(maxsize=1)
def _transformer() -> Transformer:
    return Transformer.from_crs("EPSG:4326", DEMO_CRS, always_xy=True)


def _utm(lonlat: Sequence[tuple[float, float]]) -> np.ndarray:
    """Project lon/lat (°) to :data:`DEMO_CRS` (m); shape (n, 2)."""
    arr = np.asarray(lonlat, dtype=float).reshape(-1, 2)
    x, y = _transformer().transform(arr[:, 0], arr[:, 1])
    return np.column_stack([x, y])


def _gdf(data: dict, geometry: Sequence) -> gpd.GeoDataFrame:
    frame = pd.DataFrame(data)
    frame["source"] = _SOURCE
    return gpd.GeoDataFrame(
        frame, geometry=gpd.GeoSeries(list(geometry), crs=DEMO_CRS), crs=DEMO_CRS
    )


def _apportion(total: int, weights: Sequence[float]) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder method)."""
    w = np.asarray(weights, dtype=float)
    quota = total * w / w.sum()
    out = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - out), kind="stable")
    out[order[: total - int(out.sum())]] += 1
    return out


def _rasterize_mask(geom: shapely.Geometry, grid: GridSpec) -> np.ndarray:
    """Cells whose centre lies in ``geom`` (bool, ``grid.shape``)."""
    return label_polygons(gpd.GeoSeries([geom], crs=grid.crs), grid) >= 0


# -------------------------------------------------------------------------------------- districts
def _outline() -> shapely.Polygon:
    return shapely.Polygon(_utm(_OUTLINE_LONLAT))


def _sea_polygon() -> shapely.Geometry:
    coast = _OUTLINE_LONLAT[_COAST]
    ring = _utm((*coast, *_SEA_EXTRA_LONLAT))
    return shapely.difference(shapely.Polygon(ring), _outline())


def _build_areas() -> gpd.GeoDataFrame:
    """The 7 districts: Voronoi cells of hand-placed seeds, clipped to the outline, dissolved."""
    outline = _outline()
    names = list(CENSUS_2019)
    owner_of_seed = np.concatenate([[names.index(n)] * len(s) for n, s in _DISTRICT_SEEDS.items()])
    seeds = _utm([p for s in _DISTRICT_SEEDS.values() for p in s])
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
    return _gdf(
        {
            "name": names,
            "population": np.array([CENSUS_2019[n] for n in names], dtype=np.int64),
            "urban": np.array([n not in _RURAL for n in names], dtype=bool),
        },
        geoms,
    )


# ---------------------------------------------------------------------------------------- terrain
def _gauss(
    xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, h: float, sx: float, sy: float
) -> np.ndarray:
    return h * np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))


def _build_dem(rng: np.random.Generator, grid: GridSpec, sea: np.ndarray) -> np.ndarray:
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
    plain = 1.0 + 9.0 * (1.0 - np.exp(-dist_sea / 4_000.0))
    taper = 1.0 - np.exp(-dist_sea / _COAST_TAPER_M)  # hills slope down to the shore
    x0 = _utm([(_RAMP_START_LON, 16.05)])[0, 0]
    relief = _RAMP_HEIGHT_M * np.clip((x0 - xx) / _RAMP_LENGTH_M, 0.0, 1.0) ** 1.5
    for lon, lat, height, sx, sy in _BUMPS:
        cx, cy = _utm([(lon, lat)])[0]
        relief += _gauss(xx, yy, cx, cy, height, sx, sy)
    h = plain + relief * taper
    for lon, lat, target, sigma in _PEAKS.values():
        cx, cy = _utm([(lon, lat)])[0]
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


def _residential_weights(grid: GridSpec, dem: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Synthetic residential mask (0–1): settlements, damped on high and steep ground.

    Notes
    -----
    ``w = (floor + Σ a·exp(-r²/2σ²)) · exp(-max(h - 15 m, 0) / 60 m) / (1 + (s / 0.06)²)``
    with ``h`` the terrain height and ``s`` the slope (m/m); 0 outside the districts.
    """
    xx, yy = grid.cell_centres()
    w = np.full(grid.shape, _WEIGHT_FLOOR)
    for lon, lat, a, sigma in _SETTLEMENTS:
        cx, cy = _utm([(lon, lat)])[0]
        w += _gauss(xx, yy, cx, cy, a, sigma, sigma)
    h = dem.astype(np.float64)
    gy, gx = np.gradient(h, grid.resolution)
    slope = np.hypot(gx, gy)
    w *= np.exp(-np.maximum(h - 15.0, 0.0) / 60.0) / (1.0 + (slope / 0.06) ** 2)
    w = np.where(labels >= 0, w, 0.0)
    return w / w.max()


# --------------------------------------------------------------------------------- point sampling
def _sample_points(
    ctx: _Context,
    weight: np.ndarray,
    n: int,
    spacing: float | np.ndarray,
) -> np.ndarray:
    """``n`` points inside the districts, drawn with probability ∝ ``weight``, kept apart.

    Parameters
    ----------
    weight
        Non-negative weights on the grid; cells outside every district are ignored.
    n
        Number of points.
    spacing
        Minimum distance between points (m): a scalar, or one value per district (in the order
        of ``ctx.areas``), applied by the district of the new point. Relaxed by 30 % after every
        5 rounds of draws that did not give enough points.

    Returns
    -------
    numpy.ndarray
        (n, 2) coordinates (m), in acceptance order.
    """
    grid, labels = ctx.grid, ctx.labels
    w = np.where(labels >= 0, weight, 0.0).ravel()
    p = w / w.sum()
    per_district = np.broadcast_to(np.asarray(spacing, dtype=float), (len(ctx.areas),))
    polys = ctx.areas.geometry.to_numpy()
    xc, yc = grid.x_centres(), grid.y_centres()
    out = np.empty((n, 2))
    k = 0
    factor = 1.0
    for attempt in range(60):
        m = max(4 * (n - k), 64)
        idx = ctx.rng.choice(w.size, size=m, p=p)
        jitter = ctx.rng.uniform(-0.5, 0.5, size=(m, 2)) * grid.resolution
        r, c = np.divmod(idx, grid.width)
        x, y = xc[c] + jitter[:, 0], yc[r] + jitter[:, 1]
        lab = labels[r, c]
        inside = shapely.contains_xy(polys[lab], x, y)
        for i in np.flatnonzero(inside):
            gap = np.hypot(out[:k, 0] - x[i], out[:k, 1] - y[i]).min(initial=np.inf)
            if gap < per_district[lab[i]] * factor:
                continue
            out[k] = (x[i], y[i])
            k += 1
            if k == n:
                return out
        if attempt % 5 == 4:
            factor *= 0.7
    msg = f"could not place {n} points (placed {k}); the weights are too concentrated"
    raise RuntimeError(msg)  # pragma: no cover


# ------------------------------------------------------------------------------------------ towers
def _tower_type(ctx: _Context, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A1 in the Hải Châu core, A2b in rural districts, A2a elsewhere."""
    names = ctx.name_at(x, y)
    core = _utm([_CORE_CENTRE])[0]
    in_core = (names == "Hải Châu") & (np.hypot(x - core[0], y - core[1]) <= _CORE_RADIUS_M)
    rural = np.isin(names, sorted(_RURAL))
    return np.where(in_core, "A1", np.where(rural, "A2b", "A2a"))


def _build_towers(ctx: _Context) -> gpd.GeoDataFrame:
    """Sites of the three operators; counts follow market shares, some structures shared."""
    rng = ctx.rng
    operators = list(_MARKET_SHARE)
    n_sites = dict(zip(operators, _apportion(_N_SITES, list(_MARKET_SHARE.values())), strict=True))
    combos: list[tuple[str, ...]] = []
    for combo, count in _SHARED.items():
        combos += [combo] * count
    for op in operators:
        shared = sum(count for combo, count in _SHARED.items() if op in combo)
        combos += [(op,)] * int(n_sites[op] - shared)
    combos = [combos[i] for i in rng.permutation(len(combos))]

    spacing = np.array(
        [_SITE_SPACING_M["rural" if n in _RURAL else "urban"] for n in ctx.areas["name"]]
    )
    xy = _sample_points(ctx, ctx.population**0.6, len(combos), spacing)
    districts = ctx.name_at(xy[:, 0], xy[:, 1])
    ttype = _tower_type(ctx, xy[:, 0], xy[:, 1])

    rows: dict[str, list] = defaultdict(list)
    geoms: list[shapely.Point] = []
    name_counter: dict[str, int] = {}
    for op in operators:
        k = 0
        for s, combo in enumerate(combos):
            if op not in combo:
                continue
            k += 1
            zone = "rural" if districts[s] in _RURAL else "urban"
            tech = _TECHS[int(rng.choice(len(_TECHS), p=_TECH_P[zone]))]
            freqs, fp = _FREQS[tech]
            # urban masts from 30 m: inside Okumura-Hata's 30–200 m base-station range
            lo, hi = (30.0, 45.0) if zone == "rural" else (30.0, 42.0)
            name_counter[districts[s]] = name_counter.get(districts[s], 0) + 1
            rows["site_id"].append(f"{_OPERATOR_PREFIX[op]}-{k:04d}")
            rows["operator"].append(op)
            rows["technology"].append(tech)
            rows["frequency_mhz"].append(float(freqs[int(rng.choice(len(freqs), p=fp))]))
            rows["height_m"].append(round(float(rng.uniform(lo, hi)) * 2.0) / 2.0)
            rows["eirp_dbm"].append(round(float(rng.uniform(55.0, 62.0)), 1))
            rows["name"].append(f"Trạm {districts[s]} {name_counter[districts[s]]:03d}")
            rows["tower_type"].append(str(ttype[s]))
            rows["tenants"].append(len(combo))
            geoms.append(shapely.Point(xy[s]))
    n = len(geoms)
    omni = np.full(n, np.nan)  # omnidirectional antennas: no azimuth, beamwidth or tilt
    data = {
        **{c: rows[c] for c in ("site_id", "operator", "technology")},
        "frequency_mhz": np.asarray(rows["frequency_mhz"], dtype=float),
        "height_m": np.asarray(rows["height_m"], dtype=float),
        "eirp_dbm": np.asarray(rows["eirp_dbm"], dtype=float),
        "name": rows["name"],
        "azimuth_deg": omni,
        "beamwidth_deg": omni.copy(),
        "tilt_deg": omni.copy(),
        "tower_type": rows["tower_type"],
        "tenants": np.asarray(rows["tenants"], dtype=np.int64),
    }
    return _gdf(data, geoms)


# ------------------------------------------------------------------------------------------- roads
def _street_grid(outline: shapely.Polygon) -> list[tuple[str, str, shapely.LineString]]:
    """Axis-aligned urban streets: runs of grid edges that lie inside the outline."""
    (x0, y0), (x1, y1) = _utm([_STREET_BOX[:2], _STREET_BOX[2:]])
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


def _build_roads(areas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Main roads + urban street grid, clipped to the study area and noded into one network."""
    study = shapely.union_all(areas.geometry.to_numpy())
    outline = _outline()
    lines = [(name, cls, shapely.LineString(_utm(pts))) for name, cls, pts in _MAIN_ROADS]
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
    return _gdf(
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


# ------------------------------------------------------------------------------------------- fiber
def _build_fiber(rng: np.random.Generator, roads: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Per operator, cables along a random subset of the main roads (whole roads), merged."""
    road_names = list(dict.fromkeys(roads["name"]))  # first-appearance order
    road_class = dict(zip(roads["name"], roads["road_class"], strict=True))
    geoms = roads.geometry.to_numpy()
    rows: dict[str, list] = {"fiber_id": [], "operator": [], "cores": [], "status": []}
    lines: list[shapely.LineString] = []
    for op, probs in _FIBER_P.items():
        draws = rng.random(len(road_names))
        k = 0
        for name, u in zip(road_names, draws, strict=True):
            cls = road_class[name]
            if u >= probs.get(cls, 0.0):
                continue
            merged = shapely.line_merge(
                shapely.multilinestrings(geoms[(roads["name"] == name).to_numpy()])
            )
            for part in shapely.get_parts(merged):
                k += 1
                rows["fiber_id"].append(f"{_OPERATOR_PREFIX[op]}-F{k:03d}")
                rows["operator"].append(op)
                rows["cores"].append(_FIBER_CORES[cls] * (2 if op == "Viettel" else 1))
                rows["status"].append("existing")
                lines.append(part)
    rows["cores"] = np.asarray(rows["cores"], dtype=np.int64)
    return _gdf(rows, lines)


# -------------------------------------------------------------------------------------------- POIs
def _district_weight(ctx: _Context, name: str, base: np.ndarray) -> np.ndarray:
    return np.where(ctx.labels == ctx.district(name), base, 0.0)


def _spacing_for(ctx: _Context, name: str, n: int, share: float) -> float:
    """``share`` x the side of a square of (district area / n) (m)."""
    area = float(ctx.areas.geometry.iloc[ctx.district(name)].area)
    return share * float(np.sqrt(area / max(n, 1)))


def _build_pois(ctx: _Context) -> gpd.GeoDataFrame:
    """Ward offices and clinics (one per ward), schools, hospitals, police stations."""
    rng = ctx.rng
    rows: dict[str, list] = {"name": [], "category": [], "required_dbm": []}
    geoms: list[shapely.Point] = []

    def add(name: str, category: str, xy: np.ndarray) -> None:
        rows["name"].append(f"{name} (synthetic)")
        rows["category"].append(category)
        rows["required_dbm"].append(_REQUIRED_DBM[category])
        geoms.append(shapely.Point(xy))

    polys = ctx.areas.geometry.to_numpy()
    for district, wards in _WARDS_2019.items():
        kind = "xã" if district in _RURAL else "phường"
        w = _district_weight(ctx, district, ctx.population)
        offices = _sample_points(ctx, w, len(wards), _spacing_for(ctx, district, len(wards), 0.5))
        poly = polys[ctx.district(district)]
        for ward, xy in zip(wards, offices, strict=True):
            add(f"UBND {kind} {ward}", "ward_office", xy)
            add(f"Trạm y tế {kind} {ward}", "clinic", _nearby(rng, poly, xy, 150.0, 500.0))
    n_schools = _apportion(_N_SCHOOLS, list(CENSUS_2019.values()))
    for district, n in zip(CENSUS_2019, n_schools, strict=True):
        w = _district_weight(ctx, district, ctx.population)
        for k, xy in enumerate(_sample_points(ctx, w, int(n), 300.0)):
            add(f"Trường {_SCHOOL_KINDS[k % 3]} {district} số {k // 3 + 1}", "school", xy)
    for district, n in _HOSPITALS.items():
        w = _district_weight(ctx, district, ctx.population)
        for k, xy in enumerate(_sample_points(ctx, w, n, 800.0)):
            label = f"Bệnh viện {district}" if k == 0 else f"Bệnh viện {district} số {k + 1}"
            add(label, "hospital", xy)
    for district in CENSUS_2019:
        w = _district_weight(ctx, district, ctx.population)
        kind = "huyện" if district in _RURAL else "quận"
        add(f"Công an {kind} {district}", "police", _sample_points(ctx, w, 1, 0.0)[0])
    rows["poi_id"] = [f"POI-{i + 1:04d}" for i in range(len(geoms))]
    return _gdf({c: rows[c] for c in ("poi_id", "name", "category", "required_dbm")}, geoms)


def _nearby(
    rng: np.random.Generator, poly: shapely.Geometry, xy: np.ndarray, rmin: float, rmax: float
) -> np.ndarray:
    """A point ``rmin``–``rmax`` m from ``xy`` inside ``poly`` (``xy`` itself if none is found)."""
    for _ in range(50):
        r = rng.uniform(rmin, rmax)
        a = rng.uniform(0.0, 2.0 * np.pi)
        p = xy + r * np.array([np.cos(a), np.sin(a)])
        if shapely.contains_xy(poly, p[0], p[1]):
            return p
    return np.asarray(xy, dtype=float)  # pragma: no cover


# -------------------------------------------------------------------------------------- candidates
def _build_candidates(
    ctx: _Context, towers: gpd.GeoDataFrame, pois: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """Existing towers, urban rooftops, rural greenfield sites and public land."""
    rng = ctx.rng
    rows: dict[str, list] = {
        "kind": [],
        "cost": [],
        "max_height_m": [],
        "tower_type": [],
        "name": [],
    }
    geoms: list[shapely.Point] = []
    counter: dict[str, int] = {}

    def add(
        kind: str, xy: np.ndarray, cost: tuple[float, float], height: float, ttype: str, label: str
    ) -> None:
        rows["kind"].append(kind)
        rows["cost"].append(float(round(rng.uniform(*cost), -2)))
        rows["max_height_m"].append(height)
        rows["tower_type"].append(ttype)
        rows["name"].append(label)
        geoms.append(shapely.Point(xy))

    def numbered(prefix: str, district: str) -> str:
        key = f"{prefix} {district}"
        counter[key] = counter.get(key, 0) + 1
        return f"{key} {counter[key]:03d}"

    # existing structures (one candidate per location, first tenant's id)
    first = towers[
        ~pd.DataFrame(shapely.get_coordinates(towers.geometry.to_numpy())).duplicated().to_numpy()
    ]
    pick = np.sort(rng.choice(len(first), size=_N_CANDIDATES["existing_tower"], replace=False))
    for _, t in first.iloc[pick].iterrows():
        rural = t["tower_type"] == "A2b"
        add("existing_tower", np.array([t.geometry.x, t.geometry.y]), (10_000.0, 20_000.0),
            45.0 if rural else 40.0, t["tower_type"], f"Trạm hiện hữu {t['site_id']}")  # fmt: skip

    # rooftops in the urban districts
    urban = ctx.areas["urban"].to_numpy()
    w = np.where(urban[np.maximum(ctx.labels, 0)] & (ctx.labels >= 0), ctx.population, 0.0)
    xy = _sample_points(ctx, w, _N_CANDIDATES["rooftop"], 250.0)
    ttypes = _tower_type(ctx, xy[:, 0], xy[:, 1])
    for p, tt, d in zip(xy, ttypes, ctx.name_at(xy[:, 0], xy[:, 1]), strict=True):
        add(
            "rooftop",
            p,
            (18_000.0, 30_000.0),
            float(rng.integers(25, 36)),
            str(tt),
            numbered("Mái nhà", d),
        )

    # greenfield in the rural district, on low and gentle ground
    rural_w = np.zeros(ctx.grid.shape)
    for name in sorted(_RURAL):
        rural_w += _district_weight(ctx, name, np.sqrt(ctx.population) + 0.05)
    rural_w *= ctx.dem < 300.0
    xy = _sample_points(ctx, rural_w, _N_CANDIDATES["greenfield"], 1_000.0)
    for p, d in zip(xy, ctx.name_at(xy[:, 0], xy[:, 1]), strict=True):
        add("greenfield", p, (40_000.0, 70_000.0), 45.0, "A2b", numbered("Đất trống", d))

    # public land next to public buildings
    public = pois[pois["category"].isin(["ward_office", "police", "school"])]
    pick = np.sort(rng.choice(len(public), size=_N_CANDIDATES["public_land"], replace=False))
    polys = ctx.areas.geometry.to_numpy()
    for _, poi in public.iloc[pick].iterrows():
        here = np.array([poi.geometry.x, poi.geometry.y])
        d = str(ctx.name_at(here[:1], here[1:])[0])
        p = _nearby(rng, polys[ctx.district(d)], here, 20.0, 60.0)
        tt = str(_tower_type(ctx, p[:1], p[1:])[0])
        add("public_land", p, (20_000.0, 35_000.0), 40.0 if d in _RURAL else 30.0, tt,
            f"Đất công {poi['name'].removesuffix(' (synthetic)')}")  # fmt: skip

    rows["candidate_id"] = [f"CAND-{i + 1:04d}" for i in range(len(geoms))]
    cols = ("candidate_id", "kind", "cost", "max_height_m", "tower_type", "name")
    return _gdf({c: rows[c] for c in cols}, geoms)
