"""Site review: telcoplan's review of many proposals against one coverage pass and against the
naive peer, in one run.

Instance: the synthetic Đà Nẵng demo (``--resolution`` 100 m: 548 × 322 cells, 600 towers of
three operators, DEM with terrain diffraction, indoor thresholds), run once with its coverage
stage only (untimed: the run the review reuses). ``--proposals`` (100) proposed sites are the
first candidates of the demo's candidates file, their operators taking turns (Viettel,
VinaPhone, MobiFone), with the plan's default radio (4G, 1800 MHz, 30 m, 60 dBm). The plan's
inputs are loaded once, untimed, for all three:

* **one coverage pass**: the coverage stage as a run makes it (``coverage.run``: the coverage
  engine's passes, rasters, polygons, population covered), into a temporary folder;
* **ours**: the review after loading — the run's covered masks read from its rasters
  (``read_run_coverage``), every proposal's coverage in one engine pass and all its figures
  (``review_proposals``: overlaps, hosts, distances, footprint polygons), both files written;
* **the naive peer**: for each of ``--peer`` proposals, the coverage engine rerun with the
  proposal added as a tower of its operator (``compute_coverage``, the same parameters) and
  the population gained counted; its time per proposal is extrapolated to all proposals.

Rounds are interleaved (``--repeat`` 3: coverage pass, ours, peer in turn); min and median of
each, the ratio ours / one coverage pass (target ≤ 2) and peer / ours. The peer's gains must
equal the review's ``population_new`` (rounded to 0.1 person; largest difference printed).

    .venv/bin/python benchmarks/bench_review.py [--resolution 100] [--proposals 100] [--peer 3]
        [--repeat 3] [--small]
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from telcoplan.coverage.analysis import compute_coverage  # noqa: E402
from telcoplan.demo import write_demo  # noqa: E402
from telcoplan.gis.vector import write_vector  # noqa: E402
from telcoplan.pipeline import load_inputs, read_plan, run_plan  # noqa: E402
from telcoplan.pipeline.review import (  # noqa: E402
    load_proposals,
    read_run_coverage,
    review_proposals,
    write_review,
)
from telcoplan.pipeline.stages import Staging  # noqa: E402
from telcoplan.pipeline.stages import coverage as coverage_stage  # noqa: E402
from telcoplan.pipeline.stages import sites as sites_stage  # noqa: E402

OPERATORS = ("Viettel", "VinaPhone", "MobiFone")


def setup(folder: Path, resolution: float, n_proposals: int):
    """The demo with a coverage-only run, its loaded inputs and the proposals file."""
    plan_path = write_demo(folder, resolution_m=resolution)
    doc = yaml.safe_load(plan_path.read_text(encoding="utf-8"))
    doc["stages"] = {k: (v if k == "coverage" else False) for k, v in doc["stages"].items()}
    plan_path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    plan = read_plan(plan_path)
    run_plan(plan, folder / "outputs")
    cands = gpd.read_file(folder / "inputs" / "candidates.gpkg").iloc[:n_proposals]
    cands = cands[["candidate_id", "name", "geometry"]].assign(
        operator=[OPERATORS[i % 3] for i in range(len(cands))]
    )
    write_vector(folder / "proposals.gpkg", cands)
    return plan, load_inputs(plan), folder / "proposals.gpkg"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolution", type=float, default=100.0, help="demo cell size (m)")
    ap.add_argument("--proposals", type=int, default=100)
    ap.add_argument("--peer", type=int, default=3, help="proposals the naive peer reruns")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="400 m cells, 20 proposals, 1 round")
    args = ap.parse_args()
    if args.small:
        args.resolution, args.proposals, args.peer, args.repeat = 400.0, 20, 1, 1
    logging.basicConfig(level=logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        folder = Path(tmp)
        plan, inputs, proposals_path = setup(folder, args.resolution, args.proposals)
        cp = plan.parameters["coverage"]
        sp = sites_stage.parse(None)
        run = folder / "outputs"
        thresholds = cp.thresholds
        props = load_proposals(
            proposals_path,
            crs_out=inputs.grid.crs,
            study_area=inputs.areas.geometry,
            operators=OPERATORS,
        )
        towers = inputs.vectors["towers"]
        kw = {
            "thresholds": thresholds,
            "model": cp.model,
            "environment": cp.environment,
            "h_rx_m": float(cp.h_rx_m),
            "max_radius_km": cp.max_radius_km,
            "validity": "ignore",
            "dem": inputs.dem if cp.terrain else None,
            "diffraction": cp.diffraction,
        }
        print(
            f"demo: {inputs.grid.width} x {inputs.grid.height} cells of {args.resolution:g} m, "
            f"{len(towers)} towers, terrain {'on' if cp.terrain else 'off'}; "
            f"{len(props)} proposals, peer reruns {args.peer}, {args.repeat} round(s)"
        )

        def coverage_pass() -> None:
            with tempfile.TemporaryDirectory(dir=folder) as out:
                coverage_stage.run(inputs, cp, Staging(Path(out)))

        review = None

        def ours() -> None:
            nonlocal review
            covered = read_run_coverage(run, inputs.grid, thresholds)
            review = review_proposals(inputs, props, covered, sites_params=sp, coverage_params=cp)
            with tempfile.TemporaryDirectory(dir=folder) as out:
                write_review(review, out)

        before = compute_coverage(towers, inputs.grid, **kw)
        pop = np.where(np.isfinite(inputs.population), inputs.population, 0.0)
        peer_gain: dict[str, float] = {}

        def peer() -> None:
            for pid in props.index[: args.peer]:
                p = props.loc[[pid]]
                tower = gpd.GeoDataFrame(
                    {
                        "operator": p["operator"].to_numpy(),
                        "technology": sp.technology,
                        "frequency_mhz": sp.frequency_mhz,
                        "height_m": sp.height_m,
                        "eirp_dbm": sp.eirp_dbm,
                    },
                    geometry=p.geometry.to_numpy(),
                    index=pd.Index([f"new-{pid}"], name="site_id"),
                    crs=towers.crs,
                )
                after = compute_coverage(pd.concat([towers, tower]), inputs.grid, **kw)
                k = list(after.operators).index(p["operator"].item())
                peer_gain[pid] = float(pop[after.covered[k] & ~before.covered[k]].sum())

        times: dict[str, list[float]] = {"coverage": [], "ours": [], "peer": []}
        for _ in range(args.repeat):
            for name, fn in (("coverage", coverage_pass), ("ours", ours), ("peer", peer)):
                gc.collect()
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)

    n = len(props)
    per = [t / args.peer for t in times["peer"]]
    peer_all = [t * n for t in per]
    cov, mine = times["coverage"], times["ours"]
    for label, ts in (
        ("one coverage pass (coverage stage)", cov),
        (f"ours: review of {n} proposals", mine),
        (f"naive peer, per proposal ({args.peer} rerun)", per),
        (f"naive peer, {n} proposals (extrapolated)", peer_all),
    ):
        print(f"{label:48s} min {min(ts):8.2f} s   median {statistics.median(ts):8.2f} s")
    print(
        f"review / one coverage pass: {min(mine) / min(cov):.2f} (min), "
        f"{statistics.median(mine) / statistics.median(cov):.2f} (median); target ≤ 2"
    )
    print(
        f"speed ratio peer / ours: {min(peer_all) / min(mine):.1f} (min), "
        f"{statistics.median(peer_all) / statistics.median(mine):.1f} (median)"
    )
    assert review is not None
    diff = max(abs(review.sites.loc[pid, "population_new"] - g) for pid, g in peer_gain.items())
    print(
        f"population newly covered, review vs peer rerun: max |difference| {diff:.4f} persons "
        f"over {len(peer_gain)} proposals; equal within the review's rounding (0.05): "
        f"{diff <= 0.05 + 1e-9}"
    )


if __name__ == "__main__":
    main()
