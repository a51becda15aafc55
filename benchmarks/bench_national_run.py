"""The whole national demo run (`telcoplan run`): its stages in forked processes vs in turn.

Writes the synthetic national scenario (``telcoplan demo --scale national``, at ``--scale``;
1: 100,000 sites on 35 M cells of 100 m) into a temporary folder and runs ``telcoplan run`` on
it, the modes interleaved over ``--repeat`` repetitions (who goes first rotates): the default
(the backbone and the report in child processes forked from the run) and ``--sequential``
(one stage after the other, one process). Each run is a fresh process, as a user's; measured
from outside: wall time, CPU time (the run and its children) and peak memory summed over the
run's processes as proportional set sizes (shared pages counted once; sampled every 0.1 s from
``/proc``). Checks that both modes write the same files, byte for byte. With ``--scaling`` it
also runs the same plan with every site twice (new ids) in the default mode, interleaved with
the plan itself, and prints the time ratio (issue 12: ≤ 2.2; each copy moved 300 m - 1 km: a
site of its own).

    .venv/bin/python benchmarks/bench_national_run.py [--scale 1] [--repeat 3] [--scaling]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.demo import write_demo

MODES = {"forked (default)": [], "--sequential": ["--sequential"]}
TWICE = "forked, every site twice"


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as fh:
                for child in fh.read().split():
                    out += _tree(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def _pss(pids: list[int]) -> int:
    """Proportional set size of ``pids`` summed (bytes)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
                total += next(int(x.split()[1]) for x in fh if x.startswith("Pss:")) * 1024
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            pass
    return total


def run(plan: Path, out: Path, extra: list[str]) -> tuple[float, float, int]:
    """``telcoplan run plan --out out`` in a fresh process: (wall s, CPU s, peak summed PSS)."""
    shutil.rmtree(out, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "telcoplan", "run", str(plan), "--out", str(out), *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _pss(_tree(proc.pid)))
        time.sleep(0.1)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, peak


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def twice(folder: Path, into: Path) -> Path:
    """The plan of ``folder`` with every site twice: each copy (id ending in ``-2``) 300 m to
    1 km from its original in a random direction, so that it is a site of its own everywhere
    (coverage, the backbone's physical sites)."""
    shutil.copytree(folder / "inputs", into / "inputs")
    towers = gpd.read_file(folder / "inputs" / "towers.gpkg")
    copy = towers.copy()
    copy["site_id"] = copy["site_id"].astype(str) + "-2"
    rng = np.random.default_rng(2)
    angle, dist = rng.uniform(0, 2 * np.pi, len(copy)), rng.uniform(300, 1000, len(copy))
    copy.geometry = gpd.points_from_xy(
        copy.geometry.x + dist * np.cos(angle), copy.geometry.y + dist * np.sin(angle), crs=copy.crs
    )
    pd.concat([towers, copy], ignore_index=True).pipe(gpd.GeoDataFrame).to_file(
        into / "inputs" / "towers.gpkg", driver="GPKG"
    )
    shutil.copy(folder / "plan.yml", into / "plan.yml")
    return into / "plan.yml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scaling", action="store_true", help="also run every site twice")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plan = write_demo(root / "one", scale="national", size=args.scale)
        sides = {name: (plan, extra) for name, extra in MODES.items()}
        if args.scaling:
            sides[TWICE] = (twice(root / "one", root / "two"), [])
        sites = len(gpd.read_file(plan.parent / "inputs" / "towers.gpkg", columns=[]))
        print(f"national demo at scale {args.scale:g}: {sites:,} sites; {args.repeat} repetitions")
        got: dict[str, list[tuple[float, float, int]]] = {name: [] for name in sides}
        outputs: dict[str, dict[str, bytes]] = {}
        names = list(sides)
        for rep in range(args.repeat):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                plan_path, extra = sides[name]
                out = root / f"out-{names.index(name)}"
                got[name].append(run(plan_path, out, extra))
                if name in MODES and name not in outputs:
                    outputs[name] = files(out)
        for name, runs in got.items():
            walls = [r[0] for r in runs]
            print(
                f"{name:<28} wall min {min(walls):6.2f} s  median {statistics.median(walls):6.2f} s"
                f"   CPU median {statistics.median(r[1] for r in runs):6.1f} s"
                f"   peak memory (summed PSS) max {max(r[2] for r in runs) / 1e9:5.2f} GB"
            )
        forked, sequential = (statistics.median(r[0] for r in got[m]) for m in MODES)
        print(f"sequential / forked: {sequential / forked:.2f}x (medians)")
        first = next(iter(outputs.values()))
        same = all(o == first for o in outputs.values())
        print(f"same outputs in every mode: {same} ({len(first)} files)")
        if args.scaling:
            ratio = statistics.median(r[0] for r in got[TWICE]) / forked
            print(f"2x sites / 1x: {ratio:.2f}x (medians; target <= 2.2x)")


if __name__ == "__main__":
    main()
