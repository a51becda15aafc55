"""The package's layering and naming rules, checked by import-linter and by the syntax tree.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``): ``cli → demo → pipeline →
maps | report → outputs → sites | backbone | coverage → layers → gis → errors``, private modules
imported only inside their package, no import cycles between the modules of a package, no
``click`` below the CLI, no folium or matplotlib in the analysis packages.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "telcoplan"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_import_contracts_hold():
    res = _lint_imports(ROOT, ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # an upward import (layers may not know the pipeline), inside a function as they hide
        (
            "layers/roads.py",
            "def _up():\n    from telcoplan.pipeline import run_plan\n",
            "Layered packages",
        ),
        # a private module of another package
        ("backbone/graph.py", "from telcoplan.coverage import _kernel_common\n", "Private modules"),
        # a cycle between two modules of a package
        ("coverage/thresholds.py", "import telcoplan.coverage.analysis\n", "No import cycles"),
        # the library importing the CLI's toolkit
        ("gis/grid.py", "import click\n", "never imports click"),
    ],
)
def test_contracts_catch_a_broken_rule(tmp_path, module, line, broken):
    """Each contract fails on a copy of the package with one rule broken (it can fail)."""
    shutil.copytree(PACKAGE, tmp_path / "telcoplan", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "telcoplan" / module, "a", encoding="utf-8") as fh:
        fh.write("\n" + line)
    res = _lint_imports(tmp_path, tmp_path)
    assert res.returncode != 0, res.stdout
    broken_lines = [ln for ln in res.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(broken in ln for ln in broken_lines), res.stdout


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def test_no_module_imports_a_private_name_of_another():
    """``from telcoplan.x import _name`` reaches into another module's privates."""
    bad = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("telcoplan"):
                for alias in node.names:
                    as_module = ROOT.joinpath(*f"{node.module}.{alias.name}".split("."))
                    if as_module.with_suffix(".py").is_file() or as_module.is_dir():
                        continue  # a module: the private-modules contract rules those
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        bad.append(f"{path.relative_to(ROOT)}: {node.module}.{alias.name}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def _strings(tree: ast.AST) -> list[str]:
    """String constants of a module, docstrings left out."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
    ]


def test_output_file_names_are_spelled_in_one_module():
    """Only :mod:`telcoplan.outputs` spells an output file name (code, messages, tags)."""
    from telcoplan import outputs

    names = [
        outputs.SUMMARY,
        outputs.COVERAGE,
        outputs.GAPS,
        outputs.SITES,
        outputs.BACKBONE,
        outputs.OPERATORS_COUNT,
        outputs.COVERAGE_LIMIT,
        outputs.MAP,
        outputs.REPORT,
        outputs.FIGURE,
        outputs.REVIEW,
        outputs.REVIEW_TABLE,
    ]
    rasters = re.compile(r"(signal|server)_(\S*\.tif|$)")  # and f"signal_{…}.tif"'s first part
    found: dict[str, list[str]] = {}
    for path, tree in _modules():
        for text in _strings(tree):
            for name in [*names, "signal_/server_"]:
                if name in text or (name == "signal_/server_" and rasters.search(text)):
                    found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    spelled_elsewhere = {
        name: sorted(set(where) - {"telcoplan/outputs.py"}) for name, where in found.items()
    }
    assert all(found.get(n) for n in names[:4]), "the owner module defines them all"
    assert not any(spelled_elsewhere.values()), spelled_elsewhere


#: Modules allowed over ~800 lines: each is one algorithm.
ONE_ALGORITHM = {"backbone/steiner.py", "backbone/rings.py", "sites/optimize.py"}


def test_modules_stay_small():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 820
    }
    assert set(long) <= ONE_ALGORITHM, long
