"""``telcoplan coverage`` end to end vs a plain numpy script doing the same job, both as processes.

Default case (issue 12): 2,000 omnidirectional 2G towers (900 MHz) of 3 operators on 1,000 x
1,000 cells of 50 m, R = 10 km, Okumura-Hata urban, receiver 1.5 m; the towers of
``bench_bestserver.py`` (``--case sectorised``: its three-sector sites). The inputs are files,
as a user has them: ``towers.gpkg`` and ``areas.gpkg`` (one square area: the grid).

- ours: ``telcoplan coverage --towers towers.gpkg --area areas.gpkg --model hata ...``, the real
  command line, which also writes the serving-site attribute tables (``.aux.xml``), the
  coverage polygons (``coverage.gpkg``) and ``summary.json``;
- the peer: a standalone script (written next to the inputs, ``peer.py``) that a competent
  numpy user would write: it reads the same files with geopandas, builds the same grid, runs
  the tuned numpy window of ``bench_bestserver.py`` (``numpy_best_server``, its source copied
  in: the peer imports numpy, geopandas and rasterio, not telcoplan) and writes the same
  GeoTIFFs — ``signal_<op>.tif`` (float32, NaN below the floor), ``server_<op>.tif`` (int32,
  1-based tower row, 0 none), ``operators_count.tif`` (uint8) — with the same profile as ours
  (Cloud-Optimized GeoTIFF, DEFLATE, the floating-point predictor for signal and none for the
  ids and counts, 256 x 256 tiles, overviews, GDAL threads).

Each side runs once to warm up (numba's cache, the OS file cache), then ``--repeat`` times,
interleaved (which side goes first alternates); min and median wall time of each side and
their ratio. A third side, "the script without its compute", runs the script with its
best-server arrays loaded from a file (saved by its warm-up run): its imports, reads and writes
alone. Script / that side is the ceiling of the ratio for any program that imports, reads and
writes the same: no kernel, however fast, beats the script by more. Ours also starts numba:
the first call of the cached kernels in a fresh process (numba's import, the kernels' modules,
loading the cached machine code; the script's imports done before the clock starts) is timed
on a 4 x 4 grid, ``--repeat`` times. A correctness line compares
the rasters both write. ``--profile`` also runs ours
once under cProfile and prints where its wall time goes besides the kernel.

    .venv/bin/python benchmarks/bench_coverage_cli.py [--towers 2000] [--size 1000] [--res 50]
        [--radius 10] [--repeat 3] [--case omni|sectorised] [--profile] [--keep DIR]
"""

from __future__ import annotations

import argparse
import inspect
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
from shapely.geometry import box

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_bestserver as bb

TECHNOLOGY = "2G"  # at 900 MHz; its threshold is a total power: no metric offset
THRESHOLD_DBM = -95.0  # telcoplan's default outdoor 2G level
FLOOR_DBM = THRESHOLD_DBM - 60.0  # telcoplan keeps signal down to 60 dB below the threshold
CRS = "EPSG:32649"
TELCOPLAN = Path(sys.executable).with_name("telcoplan")

PEER_HEAD = '''\
"""Best server per operator with a tuned numpy window; the GeoTIFFs telcoplan coverage writes.

    python peer.py towers.gpkg areas.gpkg RESOLUTION_M RADIUS_KM OUT_DIR
"""

import os
import sys

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine

OPERATORS = None  # unused: the operators come from the towers file
FREQ_MHZ = {freq!r}
H_RX_M = {h_rx!r}
FLOOR_DBM = {floor!r}
THRESHOLD_DBM = {threshold!r}
PHI_3DB, A_M, THETA_3DB, SLA_V = {pattern!r}


class Grid:
    """What numpy_best_server reads of a grid: shape, resolution, transform."""

    def __init__(self, bounds, res):
        xmin, ymin, xmax, ymax = bounds
        x0 = np.floor(xmin / res) * res
        y1 = np.ceil(ymax / res) * res
        self.width = int(np.ceil((xmax - x0) / res - 1e-9))
        self.height = int(np.ceil((y1 - ymin) / res - 1e-9))
        self.shape = (self.height, self.width)
        self.resolution = res
        self.transform = Affine(res, 0.0, x0, 0.0, -res, y1)

'''

PEER_MAIN = """

def write(path, data, grid, crs, nodata):
    floating = np.issubdtype(data.dtype, np.floating)
    profile = dict(
        driver="COG", width=grid.width, height=grid.height, count=1, dtype=data.dtype.name,
        crs=crs, transform=grid.transform, nodata=nodata, compress="DEFLATE",
        predictor=3 if floating else 1, blocksize=256, num_threads="ALL_CPUS",
        overview_resampling="average" if floating else "nearest",
    )
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"), rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def main():
    towers_path, areas_path, res, radius_km, out = sys.argv[1:6]
    towers = gpd.read_file(towers_path).set_index("site_id")
    areas = gpd.read_file(areas_path)
    grid = Grid(areas.total_bounds, float(res))
    saved = os.environ.get("PEER_RESULTS")  # the benchmark's "I/O only" side: no best server
    if saved and os.path.exists(saved):
        with np.load(saved, allow_pickle=False) as z:
            groups, power, server = list(z["groups"]), z["power"], z["server"]
    else:
        groups, power, server = numpy_best_server(towers, grid, float(radius_km))
        if saved:
            np.savez(saved, groups=np.asarray(groups), power=power, server=server)
    os.makedirs(out, exist_ok=True)
    count = np.zeros(grid.shape, dtype=np.uint8)
    for g, op in enumerate(groups):
        name = op.lower()
        write(f"{out}/signal_{name}.tif", power[g], grid, areas.crs, float("nan"))
        write(f"{out}/server_{name}.tif", server[g] + 1, grid, areas.crs, 0)
        count += power[g] >= THRESHOLD_DBM  # NaN compares False
    write(f"{out}/operators_count.tif", count, grid, areas.crs, 255)


if __name__ == "__main__":
    main()
"""


def peer_source() -> str:
    """The peer script: its own grid and writer around bench_bestserver's numpy window."""
    head = PEER_HEAD.format(
        freq=bb.FREQ_MHZ,
        h_rx=bb.H_RX_M,
        floor=FLOOR_DBM,
        threshold=THRESHOLD_DBM,
        pattern=(bb.PHI_3DB, bb.A_M, bb.THETA_3DB, bb.SLA_V),
    )
    body = "\n\n".join(
        inspect.getsource(f) for f in (bb.hata_coefficients, bb._column, bb.numpy_best_server)
    )
    return head + "\n" + body + "\n" + PEER_MAIN


def write_inputs(folder: Path, towers: gpd.GeoDataFrame, grid) -> tuple[Path, Path]:
    towers = towers.assign(technology=TECHNOLOGY)
    t_path, a_path = folder / "towers.gpkg", folder / "areas.gpkg"
    towers.reset_index().to_file(t_path, engine="pyogrio")
    areas = gpd.GeoDataFrame({"name": ["study"]}, geometry=[box(*grid.bounds)], crs=grid.crs)
    areas.to_file(a_path, engine="pyogrio")
    return t_path, a_path


def commands(t_path, a_path, res, radius, folder: Path) -> dict[str, list[str]]:
    return {
        "ours": [
            str(TELCOPLAN), "coverage", "--towers", str(t_path), "--area", str(a_path),
            "--model", "hata", "--environment", "urban", "--max-radius-km", str(radius),
            "--resolution", str(res), "--crs", CRS, "--out", str(folder / "ours"),
            "--overwrite", "-q",
        ],
        "peer": [
            sys.executable, str(folder / "peer.py"), str(t_path), str(a_path), str(res),
            str(radius), str(folder / "peer"),
        ],
    }  # fmt: skip


#: A fresh process's first call of the cached coverage kernels (on a 4 x 4 grid), after the
#: imports the script has too: what starting numba costs ours.
NUMBA_START = """
import time
import geopandas as gpd, numpy as np, rasterio
from telcoplan.gis.grid import GridSpec
grid = GridSpec.from_bounds((0, 0, 400, 400), 100.0, "EPSG:32649")
towers = gpd.GeoDataFrame(
    {"operator": ["a"], "technology": ["2G"], "frequency_mhz": [900.0], "height_m": [30.0],
     "eirp_dbm": [60.0]},
    geometry=gpd.points_from_xy([150.0], [150.0]), crs=grid.crs,
)
t = time.perf_counter()
from telcoplan.coverage.analysis import compute_coverage
compute_coverage(towers, grid, model="hata", environment="urban", max_radius_km=1.0,
                 validity="ignore")
print(time.perf_counter() - t)
"""


def numba_start(repeat: int) -> list[float]:
    """Seconds of :data:`NUMBA_START`'s first call, each in a fresh process."""
    out = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", NUMBA_START], capture_output=True, text=True, check=True
        )
        out.append(float(done.stdout.split()[-1]))
    return out


def run(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{cmd[0]} {cmd[1]} failed:\n{out.stderr[-3000:]}")
    return dt


def compare(folder: Path, operators) -> None:
    import rasterio

    diffs, same_mask, same_server, n = [], True, 0.0, 0
    for op in operators:
        name = op.lower()
        with rasterio.open(folder / "ours" / f"signal_{name}.tif") as a:
            ours, profile_ours = a.read(1), a.profile
        with rasterio.open(folder / "peer" / f"signal_{name}.tif") as b:
            peer, profile_peer = b.read(1), b.profile
        both = np.isfinite(ours) & np.isfinite(peer)
        if both.any():
            diffs.append(float(np.max(np.abs(ours[both] - peer[both]))))
        same_mask &= bool(np.array_equal(ours >= THRESHOLD_DBM, peer >= THRESHOLD_DBM))
        with rasterio.open(folder / "ours" / f"server_{name}.tif") as a:
            s_ours = a.read(1)
        with rasterio.open(folder / "peer" / f"server_{name}.tif") as b:
            s_peer = b.read(1)
        same_server += float(np.sum(s_ours[both] == s_peer[both]))
        n += int(both.sum())
    keys = ("dtype", "blockxsize", "blockysize", "compress", "tiled")
    same_profile = all(profile_ours.get(k) == profile_peer.get(k) for k in keys)
    print(
        f"  max |diff| {max(diffs, default=0.0):.4f} dB   same coverage mask: {same_mask}   "
        f"same serving tower on {100.0 * same_server / max(n, 1):.3f} % of cells   "
        f"same GeoTIFF profile: {same_profile}"
    )


#: Parts of ours, by the function that does them: (file suffix, function).
PARTS = {
    "imports (all modules)": ("<frozen importlib._bootstrap>", "_find_and_load"),
    "load inputs (areas, towers, grid)": ("telcoplan/pipeline/inputs.py", "load_inputs"),
    "population summary (zonal sums)": ("telcoplan/pipeline/inputs.py", "population_summary"),
    "best server (kernel calls)": ("telcoplan/coverage/bestserver.py", "best_server"),
    "signal/server/count GeoTIFFs + .aux.xml": ("stages/coverage.py", "_write_rasters"),
    "coverage polygons (polygonize)": ("telcoplan/gis/polygonize.py", "polygonize_mask"),
    "population covered (zonal sums)": ("telcoplan/coverage/analysis.py", "population_covered"),
    "coverage.gpkg": ("telcoplan/gis/vector.py", "write_vector_layers"),
    "provenance (inputs' SHA-256)": ("telcoplan/pipeline/run.py", "_provenance"),
    "summary.json": ("telcoplan/outputs.py", "write_summary"),
    "publish (renames)": ("telcoplan/pipeline/run.py", "_publish"),
}


def profile_ours(cmd: list[str], folder: Path) -> None:
    """Run ours once under cProfile; print where its time goes (cumulative times: imports
    nest in the other parts)."""
    import pstats

    prof = folder / "ours.prof"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "telcoplan", *cmd[1:]],
        check=True,
        capture_output=True,
        cwd=folder,
    )
    wall = time.perf_counter() - t0
    stats = pstats.Stats(str(prof)).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    total = max(v[3] for v in stats.values())
    print(f"  ours once under cProfile: {wall:.2f} s wall, {total:.2f} s in Python's main thread:")
    for label, (suffix, func) in PARTS.items():
        got = max(
            (v[3] for (f, _, fn), v in stats.items() if fn == func and f.endswith(suffix)),
            default=0.0,
        )
        print(f"    {label:42s} {got:6.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--towers", type=int, default=2000, help="omni towers (sites: a third)")
    ap.add_argument("--size", type=int, default=1000, help="cells per grid side")
    ap.add_argument("--res", type=float, default=50.0, help="cell size (m)")
    ap.add_argument("--radius", type=float, default=10.0, help="R (km)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repetitions per side")
    ap.add_argument("--case", choices=["omni", "sectorised"], default="omni")
    ap.add_argument("--profile", action="store_true", help="also profile ours once")
    ap.add_argument("--keep", type=Path, default=None, help="folder to keep inputs and outputs in")
    args = ap.parse_args()
    side = args.size * args.res
    grid = bb.GridSpec.from_bounds(
        (800_000, 1_750_000, 800_000 + side, 1_750_000 + side), args.res, CRS
    )
    if args.case == "omni":
        towers = bb.omni_towers(args.towers, grid, seed=1)
    else:
        towers = bb.sector_towers(round(args.towers / 3), grid, seed=1)
    folder = Path(tempfile.mkdtemp(prefix="bench-coverage-cli-"))
    if args.keep is not None:
        shutil.rmtree(args.keep, ignore_errors=True)
        folder.rename(args.keep)
        folder = args.keep
    try:
        t_path, a_path = write_inputs(folder, towers, grid)
        (folder / "peer.py").write_text(peer_source(), encoding="utf-8")
        cmds = commands(t_path, a_path, args.res, args.radius, folder)
        print(
            f"{args.case}: {len(towers)} antennas, {grid.width}x{grid.height} cells of "
            f"{args.res:g} m, R = {args.radius:g} km, Okumura-Hata {bb.FREQ_MHZ:g} MHz urban, "
            f"{args.repeat} interleaved repetitions after a warm-up; {os.cpu_count()} cores"
        )
        # the script's I/O alone: it loads its best-server arrays (saved by its warm-up run)
        # instead of computing them, then reads, imports and writes as before
        io_env = os.environ | {"PEER_RESULTS": str(folder / "peer-results.npz")}
        envs = {"ours": None, "peer": None, "peer I/O": io_env}
        for side_ in ("ours", "peer I/O"):  # warm-up: numba's cache, the OS file cache
            run(cmds[side_.split()[0]], envs[side_])
        times: dict[str, list[float]] = {side_: [] for side_ in envs}
        for k in range(args.repeat):
            order = ("ours", "peer", "peer I/O") if k % 2 == 0 else ("peer I/O", "peer", "ours")
            for side_ in order:
                times[side_].append(run(cmds[side_.split()[0]], envs[side_]))
        (mo, do), (mp, dp), (mi, di) = (
            (min(times[s]), statistics.median(times[s])) for s in ("ours", "peer", "peer I/O")
        )
        print(f"  telcoplan coverage (CLI)         min {mo:7.3f} s   median {do:7.3f} s")
        print(f"  numpy script (1 thread + GDAL)   min {mp:7.3f} s   median {dp:7.3f} s")
        print(f"  the script without its compute   min {mi:7.3f} s   median {di:7.3f} s")
        print(f"  ratio script / ours: {dp / do:.2f}x (medians), {mp / mo:.2f}x (minima)")
        print(
            f"  ceiling: a program that imports, reads and writes what the script does, with a "
            f"compute of zero seconds, is {dp / di:.2f}x the script (medians), {mp / mi:.2f}x "
            "(minima)"
        )
        start = numba_start(args.repeat)
        ms = statistics.median(start)
        less = f"{dp / (do - ms):.2f}x (medians)" if do > ms else "n/a (ours is shorter)"
        print(
            f"  numba's start in ours (first call of the cached kernels, fresh process): min "
            f"{min(start):.3f} s, median {ms:.3f} s; the script / (ours less it): {less}"
        )
        compare(folder, sorted(towers["operator"].unique()))
        if args.profile:
            profile_ours(cmds["ours"], folder)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
