"""What a run checks of its output folder before it loads or computes anything: that no
output would replace one of the plan's own inputs, and (without ``--overwrite``) that the files
its stages always write are not there already."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from telcoplan import outputs
from telcoplan.errors import OutputExistsError
from telcoplan.pipeline.model import Plan
from telcoplan.pipeline.stages import STAGES

__all__ = ["check_inputs_outside_outputs", "check_outputs_absent"]

log = logging.getLogger(__name__)


def check_inputs_outside_outputs(plan: Plan, out: Path) -> None:
    """Refuse a run whose outputs could replace one of its own input files (a layer, or a
    file a stage's parameters name, lying in ``out`` under an output's name), even with
    ``--overwrite``: before anything is loaded, so nothing is computed in vain."""
    folder = out.resolve()
    named: list[tuple[str, Path]] = []
    for name, ref in plan.layers.items():
        for value in (ref.path, ref.weights):
            if isinstance(value, Path):
                named.append((f"layers.{name}", value))

    def walk(where: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{where}.{k}", v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(where, v)
        elif isinstance(value, str | Path) and str(value).strip():
            path = Path(value)
            named.append((where, path if path.is_absolute() else plan.base / path))

    walk("stages", dict(plan.stages))
    among: list[str] = []  # the plan's layers whose files lie in the output folder itself
    for where, path in named:
        try:
            real = path.resolve()
            # (case aside: on macOS and Windows Sites.gpkg is the file sites.gpkg)
            clash = (
                real.parent == folder
                and outputs.may_be_output(real.name.casefold())
                and real.is_file()
            )
        except (OSError, ValueError):  # not a path of this system: not a file of the plan
            continue
        if clash:
            raise OutputExistsError(
                f"{real} is an input of the plan ({where}) and the run writes an output of that "
                f"name into {out}: choose another --out folder (nothing was written)"
            )
        if where.startswith("layers.") and real.parent == folder:
            among.append(where)
    if among:
        log.warning(
            "the output folder %s holds the plan's inputs (%s): the run writes its outputs and "
            "a hidden cache among them; a folder of their own keeps them apart",
            out,
            ", ".join(sorted(set(among))),
        )


#: The file each stage writes whenever it runs (others depend on the inputs: per operator…).
_STAGE_FILE = {
    "coverage": outputs.COVERAGE,
    "gaps": outputs.GAPS,
    "backbone": outputs.BACKBONE,
    "map": outputs.MAP,
    "report": outputs.REPORT,
}


def check_outputs_absent(plan: Plan, out: Path) -> None:
    """Without ``--overwrite``, refuse up front a run that would find one of its outputs
    already in ``out`` (the file a stage the plan runs always writes), rather than after
    computing every stage; the publishing step checks every name again at the end."""
    layers, done = set(plan.layers), set()
    for name, stage in STAGES.items():
        if not plan.enabled(name) or stage.skip_reason_for(layers, done) is not None:
            continue
        done.add(name)
        path = out / _STAGE_FILE.get(name, "")
        if name in _STAGE_FILE and path.exists():
            raise OutputExistsError(
                f"{path} already exists; pass --overwrite to replace the outputs in {out} "
                "(nothing was computed)"
            )
