"""The report stage: :data:`~telcoplan.outputs.REPORT` with the plan figure (:data:`~telcoplan.outputs.FIGURE`, also on its own);
``telcoplan report`` rebuilds it from a finished run with the same code."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from telcoplan import outputs
from telcoplan.errors import TelcoplanError
from telcoplan.pipeline.checks import ParameterError, merge_defaults
from telcoplan.pipeline.stages._base import StageResult, Staging
from telcoplan.pipeline.stages.sites import DEFAULT_COSTS as DEFAULT_SITE_COSTS

if TYPE_CHECKING:
    import geopandas as gpd

    from telcoplan.pipeline.inputs import PlanInputs

__all__ = ["DEFAULTS", "ReportParams", "parse", "render", "run"]

log = logging.getLogger(__name__)

#: Parameters of the report stage with their defaults.
DEFAULTS: dict[str, Any] = {
    "figure": True,
    "top_gaps": 20,
    "currency": "USD",
    "population_source": None,
}


@dataclass(frozen=True)
class ReportParams:
    """Checked report parameters."""

    #: embed the plan figure (and write it beside the report)
    figure: bool = True
    #: gaps listed in the report
    top_gaps: int = 20
    #: label of costs
    currency: str = "USD"
    #: what the persons are (e.g. "2019 census"), stated with the population file in the report
    population_source: str | None = None


def parse(raw: Mapping[str, Any] | None, *, base: Path | None = None) -> ReportParams:
    """Checked report-stage parameters (defaults filled in); all problems raised at once."""
    params, errs = merge_defaults("report", raw, DEFAULTS)
    if not isinstance(params["figure"], bool):
        errs.append("stages.report.figure must be true or false (embed the plan figure)")
    top = params["top_gaps"]
    if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= 10_000:
        errs.append(f"stages.report.top_gaps must be a whole number in 0…10000, got {top!r}")
    if not isinstance(params["currency"], str) or not 1 <= len(params["currency"]) <= 8:
        errs.append("stages.report.currency must be a short currency label such as USD or VND")
    source = params["population_source"]
    if source is not None and not (isinstance(source, str) and 0 < len(source.strip()) <= 200):
        errs.append(
            "stages.report.population_source must be a short text saying what the persons are "
            f"(e.g. '2019 census'), got {source!r}"
        )
    if errs:
        raise ParameterError("report", errs)
    return ReportParams(**params)


def render(
    out_dir: str | os.PathLike,
    layers: Mapping[str, gpd.GeoDataFrame | None] | None,
    params: ReportParams,
    *,
    path: str | os.PathLike | None = None,
    summary: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the report of the run in ``out_dir`` to ``path`` (default ``out_dir`` / :data:`~telcoplan.outputs.REPORT`)
    and, with ``params.figure``, the plan figure beside it; returns the report's path.

    ``summary`` replaces ``out_dir`` / :data:`~telcoplan.outputs.SUMMARY` (a run's stage passes its own: the file is
    written last). The run's own report and figure are replaced without ``overwrite``
    (:func:`telcoplan.outputs.derived`); an existing figure elsewhere is kept unless ``overwrite``.
    """
    from telcoplan.gis.atomic import check_writable
    from telcoplan.report.html import load_outputs, report_from_outputs

    target = Path(path) if path is not None else Path(out_dir) / outputs.REPORT
    overwrite_report = overwrite or outputs.derived(out_dir, target)
    check_writable(target, overwrite_report)
    # every output layer the figure and the tables need is read once (a national run's backbone
    # links: 420,000 rows, 1-2 s a read)
    read = _read_layers(out_dir, layers, params.figure)
    loaded = load_outputs(out_dir, summary=summary, layers=read)
    png = None
    if params.figure:
        given = {**(layers or {})}
        given.update({k: v for k, v in read.items() if v is not None and given.get(k) is None})
        png = _figure(out_dir, given, target, summary, overwrite)
    return report_from_outputs(
        out_dir,
        target,
        summary=summary,
        figure_png=png,
        overwrite=overwrite_report,
        tables=loaded,
        top_gaps=params.top_gaps,
        currency=params.currency,
        population_source=params.population_source,
        site_costs=DEFAULT_SITE_COSTS,
    )


#: Output layers the figure draws (:func:`telcoplan.maps.static.plan_figure`) that the plan's
#: input layers may not give.
_FIGURE_LAYERS = ("coverage", "gaps", "towers", "backbone", "sites")


def _read_layers(
    out_dir: str | os.PathLike,
    layers: Mapping[str, gpd.GeoDataFrame | None] | None,
    figure: bool,
) -> dict[str, gpd.GeoDataFrame | None]:
    """The output layers (:func:`telcoplan.outputs.read_layer`, None when the run did not
    write one) that the report's tables need and, with ``figure``, those the figure draws and
    ``layers`` (the plan's input layers, which win over outputs of the same name) do not give.

    A table's layer that cannot be read fails the report, as before; a layer only the figure
    draws is left out then (the figure reads it itself, and goes without it with a warning).
    """
    from telcoplan.report.html import TABLES

    given = {k for k, v in (layers or {}).items() if v is not None}
    # through GDAL's Arrow stream: the same frames, a national backbone's 420,000 links in 0.8 s
    # instead of 2.1 s CPU
    read = {name: outputs.read_layer(out_dir, name, arrow=True) for name in TABLES.values()}
    for name in _FIGURE_LAYERS if figure else ():
        if name not in given and name not in read:
            try:
                read[name] = outputs.read_layer(out_dir, name, arrow=True)
            except TelcoplanError as exc:
                log.debug("report: %s not read for the figure: %s", name, exc)
    return read


def _figure(out_dir, layers, target: Path, summary, overwrite: bool) -> bytes | None:
    """The plan figure as PNG bytes, also saved as :data:`~telcoplan.outputs.FIGURE` beside ``target``; None
    (logged why) without matplotlib or without the layers a figure needs."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.warning("report: matplotlib is not installed; %s without the figure", outputs.REPORT)
        return None
    from telcoplan.maps.static import figure_from_outputs, save_figure

    try:
        png = figure_from_outputs(out_dir, layers, summary=summary)
    except TelcoplanError as exc:
        log.warning("report without the plan figure: %s", exc)
        return None
    fig_path = target.with_name(outputs.FIGURE)
    overwrite = overwrite or outputs.derived(out_dir, fig_path)
    if overwrite or not fig_path.exists():
        save_figure(png, fig_path, overwrite=overwrite)
    return png


def run(inputs: PlanInputs, params: ReportParams, staging: Staging) -> StageResult:
    """:data:`~telcoplan.outputs.REPORT` (and :data:`~telcoplan.outputs.FIGURE`) of the run."""
    path = render(staging.folder, inputs.layers(), params, summary=staging.summary, overwrite=True)
    return StageResult({"file": path.name, "bytes": path.stat().st_size})
