"""A command loads only what it uses (issue 12): heavy libraries are imported inside the
commands and stages that need them, not when the CLI or the package is imported.

Each check runs in a fresh interpreter and lists the heavy modules in ``sys.modules`` after the
command; the lists are what the code achieves today, so a new top-level import fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from telcoplan.gis.vector import write_vector

#: Everything the geo stack, the kernels, the solvers and the outputs load.
HEAVY = (
    "numpy",
    "pandas",
    "geopandas",
    "shapely",
    "pyproj",
    "pyogrio",
    "rasterio",
    "numba",
    "scipy",
    "networkx",
    "highspy",
    "folium",
    "matplotlib",
    "yaml",
    "telcoplan.maps.interactive",
    "telcoplan.maps._web",
)
#: What no analysis command needs: the web map (our modules of it too: they import scipy's
#: csgraph, ~55-70 ms; the QGIS styles take the operators' colours from telcoplan.outputs),
#: the figures, the solvers, the graphs.
PRESENTATION_AND_SOLVERS = (
    "folium", "matplotlib", "highspy", "networkx", "telcoplan.maps.interactive",
    "telcoplan.maps._web",
)  # fmt: skip

#: The modules are listed by an exit handler: the CLI's entry point ends its process with
#: os._exit once the exit handlers have run (nothing after the command would run).
_PROBE = """
import atexit, json, runpy, sys
sys.argv = ["telcoplan", *{args!r}]
def report():
    loaded = [m for m in {heavy!r} if m in sys.modules]
    print("MODULES=" + json.dumps({{"loaded": loaded}}), flush=True)
atexit.register(report)
{body}
"""


def _loaded(*args: str, body: str = 'runpy.run_module("telcoplan", run_name="__main__")') -> set:
    """Heavy modules loaded after running ``telcoplan ARGS`` (or ``body``) in a fresh process."""
    code = _PROBE.format(args=list(args), body=body, heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("MODULES="))
    got = json.loads(line.removeprefix("MODULES="))
    return set(got["loaded"])  # (the command's exit status: check=True above)


@pytest.mark.parametrize(
    "body",
    [
        "import telcoplan; telcoplan.__version__",
        "import telcoplan.cli",
        'runpy.run_module("telcoplan", run_name="__main__")',  # telcoplan --help
    ],
)
def test_the_package_and_the_cli_import_nothing_heavy(body):
    assert _loaded("--help", body=body) == set()


@pytest.mark.parametrize(
    "command", [["run"], ["map"], ["report"], ["demo"], ["import-cells"], ["sites", "review"]]
)
def test_help_of_a_command_imports_nothing_heavy(command):
    assert _loaded(*command, "--help") == set()


@pytest.mark.parametrize(
    "command",
    [["coverage"], ["gaps"], ["validate"], ["backbone"], ["calibrate"], ["sites", "plan"]],
)
def test_help_with_registry_choices_loads_no_maps_or_solvers(command):
    """Their choices come from the library's registries (propagation models, layer types, ring
    protection, diffraction methods, selection methods), imported to show them."""
    assert not _loaded(*command, "--help") & {"folium", "matplotlib", "highspy"}


def test_the_grid_needs_neither_geopandas_nor_rasterio():
    got = _loaded(body="import telcoplan.gis.grid")
    assert not got & {"geopandas", "pandas", "rasterio", "numba", "shapely"}


def test_validate_a_layer_loads_no_kernels_solvers_or_maps(tmp_path, towers5):
    path = tmp_path / "towers.gpkg"
    write_vector(path, towers5.reset_index(drop=True))
    got = _loaded("validate", str(path))
    assert "geopandas" in got  # the probe works: validating needs the geo stack
    assert not got & {"numba", "scipy", *PRESENTATION_AND_SOLVERS}


def test_coverage_loads_no_solvers_graphs_or_maps(tmp_path, towers5, areas4):
    t_path, a_path = tmp_path / "towers.gpkg", tmp_path / "areas.gpkg"
    write_vector(t_path, towers5.reset_index(drop=True))
    write_vector(a_path, areas4)
    got = _loaded(
        "coverage", "--towers", str(t_path), "--area", str(a_path), "--resolution", "100",
        "--out", str(tmp_path / "out"), "-qq",
    )  # fmt: skip
    assert {"numba", "rasterio"} <= got  # the probe works: coverage runs the kernel, writes rasters
    assert not got & set(PRESENTATION_AND_SOLVERS)
    assert (tmp_path / "out" / "summary.json").exists()


def test_validate_a_whole_plan_loads_no_kernels_graphs_or_solvers(tmp_path):
    """Checking a plan parses every stage's parameters (diffraction method, ring protection,
    selection method…): their choices come from small modules, not from the modules that use
    them (networkx, HiGHS). numba (and the scipy it imports) is loaded: the inputs are loaded to
    be checked, and the areas' population is spread over the grid by the scanline polygon fill."""
    from tests.pipeline.town import town_plan

    plan = town_plan(tmp_path, dem=True, stages={"sites": {}, "backbone": {}, "gaps": {}})
    got = _loaded("validate", str(plan))
    assert "geopandas" in got  # the probe works: validating needs the geo stack
    assert not got & set(PRESENTATION_AND_SOLVERS)


def test_qgis_styles_load_no_web_map():
    """The QGIS styles every run and `telcoplan coverage` write (telcoplan.maps.styles) do not
    import the web map's or the figure's modules (the maps package loads its names lazily)."""
    code = (
        "import sys, telcoplan.maps.styles\n"
        "mods = ('telcoplan.maps.interactive', 'telcoplan.maps.static', 'scipy', 'folium')\n"
        "print('LOADED=' + ','.join(m for m in mods if m in sys.modules))\n"
        "from telcoplan.maps import build_map, plan_figure\n"
        "print('NAMES=' + build_map.__module__ + ',' + plan_figure.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout.splitlines()
    assert "LOADED=" in out
    assert "NAMES=telcoplan.maps.interactive,telcoplan.maps.static" in out
