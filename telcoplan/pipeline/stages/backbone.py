"""The backbone stage: :data:`~telcoplan.outputs.BACKBONE` (links of the joint and separate plans, rings) and the
key figures of joint vs separate trenching and the cost shares."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telcoplan import outputs
from telcoplan.errors import PlanError
from telcoplan.pipeline.checks import ParameterError, in_range, is_number, merge_defaults, suggest
from telcoplan.pipeline.stages._base import StageResult, Staging
from telcoplan.pipeline.stages.coverage import mark_synthetic

if TYPE_CHECKING:
    import geopandas as gpd

    from telcoplan.pipeline.inputs import PlanInputs

__all__ = ["DEFAULTS", "POI_SITE_DISTANCE_M", "BackboneParams", "parse", "run"]

log = logging.getLogger(__name__)

#: Parameters of the backbone stage with their defaults.
DEFAULTS: dict[str, Any] = {
    "own_fiber_factor": 0.02,
    "lease_factor": 0.3,
    "cost_per_m": {},
    "fiber_tolerance_m": 5.0,
    "max_snap_m": 10_000.0,
    "join_pieces_m": 5_000.0,
    "shapley": True,
    "protect": "none",
}
#: A POI is served (for ring protection) by the nearest site within this distance (m).
POI_SITE_DISTANCE_M = 2_000.0


@dataclass(frozen=True)
class BackboneParams:
    """Checked backbone parameters (as given in the plan, defaults filled in)."""

    own_fiber_factor: float = 0.02
    lease_factor: float | None = 0.3
    cost_per_m: Mapping[str, float] = field(default_factory=dict)
    fiber_tolerance_m: float = 5.0
    max_snap_m: float = 10_000.0
    join_pieces_m: float = 5_000.0
    shapley: bool = True
    protect: str = "none"

    def plan_values(self) -> dict[str, Any]:
        """The parameters, for :data:`~telcoplan.outputs.SUMMARY`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def parse(raw: Mapping[str, Any] | None, *, base: Path | None = None) -> BackboneParams:
    """Checked backbone-stage parameters (defaults filled in); all problems raised at once."""
    from telcoplan.backbone.choices import OFF_ROAD, PROTECT_CHOICES
    from telcoplan.layers.schemas import ROAD_CLASSES

    params, errs = merge_defaults("backbone", raw, DEFAULTS)
    for key, lo, hi in (
        ("own_fiber_factor", 0.0, 1.0),
        ("fiber_tolerance_m", 0.0, 100.0),
        ("max_snap_m", 1.0, 100_000.0),
        ("join_pieces_m", 0.0, 100_000.0),
    ):
        if not in_range(params[key], lo, hi):
            errs.append(
                f"stages.backbone.{key} must be a number in {lo:g}…{hi:g}, got {params[key]!r}"
            )
    lf = params["lease_factor"]
    if lf is not None and not in_range(lf, 0, 10):
        errs.append(
            f"stages.backbone.lease_factor must be a number in 0…10, or null to forbid leasing; got {lf!r}"
        )
    costs = params["cost_per_m"]
    known = (*ROAD_CLASSES, "access", OFF_ROAD)
    if not isinstance(costs, dict):
        errs.append("stages.backbone.cost_per_m must map road classes to costs per metre ≥ 0")
    else:
        for k, v in costs.items():
            if k not in known:
                errs.append(
                    f"stages.backbone.cost_per_m: unknown road class {k!r}"
                    f"{suggest(str(k), known)}; known: {', '.join(known)}"
                )
            if not (is_number(v) and 0 <= v < math.inf):
                errs.append(
                    f"stages.backbone.cost_per_m.{k} must be a finite cost per metre ≥ 0, got {v!r}"
                )
    own = params["own_fiber_factor"]
    if (
        isinstance(own, int | float)
        and isinstance(lf, int | float)
        and not isinstance(lf, bool)
        and own > min(lf, 1.0)
    ):
        errs.append(
            f"stages.backbone.own_fiber_factor ({own:g}) must not exceed lease_factor ({lf:g}): "
            "using one's own fiber cannot cost more than leasing another's"
        )
    if params["protect"] not in PROTECT_CHOICES:
        errs.append(
            f"stages.backbone.protect must be one of {', '.join(PROTECT_CHOICES)}; "
            f"got {params['protect']!r}"
        )
    if not isinstance(params["shapley"], bool):
        errs.append(f"stages.backbone.shapley must be true or false, got {params['shapley']!r}")
    if errs:
        raise ParameterError("backbone", errs)
    return BackboneParams(**params)


def run(inputs: PlanInputs, params: BackboneParams, staging: Staging) -> StageResult:
    """Plan the joint and separate backbones of the plan's towers on its roads and fiber.

    Without a fiber layer the backbone is planned greenfield: every link is a new trench and
    each build joins its sites to each other (``mode`` in the summary says which).
    """
    import pandas as pd

    from telcoplan.backbone.graph import (
        build_graph,
        far_from_roads,
        has_own_fiber,
        nearest_roads,
        operator_costs,
        snap_sites,
    )
    from telcoplan.backbone.plans import plan_backbone, plan_links
    from telcoplan.gis.vector import write_vector_layers
    from telcoplan.layers.towers import physical_sites

    roads, towers = inputs.vectors.get("roads"), inputs.vectors.get("towers")
    if roads is None or towers is None:
        raise PlanError(
            "the backbone stage needs the roads and towers layers (layers.roads, layers.towers)"
        )
    fiber = inputs.vectors.get("fiber")
    greenfield = fiber is None or len(fiber) == 0
    if greenfield:
        log.info(
            "backbone: greenfield plan (%s): every link is a new trench; each operator's sites "
            "are joined to each other, alone and in one shared trench network",
            "no layers.fiber" if fiber is None else "layers.fiber has no features",
        )
    else:
        log.info(
            "backbone: existing fiber (layers.fiber): sites connect to it, where it runs it is reused"
        )
    graph = build_graph(
        roads,
        fiber=fiber,
        cost_per_m=params.cost_per_m,
        fiber_tolerance_m=float(params.fiber_tolerance_m),
        # roads that fall into pieces (a clipped road file, main roads without the streets
        # between them) are joined by straight off-road trenches up to this long (0: never)
        join_pieces_m=float(params.join_pieces_m) or None,
    )
    planned = staging.results.get("sites")
    if planned is not None and len(planned.new_towers):
        # the sites stage's plan: its new masts and the operators it adds to existing ones
        added = planned.new_towers.set_index("site_id")[["operator", "geometry"]]
        # one geometry column, whatever the towers' own is named
        mine = towers[["operator", towers.geometry.name]]
        if mine.geometry.name != "geometry":
            mine = mine.rename_geometry("geometry")
        towers = pd.concat([mine, added.to_crs(towers.crs)])
        log.info("backbone: %d planned tenancies of the sites stage included", len(added))
    sites, site_ops = physical_sites(towers)
    # sites beyond max_snap_m of every road (e.g. towers kept outside the study area, whose
    # roads are clipped) are left out of every plan, said so, rather than stopping the run
    all_site_ops = site_ops
    nearest = nearest_roads(graph, sites)  # one search for far_from_roads and snap_sites
    far = far_from_roads(graph, sites, float(params.max_snap_m), nearest=nearest)
    if far:
        log.warning(
            "backbone: %d site(s) more than %g m from any road, left out of every plan: %s; "
            "add the roads that reach them, or raise stages.backbone.max_snap_m",
            len(far),
            params.max_snap_m,
            ", ".join(f"{s} ({d:,.0f} m)" for s, d in list(far.items())[:10]),
        )
        near = ~sites.index.isin(list(far))
        sites = sites[near]
        nearest = (nearest[0][near], nearest[1][near])
        site_ops = {s: o for s, o in site_ops.items() if s not in far}
    # the stage owns the graph it built: snapped and costed in place, not copied
    graph, nodes = snap_sites(
        graph, sites, max_distance_m=float(params.max_snap_m), copy=False, nearest=nearest
    )
    operators = sorted({o for ops in site_ops.values() for o in ops})
    graph = operator_costs(
        graph,
        operators,
        own_fiber_factor=float(params.own_fiber_factor),
        lease_factor=None if params.lease_factor is None else float(params.lease_factor),
        copy=False,
    )
    log.info(
        "backbone: %d physical sites of %d operators on a %d-node road graph",
        len(sites),
        len(operators),
        graph.number_of_nodes(),
    )
    no_fiber = [op for op in operators if not has_own_fiber(graph, frozenset({op}))]
    if no_fiber and not greenfield:
        log.warning(
            "backbone: %s %s no fiber of its own: %s",
            ", ".join(no_fiber),
            "has" if len(no_fiber) == 1 else "have",
            "each site connects where it meets leased fiber"
            if params.lease_factor is not None
            else "leasing is forbidden, so its sites are only joined to each other",
        )
    if not greenfield and not any(d["fiber"] for _, _, d in graph.edges(data=True)):
        raise PlanError(
            "the backbone stage connects sites to existing fiber, but no fiber runs along the "
            f"roads (none within fiber_tolerance_m = {params.fiber_tolerance_m:g} m of a "
            "road); check layers.fiber, leave it out to plan a greenfield backbone, or skip "
            "the stage with `backbone: false`"
        )
    shapley = bool(params.shapley)
    if shapley and len(operators) > 10:
        log.warning(
            "backbone: exact Shapley shares need 2^n Steiner trees; %d operators is too many "
            "(≤ 10): proportional shares only",
            len(operators),
        )
        shapley = False
    plan = plan_backbone(graph, nodes, site_ops, shapley=shapley)
    left_out = {
        s: "no road within stages.backbone.max_snap_m"
        + ("" if math.isinf(d) else f" ({d:,.0f} m to the nearest)")
        for s, d in far.items()
    } | dict(plan.left_out)
    unreachable = sorted(
        {*left_out}
        | {_site_id(n) for t in (plan.joint, *plan.separate.values()) for n in t.unreachable}
    )
    links = plan_links(graph, plan)
    rings = None
    if params.protect != "none":
        if greenfield:
            log.warning(
                "backbone: rings lead back to existing fiber; in a greenfield plan there is "
                "none, so no site is protected (protect: %s)",
                params.protect,
            )
        rings, ring_gdf = _protect(graph, plan, sites, site_ops, nodes, inputs, params.protect)
        links = links.assign(reuses_fiber=links["status"] != "new", protects="")
        ring_gdf = ring_gdf.assign(operators=";".join(operators))  # a ring serves everyone
        if len(ring_gdf):
            links = pd.concat([links, ring_gdf[links.columns]], ignore_index=True)
        links = links.astype({"length_m": float, "cost": float, "reuses_fiber": bool})
    write_vector_layers(
        staging.folder / outputs.BACKBONE,
        mark_synthetic({"links": links}, inputs),
        overwrite=True,
    )
    summary = {
        "parameters": params.plan_values(),
        "mode": plan.mode,
        "sites": len(all_site_ops),
        "shared_sites": sum(1 for o in all_site_ops.values() if len(o) > 1),
        "length_km_joint": round(plan.joint.length_m / 1000.0, 3),
        "length_km_separate": round(plan.length_km_separate, 3),
        # of which new trenches (the rest reuses or leases existing fiber)
        "trench_km_joint": _km(links, "joint", "new"),
        "trench_km_separate": _km(links, "separate", "new"),
        # of the route, straight lines off the roads: the sites' access drops and the trenches
        # joining road pieces (a road layer without the streets that reach the sites)
        "off_road_km_joint": _off_road_km(links, "joint"),
        "off_road_km_separate": _off_road_km(links, "separate"),
        "longest_access_m": round(
            float(links.loc[links["road_class"] == "access", "length_m"].max())
            if (links["road_class"] == "access").any()
            else 0.0,
            1,
        ),
        "cost_joint": round(plan.joint.cost, 2),
        "cost_separate": round(plan.cost_separate, 2),
        "savings_pct": round(plan.savings_pct, 2),
        "operators_without_fiber": no_fiber,
        # the road network's pieces and the off-road trenches that join them (build_graph)
        "road_pieces": graph.graph.get("pieces"),
        # sites left out of every plan (joint and separate compare the same sites)
        "unreachable_sites": unreachable,
        "separate": {
            op: {"length_km": round(t.length_m / 1000.0, 3), "cost": round(t.cost, 2)}
            for op, t in plan.separate.items()
        },
        "share_proportional": {op: round(v, 2) for op, v in plan.share_proportional.items()},
        "share_shapley": {op: round(v, 2) for op, v in plan.share_shapley.items()},
    }
    if left_out:
        summary["left_out"] = [{"site_id": s, "reason": r} for s, r in left_out.items()]
    if rings is not None:
        summary["rings"] = rings
    log.info(
        "backbone (%s): joint %.1f km / %.0f vs separate %.1f km / %.0f on the same %d sites: "
        "%.1f%% saved",
        plan.mode,
        summary["length_km_joint"],
        summary["cost_joint"],
        summary["length_km_separate"],
        summary["cost_separate"],
        len(sites) - len(plan.left_out),  # the far sites are not in `sites` any more
        summary["savings_pct"],
    )
    return StageResult(summary)


def _protect(graph, plan, sites, site_ops, nodes, inputs, protect: str):
    """Ring protection of the joint plan for the chosen sites: (summary part, ring links)."""
    from telcoplan.backbone.rings import (
        fiber_nodes,
        nearest_sites,
        protect_sites,
        ring_links,
        sites_to_protect,
    )

    if protect == "all":
        chosen = list(site_ops)
    else:
        pois = inputs.vectors.get("pois")
        poi_sites = []
        if "pois" in protect and pois is None:
            log.warning("backbone: protect %s, but the plan has no pois layer", protect)
        if "pois" in protect and pois is not None:
            poi_sites = nearest_sites(sites, pois, max_distance_m=POI_SITE_DISTANCE_M)
        chosen = sites_to_protect(site_ops, poi_sites=poi_sites, shared="shared" in protect)
    result = protect_sites(
        graph,
        plan.joint.edges,
        {s: nodes[s] for s in chosen},
        fiber_nodes(graph, "cost_joint"),
        weight="cost_joint",
    )
    log.info(
        "backbone: rings protect %d of %d %s sites for %.1f km of new links (cost %.0f)",
        len(result.protected),
        len(chosen),
        protect,
        result.length_m / 1000.0,
        result.cost,
    )
    part = {
        "protect": protect,
        "sites": len(chosen),
        "protected": len(result.protected),
        "length_km": round(result.length_m / 1000.0, 3),
        "cost": round(result.cost, 2),
        "unprotected": {str(k): v for k, v in result.unprotected.items()},
    }
    return part, ring_links(graph, result)


def _site_id(node: object) -> str:
    return str(node[1]) if isinstance(node, tuple) and len(node) == 2 else str(node)


def _off_road_km(links: gpd.GeoDataFrame, plan: str) -> float:
    from telcoplan.backbone.choices import OFF_ROAD

    sel = (links["plan"] == plan) & links["road_class"].isin(["access", OFF_ROAD])
    return round(float(links.loc[sel, "length_m"].sum()) / 1000.0, 3)


def _km(links: gpd.GeoDataFrame, plan: str, status: str) -> float:
    sel = (links["plan"] == plan) & (links["status"] == status)
    return round(float(links.loc[sel, "length_m"].sum()) / 1000.0, 3)
