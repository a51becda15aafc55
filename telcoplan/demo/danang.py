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

Steps 1–4 and the roads (the land, hand-made; only the terrain noise uses the generator) live in
:mod:`telcoplan.demo._geography`; this module samples the rest and holds the public API.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from telcoplan.demo._geography import (
    CARRIER_FREQUENCIES_MHZ,
    CENSUS_2019,
    DEMO_CRS,
    RURAL,
    TECHNOLOGIES,
    build_areas,
    build_dem,
    build_roads,
    gdf,
    residential_weights,
    sea_polygon,
    utm,
)
from telcoplan.errors import OutputExistsError
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector
from telcoplan.gis.zonal import label_polygons
from telcoplan.layers.population import spread_population

__all__ = ["CENSUS_2019", "DEMO_CRS", "Scenario", "build_scenario", "write_scenario"]

log = logging.getLogger(__name__)

_RASTER_SOURCE = "telcoplan built-in Đà Nẵng demo (synthetic)"
_GRID_MARGIN_M = 2_000.0

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

#: Centre of the Hải Châu core (A1 camouflaged towers), lon/lat (°), and its radius (m).
_CORE_CENTRE = (108.219, 16.066)
_CORE_RADIUS_M = 1_800.0

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
#: The rural west (the western part of Hòa Vang, towards Bà Nà) is under-served, as in many real
#: cities: operators build there at this fraction of the density elsewhere, leaving villages
#: in coverage gaps for the sites stage to fill. West = the western `_WEST_SHARE` of the district.
_WEST_WEIGHT, _WEST_SHARE = 0.03, 0.9
#: Technology mix (urban, rural), in the order of :data:`TECHNOLOGIES`.
_TECH_P = {"urban": (0.05, 0.10, 0.75, 0.10), "rural": (0.15, 0.15, 0.70, 0.0)}

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
    areas = build_areas()
    xmin, ymin, xmax, ymax = areas.total_bounds
    m = _GRID_MARGIN_M
    grid = GridSpec.from_bounds((xmin - m, ymin - m, xmax + m, ymax + m), resolution_m, DEMO_CRS)
    labels = label_polygons(areas, grid)
    sea = _rasterize_mask(sea_polygon(), grid) & (labels < 0)
    dem = build_dem(rng, grid, sea)
    weights = residential_weights(grid, dem, labels)
    population = spread_population(areas, grid, column="population", weights=weights)

    ctx = _Context(rng=rng, grid=grid, areas=areas, labels=labels, population=population, dem=dem)
    towers = _build_towers(ctx)
    roads = build_roads(areas)
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
                "pass --overwrite to replace the demo inputs"
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
    core = utm([_CORE_CENTRE])[0]
    in_core = (names == "Hải Châu") & (np.hypot(x - core[0], y - core[1]) <= _CORE_RADIUS_M)
    rural = np.isin(names, sorted(RURAL))
    return np.where(in_core, "A1", np.where(rural, "A2b", "A2a"))


def _west_factor(ctx: _Context) -> np.ndarray:
    """Per cell: ``_WEST_WEIGHT`` in the rural west (see its note), 1 elsewhere."""
    rural = ctx.areas[ctx.areas["name"].isin(sorted(RURAL))]
    xmin, _, xmax, _ = rural.total_bounds
    west = ctx.grid.x_centres()[None, :] < xmin + _WEST_SHARE * (xmax - xmin)
    in_rural = np.isin(ctx.labels, np.flatnonzero(ctx.areas["name"].isin(sorted(RURAL))))
    return np.where(west & in_rural, _WEST_WEIGHT, 1.0)


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
        [_SITE_SPACING_M["rural" if n in RURAL else "urban"] for n in ctx.areas["name"]]
    )
    xy = _sample_points(ctx, ctx.population**0.6 * _west_factor(ctx), len(combos), spacing)
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
            zone = "rural" if districts[s] in RURAL else "urban"
            tech = TECHNOLOGIES[int(rng.choice(len(TECHNOLOGIES), p=_TECH_P[zone]))]
            freqs, fp = CARRIER_FREQUENCIES_MHZ[tech]
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
    return gdf(data, geoms)


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
    return gdf(rows, lines)


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
        kind = "xã" if district in RURAL else "phường"
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
        kind = "huyện" if district in RURAL else "quận"
        add(f"Công an {kind} {district}", "police", _sample_points(ctx, w, 1, 0.0)[0])
    rows["poi_id"] = [f"POI-{i + 1:04d}" for i in range(len(geoms))]
    return gdf({c: rows[c] for c in ("poi_id", "name", "category", "required_dbm")}, geoms)


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
    for name in sorted(RURAL):
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
        add("public_land", p, (20_000.0, 35_000.0), 40.0 if d in RURAL else 30.0, tt,
            f"Đất công {poi['name'].removesuffix(' (synthetic)')}")  # fmt: skip

    rows["candidate_id"] = [f"CAND-{i + 1:04d}" for i in range(len(geoms))]
    cols = ("candidate_id", "kind", "cost", "max_height_m", "tower_type", "name")
    return gdf({c: rows[c] for c in cols}, geoms)
