"""The sites stage: where to build so that the most people gain service for the money, and
which of the new masts to share.

Each operator plans alone first (the baseline): its demand is the population of the cells it
does not cover; its candidates are the plan's candidate sites, other operators' towers
(co-location, cheap) and points drawn in the gaps; the coverage of every candidate comes from
the coverage stage's own engine (:func:`telcoplan.coverage.candidates.candidate_coverage`); the
budget goes to the candidates that cover the most people (:func:`telcoplan.sites.maximize_coverage`:
lazy greedy, and HiGHS's exact MILP when it pays, with a proven bound). In ``joint`` mode the new
masts that the operators planned within the co-location radius of each other (100 m in town,
500 m in the countryside) become one shared mast of 2–4 tenants
(:func:`telcoplan.sites.planning.consolidate`): the towers avoided and the money saved are
counted against every operator building alone, on the same demand.

Writes :data:`~telcoplan.outputs.SITES` (layers ``sites``: the plan's structures; ``candidates``:
every candidate considered, with why it was not allowed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telcoplan import outputs
from telcoplan.pipeline.checks import ParameterError, in_range, is_number, merge_defaults
from telcoplan.pipeline.stages._base import StageResult, Staging
from telcoplan.pipeline.stages.coverage import mark_synthetic

if TYPE_CHECKING:
    from telcoplan.pipeline.inputs import PlanInputs

__all__ = ["DEFAULTS", "SitesParams", "parse", "run"]

log = logging.getLogger(__name__)

#: Where candidates come from.
SOURCES = ("file", "colocation", "gaps", "grid")
MODES = ("joint", "per_operator")
#: Default costs (USD): a tenancy on an existing mast, and a new build by kind of site.
DEFAULT_COSTS = {
    "colocation": 15_000.0,
    "rooftop": 40_000.0,
    "public_land": 60_000.0,
    "greenfield": 90_000.0,
    "generated": 90_000.0,
}
#: Parameters of the sites stage with their defaults.
DEFAULTS: dict[str, Any] = {
    "mode": "joint",
    "budget": None,
    "budget_usd": 1_000_000.0,
    "sources": ["file", "colocation", "gaps"],
    "gap_candidates": 300,
    "grid_spacing_m": None,
    "technology": "4G",
    "frequency_mhz": 1800.0,
    "height_m": 30.0,
    "eirp_dbm": 60.0,
    "cost_usd": {},
    "colocation_radius_m": {"urban": 100.0, "rural": 500.0},
    "urban_density_per_km2": 1_000.0,
    "max_tenants": 4,
    "zoning": None,
    "method": "auto",
    "time_limit_s": 60.0,
    "seed": 0,
}


@dataclass(frozen=True)
class SitesParams:
    """Checked sites parameters (see :data:`DEFAULTS` and the README's plan file)."""

    mode: str = "joint"
    #: new sites per operator (a count), or …
    budget: int | None = None
    #: … money per operator (USD); a tenancy costs less than a new build
    budget_usd: float | None = 1_000_000.0
    sources: tuple[str, ...] = ("file", "colocation", "gaps")
    gap_candidates: int = 300
    grid_spacing_m: float | None = None
    technology: str = "4G"
    frequency_mhz: float = 1800.0
    height_m: float = 30.0
    eirp_dbm: float = 60.0
    cost_usd: Mapping[str, float] = field(default_factory=dict)
    colocation_radius_m: Mapping[str, float] = field(
        default_factory=lambda: {"urban": 100.0, "rural": 500.0}
    )
    urban_density_per_km2: float = 1_000.0
    max_tenants: int = 4
    zoning: Any = None
    #: the plan's ``zoning:`` mapping as written (for summary.json)
    zoning_spec: Any = None
    method: str = "auto"
    time_limit_s: float | None = 60.0
    seed: int = 0

    def costs(self) -> dict[str, float]:
        """Cost (USD) of a tenancy (``colocation``) and of a new build by kind."""
        return {**DEFAULT_COSTS, **{k: float(v) for k, v in self.cost_usd.items()}}

    def plan_values(self) -> dict[str, Any]:
        """The parameters, for ``summary.json`` (zoning by its files)."""
        out = {k: getattr(self, k) for k in DEFAULTS if k != "zoning"}
        out["sources"] = list(self.sources)
        out["zoning"] = self.zoning_spec
        return out


def parse(raw: Mapping[str, Any] | None, *, base: Path | None = None) -> SitesParams:
    """Checked sites-stage parameters (defaults filled in); all problems raised at once."""
    from telcoplan.coverage.thresholds import METRIC_OFFSET_DB
    from telcoplan.sites.choices import METHODS

    params, errs = merge_defaults("sites", raw, DEFAULTS)
    if params["mode"] not in MODES:
        errs.append(f"stages.sites.mode must be one of {', '.join(MODES)}, got {params['mode']!r}")
    if raw and "budget" in raw and "budget_usd" not in raw:
        params["budget_usd"] = None  # a count of sites was asked for
    b, usd = params["budget"], params["budget_usd"]
    if b is None and usd is None:
        errs.append("stages.sites: give budget (new sites per operator) or budget_usd")
    if b is not None and usd is not None:
        errs.append("stages.sites: give budget (a number of sites) or budget_usd, not both")
    if b is not None and not (isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 100_000):
        errs.append(f"stages.sites.budget must be a whole number of sites ≥ 0, got {b!r}")
    if usd is not None and not (in_range(usd, 0, math.inf) and math.isfinite(usd)):
        errs.append(f"stages.sites.budget_usd must be an amount ≥ 0, got {usd!r}")
    sources = params["sources"]
    if not isinstance(sources, list | tuple) or not sources or set(sources) - set(SOURCES):
        errs.append(f"stages.sites.sources must list some of {', '.join(SOURCES)}, got {sources!r}")
        sources = DEFAULTS["sources"]
    if params["technology"] not in METRIC_OFFSET_DB:
        errs.append(
            f"stages.sites.technology must be one of {', '.join(METRIC_OFFSET_DB)}, got "
            f"{params['technology']!r}"
        )
    for key, lo, hi in (
        ("frequency_mhz", 100.0, 100_000.0),
        ("height_m", 1.0, 500.0),
        ("eirp_dbm", -30.0, 90.0),
        ("urban_density_per_km2", 0.0, 1e6),
    ):
        if not in_range(params[key], lo, hi):
            errs.append(
                f"stages.sites.{key} must be a number in {lo:g}…{hi:g}, got {params[key]!r}"
            )
    n = params["gap_candidates"]
    if not (isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 100_000):
        errs.append(f"stages.sites.gap_candidates must be a whole number ≥ 0, got {n!r}")
    g = params["grid_spacing_m"]
    if g is not None and not in_range(g, 10.0, 100_000.0):
        errs.append(f"stages.sites.grid_spacing_m must be metres in 10…100000, got {g!r}")
    if "grid" in sources and g is None:
        errs.append("stages.sites.sources has grid: give grid_spacing_m")
    costs = params["cost_usd"]
    if not isinstance(costs, dict) or not all(
        k in DEFAULT_COSTS and is_number(v) and 0 <= v < math.inf for k, v in costs.items()
    ):
        errs.append(
            f"stages.sites.cost_usd must map some of {', '.join(DEFAULT_COSTS)} to costs ≥ 0, "
            f"got {costs!r}"
        )
        costs = {}
    radius = params["colocation_radius_m"]
    if not (
        isinstance(radius, dict)
        and set(radius) <= {"urban", "rural"}
        and all(in_range(v, 0, 10_000) for v in radius.values())
    ):
        errs.append(
            f"stages.sites.colocation_radius_m must map urban and rural to metres, got {radius!r}"
        )
        radius = DEFAULTS["colocation_radius_m"]
    t = params["max_tenants"]
    if not (isinstance(t, int) and not isinstance(t, bool) and 1 <= t <= 10):
        errs.append(f"stages.sites.max_tenants must be a whole number in 1…10, got {t!r}")
    if params["method"] not in METHODS:
        errs.append(f"stages.sites.method must be one of {', '.join(METHODS)}")
    tl = params["time_limit_s"]
    if tl is not None and not in_range(tl, 0.1, 86_400.0):
        errs.append(f"stages.sites.time_limit_s must be seconds in 0.1…86400, got {tl!r}")
    zoning = None
    if params["zoning"] is not None:
        zoning = _zoning(params["zoning"], base or Path.cwd(), errs)
    if errs:
        raise ParameterError("sites", errs)
    return SitesParams(
        **{
            **params,
            "sources": tuple(sources),
            "cost_usd": dict(costs),
            "colocation_radius_m": {**DEFAULTS["colocation_radius_m"], **radius},
            "zoning": zoning,
            "zoning_spec": params["zoning"],
        }
    )


def _zoning(raw: object, base: Path, errs: list[str]):
    """The zoning rules of the plan (files relative to the plan's folder)."""
    from telcoplan.gis.vector import read_vector
    from telcoplan.sites.zoning import zoning_from_mapping

    def load(path: str):
        p = Path(path)
        return read_vector(p if p.is_absolute() else base / p)

    zoning, problems = zoning_from_mapping(raw, load_polygons=load, key="stages.sites.zoning")
    errs.extend(problems)
    return zoning


def run(inputs: PlanInputs, params: SitesParams, staging: Staging) -> StageResult:
    """Plan new and shared sites in the coverage stage's gaps (see the module's docstring)."""
    from telcoplan.pipeline.stages._site_plan import plan_sites

    cov = staging.results["coverage"]
    cov_params = inputs.plan.parameters.get("coverage")
    plan = plan_sites(inputs, params, cov, cov_params)
    from telcoplan.gis.vector import write_vector_layers

    write_vector_layers(
        staging.folder / outputs.SITES,
        mark_synthetic({"sites": plan.sites, "candidates": plan.candidates}, inputs),
        overwrite=True,
    )
    return StageResult(plan.summary, plan)
