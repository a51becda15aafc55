"""Every benchmark script still runs, on a tiny case, and prints its comparison.

The benchmarks measure speed (they are not run here at full size); this only keeps them from
rotting between their runs — an automatic lint fix once broke ``bench_national.py`` unnoticed.
Where a script checks its answer against its peer (max difference, agreement, same mask), the
check is asserted here too.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

CASES = {
    "bench_zonal.py": (
        ["--size", "200", "--areas", "5", "--repeat", "1"],
        r"same cells per area: True, .*totals equal \(rel 1e-09\): True\n"
        r"exactextract .*within 1e-09: True\nraster total",
    ),
    "bench_bestserver.py": (
        ["--towers", "30", "--size", "100", "--radius", "2"],
        r"omni max \|diff\| 0\.00\d\d dB\s+same coverage mask: True"
        r"[\s\S]*sectorised max \|diff\| 0\.00\d\d dB\s+same coverage mask: True"
        r"[\s\S]*3gpp max \|diff\| 0\.00\d\d dB\s+same coverage mask: True",
    ),
    "bench_terrain.py": (
        ["--size", "120", "--radius", "1.5", "--sites", "1", "--repeat", "1", "--peer", "numpy"],
        r"agreement \(mean %\): sweep vs exact 9\d\.\d+",
    ),
    "bench_coverage_terrain.py": (
        ["--size", "100", "--radius", "1", "--sites", "1", "--sample", "200"],
        r"largest power difference 0\.00\d\d dB",
    ),
    "bench_steiner.py": (
        ["--side", "20", "--terminals", "10", "--repeat", "1", "--skip-steinlib"],
        r"speed ratio networkx / ours",
    ),
    "bench_rings.py": (
        ["--side", "20", "--sites", "20", "--roots", "2", "--peer-sites", "10"],
        r"protected 10, unprotected 0",
    ),
    "bench_coverage_cli.py": (
        ["--towers", "30", "--size", "100", "--radius", "2", "--repeat", "1"],
        r"without its compute .*\n.*\n\s+ceiling: .* is [\d.]+x the script.*\n"
        r"\s+numba's start in ours .* median [\d.]+ s; the script / \(ours less it\): [\d.]+x"
        r"[\s\S]*max \|diff\| 0\.00\d\d dB\s+same coverage mask: True",
    ),
    "bench_national.py": (
        ["--sites", "500", "--size", "300", "--repeat", "1"],
        r"1x sites: [\d.]+ s by medians .* peak resident memory [\d.]+ GB[\s\S]*"
        r"time ratio 2x sites / 1x sites: [\d.]+ \(medians\)",
    ),
    "bench_workers.py": (["--scale", "0.03", "--repeat", "1"], r"in-process run \(.*\): True"),
    "bench_national_run.py": (
        ["--scale", "0.03", "--repeat", "1", "--scaling"],
        r"sequential / forked: [\d.]+x[\s\S]*same outputs in every mode: True[\s\S]*"
        r"2x sites / 1x: [\d.]+x",
    ),
    "bench_backbone_national.py": (["--scale", "0.03"], r"backbone stage: .* s CPU; peak"),
    "bench_sites.py": (["--small", "--repeat", "1"], r"identical selections: True"),
    "bench_review.py": (
        ["--small"],
        r"review / one coverage pass: [\d.]+ .*\n.*\n.*rounding \(0\.05\): True",
    ),
}


def test_every_benchmark_is_covered():
    assert {p.name for p in BENCH.glob("bench_*.py")} == set(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs_on_a_tiny_case(script):
    args, expected = CASES[script]
    out = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(expected, out.stdout), out.stdout[-2000:]
