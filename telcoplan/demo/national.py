"""The built-in national demo scenario: a deterministic, **synthetic**, Vietnam-sized country.

Everything this module produces is SYNTHETIC. Only a few public *facts* are real: Vietnam's land
area (≈ 331,000 km²), its 63 provinces and centrally-run cities (2019; 5 of them cities), its
2019 census population (96,208,984 persons), the mobile operators' market shares (2024, as in
the city demo :mod:`telcoplan.demo.danang`) and the share of people living in towns and cities
(≈ 35 %, 2019). Every coordinate, boundary, road, tower and cable is made up here, in code, from
a seed; nothing is read from any real data set. Every written file says so (raster tags
``synthetic=true``, a ``source`` column in every vector layer).

**It is not Vietnam's shape.** Vietnam's real S-shape spans ≈ 1,650 km north–south and
102°–109.5° E (≈ 790 km) east–west: a raster over its bounding box would hold ≈ 4 times its land
area, ~130 M cells of 100 m, mostly sea and neighbours. The synthetic country is compact
instead — a seeded irregular outline inside a square of ≈ 590 km — so that its grid holds
~35 M cells of 100 m (33 M of them on land), the size a national plan must handle.

How the scenario is built
-------------------------
1. **Country.** A superellipse with seeded low-harmonic wiggles of its radius, scaled to
   331,000 km² · scale², in UTM zone 48N (:data:`NATIONAL_CRS`) around 105° E, 16° N.
2. **Provinces.** 63 Voronoi cells of seeded points (two rounds of Lloyd's relaxation), clipped
   to the outline on a 1 cm precision grid: an exact partition (no gaps, no overlaps). Named
   ``Tỉnh 01`` … from north to south; the provinces of the 5 largest cities are the centrally
   run cities ``Thành phố NN`` (``urban``).
3. **Population.** A residential weight field — 63 cities (one per province capital, rank-size
   rule, two metropolises north and south), 600 towns, a patchy countryside with sparse
   highlands — gives each province its count (the 2019 total · scale², split by the weights'
   province sums, in whole persons), which
   :func:`~telcoplan.layers.population.spread_population` spreads on the 100 m grid, conserving
   each province's count exactly.
4. **Towers.** ``100,000 · scale²`` operator sites of Viettel, VinaPhone and MobiFone (counts by
   market share; 17 % of the 83,000 structures shared by two or three operators, as in the
   city demo), placed with probability ∝ population^0.8 plus a 2 % rural floor (the sparse
   highlands get few: that is where the gaps are), kept 250 m · scale
   apart in dense places (≥ 1,000 persons/km²) and 1 km · scale elsewhere.
5. **Roads and fiber.** Highways between neighbouring capitals (a north–south expressway
   among them), provincial roads to the towns, a jittered lattice of local roads, noded into one
   connected network; each operator's fiber runs along a random subset of the main roads.

``scale`` (0.02–1) multiplies every length: ``scale=0.05`` gives a 29 km miniature of the same
country (63 provinces, 250 sites, ~240,000 persons) that builds in about a second, for tests.

Determinism: only ``numpy.random.default_rng(seed)`` is used, in a fixed order; the same seed,
scale and resolution give identical layers and arrays.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from telcoplan.demo._geography import CARRIER_FREQUENCIES_MHZ, TECHNOLOGIES
from telcoplan.demo._nation import (
    AREA_KM2,
    NATIONAL_CRS,
    build_provinces,
    build_roads,
    country_outline,
    frame,
    population_weights,
)
from telcoplan.errors import OutputExistsError
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import write_raster
from telcoplan.gis.vector import write_vector
from telcoplan.gis.zonal import label_polygons, zonal_sum_labels
from telcoplan.layers.population import spread_population

__all__ = [
    "AREA_KM2",
    "NATIONAL_CRS",
    "N_PROVINCES",
    "POPULATION_2019",
    "NationalScenario",
    "build_national",
    "write_national",
]

log = logging.getLogger(__name__)

#: Provinces and centrally-run cities of Vietnam (2019).
N_PROVINCES = 63
#: Population of Vietnam at the 2019 census (persons).
POPULATION_2019 = 96_208_984
#: Centrally-run cities (urban provinces): the provinces of the 5 largest synthetic cities.
_N_CITIES = 5
#: Operator sites (rows of the towers layer) at scale 1.
_N_SITES = 100_000
_RASTER_SOURCE = "telcoplan built-in national demo (synthetic)"
_MIN_SCALE, _MAX_SCALE = 0.02, 1.0

# ---------------------------------------------------------------------------------------- towers
#: Mobile market shares (2024), as in the city demo; site counts follow them.
_MARKET_SHARE = {"Viettel": 0.56, "VinaPhone": 0.21, "MobiFone": 0.18}
_OPERATOR_PREFIX = {"Viettel": "VT", "VinaPhone": "VNP", "MobiFone": "MBF"}
#: Shared structures per 600 operator sites (the city demo's proportions).
_SHARED_PER_600 = {
    ("Viettel", "VinaPhone", "MobiFone"): 18,
    ("Viettel", "VinaPhone"): 30,
    ("Viettel", "MobiFone"): 26,
    ("VinaPhone", "MobiFone"): 10,
}
#: Persons per km² above which a place is dense (urban spacing, tower type A2a).
_DENSE_PER_KM2 = 1_000.0
#: Minimum distance between structures (m at scale 1), dense and elsewhere.
_SPACING_M = {"dense": 250.0, "sparse": 1_000.0}
#: Share of the structures placed uniformly over the land, and the exponent of the population
#: that places the rest (∝ population^0.8).
_RURAL_FLOOR, _POP_EXPONENT = 0.02, 0.8
#: A1 (camouflaged) towers within this distance (m at scale 1) of a centrally-run city's centre.
_CORE_RADIUS_M = 2_000.0
#: Technology mix (dense, sparse), in the order of :data:`TECHNOLOGIES`.
_TECH_P = {"dense": (0.05, 0.10, 0.75, 0.10), "sparse": (0.15, 0.15, 0.70, 0.0)}

# ----------------------------------------------------------------------------------------- fiber
#: Probability that an operator's fiber follows a road of each class (whole roads are chosen).
_FIBER_P = {
    "Viettel": {"motorway": 1.0, "trunk": 1.0, "secondary": 0.5, "tertiary": 0.15},
    "VinaPhone": {"motorway": 1.0, "trunk": 1.0, "secondary": 0.35, "tertiary": 0.08},
    "MobiFone": {"motorway": 1.0, "trunk": 0.8, "secondary": 0.25, "tertiary": 0.05},
}
_FIBER_CORES = {"motorway": 96, "trunk": 96, "secondary": 24, "tertiary": 12}

_VECTOR_LAYERS = ("areas", "towers", "fiber", "roads")


@dataclass(frozen=True, eq=False)
class NationalScenario:
    """The synthetic national demo scenario: every layer of a national plan, in
    :data:`NATIONAL_CRS`.

    Attributes
    ----------
    areas : geopandas.GeoDataFrame
        The 63 provinces (``name``, ``population`` in persons, ``urban``, ``source``); an exact
        partition of the country (331,000 km² · scale²).
    towers : geopandas.GeoDataFrame
        Sites of Viettel, VinaPhone and MobiFone (one row per operator site, see
        :data:`telcoplan.layers.schemas.TOWERS`); shared structures repeat the location.
    fiber : geopandas.GeoDataFrame
        Existing fiber cables per operator, LineStrings lying on the road centre lines.
    roads : geopandas.GeoDataFrame
        One connected road network, LineString segments between junctions.
    population : numpy.ndarray
        float64 persons per cell on ``grid``; each province sums to its ``population``.
    grid : telcoplan.gis.grid.GridSpec
        The plan grid: the provinces' bounds in cells of ``resolution_m`` (the grid a plan
        over these areas derives, so the raster is read without resampling).
    seed : int
        Seed of the random generator that made the scenario.
    scale : float
        Linear scale of the country (1: full size).

    Notes
    -----
    The population array is read-only, so the scenario cannot be changed in place by accident.
    """

    areas: gpd.GeoDataFrame
    towers: gpd.GeoDataFrame
    fiber: gpd.GeoDataFrame
    roads: gpd.GeoDataFrame
    population: np.ndarray
    grid: GridSpec
    seed: int
    scale: float

    def __repr__(self) -> str:
        counts = ", ".join(f"{n}={len(getattr(self, n))}" for n in _VECTOR_LAYERS)
        return (
            f"NationalScenario(seed={self.seed}, scale={self.scale:g}, {counts}, "
            f"grid={self.grid.width}x{self.grid.height}@{self.grid.resolution:g}m "
            f"{self.grid.crs}, population={self.population.sum():.0f})"
        )


# ===================================================================================== public API
def build_national(
    seed: int = 2019, *, scale: float = 1.0, resolution_m: float = 100.0
) -> NationalScenario:
    """Build the synthetic national demo scenario.

    Parameters
    ----------
    seed
        Seed of :func:`numpy.random.default_rng`; the same seed gives identical layers.
    scale
        Linear scale of the country, 0.02–1: lengths are multiplied by it, the numbers of sites
        and towns and the population by its square (1: 331,000 km², 100,000 sites, 96.2 M
        persons; 0.05: 828 km², 250 sites, ≈ 240,500 persons).
    resolution_m
        Cell size of the plan grid (m).

    Returns
    -------
    NationalScenario
        Every layer in :data:`NATIONAL_CRS` (UTM zone 48N, metres).

    Notes
    -----
    At scale 1 and 100 m the grid holds ≈ 35 M cells (5,901 x 5,899 with the default seed);
    ``telcoplan demo --scale national`` builds and writes it in 16–40 s with a peak of ≈ 1.8 GB
    on a 2-core machine (see the README).

    Examples
    --------
    >>> sc = build_national(scale=0.05)
    >>> len(sc.areas), len(sc.towers)
    (63, 250)
    """
    if not _MIN_SCALE <= scale <= _MAX_SCALE:
        raise ValueError(f"scale must be in {_MIN_SCALE:g}…{_MAX_SCALE:g}, got {scale!r}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    outline = country_outline(rng, scale)
    polys, capitals = build_provinces(rng, outline, N_PROVINCES)
    grid = GridSpec.from_bounds(
        tuple(shapely.bounds(shapely.union_all(polys))), resolution_m, NATIONAL_CRS
    )
    labels = label_polygons(gpd.GeoSeries(polys, crs=NATIONAL_CRS), grid)
    weights, settlements = population_weights(rng, grid, labels, capitals, scale)
    log.debug("national demo: land and weights in %.1f s", time.perf_counter() - t0)

    # provinces: numbered north to south, the 5 largest cities' provinces are cities
    order = np.lexsort((capitals[:, 0], -capitals[:, 1]))
    cities = set(np.argsort(-settlements.city_size)[:_N_CITIES].tolist())
    urban = np.array([i in cities for i in order])
    names = [
        f"{'Thành phố' if u else 'Tỉnh'} {k + 1:02d}" for k, u in enumerate(urban)
    ]  # fmt: skip
    share = zonal_sum_labels(weights, labels, N_PROVINCES)[order]
    total = round(POPULATION_2019 * scale**2)
    counts = _apportion(total, share)
    areas = frame(
        {"name": names, "population": counts, "urban": urban},
        polys[order],
    )
    del labels
    population = spread_population(areas, grid, column="population", weights=weights)
    del weights
    log.debug("national demo: population in %.1f s", time.perf_counter() - t0)

    towers = _build_towers(rng, areas, grid, population, capitals[sorted(cities)], scale)
    log.debug("national demo: towers in %.1f s", time.perf_counter() - t0)
    roads = build_roads(rng, outline, settlements, scale)
    fiber = _build_fiber(rng, roads)
    population.flags.writeable = False
    log.info(
        "built the synthetic national scenario (seed %d, scale %g): %d provinces, %d sites, "
        "%d road segments, %.0f persons on %d x %d cells in %.1f s",
        seed,
        scale,
        len(areas),
        len(towers),
        len(roads),
        total,
        grid.width,
        grid.height,
        time.perf_counter() - t0,
    )
    return NationalScenario(
        areas=areas,
        towers=towers,
        fiber=fiber,
        roads=roads,
        population=population,
        grid=grid,
        seed=int(seed),
        scale=float(scale),
    )


def write_national(
    scenario: NationalScenario, inputs_dir: Path, *, overwrite: bool = False
) -> dict[str, Path]:
    """Write every layer of ``scenario`` into ``inputs_dir`` (GeoPackage and GeoTIFF files).

    Returns
    -------
    dict of str to pathlib.Path
        ``{layer name: path}``: ``areas``, ``towers``, ``fiber``, ``roads`` (``<name>.gpkg``,
        one layer named like the file) and ``population`` (``population.tif``, a
        Cloud-Optimized GeoTIFF on ``scenario.grid``).

    Raises
    ------
    telcoplan.errors.OutputExistsError
        When a target file exists and ``overwrite`` is False (before anything is written).

    Notes
    -----
    Each file is written atomically (temporary name, then rename). Every file is marked as
    synthetic: vector layers carry a ``source`` column, the raster the tags ``synthetic=true``
    and ``source``.
    """
    folder = Path(inputs_dir)
    paths = {name: folder / f"{name}.gpkg" for name in _VECTOR_LAYERS}
    paths["population"] = folder / "population.tif"
    if not overwrite:
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing:
            raise OutputExistsError(
                f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                "pass --overwrite to replace the demo inputs"
            )
    for name in _VECTOR_LAYERS:
        write_vector(paths[name], getattr(scenario, name), layer=name, overwrite=overwrite)
    write_raster(
        paths["population"],
        scenario.population,
        scenario.grid,
        overwrite=overwrite,
        tags={
            "synthetic": "true",
            "source": _RASTER_SOURCE,
            "seed": str(scenario.seed),
            "scale": f"{scenario.scale:g}",
            "units": "persons per cell",
            "census": "2019 national total, split among synthetic provinces",
        },
        description="population (persons per cell, SYNTHETIC)",
    )
    return paths


# ====================================================================================== internals
def _apportion(total: int, weights) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder method)."""
    w = np.asarray(weights, dtype=float)
    quota = total * w / w.sum()
    out = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - out), kind="stable")
    out[order[: total - int(out.sum())]] += 1
    return out


def _structures(n_rows: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    """The tenants of each structure: ``n_rows`` operator sites split by market share, some
    structures shared (the city demo's proportions), in random order."""
    operators = list(_MARKET_SHARE)
    n_sites = dict(zip(operators, _apportion(n_rows, list(_MARKET_SHARE.values())), strict=True))
    shared = {combo: round(k * n_rows / 600) for combo, k in _SHARED_PER_600.items()}
    combos: list[tuple[str, ...]] = []
    for combo, count in shared.items():
        combos += [combo] * count
    for op in operators:
        mine = sum(count for combo, count in shared.items() if op in combo)
        combos += [(op,)] * max(int(n_sites[op]) - mine, 0)
    return [combos[i] for i in rng.permutation(len(combos))]


def _build_towers(
    rng: np.random.Generator,
    areas: gpd.GeoDataFrame,
    grid: GridSpec,
    population: np.ndarray,
    city_centres: np.ndarray,
    scale: float,
) -> gpd.GeoDataFrame:
    """Sites of the three operators; counts follow market shares, some structures shared."""
    combos = _structures(round(_N_SITES * scale**2), rng)
    n = len(combos)
    density = population / (grid.cell_area_m2 / 1e6)  # persons / km²
    xy, province = _place_structures(rng, areas, grid, population, density, n, scale)
    r, c = grid.rowcol(xy[:, 0], xy[:, 1])
    dense = density[r, c] >= _DENSE_PER_KM2
    core = np.zeros(n, dtype=bool)
    for cx, cy in city_centres:
        core |= np.hypot(xy[:, 0] - cx, xy[:, 1] - cy) <= _CORE_RADIUS_M * scale
    ttype = np.where(core, "A1", np.where(dense, "A2a", "A2b"))

    # one row per operator and structure, operator by operator (as the city demo)
    tenants = np.array([len(t) for t in combos], dtype=np.int64)
    s_idx, ops = [], []
    for op in _MARKET_SHARE:
        mine = [s for s, t in enumerate(combos) if op in t]
        s_idx += mine
        ops += [op] * len(mine)
    s = np.asarray(s_idx, dtype=np.int64)
    ops_arr = np.asarray(ops, dtype=object)
    m = len(s)
    zone_dense = dense[s]
    u = rng.random(m)
    tech = np.empty(m, dtype=object)
    for zone, mask in (("dense", zone_dense), ("sparse", ~zone_dense)):
        cdf = np.cumsum(_TECH_P[zone])
        tech[mask] = np.asarray(TECHNOLOGIES, dtype=object)[
            np.minimum(np.searchsorted(cdf, u[mask] * cdf[-1], side="right"), 3)
        ]
    freq = np.empty(m)
    v = rng.random(m)
    for t, (values, probs) in CARRIER_FREQUENCIES_MHZ.items():
        mask = tech == t
        cdf = np.cumsum(probs)
        pick = np.minimum(np.searchsorted(cdf, v[mask] * cdf[-1], side="right"), len(values) - 1)
        freq[mask] = np.asarray(values)[pick]
    hi = np.where(zone_dense, 42.0, 45.0)
    height = np.round(rng.uniform(30.0, hi) * 2.0) / 2.0
    eirp = np.round(rng.uniform(55.0, 62.0, m), 1)
    site_id = [
        f"{_OPERATOR_PREFIX[op]}-{k + 1:06d}"
        for op, k in zip(ops_arr, pd.Series(ops_arr).groupby(ops_arr).cumcount(), strict=True)
    ]
    pname = areas["name"].to_numpy()[province[s]]
    counter = pd.Series(pname).groupby(pname).cumcount().to_numpy() + 1
    omni = np.full(m, np.nan)
    data = {
        "site_id": site_id,
        "operator": ops_arr.tolist(),
        "technology": tech.tolist(),
        "frequency_mhz": freq,
        "height_m": height,
        "eirp_dbm": eirp,
        "name": [f"Trạm {p} {k:05d}" for p, k in zip(pname, counter, strict=True)],
        "azimuth_deg": omni,
        "beamwidth_deg": omni.copy(),
        "tilt_deg": omni.copy(),
        "tower_type": ttype[s].tolist(),
        "tenants": tenants[s],
    }
    return frame(data, shapely.points(xy[s]))


def _place_structures(
    rng: np.random.Generator,
    areas: gpd.GeoDataFrame,
    grid: GridSpec,
    population: np.ndarray,
    density: np.ndarray,
    n: int,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points inside the provinces, kept apart; and the province (position) of each.

    Drawn with probability ∝ (1 - f) · pop^0.8 / Σ pop^0.8 + f / (land cells), f = 0.02;
    accepted in drawing order when no accepted point lies within the spacing of the new
    point's place (250 m · scale where ≥ 1,000 persons/km², 1 km · scale elsewhere). The
    spacing shrinks by 30 % after every 5 rounds of draws that did not give enough points.
    """
    land = population > 0
    w = np.power(population, _POP_EXPONENT, where=land, out=np.zeros(grid.shape))
    w *= (1.0 - _RURAL_FLOOR) / w.sum()
    w[land] += _RURAL_FLOOR / land.sum()
    cdf = np.cumsum(w, axis=None)
    del w
    polys = areas.geometry.to_numpy()
    tree = shapely.STRtree(polys)
    xc, yc = grid.x_centres(), grid.y_centres()
    spacing = {k: v * scale for k, v in _SPACING_M.items()}
    accepted = np.empty((0, 2))
    province = np.empty(0, dtype=np.int64)
    factor = 1.0
    for attempt in range(60):
        k = max(3 * (n - len(accepted)), 256)
        idx = np.searchsorted(cdf, rng.random(k) * cdf[-1], side="right")
        idx = np.minimum(idx, cdf.size - 1)
        jitter = rng.uniform(-0.5, 0.5, size=(k, 2)) * grid.resolution
        r, c = np.divmod(idx, grid.width)
        xy = np.column_stack([xc[c] + jitter[:, 0], yc[r] + jitter[:, 1]])
        # inside a province (points on the edge of the country's cells may not be)
        pt_i, poly_i = tree.query(shapely.points(xy), predicate="intersects")
        where = np.full(k, -1, dtype=np.int64)
        where[pt_i[::-1]] = poly_i[::-1]  # the first province hit
        ok = where >= 0
        gap = np.where(density[r, c] >= _DENSE_PER_KM2, spacing["dense"], spacing["sparse"])
        gap = gap * factor
        if len(accepted):
            d, _ = cKDTree(accepted).query(xy, k=1)
            ok &= d >= gap
        # within the draw: a point loses to any earlier candidate it is too close to
        i, j = cKDTree(xy).query_pairs(r=float(gap.max()), output_type="ndarray").T
        d = np.hypot(*(xy[i] - xy[j]).T)
        first, second = np.minimum(i, j), np.maximum(i, j)
        lose = second[(d < gap[second]) & ok[first]]
        ok[lose] = False
        take = np.flatnonzero(ok)[: n - len(accepted)]
        accepted = np.vstack([accepted, xy[take]])
        province = np.concatenate([province, where[take]])
        if len(accepted) == n:
            return accepted, province
        if attempt % 5 == 4:
            factor *= 0.7
    msg = f"could not place {n} sites (placed {len(accepted)})"
    raise RuntimeError(msg)  # pragma: no cover


def _build_fiber(rng: np.random.Generator, roads: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Per operator, cables along a random subset of the main roads (whole roads), merged."""
    road_names = list(dict.fromkeys(roads["name"]))  # first-appearance order
    road_class = dict(zip(roads["name"], roads["road_class"], strict=True))
    groups = roads.groupby("name", sort=False).indices
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
            merged = shapely.line_merge(shapely.multilinestrings(geoms[groups[name]]))
            for part in shapely.get_parts(merged):
                k += 1
                rows["fiber_id"].append(f"{_OPERATOR_PREFIX[op]}-F{k:05d}")
                rows["operator"].append(op)
                rows["cores"].append(_FIBER_CORES[cls] * (2 if op == "Viettel" else 1))
                rows["status"].append("existing")
                lines.append(part)
    rows["cores"] = np.asarray(rows["cores"], dtype=np.int64)
    return frame(rows, lines)
