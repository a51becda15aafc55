"""The sites stage's planning: candidates, demand, coverage matrix, one plan per operator, and
their consolidation into shared masts (:func:`plan_sites`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from telcoplan.coverage.analysis import CoverageResult
    from telcoplan.pipeline.inputs import PlanInputs
    from telcoplan.pipeline.stages.coverage import CoverageParams
    from telcoplan.pipeline.stages.sites import SitesParams

__all__ = ["SitePlan", "plan_sites"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SitePlan:
    """The sites stage's result.

    Attributes
    ----------
    sites
        One row per structure of the plan: co-locations on existing masts and new masts
        (shared ones list several operators).
    candidates
        Every candidate considered, whether zoning allowed it and why not.
    new_towers
        One row per operator and structure the plan adds it to (``site_id``, ``operator``,
        point): what the backbone connects besides the existing towers.
    summary
        The stage's part of ``summary.json``.
    """

    sites: gpd.GeoDataFrame
    candidates: gpd.GeoDataFrame
    new_towers: gpd.GeoDataFrame
    summary: dict[str, Any]


def plan_sites(
    inputs: PlanInputs,
    params: SitesParams,
    cov: CoverageResult,
    cov_params: CoverageParams | None,
) -> SitePlan:
    """Plan the sites of every operator (see :mod:`telcoplan.pipeline.stages.sites`)."""
    from telcoplan.coverage.candidates import candidate_coverage
    from telcoplan.gis.zonal import label_polygons
    from telcoplan.sites import candidates as cand
    from telcoplan.sites.optimize import maximize_coverage

    grid = inputs.grid
    towers = inputs.vectors["towers"]
    pop = np.where(np.isfinite(inputs.population), inputs.population, 0.0).ravel()
    inside = (label_polygons(inputs.areas, grid) >= 0).ravel()
    ops = tuple(cov.operators)
    covered = cov.covered.reshape(len(ops), -1)
    wanting = inside & (pop > 0) & ~covered.all(axis=0)  # some operator lacks service here

    # ---------------------------------------------------------------------- candidates
    parts = []
    if "file" in params.sources and "candidates" in inputs.vectors:
        parts.append(cand.from_file(inputs.vectors["candidates"]))
    if "colocation" in params.sources:
        parts.append(cand.from_towers(towers))
    if "gaps" in params.sources and params.gap_candidates and wanting.any():
        parts.append(
            cand.in_gaps(
                pop.reshape(grid.shape),
                grid,
                wanting.reshape(grid.shape),
                params.gap_candidates,
                seed=params.seed,
                min_spacing_m=max(grid.resolution, 2.0 * min(params.colocation_radius_m.values())),
            )
        )
    if "grid" in params.sources and params.grid_spacing_m:
        parts.append(cand.on_grid(inputs.areas, params.grid_spacing_m))
    candidates = cand.collect(*parts)
    allowed, reasons, conflicts = _zoning(candidates, params, towers, grid.crs)
    candidates = candidates.assign(allowed=allowed, reason=reasons)
    log.info(
        "sites: %d candidates (%s), %d allowed by zoning",
        len(candidates),
        ", ".join(f"{k} {v}" for k, v in candidates["source"].value_counts().items()),
        int(allowed.sum()),
    )

    # ------------------------------------------------------------------ demand, coverage
    demand = np.flatnonzero(wanting)
    usable = np.flatnonzero(allowed)
    threshold = cov.thresholds.power_threshold(params.technology)
    cp = cov_params
    clutter_db = None
    fit = None if cp is None else cp.calibration_fit
    if fit is not None and fit.clutter_offsets_db and inputs.land_use is not None:
        # the offsets the coverage stage applied (it logged how): the same per-cell losses
        from telcoplan.coverage.calibration import clutter_offset_grid

        clutter_db = clutter_offset_grid(fit, inputs.land_use, inputs.land_use_names).offset_db
    cover = candidate_coverage(
        candidates.iloc[usable],
        grid,
        demand,
        technology=params.technology,
        frequency_mhz=params.frequency_mhz,
        height_m=params.height_m,
        eirp_dbm=params.eirp_dbm,
        threshold_power_dbm=threshold,
        model=cp.model if cp else "auto",
        environment=cp.environment if cp else "urban",
        h_rx_m=float(cp.h_rx_m) if cp else 1.5,
        max_radius_km=cp.max_radius_km if cp else None,
        dem=inputs.dem if (cp is None or cp.terrain) else None,
        diffraction=cp.diffraction if cp else "bullington",
        calibration=cp.calibration_offsets() if cp else None,
        clutter_db=clutter_db,
        validity="ignore",
    ).tocsr()
    log.info(
        "sites: coverage of %d candidates over %d cells lacking service (%d pairs)",
        len(usable),
        len(demand),
        cover.nnz,
    )

    # -------------------------------------------------------------- one plan per operator
    costs_by_kind = params.costs()
    kinds = candidates["kind"].to_numpy()[usable]
    own_cost = pd.to_numeric(candidates["cost"], errors="coerce").to_numpy()[usable]
    colocation = kinds == "existing_tower"
    build_cost = np.where(
        np.isfinite(own_cost),
        own_cost,
        np.array([costs_by_kind.get(k, costs_by_kind["generated"]) for k in kinds]),
    )
    cost = np.where(colocation & ~np.isfinite(own_cost), costs_by_kind["colocation"], build_cost)
    hosts = candidates["operators"].fillna("").astype(str).to_numpy()[usable]
    tenants = pd.to_numeric(candidates["tenants"], errors="coerce").fillna(0).to_numpy()[usable]
    weights_all = pop[demand]
    budget = params.budget if params.budget is not None else params.budget_usd
    lacking = {op: ~covered[k][demand] for k, op in enumerate(ops)}

    solved: dict[str, Any] = {}  # each operator's solution alone

    def plan(shared: bool) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """Every operator's plan: alone, or (``shared``) in turn — most people lacking its
        service first — each offered the new masts planned before it at a tenancy's cost. The
        first operator in turn has nothing planned before it: its problem is the one it solved
        alone, whose solution is taken again."""
        picks: list[dict[str, Any]] = []
        per_op: dict[str, dict[str, Any]] = {}
        planned: dict[int, set[str]] = {}  # new-build candidate -> operators planned on it
        order = sorted(ops, key=lambda o: -float(weights_all[lacking[o]].sum())) if shared else ops
        for op in order:
            cols = np.flatnonzero(lacking[op])
            on_planned = np.array([bool(planned.get(i)) for i in range(len(usable))], dtype=bool)
            n_planned = np.array([len(planned.get(i, ())) for i in range(len(usable))])
            ok = (
                ~np.array([op in h.split(";") for h in hosts])
                & (~colocation | (tenants < params.max_tenants))
                & (n_planned < params.max_tenants)
            )
            rows = np.flatnonzero(ok)
            op_cost = np.where(on_planned, np.minimum(cost, costs_by_kind["colocation"]), cost)
            if shared and not planned and op in solved:
                sol = solved[op]
            else:
                sol = maximize_coverage(
                    cover[rows][:, cols],
                    weights_all[cols],
                    budget,
                    costs=None if params.budget is not None else op_cost[rows],
                    method=params.method,
                    time_limit_s=params.time_limit_s,
                    conflicts=_remap(conflicts, usable[rows], len(candidates)),
                    seed=params.seed,
                )
            if not shared:
                solved[op] = sol
            chosen = rows[sol.selected]
            gains = _marginal_gains(cover[chosen][:, cols], weights_all[cols])
            for i, g in zip(chosen, gains, strict=True):
                picks.append(
                    {
                        "candidate": int(usable[i]),
                        "operator": op,
                        "gain": g,
                        "cost": op_cost[i],
                        "cost_alone": cost[i],  # what it costs an operator on its own
                    }
                )
                if shared and not colocation[i]:
                    planned.setdefault(int(i), set()).add(op)
            shares = colocation[chosen] | on_planned[chosen]
            per_op[op] = {
                "selected": len(chosen),
                "colocated": int(shares.sum()),
                "new_builds": int((~shares).sum()),
                "population_gain": round(float(sol.covered_weight), 1),
                "upper_bound": round(float(sol.upper_bound), 1),
                "optimality_gap_pct": round(100.0 * sol.gap, 3),
                "cost_usd": round(float(op_cost[chosen].sum()), 2),
                "method": sol.method,
            }
            log.info(
                "sites (%s): %s: %d sites (%d shared, %d new), %.0f persons gain service "
                "(bound %.0f, gap %.2f%%, %s)",
                "joint" if shared else "alone",
                op,
                len(chosen),
                per_op[op]["colocated"],
                per_op[op]["new_builds"],
                sol.covered_weight,
                sol.upper_bound,
                100.0 * sol.gap,
                sol.method,
            )
        return picks, {op: per_op[op] for op in ops}

    alone = plan(shared=False)
    joint = plan(shared=True) if params.mode == "joint" else alone
    return _assemble(inputs, params, candidates, joint, alone, costs_by_kind, pop)


def _zoning(candidates: gpd.GeoDataFrame, params: SitesParams, towers, crs):
    """(allowed mask, reasons, conflicting pairs) of the candidates under the plan's zoning
    (without zoning: only the tenant limit of existing masts). Sets their ``tower_type``."""
    if params.zoning is None:
        tenants = pd.to_numeric(candidates["tenants"], errors="coerce").fillna(0).to_numpy()
        full = (candidates["kind"].to_numpy() == "existing_tower") & (tenants >= params.max_tenants)
        reasons = np.where(full, f"already {params.max_tenants} tenants", "").astype(object)
        return ~full, reasons, None
    from dataclasses import replace

    from telcoplan.sites.zoning import allowed, spacing_conflicts, tower_type_for

    zoning = params.zoning if params.zoning.crs is None else params.zoning.to_crs(crs)
    zoning = replace(zoning, max_tenants=params.max_tenants)
    candidates["tower_type"] = tower_type_for(candidates, zoning).to_numpy()
    mask, reasons = allowed(candidates, zoning, existing=towers)
    return (
        np.asarray(mask, dtype=bool),
        np.asarray(reasons, dtype=object),
        spacing_conflicts(candidates, zoning),
    )


def _remap(conflicts: np.ndarray | None, chosen: np.ndarray, n: int) -> np.ndarray | None:
    """Conflicting candidate pairs (positions among all ``n`` candidates) as positions among
    ``chosen`` (the candidates one operator's plan considers); pairs outside it drop out."""
    if conflicts is None or len(conflicts) == 0:
        return None
    pos = np.full(n, -1, dtype=np.int64)
    pos[chosen] = np.arange(len(chosen))
    a, b = pos[conflicts[:, 0]], pos[conflicts[:, 1]]
    keep = (a >= 0) & (b >= 0)
    return np.column_stack([a[keep], b[keep]]) if keep.any() else None


def _marginal_gains(cover, weights: np.ndarray) -> np.ndarray:
    """Persons each chosen site adds, taken in decreasing order of what it covers alone."""
    cover = cover.tocsr()
    alone = cover @ weights
    taken = np.zeros(cover.shape[1], dtype=bool)
    out = np.zeros(cover.shape[0])
    for i in np.argsort(-alone, kind="stable"):
        cols = cover.indices[cover.indptr[i] : cover.indptr[i + 1]]
        new = cols[~taken[cols]]
        out[i] = float(weights[new].sum())
        taken[new] = True
    return out


def _assemble(inputs, params, candidates, plan, alone, costs_by_kind, pop):
    """The plan's structures, the backbone's new towers and the summary (the plan compared
    with every operator building alone)."""
    from telcoplan.sites.planning import colocation_radius, consolidate

    picks, per_op = plan
    crs = inputs.grid.crs
    ids = candidates.index.astype(str).to_numpy()
    kind = candidates["kind"].to_numpy()
    pts = candidates.geometry.to_numpy()
    picks_df = pd.DataFrame(picks, columns=["candidate", "operator", "gain", "cost", "cost_alone"])
    colo = picks_df[kind[picks_df["candidate"]] == "existing_tower"] if len(picks_df) else picks_df
    new = picks_df[kind[picks_df["candidate"]] != "existing_tower"] if len(picks_df) else picks_df
    # every operator's new builds; in joint mode those close together become one mast
    new_gdf = gpd.GeoDataFrame(
        {"operator": new["operator"].to_numpy(), "gain": new["gain"].to_numpy()},
        geometry=pts[new["candidate"].to_numpy()] if len(new) else [],
        index=[f"{ids[c]}:{o}" for c, o in zip(new["candidate"], new["operator"], strict=True)],
        crs=crs,
    )
    joint = params.mode == "joint" and len(new_gdf)
    if joint:
        radius = colocation_radius(
            new_gdf.geometry,
            pop,
            inputs.grid,
            radius_m=dict(params.colocation_radius_m),
            urban_density_per_km2=params.urban_density_per_km2,
        )
        if params.zoning is not None:  # masts closer than their type's spacing must share
            types = candidates["tower_type"].to_numpy()[new["candidate"].to_numpy()]
            spacing = np.array(
                [float(params.zoning.min_spacing_m.get(t, 0.0)) if t else 0.0 for t in types]
            )
            radius = np.maximum(radius, spacing)
        cons = consolidate(
            new_gdf, radius, max_tenants=params.max_tenants, priority=new_gdf["gain"].to_numpy()
        )
        structure = cons.structure
    else:
        structure = np.arange(len(new_gdf))
    rows = []
    for s in np.unique(structure):
        on = np.flatnonzero(structure == s)
        first = on[np.argmax(new["gain"].to_numpy()[on])]
        c = int(new["candidate"].to_numpy()[first])
        members = new.iloc[on]
        rows.append(
            {
                "site_id": f"NEW-{len(rows) + 1:03d}",
                "kind": kind[c],
                "candidate_id": ids[c],
                "new_build": True,
                "operators": ";".join(sorted(members["operator"])),
                "new_operators": ";".join(sorted(members["operator"])),
                "tenants": len(members),
                "population_gain": round(float(members["gain"].sum()), 1),
                "cost_usd": round(
                    float(members["cost"].max() + costs_by_kind["colocation"] * (len(members) - 1)),
                    2,
                ),
                "geometry": pts[c],
            }
        )
    for c, grp in colo.groupby("candidate", sort=True) if len(colo) else []:
        existing = str(candidates["operators"].iloc[c] or "")
        added = sorted(grp["operator"])
        rows.append(
            {
                "site_id": ids[c],
                "kind": "existing_tower",
                "candidate_id": ids[c],
                "new_build": False,
                "operators": ";".join(sorted({*filter(None, existing.split(";")), *added})),
                "new_operators": ";".join(added),
                "tenants": len({*filter(None, existing.split(";")), *added}),
                "population_gain": round(float(grp["gain"].sum()), 1),
                "cost_usd": round(float(grp["cost"].sum()), 2),
                "geometry": pts[c],
            }
        )
    sites = gpd.GeoDataFrame(rows, geometry="geometry", crs=crs) if rows else _empty_sites(crs)
    new_towers = (
        gpd.GeoDataFrame(
            [
                {"site_id": f"{r['site_id']}-{op}", "operator": op, "geometry": r["geometry"]}
                for r in rows
                for op in r["new_operators"].split(";")
                if op
            ],
            geometry="geometry",
            crs=crs,
        )
        if rows
        else gpd.GeoDataFrame({"site_id": [], "operator": []}, geometry=[], crs=crs)
    )
    # building alone: each operator's new builds are masts of their own
    alone_picks = pd.DataFrame(
        alone[0], columns=["candidate", "operator", "gain", "cost", "cost_alone"]
    )
    alone_builds = (
        int((kind[alone_picks["candidate"]] != "existing_tower").sum()) if len(alone_picks) else 0
    )
    alone_cost = float(alone_picks["cost"].sum()) if len(alone_picks) else 0.0
    plan_cost = float(sites["cost_usd"].sum()) if len(sites) else 0.0
    same_alone = float(picks_df["cost_alone"].sum()) if len(picks_df) else 0.0
    summary = {
        "parameters": params.plan_values(),
        "mode": params.mode,
        "candidates": len(candidates),
        "candidates_allowed": int(candidates["allowed"].sum()),
        "selected": len(sites),
        "colocated": len(colo),
        "new_builds": int(sites["new_build"].sum()) if len(sites) else 0,
        # the same sites and tenants, every operator building its own mast: the masts and the
        # money that sharing saves on the same demand
        "towers_avoided": len(new) - (int(sites["new_build"].sum()) if len(sites) else 0),
        "cost_usd": round(plan_cost, 2),
        "cost_saved": round(same_alone - plan_cost, 2),
        "population_gain": round(sum(v["population_gain"] for v in per_op.values()), 1),
        # every operator planning alone with the same budget
        "alone": {
            "new_builds": alone_builds,
            "cost_usd": round(alone_cost, 2),
            "population_gain": round(sum(v["population_gain"] for v in alone[1].values()), 1),
        },
        "optimality_gap": max((v["optimality_gap_pct"] for v in per_op.values()), default=0.0),
        "operators": per_op,
    }
    log.info(
        "sites: %d structures (%d new masts, %d co-locations), %d masts avoided, %.0f saved",
        summary["selected"],
        summary["new_builds"],
        summary["colocated"],
        summary["towers_avoided"],
        summary["cost_saved"],
    )
    return SitePlan(sites, candidates, new_towers, summary)


def _empty_sites(crs) -> gpd.GeoDataFrame:
    columns = (
        "site_id", "kind", "candidate_id", "new_build", "operators", "new_operators", "tenants",
        "population_gain", "cost_usd",
    )  # fmt: skip
    return gpd.GeoDataFrame({c: [] for c in columns}, geometry=[], crs=crs)
