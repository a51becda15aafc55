"""Site review: what each proposed site would add, judged against a finished run's coverage.

``telcoplan sites review PROPOSALS --plan PLAN.yml`` answers an operator's question about each
of its proposed sites — what does it add, and could it go on an existing tower instead?

Proposals
    A point layer under the **candidates contract** (:data:`PROPOSALS`: ``candidate_id``, and
    optional ``kind``, ``cost``, ``max_height_m``, ``tower_type``, ``name``) plus the optional
    radio columns of the towers contract (:data:`RADIO_COLUMNS`: ``operator``, ``technology``,
    ``frequency_mhz``, ``height_m``, ``eirp_dbm``). Empty radio values take the plan's
    ``stages.sites`` defaults (``technology``, ``frequency_mhz``, ``height_m``, ``eirp_dbm``);
    a smaller ``max_height_m`` caps the height. Every problem of the file is reported at once,
    with its row and column.

Existing coverage (no rerun)
    Each operator's covered cells come from the run's rasters: ``signal_<operator>.tif`` and
    ``server_<operator>.tif`` (the serving site's row in ``coverage.gpkg`` layer ``sites``,
    whose technology sets the cell's threshold, :class:`~telcoplan.coverage.thresholds.Thresholds`
    of the run's ``summary.json``): covered where the power reaches the serving site's
    threshold — the coverage stage's own rule.

Proposals' coverage (one engine pass)
    Every proposal's received power over the study area's populated cells comes from one call
    of :func:`telcoplan.coverage.candidates.candidate_coverage` per carrier frequency (one in the
    usual case) — the coverage stage's engine with the plan's coverage parameters (model,
    environment, receiver height, radius, terrain and diffraction, calibration and clutter
    offsets). Different heights are one call (each proposal's height is its cap) and different
    EIRPs too (received power is linear in EIRP: the call runs at the largest, each proposal's
    power is shifted by its difference). A proposal's *footprint* is the populated cells of the
    study area where its power reaches its technology's threshold.

Per proposal (:func:`review_proposals`; persons are the plan's population)
    ``population_new`` (footprint cells its operator does not cover yet), ``population_own_overlap``
    (cannibalisation: footprint cells its operator already covers), ``overlap_<operator>`` for
    each other operator and ``population_other_overlap`` (any other operator), the existing
    towers within the co-location radius that could host it instead (urban or rural radius of
    ``stages.sites.colocation_radius_m`` by the population density around the proposal, as the
    sites stage decides it; a tower whose ``tenants`` already reach ``max_tenants`` cannot host
    another operator), zoning compliance (with ``stages.sites.zoning``), and the distances to the
    nearest road, fiber and own fiber.

Without ``--run``
    The plan's default output folder (``outputs`` beside the plan file) is used when it holds a
    run; otherwise the coverage stage runs once, in memory (its files go to a temporary folder
    that is removed), and the review is written to the current folder.

Outputs: :data:`~telcoplan.outputs.REVIEW` (layers ``review`` and ``review_footprint``: the
populated cells each proposal newly covers) and :data:`~telcoplan.outputs.REVIEW_TABLE`, written
atomically, never over existing files without ``overwrite``; by default into the run folder,
where ``telcoplan map`` and ``telcoplan report`` draw them.
"""

from __future__ import annotations

import difflib
import json
import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse

from telcoplan import outputs
from telcoplan.errors import InputFileError, LayerValidationError, PlanError, Problem
from telcoplan.layers.candidates import validate_candidates
from telcoplan.layers.schemas import CANDIDATES, TECHNOLOGIES, TOWERS

if TYPE_CHECKING:
    import os

    from telcoplan.coverage.thresholds import Thresholds
    from telcoplan.gis.grid import GridSpec
    from telcoplan.pipeline.inputs import PlanInputs
    from telcoplan.pipeline.model import Plan
    from telcoplan.pipeline.stages.coverage import CoverageParams
    from telcoplan.pipeline.stages.sites import SitesParams

__all__ = [
    "PROPOSALS",
    "RADIO_COLUMNS",
    "ReviewOutcome",
    "RunCoverage",
    "SiteReview",
    "colocation_radius",
    "load_proposals",
    "read_run_coverage",
    "review_plan",
    "review_proposals",
    "write_review",
]

log = logging.getLogger(__name__)

#: Radio columns a proposal may carry (towers contract); empty values take ``stages.sites``'s.
RADIO_COLUMNS = ("operator", "technology", "frequency_mhz", "height_m", "eirp_dbm")
#: The proposals' contract: the candidates layer's columns plus the optional radio columns.
PROPOSALS = replace(
    CANDIDATES,
    name="proposals",
    description="Proposed sites to review: candidates columns plus optional radio columns.",
    columns=(
        *CANDIDATES.columns,
        *(replace(TOWERS.column(c), required=False) for c in RADIO_COLUMNS),
    ),
)
#: Inputs whose change since the run makes its coverage stale (checked by SHA-256).
_COVERAGE_INPUTS = ("areas", "towers", "population", "dem", "land_use")


@dataclass(frozen=True)
class RunCoverage:
    """Each operator's covered cells, as a finished run (or one coverage pass) gives them.

    Attributes
    ----------
    operators
        First axis of ``covered``, sorted.
    covered
        bool (n_operators, H, W) on the plan grid.
    thresholds
        The thresholds the coverage was computed with.
    """

    operators: tuple[str, ...]
    covered: np.ndarray
    thresholds: Thresholds


@dataclass(frozen=True)
class SiteReview:
    """The review of a set of proposals.

    Attributes
    ----------
    sites
        One point per proposal (index ``candidate_id``, the plan CRS), in the file's order, with
        the columns listed in the README ("Site review").
    footprints
        Per proposal with any: the populated cells it would newly cover, one (Multi)Polygon
        (index ``candidate_id``; ``operator``, ``population_new``, ``area_new_km2``).
    """

    sites: gpd.GeoDataFrame
    footprints: gpd.GeoDataFrame


@dataclass(frozen=True)
class ReviewOutcome:
    """What :func:`review_plan` did: the review, the run it used (None: coverage computed for
    it) and the files it wrote."""

    review: SiteReview
    run_dir: Path | None
    paths: tuple[Path, ...]


# ------------------------------------------------------------------------------ proposals
def load_proposals(
    path: str | os.PathLike,
    *,
    crs_out: Any,
    study_area: gpd.GeoSeries | None = None,
    operators: tuple[str, ...] | None = None,
    operator: str | None = None,
    layer: str | None = None,
    crs: str | None = None,
) -> gpd.GeoDataFrame:
    """Read and validate a proposals layer (:data:`PROPOSALS`): every problem at once.

    ``operators`` are those the run covers: each proposal's ``operator`` must be one of them,
    unless ``operator`` reviews every proposal for one operator (the column is then ignored).
    Returns the proposals indexed by ``candidate_id``, radio columns typed, in ``crs_out``.

    Raises
    ------
    LayerValidationError
        Listing every problem (row, id, column, what to do).
    """
    from telcoplan.gis.vector import read_vector

    source = str(path)
    raw = read_vector(path, layer=layer, crs=crs)
    problems = PROPOSALS.problems(raw, study_area=study_area)
    if operators is not None and operator is None:
        problems += _operator_problems(raw, operators)
    if problems:
        raise LayerValidationError(
            source, PROPOSALS.name, sorted(problems, key=lambda p: (p.row or 0, p.column or ""))
        )
    gdf = validate_candidates(raw, source=source)
    for c in RADIO_COLUMNS:
        if c not in gdf.columns:
            gdf[c] = None if c in ("operator", "technology") else np.nan
        elif c in ("operator", "technology"):
            values = gdf[c].map(
                lambda v: None if pd.isna(v) or not str(v).strip() else str(v).strip()
            )
            if c == "technology":
                spelling = {t.upper(): t for t in TECHNOLOGIES}
                values = values.map(lambda v, sp=spelling: v if v is None else sp[v.upper()])
            gdf[c] = values.astype(object)
        else:
            gdf[c] = pd.to_numeric(gdf[c], errors="coerce").astype("float64")
    if operator is not None:
        gdf["operator"] = operator
    return gdf.to_crs(crs_out)


def _operator_problems(raw: pd.DataFrame, operators: tuple[str, ...]) -> list[Problem]:
    known = ", ".join(operators)
    if "operator" not in raw.columns:
        return [
            Problem(
                None,
                "operator",
                f"column is missing: give each proposal's operator (one of {known}) or review "
                "them all for one operator with --operator",
            )
        ]
    ids = raw["candidate_id"].astype(str).tolist() if "candidate_id" in raw else [None] * len(raw)
    out = []
    for i, v in enumerate(raw["operator"]):
        text = "" if pd.isna(v) else str(v).strip()
        if not text:
            out.append(
                Problem(
                    i + 1,
                    "operator",
                    f"value is missing; give the proposing operator (one of {known}) or use "
                    "--operator",
                    ids[i],
                )
            )
        elif text not in operators:
            close = difflib.get_close_matches(text, operators, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            out.append(
                Problem(
                    i + 1,
                    "operator",
                    f"operator {text!r} has no coverage in the run; {hint}its operators are {known}",
                    ids[i],
                )
            )
    return out


# ------------------------------------------------------------------------- run coverage
def read_run_coverage(
    run_dir: str | os.PathLike, grid: GridSpec, thresholds: Thresholds
) -> RunCoverage:
    """Each operator's covered cells from a run's signal and serving-site rasters.

    A cell is covered by an operator when its received power (``signal_<operator>.tif``)
    reaches the power threshold of the serving site's technology (``server_<operator>.tif``
    holds the site's 1-based row in ``coverage.gpkg`` layer ``sites``), compared in float32 as
    the coverage stage does.

    Raises
    ------
    InputFileError
        When the run lacks its coverage outputs or was made on another grid.
    """
    from telcoplan.gis.raster import read_raster

    run = Path(run_dir)
    sites = outputs.read_table(run, "towers")
    if sites is None or not {"operator", "technology"} <= set(sites.columns):
        raise InputFileError(
            f"{run / outputs.COVERAGE}: no layer 'sites' with operator and technology; give "
            "--run the output folder of a run whose coverage stage ran"
        )
    if "row" in sites.columns:
        sites = sites.sort_values("row")
    thr = np.array(
        [thresholds.power_threshold(str(t).upper()) for t in sites["technology"]],
        dtype=np.float32,
    )
    ops = tuple(sorted(sites["operator"].astype(str).unique()))
    covered = np.zeros((len(ops), *grid.shape), dtype=bool)
    for k, op in enumerate(ops):
        rasters = []
        for name in (outputs.signal_file(op), outputs.server_file(op)):
            values, info, _ = read_raster(run / name)
            if not info.same_grid(grid):
                raise InputFileError(
                    f"{run / name} lies on another grid ({info.width} x {info.height} cells) "
                    f"than the plan ({grid.width} x {grid.height}); run the plan again "
                    f"(telcoplan run PLAN.yml --out {run} --overwrite)"
                )
            rasters.append(values)
        signal, server = rasters
        srv = np.nan_to_num(server, nan=0.0).astype(np.int64)
        ok = (srv >= 1) & (srv <= len(thr))
        level = np.full(grid.shape, np.inf, dtype=np.float32)
        level[ok] = thr[srv[ok] - 1]
        with np.errstate(invalid="ignore"):
            covered[k] = signal.astype(np.float32) >= level  # NaN: not covered
    return RunCoverage(ops, covered, thresholds)


def _run_thresholds(summary: dict[str, Any], fallback: Thresholds) -> Thresholds:
    """The thresholds a run used (its summary), else ``fallback`` (the plan's)."""
    from telcoplan.coverage.thresholds import INDOOR_MARGIN_DB, Thresholds

    cov = summary.get("coverage")
    t = (cov or {}).get("parameters", {}).get("thresholds") if isinstance(cov, dict) else None
    if not isinstance(t, dict) or not isinstance(t.get("threshold_dbm"), dict):
        return fallback
    return Thresholds(
        t["threshold_dbm"],
        indoor=bool(t.get("indoor", False)),
        indoor_margin_db=float(t.get("indoor_margin_db", INDOOR_MARGIN_DB)),
    )


def _check_run_matches(plan: Plan, summary: dict[str, Any], run: Path, cp: CoverageParams) -> None:
    """Warn when the plan's coverage inputs or parameters changed since the run."""
    inputs = ((summary.get("provenance") or {}).get("inputs")) or {}
    changed = []
    for name in _COVERAGE_INPUTS:
        ref = plan.layers.get(name)
        recorded = (inputs.get(name) or {}).get("sha256") if isinstance(inputs, dict) else None
        if ref is None and recorded is None:
            continue
        if ref is not None and ref.is_database:  # its rows' digest, as just read
            if ref.rows_sha256 != recorded:
                changed.append(name)
            continue
        if (
            ref is None
            or recorded is None
            or not ref.path.is_file()
            or outputs.file_sha256(ref.path) != recorded
        ):
            changed.append(name)
    params = ((summary.get("coverage") or {}).get("parameters")) or {}
    mine = json.loads(json.dumps(cp.plan_values(), default=str))
    differ = sorted(k for k, v in mine.items() if k in params and params[k] != v)
    if changed or differ:
        log.warning(
            "the run in %s was made with other %s than the plan: the review uses its coverage "
            "as it is; run the plan again (telcoplan run PLAN.yml --out %s --overwrite) to "
            "review against the current inputs",
            run,
            " and ".join(
                p
                for p in (
                    f"inputs ({', '.join(changed)})" if changed else "",
                    f"coverage parameters ({', '.join(differ)})" if differ else "",
                )
                if p
            ),
            run,
        )


# ------------------------------------------------------------------------------- review
def review_proposals(
    inputs: PlanInputs,
    proposals: gpd.GeoDataFrame,
    run: RunCoverage,
    *,
    sites_params: SitesParams,
    coverage_params: CoverageParams,
) -> SiteReview:
    """Review ``proposals`` (from :func:`load_proposals`) against ``run``'s coverage.

    The proposals' coverage is one engine pass per carrier frequency
    (:func:`telcoplan.coverage.candidates.candidate_coverage`) over the populated cells of the
    study area; see the module's docstring for every figure.
    """
    from telcoplan.gis.zonal import label_polygons

    grid = inputs.grid
    sp, cp = sites_params, coverage_params
    pop = np.where(np.isfinite(inputs.population), inputs.population, 0.0).ravel()
    inside = (label_polygons(inputs.areas, grid) >= 0).ravel()
    demand = np.flatnonzero(inside & (pop > 0))
    n = len(proposals)
    ops = run.operators
    missing = sorted(set(proposals["operator"].astype(str)) - set(ops))
    if missing:
        raise PlanError(
            f"operator(s) {', '.join(map(repr, missing))} have no coverage in the run; its "
            f"operators are {', '.join(ops)}"
        )
    op_k = np.array([ops.index(str(o)) for o in proposals["operator"]], dtype=np.int64)
    radio = _radio(proposals, sp)
    thr = np.array([run.thresholds.power_threshold(t) for t in radio["technology"]])
    foot = _footprints(proposals, radio, thr, inputs, demand, cp)

    popd = pop[demand]
    cov_d = run.covered.reshape(len(ops), -1)[:, demand]
    overlap = np.asarray(foot @ (cov_d * popd).T, dtype=np.float64).reshape(n, len(ops))
    footprint = np.asarray(foot @ popd, dtype=np.float64).reshape(n)
    new = np.zeros(n)
    new_cells = np.zeros(n)
    other = np.zeros(n)
    for k in np.unique(op_k):
        rows = np.flatnonzero(op_k == k)
        sub = foot[rows]
        new[rows] = sub @ (popd * ~cov_d[k])
        new_cells[rows] = sub @ (~cov_d[k]).astype(np.float64)
        others = np.delete(cov_d, k, axis=0).any(axis=0)
        other[rows] = sub @ (popd * others)
    cell_km2 = grid.cell_area_m2 / 1e6

    table = pd.DataFrame(index=proposals.index)
    if "name" in proposals.columns:
        table["name"] = proposals["name"]
    for c in ("operator", "technology", "frequency_mhz", "height_m", "eirp_dbm"):
        table[c] = radio[c]
    table["population_new"] = np.round(new, 1)
    table["population_footprint"] = np.round(footprint, 1)
    table["population_own_overlap"] = np.round(overlap[np.arange(n), op_k], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(footprint > 0, 100.0 * overlap[np.arange(n), op_k] / footprint, np.nan)
    table["own_overlap_pct"] = np.round(share, 2)
    table["population_other_overlap"] = np.round(other, 1)
    for j, op in enumerate(ops):
        table[f"overlap_{op}"] = np.where(op_k == j, np.nan, np.round(overlap[:, j], 1))
    table["area_new_km2"] = np.round(new_cells * cell_km2, 3)
    radius = colocation_radius(proposals.geometry, sp, pop, grid)
    table["colocation_radius_m"] = radius
    table = table.join(_hosts(proposals, inputs.vectors.get("towers"), radius, sp))
    table = table.join(_zoning(proposals, inputs.vectors.get("towers"), sp, grid.crs))
    table = table.join(_distances(proposals, inputs.vectors))
    sites = gpd.GeoDataFrame(table, geometry=proposals.geometry.to_numpy(), crs=grid.crs)
    sites.index.name = proposals.index.name or "candidate_id"
    footprints = _footprint_polygons(sites, foot, cov_d, op_k, demand, grid, cell_km2)
    log.info(
        "site review: %d proposals, %.0f persons newly covered in all (footprints may overlap)",
        n,
        float(new.sum()),
    )
    return SiteReview(sites, footprints)


def colocation_radius(
    points: gpd.GeoSeries, params: SitesParams, pop: np.ndarray, grid: GridSpec
) -> np.ndarray:
    """Co-location radius (m) at each point, by the sites stage's rule
    (:func:`telcoplan.sites.planning.colocation_radius` with the plan's sites parameters)."""
    from telcoplan.sites.planning import colocation_radius as rule

    return rule(
        points,
        pop,
        grid,
        radius_m=dict(params.colocation_radius_m),
        urban_density_per_km2=params.urban_density_per_km2,
    )


def _radio(proposals: gpd.GeoDataFrame, sp: SitesParams) -> pd.DataFrame:
    """Each proposal's technology, carrier (MHz), antenna height (m, capped by
    ``max_height_m``) and EIRP (dBm): its own values, else the sites stage's."""
    out = pd.DataFrame(index=proposals.index)
    out["operator"] = proposals["operator"].astype(str)
    out["technology"] = proposals["technology"].where(
        proposals["technology"].notna(), sp.technology
    )
    for c, default in (
        ("frequency_mhz", sp.frequency_mhz),
        ("height_m", sp.height_m),
        ("eirp_dbm", sp.eirp_dbm),
    ):
        out[c] = proposals[c].fillna(float(default)).astype(np.float64)
    if "max_height_m" in proposals.columns:
        cap = pd.to_numeric(proposals["max_height_m"], errors="coerce")
        out["height_m"] = np.where(cap.notna() & (cap < out["height_m"]), cap, out["height_m"])
    return out


def _footprints(
    proposals: gpd.GeoDataFrame,
    radio: pd.DataFrame,
    thr: np.ndarray,
    inputs: PlanInputs,
    demand: np.ndarray,
    cp: CoverageParams,
) -> sparse.csr_matrix:
    """bool (proposals × demand cells): where each proposal's power reaches its threshold.

    One engine call per carrier frequency: heights through each proposal's cap, EIRPs by
    running at the largest and shifting each proposal's power by its difference."""
    from telcoplan.coverage.candidates import candidate_coverage

    clutter_db = None
    if cp.calibration_fit is not None:
        from telcoplan.pipeline.stages.coverage import clutter_grid

        grid_offsets = clutter_grid(inputs, cp.calibration_fit, cp.calibration)
        clutter_db = None if grid_offsets is None else grid_offsets.offset_db
    n = len(proposals)
    freq = radio["frequency_mhz"].to_numpy()
    eirp = radio["eirp_dbm"].to_numpy()
    height = radio["height_m"].to_numpy()
    rows_all, cols_all = [], []
    for f in np.unique(freq):
        sel = np.flatnonzero(freq == f)
        e_ref = float(eirp[sel].max())
        need = thr[sel] + (e_ref - eirp[sel])  # power at e_ref that covers (dBm)
        part = gpd.GeoDataFrame(
            {"max_height_m": height[sel]},
            geometry=proposals.geometry.to_numpy()[sel],
            index=pd.RangeIndex(len(sel)),
            crs=proposals.crs,
        )
        _, power = candidate_coverage(
            part,
            inputs.grid,
            demand,
            threshold_power_dbm=float(need.min()),
            technology=str(radio["technology"].iloc[sel[0]]),
            frequency_mhz=float(f),
            height_m=float(height[sel].max()),
            eirp_dbm=e_ref,
            model=cp.model,
            environment=cp.environment,
            h_rx_m=float(cp.h_rx_m),
            max_radius_km=cp.max_radius_km,
            dem=inputs.dem if cp.terrain else None,
            diffraction=cp.diffraction,
            calibration=cp.calibration_offsets(),
            clutter_db=clutter_db,
            return_power=True,
            validity=cp.validity,
        )
        power = power.tocsr()
        entry_row = np.repeat(np.arange(len(sel)), np.diff(power.indptr))
        keep = power.data >= need[entry_row]
        rows_all.append(sel[entry_row[keep]])
        cols_all.append(power.indices[keep])
    rows = np.concatenate(rows_all) if rows_all else np.zeros(0, dtype=np.int64)
    cols = np.concatenate(cols_all) if cols_all else np.zeros(0, dtype=np.int64)
    return sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(n, len(demand))
    )


def _hosts(
    proposals: gpd.GeoDataFrame, towers: gpd.GeoDataFrame | None, radius: np.ndarray, sp
) -> pd.DataFrame:
    """Existing towers within each proposal's co-location radius that could host it: ids with
    operator and distance (nearest first). A tower whose ``tenants`` reach ``max_tenants``
    hosts no further operator (it stays listed for its own operator's proposals)."""
    out = pd.DataFrame(
        {"hosts": "", "host_count": 0, "nearest_host": None, "nearest_host_m": np.nan},
        index=proposals.index,
    )
    out["nearest_host"] = out["nearest_host"].astype(object)
    if towers is None or not len(towers) or not len(proposals):
        return out
    pts = np.asarray(proposals.geometry)
    tree = shapely.STRtree(np.asarray(towers.geometry))
    qi, ti = tree.query(pts, predicate="dwithin", distance=radius)
    d = shapely.distance(pts[qi], np.asarray(towers.geometry)[ti])
    t_ops = towers["operator"].astype(str).to_numpy()
    tenants = (
        pd.to_numeric(towers["tenants"], errors="coerce").fillna(1).to_numpy()
        if "tenants" in towers.columns
        else np.ones(len(towers))
    )
    ops = proposals["operator"].astype(str).to_numpy()
    ok = (tenants[ti] < sp.max_tenants) | (t_ops[ti] == ops[qi])
    ids = np.array([str(i) for i in towers.index], dtype=object)
    qi, ti, d = qi[ok], ti[ok], d[ok]
    order = np.lexsort((ids[ti], d, qi))
    for q in np.unique(qi):
        pick = order[qi[order] == q]
        k = proposals.index[q]
        out.at[k, "hosts"] = "; ".join(
            f"{ids[t]} ({t_ops[t]}, {dd:.0f} m)" for t, dd in zip(ti[pick], d[pick], strict=True)
        )
        out.at[k, "host_count"] = len(pick)
        out.at[k, "nearest_host"] = ids[ti[pick[0]]]
        out.at[k, "nearest_host_m"] = round(float(d[pick[0]]), 1)
    return out


def _zoning(proposals: gpd.GeoDataFrame, towers, sp, crs) -> pd.DataFrame:
    """``zoning_allowed`` (null without zoning), ``zoning_reason`` and the ``tower_type`` the
    zoning gives (:func:`telcoplan.sites.zoning.allowed`)."""
    if sp.zoning is None:
        return pd.DataFrame(
            {"zoning_allowed": pd.Series(pd.NA, index=proposals.index, dtype="boolean"),
             "zoning_reason": ""},
            index=proposals.index,
        )  # fmt: skip
    from telcoplan.sites.zoning import allowed, tower_type_for

    zoning = replace(sp.zoning.to_crs(crs), max_tenants=sp.max_tenants)
    cand = proposals.copy()
    cand["tower_type"] = tower_type_for(cand, zoning).to_numpy()
    mask, reasons = allowed(cand, zoning, existing=towers)
    return pd.DataFrame(
        {
            "tower_type": cand["tower_type"].astype(object),
            "zoning_allowed": mask.astype("boolean"),
            "zoning_reason": reasons.astype(object),
        },
        index=proposals.index,
    )


def _nearest_m(points: np.ndarray, lines: gpd.GeoDataFrame | None) -> np.ndarray:
    out = np.full(len(points), np.nan)
    if lines is None or not len(lines) or not len(points):
        return out
    tree = shapely.STRtree(np.asarray(lines.geometry))
    (q, _), d = tree.query_nearest(points, return_distance=True, all_matches=False)
    out[q] = d
    return np.round(out, 1)


def _distances(proposals: gpd.GeoDataFrame, vectors) -> pd.DataFrame:
    """Distance (m) to the nearest road, fiber cable and own-operator cable (null without)."""
    pts = np.asarray(proposals.geometry)
    fiber = vectors.get("fiber")
    own = np.full(len(pts), np.nan)
    if fiber is not None and len(fiber):
        ops = proposals["operator"].astype(str).to_numpy()
        f_ops = fiber["operator"].astype(str).to_numpy()
        for op in np.unique(ops):
            sel = ops == op
            own[sel] = _nearest_m(pts[sel], fiber[f_ops == op])
    return pd.DataFrame(
        {
            "dist_road_m": _nearest_m(pts, vectors.get("roads")),
            "dist_fiber_m": _nearest_m(pts, fiber),
            "dist_own_fiber_m": own,
        },
        index=proposals.index,
    )


def _footprint_polygons(
    sites: gpd.GeoDataFrame,
    foot: sparse.csr_matrix,
    cov_d: np.ndarray,
    op_k: np.ndarray,
    demand: np.ndarray,
    grid: GridSpec,
    cell_km2: float,
) -> gpd.GeoDataFrame:
    """The populated cells each proposal newly covers, one (Multi)Polygon per proposal (cut
    to the cells' bounding window before polygonising)."""
    from affine import Affine

    from telcoplan.gis.grid import GridSpec
    from telcoplan.gis.polygonize import polygonize_mask

    rows_out = []
    for i in range(foot.shape[0]):
        cols = foot.indices[foot.indptr[i] : foot.indptr[i + 1]]
        cells = demand[cols[~cov_d[op_k[i], cols]]]
        if not len(cells):
            continue
        r, c = np.divmod(cells, grid.width)
        r0, c0 = int(r.min()), int(c.min())
        sub = GridSpec(
            grid.crs,
            grid.transform @ Affine.translation(c0, r0),
            int(c.max()) - c0 + 1,
            int(r.max()) - r0 + 1,
        )
        mask = np.zeros(sub.shape, dtype=bool)
        mask[r - r0, c - c0] = True
        rows_out.append(
            {
                "candidate_id": sites.index[i],
                "operator": sites["operator"].iloc[i],
                "population_new": sites["population_new"].iloc[i],
                "area_new_km2": round(len(cells) * cell_km2, 3),
                "geometry": polygonize_mask(mask, sub),
            }
        )
    if not rows_out:
        return gpd.GeoDataFrame(
            {"operator": [], "population_new": [], "area_new_km2": []},
            geometry=gpd.GeoSeries([], crs=grid.crs),
            index=pd.Index([], name="candidate_id"),
            crs=grid.crs,
        )
    return gpd.GeoDataFrame(rows_out, geometry="geometry", crs=grid.crs).set_index("candidate_id")


# ------------------------------------------------------------------------------ writing
def review_paths(folder: str | os.PathLike) -> tuple[Path, Path]:
    """The review's GeoPackage and CSV in ``folder``."""
    return Path(folder) / outputs.REVIEW, Path(folder) / outputs.REVIEW_TABLE


def write_review(
    review: SiteReview,
    folder: str | os.PathLike,
    *,
    overwrite: bool = False,
    synthetic: bool = False,
) -> tuple[Path, Path]:
    """Write :data:`~telcoplan.outputs.REVIEW` (layers ``review``, ``review_footprint``) and
    :data:`~telcoplan.outputs.REVIEW_TABLE` into ``folder``.

    Both are written under temporary names and renamed into place only when both are written,
    so a failure leaves neither a partial file nor one new file beside an old one. Neither is
    replaced without ``overwrite`` (both are checked before anything is written).
    """
    from telcoplan.gis.atomic import atomic_path, check_writable
    from telcoplan.gis.vector import fixed_timestamps, write_vector, write_vector_layers

    gpkg, csv = review_paths(folder)
    for p in (gpkg, csv):
        check_writable(p, overwrite)
    layers = {"review": review.sites, "review_footprint": review.footprints}
    if synthetic:
        layers = {k: v.assign(source="synthetic telcoplan demo") for k, v in layers.items()}
    with (
        fixed_timestamps(),
        atomic_path(gpkg, overwrite=overwrite) as tmp_gpkg,
        atomic_path(csv, overwrite=overwrite) as tmp_csv,
    ):
        write_vector_layers(tmp_gpkg, layers, overwrite=True)
        write_vector(tmp_csv, layers["review"], overwrite=True)
    return gpkg, csv


# ------------------------------------------------------------------------ orchestration
def review_plan(
    plan: Plan,
    proposals: str | os.PathLike,
    *,
    run_dir: str | os.PathLike | None = None,
    operator: str | None = None,
    out_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    layer: str | None = None,
    crs: str | None = None,
) -> ReviewOutcome:
    """Review the proposals file against ``plan``'s coverage and write the review.

    The coverage is the run's in ``run_dir``; without it, the run in the plan's default output
    folder (``outputs`` beside the plan file) when there is one, else one coverage pass made
    now (not kept). The review goes to ``out_dir``: default the run folder, or the current
    folder when no run was used. Existing review files are kept unless ``overwrite``.
    """
    from telcoplan.pipeline.inputs import load_inputs
    from telcoplan.pipeline.stages import coverage as coverage_stage
    from telcoplan.pipeline.stages import sites as sites_stage

    run = Path(run_dir) if run_dir is not None else None
    if run is None:
        default = plan.base / "outputs"
        if (default / outputs.SUMMARY).is_file():
            run = default
            log.info("site review: using the run in %s", run)
    elif not (run / outputs.SUMMARY).is_file():
        raise InputFileError(
            f"{run}: no {outputs.SUMMARY}; give --run the output folder of a finished run "
            f"(telcoplan run {plan.path or 'PLAN.yml'} --out {run})"
        )
    target = Path(out_dir) if out_dir is not None else (run if run is not None else Path.cwd())
    from telcoplan.gis.atomic import check_writable

    for p in review_paths(target):
        check_writable(p, overwrite)  # before any work
    cp = plan.parameters.get("coverage") or coverage_stage.parse(None)
    sp = plan.parameters.get("sites") or sites_stage.parse(None, base=plan.base)
    inputs = load_inputs(plan)
    if "towers" not in inputs.vectors:
        raise PlanError(f"{plan.source}: the site review needs the plan's towers (layers.towers)")
    if run is not None:
        summary = outputs.read_summary(run)
        _check_run_matches(inputs.plan, summary, run, cp)
        covered = read_run_coverage(run, inputs.grid, _run_thresholds(summary, cp.thresholds))
    else:
        log.info("site review: no run found; one coverage pass (run the plan first to reuse it)")
        from telcoplan.pipeline.stages import Staging

        with tempfile.TemporaryDirectory(prefix="telcoplan-review-") as tmp:
            cov = coverage_stage.run(inputs, cp, Staging(Path(tmp))).value
        order = np.argsort(np.array(cov.operators, dtype=object))
        covered = RunCoverage(
            tuple(cov.operators[k] for k in order), cov.covered[order], cov.thresholds
        )
    if operator is not None and operator not in covered.operators:
        close = difflib.get_close_matches(operator, covered.operators, n=1)
        raise PlanError(
            f"--operator {operator!r} has no coverage in the run; "
            + (f"did you mean {close[0]!r}? " if close else "")
            + f"its operators are {', '.join(covered.operators)}"
        )
    study = inputs.areas.geometry
    if plan.study_area_margin_m > 0:
        study = study.buffer(plan.study_area_margin_m)
    props = load_proposals(
        proposals,
        crs_out=inputs.grid.crs,
        study_area=study,
        operators=covered.operators,
        operator=operator,
        layer=layer,
        crs=crs,
    )
    review = review_proposals(inputs, props, covered, sites_params=sp, coverage_params=cp)
    paths = write_review(review, target, overwrite=overwrite, synthetic=plan.synthetic)
    return ReviewOutcome(review, run, paths)
