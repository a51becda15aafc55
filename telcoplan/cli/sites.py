"""``telcoplan sites``: plan new and shared sites, review proposed ones."""

from __future__ import annotations

from pathlib import Path

import click

from telcoplan.cli.options import (
    IN_FILE,
    Group,
    RegistryChoice,
    out_option,
    overwrite_option,
)

__all__ = ["sites"]


@click.group(cls=Group)
def sites() -> None:
    """Where to build new or shared sites, and what a proposed site adds."""


@sites.command("plan")
@click.argument("plan_path", metavar="PLAN.yml", type=IN_FILE)
@out_option("Output folder (default: 'outputs' beside the plan file).", required=False)
@overwrite_option()
@click.option(
    "--budget", type=click.IntRange(0, 100_000), default=None, help="New sites per operator."
)
@click.option(
    "--budget-usd",
    "budget_usd",
    type=click.FloatRange(0),
    default=None,
    help="Money per operator (USD).",
)
@click.option(
    "--mode",
    type=RegistryChoice("telcoplan.pipeline.stages.sites", "MODES"),
    default=None,
    help="joint: new masts shared where operators meet; per_operator: each alone.",
)
@click.option(
    "--method",
    type=RegistryChoice("telcoplan.sites.optimize", "METHODS"),
    default=None,
    help="auto (greedy, then HiGHS's exact MILP when it pays), greedy or milp.",
)
def plan_cmd(
    plan_path: Path,
    out_dir: Path | None,
    overwrite: bool,
    budget: int | None,
    budget_usd: float | None,
    mode: str | None,
    method: str | None,
) -> None:
    """Plan sites with PLAN.yml's coverage and sites settings (options win over the plan):
    coverage, gaps and sites only; writes sites.gpkg and summary.json."""
    from telcoplan.pipeline import parse_plan, run_plan
    from telcoplan.pipeline.parse import load_plan_document
    from telcoplan.pipeline.stages import STAGES

    if budget is not None and budget_usd is not None:
        raise click.UsageError("give --budget or --budget-usd, not both")
    doc = load_plan_document(plan_path)
    stages = dict(doc.get("stages") or {})
    params = dict(stages.get("sites") or {})
    if budget is not None:
        params.pop("budget_usd", None)
        params["budget"] = budget
    if budget_usd is not None:
        params.pop("budget", None)
        params["budget_usd"] = budget_usd
    params |= {k: v for k, v in (("mode", mode), ("method", method)) if v is not None}
    keep = {"coverage", "gaps"}
    doc["stages"] = {name: (stages.get(name, {}) if name in keep else False) for name in STAGES} | {
        "sites": params
    }
    plan = parse_plan(doc, base=plan_path.parent, source=str(plan_path))
    target = out_dir if out_dir is not None else plan_path.parent / "outputs"
    summary = run_plan(plan, target, overwrite=overwrite)["sites"]
    click.echo(
        f"{target}: {summary['selected']} sites ({summary['new_builds']} new masts, "
        f"{summary['colocated']} co-locations), {summary['population_gain']:,.0f} persons gain "
        f"service; {summary['towers_avoided']} masts avoided by sharing",
        err=True,
    )


@sites.command("review")
@click.argument("proposals", metavar="PROPOSALS", type=IN_FILE)
@click.option("--plan", "plan_path", required=True, type=IN_FILE, help="The plan (PLAN.yml).")
@click.option(
    "--run",
    "run_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Output folder of a finished run whose coverage is reused (default: 'outputs' beside "
    "the plan when it holds a run, else one coverage pass now, not kept).",
)
@click.option(
    "--operator",
    default=None,
    help="Review every proposal for this operator (default: each proposal's operator column).",
)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the review's GeoPackage and CSV (default: the run folder, where the map "
    "and report find it; without a run, the current folder).",
)
@overwrite_option("Replace an existing review.")
@click.option("--layer", default=None, help="Layer of a multi-layer PROPOSALS file.")
@click.option("--crs", default=None, help="CRS of PROPOSALS when the file lacks one (CSV x/y).")
def review_cmd(
    proposals: Path,
    plan_path: Path,
    run_dir: Path | None,
    operator: str | None,
    out_dir: Path | None,
    overwrite: bool,
    layer: str | None,
    crs: str | None,
) -> None:
    """What each proposed site in PROPOSALS adds: population newly covered for its operator,
    overlap with its own and other operators' coverage, existing towers within the
    co-location radius that could host it, zoning, distance to road and fiber. Reuses the
    run's coverage (one engine pass for all proposals); writes a GeoPackage and a CSV."""
    from telcoplan.pipeline import read_plan
    from telcoplan.pipeline.review import review_plan

    plan = read_plan(plan_path)
    done = review_plan(
        plan,
        proposals,
        run_dir=run_dir,
        operator=operator,
        out_dir=out_dir,
        overwrite=overwrite,
        layer=layer,
        crs=crs,
    )
    sites_df = done.review.sites
    hosts = int((sites_df["host_count"] > 0).sum())
    refused = int((sites_df["zoning_allowed"] == False).sum())  # noqa: E712 (nullable)
    click.echo(
        f"{len(sites_df)} proposals: {sites_df['population_new'].sum():,.0f} persons newly "
        f"covered in all (footprints may overlap), {sites_df['population_own_overlap'].sum():,.0f} "
        f"already covered by the proposing operator; {hosts} could go on an existing tower; "
        f"{refused} refused by zoning; wrote {', '.join(str(p) for p in done.paths)}",
        err=True,
    )
