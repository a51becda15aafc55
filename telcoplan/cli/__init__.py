"""The ``telcoplan`` command line: parse options, call one library function, write the result.

Diagnostics go to stderr; errors become one clean message and a non-zero exit status.
Heavy imports happen inside the commands so that ``telcoplan --help`` starts fast.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from telcoplan import __version__, outputs
from telcoplan.cli.options import (
    IN_FILE,
    FiniteRange,
    Group,
    crs_option,
    diffraction_choice,
    environment_choice,
    layer_options,
    layer_type_choice,
    model_choice,
    out_option,
    overwrite_option,
    protect_choice,
    verbosity_params,
)
from telcoplan.cli.process import main
from telcoplan.cli.sites import sites
from telcoplan.errors import TelcoplanError

__all__ = ["cli", "main"]

log = logging.getLogger("telcoplan")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="telcoplan")
def cli() -> None:
    """Plan shared telecom infrastructure from GIS layers.

    \b
    Start with:  telcoplan demo --out demo-output
    Then:        telcoplan run demo-output/plan.yml --out my-run
    """


cli.params.extend(verbosity_params())


@cli.command()
@out_option("Folder for inputs/, plan.yml and outputs/.")
@overwrite_option("Replace existing files in the folder.")
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=2019,
    show_default=True,
    help="Random seed of the synthetic scenario.",
)
@click.option(
    "--resolution",
    "resolution_m",
    type=FiniteRange(10.0, 1000.0),
    default=100.0,
    show_default=True,
    help="Grid cell size (m).",
)
@click.option(
    "--scale",
    type=click.Choice(["city", "national"]),
    default="city",
    show_default=True,
    help="city: the synthetic Đà Nẵng, written and run. national: a synthetic Vietnam-sized "
    "country (63 provinces, 100,000 sites, ~35 M cells), written only: its run (telcoplan run "
    "OUT/plan.yml) takes 25-50 s and ~2.7 GB of memory on 2 cores.",
)
def demo(out_dir: Path, overwrite: bool, seed: int, resolution_m: float, scale: str) -> None:
    """Build the synthetic Đà Nẵng scenario in OUT/inputs + OUT/plan.yml, then run it into OUT/outputs.

    With --scale national: build the synthetic Vietnam-sized country instead, without running it.
    """
    from telcoplan.demo import run_demo, write_demo

    if scale == "national":
        plan = write_demo(
            out_dir, seed=seed, resolution_m=resolution_m, overwrite=overwrite, scale=scale
        )
        click.echo(
            f"national demo written to {out_dir} (synthetic data); run it with: "
            f"telcoplan run {plan}",
            err=True,
        )
        return
    summary = run_demo(out_dir, seed=seed, resolution_m=resolution_m, overwrite=overwrite)
    click.echo(
        f"demo written to {out_dir} (synthetic data): population_total = {summary['population_total']:,.0f}",
        err=True,
    )


@cli.command()
@click.argument("plans", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@out_option(
    "Output folder (default: 'outputs' beside the plan file). With several plans, one "
    "sub-folder per plan, named after the plan file (prefixed by its folder when names repeat).",
    required=False,
)
@overwrite_option()
@click.option(
    "--no-memory-check",
    "no_memory_check",
    is_flag=True,
    help="Run even when the estimated peak memory exceeds the memory available.",
)
@click.option(
    "--concurrent/--sequential",
    default=None,
    help="Default: the backbone and the report run in child processes beside the other stages "
    "(Linux, several cores, memory for it; same outputs). --concurrent: every independent "
    "stage in a thread of this process instead (library warnings may then show up in the "
    "wrong stage); --sequential: one stage after the other.",
)
@click.option(
    "--publish",
    metavar="postgresql://USER@HOST/DB",
    default=None,
    help="Also write the vector outputs as PostGIS tables (and a row of the `runs` table) in "
    "one transaction. The password comes from PGPASSWORD or ~/.pgpass, never the URL.",
)
@click.option(
    "--schema",
    default=None,
    help="Schema to publish into (default: telcoplan; with several plans, one per plan: "
    "<schema>_<output folder>).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Compute every stage again instead of reusing the results of an earlier run into "
    f"the same folder (kept in OUT/{outputs.CACHE}).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Run the tiled work (coverage, population tables, gaps) on a local Dask cluster of N "
    "worker processes started for the run; same outputs. Default: in this process (or the "
    "plan's execution: key).",
)
@click.option(
    "--scheduler",
    metavar="tcp://HOST:PORT",
    default=None,
    help="Send the tiled work to the existing Dask cluster whose scheduler listens there "
    "(workers need telcoplan installed and the plan's files readable); same outputs.",
)
def run(
    plans: tuple[Path, ...],
    out_dir: Path | None,
    overwrite: bool,
    no_memory_check: bool,
    concurrent: bool | None,
    publish: str | None,
    schema: str | None,
    force: bool,
    workers: int | None,
    scheduler: str | None,
) -> None:
    """Run the whole pipeline of one or more PLAN files (batch: failures are reported, the rest go on).

    A stage whose inputs and parameters are unchanged since a run into the same folder is not
    computed again: its results are reused (the log says which); --force computes them all.
    A run that is killed leaves the previous outputs as they were; the next run removes what
    it left behind.
    """
    from telcoplan.pipeline import batch_targets, read_plan, run_plan
    from telcoplan.pipeline.execution import resolve
    from telcoplan.pipeline.model import Execution

    resolve(Execution(), workers=workers, scheduler=scheduler)  # checked before any run
    if publish is not None or schema is not None:  # checked before any run
        from telcoplan.pipeline.publish import publication, publish_run

        database = publication(publish, schema)
    failed: list[tuple[Path, str]] = []
    for plan_path, target in zip(plans, batch_targets(plans, out_dir), strict=True):
        try:
            summary = run_plan(
                read_plan(plan_path),
                target,
                overwrite=overwrite,
                check_memory=not no_memory_check,
                concurrent=concurrent,
                cache=True,
                force=force,
                workers=workers,
                scheduler=scheduler,
            )
            if publish is not None:
                publish_run(target, database, batch=len(plans) > 1)
        except TelcoplanError as exc:
            if len(plans) == 1:
                raise
            click.echo(f"FAILED {plan_path}: {exc}", err=True)
            failed.append((plan_path, str(exc)))
            continue
        except Exception as exc:  # a bug or an unforeseen input: report it, keep the batch going
            if len(plans) == 1:
                raise
            click.echo(
                f"FAILED {plan_path}: unexpected {type(exc).__name__}: {exc} (please report this)",
                err=True,
            )
            failed.append((plan_path, str(exc)))
            continue
        pop = summary["population_total"]
        click.echo(
            f"{plan_path} -> {target}: "
            + ("no population layer" if pop is None else f"population_total = {pop:,.0f}"),
            err=True,
        )
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(plans)} plans failed: " + ", ".join(str(p) for p, _ in failed)
        )


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--type",
    "layer_type",
    type=layer_type_choice(),
    default=None,
    help="Layer type of the FILES (default: guessed from each file name, e.g. towers_2024.csv).",
)
@click.option("--layer", "layer", default=None, help="Layer name inside a multi-layer GeoPackage.")
@click.option(
    "--area",
    "area_path",
    type=IN_FILE,
    default=None,
    help="Study-area polygons: features outside them are reported.",
)
@crs_option("CRS of CSV x/y columns or of files without a CRS.")
def validate(
    files: tuple[Path, ...],
    layer_type: str | None,
    layer: str | None,
    area_path: Path | None,
    crs: str | None,
) -> None:
    """Check a PLAN.yml (every layer it names) or LAYER files; list every problem.

    Exit status 0 when everything is valid, 1 otherwise.
    """
    from telcoplan.pipeline.validate import validate_files

    reports = validate_files(files, layer_type=layer_type, layer=layer, area=area_path, crs=crs)
    bad = 0
    for report in reports:
        if report.ok:
            click.echo(f"OK   {report.path} ({report.what})", err=True)
        else:
            bad += 1
            click.echo(f"FAIL {report.message}", err=True)
    if bad:
        raise click.ClickException(
            f"{bad} of {len(reports)} file{'s' if len(reports) > 1 else ''} failed validation"
        )


def _only(stages: dict) -> dict:
    """A plan's ``stages:`` that runs these stages and switches every other registered one off."""
    from telcoplan.pipeline.stages import STAGES

    return {name: stages.get(name, False) for name in STAGES}


def _run_stages(kw: dict, gaps: bool) -> dict:
    from telcoplan.pipeline import plan_from_layers, run_plan

    coverage = {
        "model": kw["model"],
        "environment": kw["environment"],
        "indoor": kw["indoor"],
        "per_technology": kw["per_technology"],
    }
    if kw["max_radius_km"] is not None:
        coverage["max_radius_km"] = kw["max_radius_km"]
    layers = {
        "areas": kw["areas"],
        "towers": kw["towers"],
        "population": kw["population"],
        "dem": kw["dem"],
        "fiber": kw["fiber"],
        "pois": kw["pois"],
    }
    column, area_columns = kw["population_column"], {}
    if kw["name_column"] is not None:
        area_columns["name"] = kw["name_column"]
    if column is not None and kw["population"] is not None:
        layers["population"] = {"path": kw["population"], "column": column}
    elif column is not None:  # the areas' own column
        area_columns["population"] = column
    if area_columns:
        layers["areas"] = {"path": kw["areas"], "columns": area_columns}
    plan = plan_from_layers(
        layers,
        resolution_m=kw["resolution_m"],
        crs=kw["crs"],
        study_area_margin_m=kw["margin_m"],
        # one stage each (the map and the report: `telcoplan map`, `telcoplan report`)
        stages=_only({"coverage": coverage, **({"gaps": {}} if gaps else {})}),
    )
    return run_plan(plan, kw["out_dir"], overwrite=kw["overwrite"])


@cli.command(
    "coverage",
    help="Signal and coverage per operator: signal and serving-site rasters per operator, "
    f"{outputs.COVERAGE}, {outputs.SUMMARY}.",
)
@layer_options
def coverage_cmd(**kw) -> None:
    summary = _run_stages(kw, gaps=False)
    any_ = summary["coverage"]["any"]
    if summary["population_total"] is None:
        click.echo(
            f"{kw['out_dir']}: {any_['area_km2']:,.1f} km² covered by at least one operator "
            "(no population given)",
            err=True,
        )
        return
    click.echo(
        f"{kw['out_dir']}: {any_['population_pct']:.2f}% of {summary['population_total']:,.0f} persons "
        "covered by at least one operator",
        err=True,
    )


@cli.command(
    "gaps",
    help=f"Coverage gaps ranked by population ({outputs.GAPS}), single-operator areas, POI "
    "service.",
)
@layer_options
def gaps_cmd(**kw) -> None:
    summary = _run_stages(kw, gaps=True)
    g = summary["gaps"]
    click.echo(f"{kw['out_dir']}: {g['count']} gaps with {g['population']:,.0f} persons", err=True)


def _plan_option(help: str):
    return click.option("--plan", "plan_path", type=IN_FILE, default=None, help=help)


def _output_option(help: str):
    return click.option(
        "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help=help
    )


def _plan_layers_for(plan_path: Path | None, stage: str) -> tuple[dict | None, dict]:
    """The plan's input layers and its ``stages.<stage>`` mapping (``{}`` without a plan)."""
    if plan_path is None:
        return None, {}
    from telcoplan.pipeline import load_inputs, read_plan

    plan = read_plan(plan_path)
    raw = plan.stages.get(stage)
    return load_inputs(plan).layers(), dict(raw) if isinstance(raw, dict) else {}


def _stage_parameters(stage: str, raw: dict, source: str):
    """``stage``'s checked parameters, the problems naming ``source``."""
    from telcoplan.pipeline.stages import STAGES, ParameterError

    try:
        return STAGES[stage].parse(raw)
    except ParameterError as exc:
        raise ParameterError(exc.stage, exc.problems, source=source) from None


@cli.command("map")
@click.argument("out_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@_plan_option("The plan file, to draw its towers, fiber and roads too.")
@_output_option(f"Map to write (default OUT_DIR/{outputs.MAP}).")
@click.option(
    "--tiles",
    default=None,
    help="Basemap: none (offline; the default), osm, or a URL template with {z}/{x}/{y}.",
)
@overwrite_option("Replace the map if it exists.")
def map_cmd(
    out_dir: Path, plan_path: Path | None, output: Path | None, tiles: str | None, overwrite: bool
) -> None:
    """Interactive map (self-contained HTML) of a plan's output folder."""
    from telcoplan.pipeline.stages import map as map_stage

    layers, planned = _plan_layers_for(plan_path, "map")
    if tiles is not None:
        planned["tiles"] = tiles  # the option wins over the plan's stages.map
    params = _stage_parameters("map", planned, str(plan_path or "--tiles"))
    path = map_stage.render(out_dir, layers, params, path=output, overwrite=overwrite)
    click.echo(f"map written to {path} ({path.stat().st_size / 1e6:.1f} MB)", err=True)


@cli.command("report")
@click.argument("out_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@_plan_option("The plan file, to draw its towers in the figure too.")
@_output_option(f"Report to write (default OUT_DIR/{outputs.REPORT}).")
@click.option("--no-figure", is_flag=True, help="Leave out the plan figure.")
@overwrite_option("Replace the report if it exists.")
def report_cmd(
    out_dir: Path, plan_path: Path | None, output: Path | None, no_figure: bool, overwrite: bool
) -> None:
    """HTML report (tables, charts, figure, provenance) of a plan's output folder."""
    from dataclasses import replace

    from telcoplan.pipeline.stages import report as report_stage

    layers, planned = _plan_layers_for(plan_path, "report")
    params = _stage_parameters("report", planned, str(plan_path))
    if no_figure:
        params = replace(params, figure=False)
    path = report_stage.render(out_dir, layers, params, path=output, overwrite=overwrite)
    click.echo(f"report written to {path}", err=True)


@cli.command(
    "backbone",
    help="Fiber backbone: separate vs joint trenching, cost shares "
    f"({outputs.BACKBONE}, {outputs.SUMMARY}).",
)
@click.option("--towers", required=True, type=IN_FILE, help="Towers layer (the sites).")
@click.option("--roads", required=True, type=IN_FILE, help="Roads layer (where trenches go).")
@click.option("--area", "areas", required=True, type=IN_FILE, help="Areas layer (study area).")
@click.option("--fiber", type=IN_FILE, default=None, help="Existing fiber per operator.")
@click.option(
    "--lease-factor",
    type=FiniteRange(0, 10),
    default=0.3,
    show_default=True,
    help="Cost of leasing another operator's fiber, as a fraction of trenching.",
)
@click.option("--no-lease", is_flag=True, help="Forbid using other operators' fiber.")
@click.option(
    "--own-fiber-factor",
    type=FiniteRange(0, 1),
    default=0.02,
    show_default=True,
    help="Cost of using one's own fiber, as a fraction of trenching.",
)
@click.option("--no-shapley", is_flag=True, help="Skip the exact Shapley cost shares.")
@click.option(
    "--protect",
    type=protect_choice(),
    default="none",
    show_default=True,
    help="Ring protection: of shared sites, of the sites nearest to POIs, both, or all sites.",
)
@crs_option()
@out_option()
@overwrite_option()
def backbone_cmd(**kw) -> None:
    from telcoplan.pipeline import plan_from_layers, run_plan

    params = {
        "lease_factor": None if kw["no_lease"] else kw["lease_factor"],
        "own_fiber_factor": kw["own_fiber_factor"],
        "shapley": not kw["no_shapley"],
    }
    if kw["protect"] != "none":
        params["protect"] = kw["protect"]
    layers = {"areas": kw["areas"], "towers": kw["towers"], "roads": kw["roads"]}
    if kw["fiber"] is not None:
        layers["fiber"] = kw["fiber"]
    plan = plan_from_layers(
        layers,
        resolution_m=1000.0,  # the grid is not used without coverage: keep it small
        crs=kw["crs"],
        stages=_only({"backbone": params}),
    )
    summary = run_plan(plan, kw["out_dir"], overwrite=kw["overwrite"])["backbone"]
    click.echo(
        f"{kw['out_dir']}: joint {summary['length_km_joint']:,.1f} km, cost {summary['cost_joint']:,.0f}"
        f" vs separate {summary['length_km_separate']:,.1f} km, cost {summary['cost_separate']:,.0f}:"
        f" {summary['savings_pct']:.1f}% saved",
        err=True,
    )


@cli.command()
@click.option("--towers", required=True, type=IN_FILE)
@click.option(
    "--measurements",
    required=True,
    type=IN_FILE,
    help="CSV (lon, lat, site_id, rssi_dbm[, freq_mhz]) or any vector format.",
)
@click.option(
    "--validate",
    "validation",
    type=IN_FILE,
    default=None,
    help="Held-out measurements for a validation RMSE.",
)
@click.option(
    "--dem",
    "dem_path",
    type=IN_FILE,
    default=None,
    help="Ground elevation raster (m, any CRS): fit on top of terrain-aware predictions.",
)
@click.option(
    "--diffraction",
    type=diffraction_choice(),
    default="bullington",
    show_default=True,
    help="Knife-edge method over obstructed paths (with --dem).",
)
@click.option(
    "--resolution",
    "dem_resolution_m",
    type=FiniteRange(min=1.0, max=1000.0),
    default=30.0,
    show_default=True,
    help="Cell size (m) of the grid the DEM is warped onto (with --dem).",
)
@click.option(
    "--land-use",
    "land_use_path",
    type=IN_FILE,
    default=None,
    help="Land use (any CRS): a raster of class codes, or polygons with their class in "
    "--land-use-column (e.g. OpenStreetMap landuse); fit one offset per clutter class.",
)
@click.option(
    "--land-use-column",
    "land_use_column",
    default=None,
    help="Column holding the class of land-use polygons (e.g. landuse).",
)
@click.option(
    "--land-use-classes",
    "land_use_classes_path",
    type=IN_FILE,
    default=None,
    help="CSV code,name naming the land-use codes (default: the code itself).",
)
@click.option(
    "--model",
    type=model_choice(auto=False),
    default="hata",
    show_default=True,
)
@click.option(
    "--environment",
    type=environment_choice(),
    default="urban",
    show_default=True,
)
@click.option(
    "--h-rx",
    "h_rx_m",
    type=click.FloatRange(0.5, 30.0),
    default=1.5,
    show_default=True,
    help="Receiver height (m), 0.5-30 as in plans.",
)
@click.option(
    "--cv",
    "cv_folds",
    type=click.IntRange(min=2),
    default=None,
    metavar="K",
    help="Cross-validate every configuration on K folds (e.g. 5); write the best.",
)
@click.option(
    "--cv-mode",
    type=click.Choice(["random", "spatial", "site"]),
    default=None,
    help="Folds of --cv: spatial blocks, random, or by site. [default: spatial]",
)
@click.option(
    "--cv-block",
    "cv_block_m",
    type=FiniteRange(min=1.0, min_open=False),
    default=None,
    help="Side (m) of the spatial blocks. [default: 1000]",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed of the cross-validation folds (with --cv). [default: 0]",
)
@crs_option("CRS of x/y columns in CSV inputs.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="params.json to write.",
)
@overwrite_option("Replace OUTPUT if it exists.")
def calibrate(
    towers: Path,
    measurements: Path,
    validation: Path | None,
    dem_path: Path | None,
    diffraction: str,
    dem_resolution_m: float,
    land_use_path: Path | None,
    land_use_classes_path: Path | None,
    land_use_column: str | None,
    model: str,
    environment: str,
    h_rx_m: float,
    cv_folds: int | None,
    cv_mode: str | None,
    cv_block_m: float | None,
    seed: int | None,
    crs: str | None,
    output: Path,
    overwrite: bool,
) -> None:
    """Fit a propagation model's intercept and slope to measurements; write params.json.

    With --dem the predictions include terrain as the coverage stage computes it; with
    --land-use the fit adds one offset per clutter class (measurements where the land use has
    no class are class "unclassified"). With --cv K every configuration is cross-validated on K
    folds and the one with the lowest CV RMSE is written; its CV RMSE, printed as cv_rmse_db,
    is the validation error to quote. Prints the fit's figures: mean_error_db is the model's bias
    before calibration (measured − predicted, dB; after the fit the mean error is 0 by
    construction), validation_rmse_db and validation_mean_error_db the calibrated model's
    errors on --validate.
    """
    import json

    from telcoplan.pipeline.calibrate import calibration_summary, run_calibration

    if land_use_classes_path is not None and land_use_path is None:
        raise click.UsageError("--land-use-classes needs --land-use")
    if land_use_column is not None and land_use_path is None:
        raise click.UsageError("--land-use-column needs --land-use")
    for name, value in (("--cv-mode", cv_mode), ("--cv-block", cv_block_m), ("--seed", seed)):
        if value is not None and cv_folds is None:
            raise click.UsageError(f"{name} needs --cv K (e.g. --cv 5)")
    if cv_block_m is not None and cv_mode not in (None, "spatial"):
        raise click.UsageError("--cv-block only applies to --cv-mode spatial")
    cal = run_calibration(
        towers,
        measurements,
        output,
        model=model,
        environment=environment,
        h_rx_m=h_rx_m,
        validation_path=validation,
        crs=crs,
        dem_path=dem_path,
        diffraction=diffraction,
        dem_resolution_m=dem_resolution_m,
        land_use_path=land_use_path,
        land_use_classes_path=land_use_classes_path,
        land_use_column=land_use_column,
        overwrite=overwrite,
        cv_folds=cv_folds,
        cv_mode=cv_mode or "spatial",
        cv_block_m=1000.0 if cv_block_m is None else cv_block_m,
        seed=0 if seed is None else seed,
    )
    printed, quote = calibration_summary(cal)
    if quote:
        click.echo(quote, err=True)
    click.echo(json.dumps(printed, indent=2, ensure_ascii=False))


@cli.command("import-cells")
@click.argument("csv_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Towers file to write (.gpkg, .geojson, .fgb, .parquet, .csv, .shp).",
)
@click.option(
    "--operators",
    "operators_csv",
    type=IN_FILE,
    default=None,
    help="CSV mcc,mnc,operator overriding the packaged MCC/MNC table.",
)
@click.option(
    "--site-radius",
    "site_radius_m",
    type=float,
    default=None,
    help="Cells of one operator within this distance (m) form one site.",
)
@click.option(
    "--height", "height_m", type=float, default=None, help="Antenna height for every site (m)."
)
@click.option(
    "--band",
    "bands",
    multiple=True,
    metavar="TECH=MHZ",
    help="Carrier frequency of a technology, e.g. --band 4G=2600 (repeatable; defaults: "
    "2G 900, 3G 2100, 4G 1800, 5G 3500 MHz).",
)
@click.option(
    "--eirp",
    "eirps",
    multiple=True,
    metavar="TECH=DBM",
    help="EIRP of a technology, antenna gain included, e.g. --eirp 4G=62 (repeatable; "
    "defaults: 2G 58, 3G 58, 4G 60, 5G 62 dBm).",
)
@click.option(
    "--technology",
    type=click.Choice(["best", "all", "2G", "3G", "4G", "5G"]),
    default="best",
    show_default=True,
    help="Rows per site: its newest technology (best), one per technology present at it "
    "(all: the coverage by generation is then each one's), or one technology's sites only.",
)
@overwrite_option("Replace OUTPUT if it exists.")
def import_cells(
    csv_path: Path,
    output: Path,
    operators_csv: Path | None,
    site_radius_m: float | None,
    height_m: float | None,
    bands: tuple[str, ...],
    eirps: tuple[str, ...],
    technology: str,
    overwrite: bool,
) -> None:
    """Turn an OpenCelliD CSV into a towers layer (cells grouped into sites).

    OpenCelliD does not know the radio parameters: band, antenna height and EIRP are documented
    defaults per technology, which --band, --height and --eirp replace.
    """
    from telcoplan.gis.atomic import check_writable
    from telcoplan.gis.vector import check_vector_suffix, write_vector
    from telcoplan.layers.opencellid import import_cells as do_import

    check_vector_suffix(output)  # fail before reading a possibly huge CSV
    check_writable(output, overwrite)

    towers = do_import(
        csv_path,
        operators_csv=operators_csv,
        site_radius_m=site_radius_m,
        height_m=height_m,
        technology=technology,
        frequency_mhz=_tech_values(bands, "--band", "TECH=MHZ"),
        eirp_dbm=_tech_values(eirps, "--eirp", "TECH=DBM"),
    )
    write_vector(output, towers, overwrite=overwrite)
    rows = "sites" if technology != "all" else "rows (a site and a technology each)"
    click.echo(f"{len(towers)} {rows} written to {output}", err=True)


def _tech_values(items: tuple[str, ...], option: str, form: str) -> dict[str, float]:
    """``("4G=2600", "5g=3700")`` → ``{"4G": 2600.0, "5G": 3700.0}``; a usage error otherwise
    (the technology names and value ranges are checked by the importer)."""
    out: dict[str, float] = {}
    for item in items:
        tech, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[tech.strip().upper()] = float(value)
        except ValueError:
            raise click.UsageError(
                f"{option} {item!r}: give {form}, e.g. {option} 4G=1800"
            ) from None
    return out


cli.add_command(sites)
