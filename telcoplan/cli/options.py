"""Options the ``telcoplan`` commands share, with one meaning everywhere, and the parameter
types they use. Every choice comes from the library's own registry, read when first needed
(``telcoplan --help`` imports none of the geo stack)."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable, Iterable
from importlib import import_module
from pathlib import Path

import click

__all__ = [
    "IN_FILE",
    "FiniteRange",
    "Group",
    "RegistryChoice",
    "crs_option",
    "diffraction_choice",
    "environment_choice",
    "layer_options",
    "layer_type_choice",
    "model_choice",
    "out_option",
    "overwrite_option",
    "protect_choice",
    "setup_logging",
    "verbosity_params",
]

#: An input file that must exist.
IN_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


class Group(click.Group):
    """Turns library errors into one clean message (no traceback) and exit status 1; every
    sub-command also takes ``-v``/``-q`` (``telcoplan run plan.yml -q``)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.params.extend(verbosity_params())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context):
        from telcoplan.errors import TelcoplanError

        try:
            return super().invoke(ctx)
        except TelcoplanError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # disk full, permission denied, …
            raise click.ClickException(
                f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
            ) from None
        except KeyboardInterrupt:  # Ctrl-C: the shells' status for a SIGINT, 128 + 2
            click.echo(
                "interrupted: outputs are written whole or not at all; those already there "
                "are kept",
                err=True,
            )
            raise SystemExit(130) from None


class FiniteRange(click.FloatRange):
    """A float range that also refuses NaN (which compares false with both bounds)."""

    def convert(self, value, param, ctx):
        out = super().convert(value, param, ctx)
        if out != out:  # NaN
            self.fail(f"{value!r} is not a number", param, ctx)
        return out


class RegistryChoice(click.Choice):
    """A choice among the keys of a library registry, imported when first needed.

    ``RegistryChoice("telcoplan.coverage.propagation", "MODELS", extra=("auto",))`` offers
    ``auto`` and every propagation model, as the library knows them.
    """

    def __init__(self, module: str, name: str, *, extra: Iterable[str] = ()) -> None:
        self._module, self._name, self._extra = module, name, tuple(extra)
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._choices is None:
            registry = getattr(import_module(self._module), self._name)
            self._choices = (*self._extra, *registry)
        return self._choices


def model_choice(*, auto: bool = True) -> RegistryChoice:
    """Propagation models (:data:`telcoplan.coverage.propagation.MODELS`), and ``auto``."""
    return RegistryChoice(
        "telcoplan.coverage.propagation", "MODELS", extra=("auto",) if auto else ()
    )


def environment_choice() -> RegistryChoice:
    """Environments of the empirical models (:data:`~telcoplan.coverage.propagation.ENVIRONMENTS`)."""
    return RegistryChoice("telcoplan.coverage.propagation", "ENVIRONMENTS")


def diffraction_choice() -> RegistryChoice:
    """Knife-edge methods (:data:`telcoplan.coverage.terrain.DIFFRACTION_METHODS`)."""
    return RegistryChoice("telcoplan.coverage.terrain", "DIFFRACTION_METHODS")


def protect_choice() -> RegistryChoice:
    """Ring protection rules (:data:`telcoplan.backbone.rings.PROTECT_CHOICES`)."""
    return RegistryChoice("telcoplan.backbone.rings", "PROTECT_CHOICES")


def layer_type_choice() -> RegistryChoice:
    """Layers ``telcoplan validate`` checks (:data:`telcoplan.pipeline.validate.LAYER_TYPES`)."""
    return RegistryChoice("telcoplan.pipeline.validate", "LAYER_TYPES")


def out_option(help: str = "Output folder.", *, required: bool = True) -> Callable:
    """``--out DIR``: the folder the command writes into."""
    return click.option(
        "--out",
        "out_dir",
        required=required,
        default=None,
        type=click.Path(file_okay=False, path_type=Path),
        help=help,
    )


def overwrite_option(help: str = "Replace existing outputs.") -> Callable:
    """``--overwrite``: replace what exists (never without it)."""
    return click.option("--overwrite", is_flag=True, help=help)


def crs_option(help: str = "Projected CRS for the work (default: local UTM).") -> Callable:
    """``--crs``."""
    return click.option("--crs", default=None, help=help)


def layer_options(f: Callable) -> Callable:
    """The options of the one-stage commands (``coverage``, ``gaps``): their layers, the grid,
    the study-area margin and the coverage parameters."""
    opts = [
        click.option(
            "--towers",
            "towers",
            required=True,
            type=IN_FILE,
            help="Towers layer.",
        ),
        click.option(
            "--area",
            "areas",
            required=True,
            type=IN_FILE,
            help="Areas layer (polygons with a name; their union is the study area).",
        ),
        click.option(
            "--population",
            type=IN_FILE,
            default=None,
            help="Population raster or polygons (default: the areas' population column; "
            "coverage runs without any, its population figures then left out).",
        ),
        click.option(
            "--name-column",
            "name_column",
            default=None,
            help="Column of the area names in the --area file (default: name; e.g. commune_vn).",
        ),
        click.option(
            "--population-column",
            "population_column",
            default=None,
            help="Column of persons in the --population polygons, or in the --area file "
            "without --population (e.g. pop2019_total).",
        ),
        click.option(
            "--margin",
            "margin_m",
            type=FiniteRange(0.0, 100_000.0),
            default=0.0,
            show_default=True,
            help="Study-area margin (m): features up to this far outside the areas are "
            "accepted, as study_area_margin_m in plans.",
        ),
        click.option(
            "--dem",
            type=IN_FILE,
            default=None,
            help="Terrain raster (m).",
        ),
        click.option(
            "--fiber",
            type=IN_FILE,
            default=None,
            help="Fiber layer (for gap distances).",
        ),
        click.option(
            "--pois",
            type=IN_FILE,
            default=None,
            help="POIs to check for service.",
        ),
        click.option(
            "--resolution",
            "resolution_m",
            type=FiniteRange(1.0, 10_000.0),
            default=100.0,
            show_default=True,
            help="Grid cell size (m), 1-10000 as in plans.",
        ),
        crs_option(),
        click.option(
            "--model",
            type=model_choice(),
            default="auto",
            show_default=True,
            help="Propagation model (auto: by band).",
        ),
        click.option(
            "--environment",
            type=environment_choice(),
            default="urban",
            show_default=True,
        ),
        click.option(
            "--max-radius-km",
            "max_radius_km",
            type=float,
            default=None,
            help="Maximum tower radius (default by band).",
        ),
        click.option(
            "--indoor", is_flag=True, help="Indoor thresholds (10 dB penetration margin)."
        ),
        click.option(
            "--per-technology",
            "per_technology",
            is_flag=True,
            help="Also write a signal raster per operator and technology.",
        ),
        out_option(),
        overwrite_option(),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


# ------------------------------------------------------------------------------- logging
_COUNTS = "telcoplan.verbosity"


def setup_logging(verbose: int, quiet: int) -> None:
    """Log to stderr at INFO, one level more per ``-v``, one less per ``-q``."""
    level = logging.INFO + 10 * (quiet - verbose)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(levelname)s: %(message)s" if verbose else "%(message)s")
    )
    root = logging.getLogger("telcoplan")
    root.handlers[:] = [handler]
    root.setLevel(max(logging.DEBUG, min(level, logging.CRITICAL)))
    root.propagate = False

    def show(
        message, category, filename, lineno, file=None, line=None
    ):  # one clean line per warning
        root.warning("warning: %s", message)

    warnings.showwarning = show


def _count(ctx: click.Context, param: click.Parameter, value: int) -> None:
    """Add a ``-v``/``-q`` count to the run's total (before or after the sub-command) and
    set the log level from it."""
    counts = ctx.find_root().meta.setdefault(_COUNTS, {"verbose": 0, "quiet": 0})
    counts[param.name] += value or 0
    setup_logging(counts["verbose"], counts["quiet"])


def verbosity_params() -> list[click.Option]:
    """``-v/--verbose`` and ``-q/--quiet`` as options of one command (a fresh pair per command)."""
    return [
        click.Option(
            ["-v", "--verbose"],
            count=True,
            expose_value=False,
            callback=_count,
            help="More messages (repeat for debug).",
        ),
        click.Option(
            ["-q", "--quiet"],
            count=True,
            expose_value=False,
            callback=_count,
            help="Fewer messages (-q warnings only, -qq errors only).",
        ),
    ]
