"""Packaging: environment.yml lists the same dependencies as pyproject.toml; house layout rules
(the import rules are import-linter contracts: tests/test_imports.py)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's
CONDA_NAMES = {"matplotlib": "matplotlib-base"}


def _name(req: str) -> str:
    return re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0].strip().lower()


def test_environment_yml_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in meta["dependencies"]}
    for extra in ("maps", "test", "bench"):
        wanted |= {_name(r) for r in meta["optional-dependencies"][extra]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    have: set[str] = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            have |= {_name(d) for d in dep["pip"]}
        else:
            have.add(_name(dep))
    wanted = {CONDA_NAMES.get(n, n) for n in wanted}
    missing = wanted - have
    assert not missing, f"environment.yml lacks {sorted(missing)}"
    assert "python" in have


def test_public_modules_declare_all():
    for path in (ROOT / "telcoplan").rglob("*.py"):
        if path.name.startswith("_") or path.name == "__main__.py":
            continue
        assert "__all__" in path.read_text(encoding="utf-8"), f"{path} has no __all__"


def test_readme_schema_tables_are_current():
    from telcoplan.layers.schemas import SCHEMAS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for schema in SCHEMAS.values():
        assert schema.doc_table() in readme, f"README's {schema.name} table is stale; regenerate it"


def test_readme_starts_with_the_two_setup_commands():
    head = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()[:6]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_the_map_and_figure_libraries_are_main_dependencies():
    """``pip install telcoplan`` gives map.html and the figure: no extra needed."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    main = {_name(r) for r in meta["dependencies"]}
    for name in ("folium", "matplotlib", "xstatic-leaflet", "xstatic-leaflet-markercluster"):
        assert name in main, name
    assert "xstatic-jquery" in main  # folium's popups need jQuery


def test_readme_says_make_test_installs_chromium():
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("## ")[0]
    assert "chromium" in head
    assert "root" in head


def test_version_is_written_once():
    """pyproject.toml takes the version from telcoplan/_version.py; the installed metadata (the
    wheel's, what pip and ``importlib.metadata`` report) agrees with ``telcoplan.__version__``."""
    from importlib import metadata

    import telcoplan

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in meta["project"]
    assert "version" in meta["project"]["dynamic"]
    attr = meta["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "telcoplan._version.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", telcoplan.__version__)
    assert metadata.version("telcoplan") == telcoplan.__version__
