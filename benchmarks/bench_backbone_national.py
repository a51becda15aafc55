"""The backbone stage on the national demo: time of each part, and how it grows with the sites.

Writes the synthetic national scenario (``telcoplan demo --scale national``) at ``--scale``
(1: 100,000 sites, 83,000 physical structures; 0.3: 9,000 and 7,470) into a temporary folder,
loads its plan's inputs, and runs the backbone stage alone, as ``run_plan`` would. Each library
call the stage makes is timed (wall and CPU seconds): the road graph, the sites far from any
road, snapping the sites, the per-build costs, the plans (separate and joint Steiner trees, the
union of the separate trees, the edge users and the Shapley coalitions), the links table and
writing ``backbone.gpkg``. Prints those, the stage's total, its peak resident memory and the
plan's key figures (lengths, costs to the cent, the Shapley shares of the joint cost). With ``--compare S`` the same at scale S in a fresh process, and the ratio
of the stage's CPU times next to the ratio of the sites (growth at most linear: time ratio ≤
sites ratio).

    .venv/bin/python benchmarks/bench_backbone_national.py [--scale 0.3] [--compare 0.1]
"""

from __future__ import annotations

import argparse
import logging
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import telcoplan.backbone.graph as graph_mod
import telcoplan.backbone.plans as plans_mod
import telcoplan.gis.vector as vector_mod
from telcoplan.demo import write_demo
from telcoplan.pipeline import read_plan
from telcoplan.pipeline.inputs import load_inputs
from telcoplan.pipeline.stages import Staging, backbone

PARTS = {
    graph_mod: ("build_graph", "far_from_roads", "snap_sites", "operator_costs"),
    plans_mod: ("plan_backbone", "plan_links"),
    vector_mod: ("write_vector_layers",),
}


def _timed(times: dict, module, name: str) -> None:
    """Replace ``module.name`` (the stage imports it from there when it runs) by a timed call."""
    func = getattr(module, name)

    def timed(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return func(*args, **kwargs)
        finally:
            w, c = times.get(name, (0.0, 0.0))
            times[name] = (w + time.perf_counter() - wall, c + time.process_time() - cpu)

    setattr(module, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.3, help="national demo scale, 0.02-1")
    ap.add_argument("--compare", type=float, help="also run at this scale, in a fresh process")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-backbone-") as tmp:
        t = time.perf_counter()
        plan = read_plan(write_demo(Path(tmp) / "demo", scale="national", size=args.scale))
        inputs = load_inputs(plan)
        sites = len(inputs.vectors["towers"])
        print(
            f"national demo at scale {args.scale:g}: {sites:,} sites, "
            f"{len(inputs.vectors['roads']):,} roads; written and loaded in "
            f"{time.perf_counter() - t:.1f} s"
        )
        times: dict[str, tuple[float, float]] = {}
        for module, names in PARTS.items():
            for name in names:
                _timed(times, module, name)
        params = backbone.parse(plan.stages.get("backbone") or {})
        folder = Path(tmp) / "stage"
        folder.mkdir()
        wall, cpu = time.perf_counter(), time.process_time()
        result = backbone.run(inputs, params, Staging(folder))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for name, (w, c) in times.items():
        print(f"  {name:20s} {w:7.2f} s wall {c:7.2f} s CPU")
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"backbone stage: {wall:.2f} s wall, {cpu:.2f} s CPU; peak resident memory {peak_gb:.2f} GB"
    )
    s = result.summary
    # the costs to the cent, as the summary rounds them: the Shapley shares (also to the cent)
    # can be checked to add up to the joint cost
    print(
        f"joint {s['length_km_joint']:,.1f} km / {s['cost_joint']:,.2f}, separate "
        f"{s['length_km_separate']:,.1f} km / {s['cost_separate']:,.2f} "
        f"({s['savings_pct']:.1f}% saved); Shapley {s['share_shapley']}"
    )
    if args.compare is None:
        return
    cmd = [sys.executable, __file__, "--scale", str(args.compare)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    other_sites = int(re.search(r"([\d,]+) sites", out).group(1).replace(",", ""))
    other_cpu = float(re.search(r"wall, ([\d.]+) s CPU", out).group(1))
    print(
        f"at scale {args.compare:g}: {other_sites:,} sites, stage {other_cpu:.2f} s CPU; "
        f"sites ratio {sites / other_sites:.2f}, CPU time ratio {cpu / other_cpu:.2f}"
    )


if __name__ == "__main__":
    main()
