"""Viewshed: telcoplan ``line_of_sight`` (exact, sweep, planes) against GDAL's viewshed, in one run.

Default case: a synthetic 1,000 x 1,000 DEM of 30 m cells (UTM 49N, smooth random hills of
200 m relief), 5 sites with a 30 m mast, 1.5 m receivers, radius 15 km, Earth curvature with
k = 4/3. Our methods: ``"exact"`` (one ray per cell), ``"sweep"`` (one ray per cell of the
radius's bounding square, approximate; both on numba's threads) and ``"planes"`` (reference
planes, GDAL's own algorithm, one thread). Per site, exact and sweep each run ``--repeat``
times back to back; then, on one thread, the sweep, planes and the peer run alternately
``--repeat`` times, so that all three meet the same moments of a noisy shared machine. The
best run of each is kept; the script prints each one's time per site, the ratios (the peer's
time over ours: above 1 means ours is faster) and the agreements (% of the in-range cells with
the same visibility) of sweep and planes vs exact, the peer vs exact and planes vs the peer.

The peer is, in order: GDAL's Python bindings (``osgeo.gdal.ViewshedGenerate``), the
``gdal_viewshed`` command-line tool (Debian package ``gdal-bin``), or — when neither exists, or
with ``--peer numpy`` — a plain numpy ray-by-ray reference evaluated on a random sample of cells
(its time is extrapolated to all cells). The bindings are imported from the environment, or else
from Debian's ``python3-gdal`` (``apt-get install python3-gdal gdal-bin``): its
``/usr/lib/python3/dist-packages`` is then appended to ``sys.path`` — after the virtualenv's
own packages, so numpy & co. still come from the virtualenv (the bindings are built for the
system's Python 3.11, the same minor version as the project's).

Like with like: GDAL lowers each cell by ``cc · d² / D`` with D the SRS's sphere diameter
(2 × 6,378,137 m for UTM/WGS 84) and a default cc = 0.85714 (1 − 1/7 refraction). Our bulge is
d² / (2 k R_e) with R_e = 6,371,000 m, so we pass ``-cc`` = 6,378,137 / (k · 6,371,000) ≈ 0.7508.
GDAL puts the observer in the cell ``round`` of its fractional pixel coordinate, so it is given a
point a quarter cell inside the site's cell; ours stands on the cell centre. GDAL's algorithm
(Wang et al. 2000, "reference planes") interpolates the horizon from the previous row instead of
casting a ray per cell, so a fraction of a % of cells near visibility edges differ from the
exact ray-per-cell answer; our sweep (Franklin & Ray's "R2") follows rays that pass within half a
cell of each cell, and differs from the exact answer near visibility edges too. Our planes
method is the same algorithm as GDAL's, written independently: it agrees with GDAL on all but a
few cells per site.

    .venv/bin/python benchmarks/bench_terrain.py [--size 1000] [--res 30] [--radius 15]
        [--sites 5] [--relief 200] [--repeat 5] [--peer auto|gdal-python|gdal-cli|numpy]
"""

from __future__ import annotations

import argparse
import importlib
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telcoplan.coverage.terrain import EARTH_RADIUS_M, K_FACTOR, line_of_sight
from telcoplan.gis.grid import GridSpec

WGS84_A = 6_378_137.0
GDAL_CC = WGS84_A / (K_FACTOR * EARTH_RADIUS_M)
METHODS = ("exact", "sweep", "planes")
THREADED = ("exact", "sweep")  # run on numba's threads; timed back to back
#: timed on one thread, alternately with the peer ("planes" always runs on one thread)
ONE_THREAD = {"sweep 1t": "sweep", "planes": "planes"}
AGREEMENTS = (("sweep", "exact"), ("planes", "exact"), ("peer", "exact"), ("planes", "peer"))


def synthetic_dem(grid: GridSpec, relief: float, seed: int = 0) -> np.ndarray:
    """Smooth random hills: noise filtered at 8, 32 and 128 cells, scaled to 0…relief m."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    z = sum(
        s * gaussian_filter(rng.standard_normal(grid.shape), s, mode="wrap") for s in (8, 32, 128)
    )
    z -= z.min()
    return z * (relief / z.max())


def sites(grid: GridSpec, n: int, seed: int = 1) -> list[tuple[int, int]]:
    """The central cell, then random cells of the central half of the grid (row, col)."""
    rng = np.random.default_rng(seed)
    h, w = grid.shape
    out = [(h // 2, w // 2)]
    while len(out) < n:
        out.append((int(rng.integers(h // 4, 3 * h // 4)), int(rng.integers(w // 4, 3 * w // 4))))
    return out


def in_range(grid: GridSpec, x: float, y: float, radius: float) -> np.ndarray:
    xs, ys = grid.cell_centres()
    return (xs - x) ** 2 + (ys - y) ** 2 <= radius * radius


def settle() -> None:
    """Let our thread pool go idle before the peer is timed.

    numba's OpenMP workers spin for a moment after a parallel loop; without a pause, that spin
    would be counted in the CPU time of the peer (this process's CPU time).
    """
    time.sleep(0.05)


class Timer:
    """Wall and CPU seconds of a block (CPU: this process's threads, plus waited-for children)."""

    @staticmethod
    def _cpu() -> float:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, self._cpu() - self.cpu


# ---------------------------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------------------------


def write_geotiff(path: Path, dem: np.ndarray, grid: GridSpec) -> None:
    import rasterio

    with rasterio.open(
        path, "w", driver="GTiff", width=grid.width, height=grid.height, count=1,
        dtype="float64", crs=grid.crs, transform=grid.transform,
    ) as dst:  # fmt: skip
        dst.write(dem, 1)


def gdal_observer(grid: GridSpec, row: int, col: int) -> tuple[float, float]:
    """A point GDAL maps to cell (row, col) whether it rounds or floors pixel coordinates."""
    t = grid.transform
    return t.c + (col + 0.25) * t.a, t.f + (row + 0.25) * t.e


def paste(grid: GridSpec, window: np.ndarray, transform) -> np.ndarray:
    """A viewshed window (255 = visible) placed on the full grid (bool)."""
    t = grid.transform
    c0 = round((transform.c - t.c) / t.a)
    r0 = round((transform.f - t.f) / t.e)
    out = np.zeros(grid.shape, dtype=bool)
    out[r0 : r0 + window.shape[0], c0 : c0 + window.shape[1]] = window == 255
    return out


class GdalPython:
    name = "GDAL ViewshedGenerate (Python bindings)"

    def __init__(self, dem, grid, tmp):
        from osgeo import gdal, osr

        gdal.UseExceptions()
        self.gdal = gdal
        ds = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Float64)
        ds.SetGeoTransform(grid.transform.to_gdal())
        srs = osr.SpatialReference()
        srs.SetFromUserInput(grid.crs)
        ds.SetProjection(srs.ExportToWkt())
        # raw buffers rather than WriteArray/ReadAsArray: no dependency on osgeo.gdal_array,
        # which breaks when GDAL was built against another numpy than this interpreter's
        band = ds.GetRasterBand(1)
        band.WriteRaster(0, 0, grid.width, grid.height, np.ascontiguousarray(dem).tobytes(),
                         buf_type=gdal.GDT_Float64)  # fmt: skip
        self.ds, self.grid = ds, grid

    def run(self, row, col, h_tx, h_rx, radius):
        from affine import Affine

        gdal = self.gdal
        ox, oy = gdal_observer(self.grid, row, col)
        with Timer() as t:
            out = gdal.ViewshedGenerate(
                self.ds.GetRasterBand(1), "MEM", "", [], ox, oy, h_tx, h_rx, 255, 0, 0, -1.0,
                GDAL_CC, gdal.GVM_Edge, radius,
            )  # fmt: skip
        ob = out.GetRasterBand(1)
        raw = ob.ReadRaster(0, 0, ob.XSize, ob.YSize, buf_type=gdal.GDT_Byte)
        window = np.frombuffer(raw, dtype=np.uint8).reshape(ob.YSize, ob.XSize)
        transform = Affine.from_gdal(*out.GetGeoTransform())
        return (t.wall, t.cpu), paste(self.grid, window, transform)


class GdalCli:
    name = "gdal_viewshed (command line; times include process start and GeoTIFF I/O)"

    def __init__(self, dem, grid, tmp):
        self.exe = shutil.which("gdal_viewshed")
        self.src = tmp / "dem.tif"
        self.dst = tmp / "viewshed.tif"
        self.grid = grid
        write_geotiff(self.src, dem, grid)
        # fixed cost of one call (process start, reading and writing GeoTIFFs): a 1-cell viewshed
        r, c = grid.height // 2, grid.width // 2
        runs = [self._call(r, c, 30.0, 1.5, grid.resolution / 2) for _ in range(7)]
        self.overhead = (min(w for w, _ in runs), min(u for _, u in runs))

    def _call(self, row, col, h_tx, h_rx, radius):
        ox, oy = gdal_observer(self.grid, row, col)
        cmd = [
            self.exe, "-q", "-ox", repr(ox), "-oy", repr(oy), "-oz", repr(h_tx),
            "-tz", repr(h_rx), "-md", repr(radius), "-cc", repr(GDAL_CC),
            "-vv", "255", "-iv", "0", "-ov", "0", str(self.src), str(self.dst),
        ]  # fmt: skip
        with Timer() as t:
            subprocess.run(cmd, check=True)
        return t.wall, t.cpu

    def run(self, row, col, h_tx, h_rx, radius):
        import rasterio

        times = self._call(row, col, h_tx, h_rx, radius)
        with rasterio.open(self.dst) as src:
            window, transform = src.read(1), src.transform
        return times, paste(self.grid, window, transform)


def numpy_bilinear(dem: np.ndarray, grid: GridSpec, x, y) -> np.ndarray:
    """Bilinear elevation at points inside the grid (cell centres at integer row/col; edge
    values in the outer half cell); ``dem`` must be free of NaN."""
    h, w = dem.shape
    fc = (x - grid.transform.c) / grid.resolution - 0.5
    fr = (grid.transform.f - y) / grid.resolution - 0.5
    c0, r0 = np.floor(fc).astype(np.int64), np.floor(fr).astype(np.int64)
    wc, wr = fc - c0, fr - r0
    c1, r1 = np.clip(c0 + 1, 0, w - 1), np.clip(r0 + 1, 0, h - 1)
    c0, r0 = np.clip(c0, 0, w - 1), np.clip(r0, 0, h - 1)
    top = (1 - wc) * dem[r0, c0] + wc * dem[r0, c1]
    return (1 - wr) * top + wr * ((1 - wc) * dem[r1, c0] + wc * dem[r1, c1])


class NumpyReference:
    name = "plain numpy ray-by-ray reference (sampled cells, time extrapolated)"

    def __init__(self, dem, grid, tmp, n_cells=20_000):
        self.dem = np.nan_to_num(dem)
        self.grid = grid
        self.n_cells = n_cells

    def run(self, row, col, h_tx, h_rx, radius):
        g = self.grid
        tx, ty = g.x_centres()[col], g.y_centres()[row]
        ha = self.dem[row, col] + h_tx
        rows, cols = np.nonzero(in_range(g, tx, ty, radius))
        n_all = len(rows)
        pick = np.random.default_rng(0).choice(n_all, min(self.n_cells, n_all), replace=False)
        rows, cols = rows[pick], cols[pick]
        timer = Timer().__enter__()
        rx, ry = g.x_centres()[cols], g.y_centres()[rows]
        hb = self.dem[rows, cols] + h_rx
        d = np.hypot(rx - tx, ry - ty)
        n = np.maximum(np.ceil(d / g.resolution - 1e-9), 1)
        visible = np.ones(len(d), dtype=bool)
        for start in range(0, len(d), 2000):
            s = slice(start, start + 2000)
            f = np.arange(1, int(n[s].max()))[None, :] / n[s, None]
            ok = f < 1.0 - 1e-12  # interior samples i < n only
            dist = d[s, None] * f
            z = numpy_bilinear(
                self.dem, g, tx + (rx[s, None] - tx) * f, ty + (ry[s, None] - ty) * f
            )
            ray = ha + (hb[s, None] - ha) * f
            clr = z + dist * (d[s, None] - dist) / (2 * K_FACTOR * EARTH_RADIUS_M) - ray
            visible[s] = ~np.any((clr > 0) & ok, axis=1)
        timer.__exit__()
        scale = n_all / len(d)
        out = np.zeros(g.shape, dtype=bool)
        out[rows, cols] = visible
        mask = np.zeros(g.shape, dtype=bool)
        mask[rows, cols] = True
        self.mask = mask
        return (timer.wall * scale, timer.cpu * scale), out


DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"  # Debian's python3-gdal


def gdal_importable() -> bool:
    """Whether ``osgeo.gdal`` imports, from the environment or else from Debian's packages."""
    try:
        importlib.import_module("osgeo.gdal")
        return True
    except ImportError:
        pass
    if not Path(DEBIAN_DIST_PACKAGES, "osgeo").is_dir():
        return False
    sys.path.append(DEBIAN_DIST_PACKAGES)  # last: the virtualenv's packages keep precedence
    try:
        importlib.import_module("osgeo.gdal")
        return True
    except ImportError:
        sys.path.remove(DEBIAN_DIST_PACKAGES)
        return False


def pick_peer(choice: str):
    if choice in ("auto", "gdal-python"):
        if gdal_importable():
            return GdalPython
        if choice == "gdal-python":
            print("peer: osgeo.gdal is not importable (apt-get install python3-gdal)")
    if choice in ("auto", "gdal-cli"):
        if shutil.which("gdal_viewshed"):
            return GdalCli
        print("peer: GDAL is absent (no osgeo.gdal, no gdal_viewshed on PATH)")
    print("peer: falling back to the plain numpy reference")
    return NumpyReference


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1000, help="cells per side")
    ap.add_argument("--res", type=float, default=30.0, help="cell size (m)")
    ap.add_argument("--radius", type=float, default=15.0, help="viewshed radius (km)")
    ap.add_argument("--sites", type=int, default=5)
    ap.add_argument("--relief", type=float, default=200.0, help="terrain relief (m)")
    ap.add_argument("--mast", type=float, default=30.0, help="antenna height (m)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per site and side (best kept)")
    ap.add_argument("--peer", choices=["auto", "gdal-python", "gdal-cli", "numpy"], default="auto")
    args = ap.parse_args()
    side = args.size * args.res
    x0 = round(800_000 / args.res) * args.res  # on the resolution's lattice: size x size cells
    y0 = round(1_750_000 / args.res) * args.res
    grid = GridSpec.from_bounds((x0, y0, x0 + side, y0 + side), args.res, "EPSG:32649")
    dem = synthetic_dem(grid, args.relief)
    radius, h_rx = args.radius * 1000.0, 1.5
    print(
        f"DEM {grid.width}x{grid.height} cells of {args.res:g} m, relief {args.relief:g} m; "
        f"radius {args.radius:g} km, mast {args.mast:g} m, receivers {h_rx:g} m, k = 4/3 "
        f"(GDAL -cc {GDAL_CC:.5f})"
    )
    for method in METHODS:  # JIT warm-up (or cache load)
        line_of_sight(dem, grid, x0 + side / 2, y0 + side / 2, 10.0, radius_m=500.0, method=method)

    with tempfile.TemporaryDirectory() as tmp:
        peer_cls = pick_peer(args.peer)
        peer = peer_cls(dem, grid, Path(tmp))
        print(f"peer: {peer.name}")
        if isinstance(peer, GdalCli):
            w, c = peer.overhead
            print(
                f"      fixed cost per call (1-cell viewshed): {w * 1000:.0f} ms wall, {c * 1000:.0f} ms CPU"
            )
        numpy_peer = isinstance(peer, NumpyReference)
        print(
            f"times: best of the repeats, wall / CPU ms, {numba.get_num_threads()} threads and "
            "(1t) one thread; agreement: % of the cells in range with the same answer"
        )
        print(
            f"{'site (row, col)':>16} {'cells':>7} {'visible':>7} "
            + " ".join(f"{n:>11}" for n in (*THREADED, *ONE_THREAD, "peer"))
            + " "
            + " ".join(f"{f'{a}={b}':>12}" for a, b in AGREEMENTS)
        )
        names = (*THREADED, *ONE_THREAD, "peer")
        times = {name: [] for name in names}
        agree = {pair: [] for pair in AGREEMENTS}
        for row, col in sites(grid, args.sites):
            tx, ty = grid.x_centres()[col], grid.y_centres()[row]
            best = dict.fromkeys(names, (math.inf, math.inf))
            views = {}

            def run(name, method, tx=tx, ty=ty, best=best, views=views):
                with Timer() as t:
                    views[method] = line_of_sight(
                        dem, grid, tx, ty, args.mast, h_rx_m=h_rx, radius_m=radius, method=method
                    )
                best[name] = (min(best[name][0], t.wall), min(best[name][1], t.cpu))

            for method in THREADED:  # each method's runs back to back, as in a loop over sites
                for _ in range(args.repeat):
                    run(method, method)
            # our fast methods on one thread and the peer, alternately: all meet the same
            # moments of a noisy machine (a shared VM's speed drifts by tens of % in seconds)
            n_threads = numba.get_num_threads()
            numba.set_num_threads(1)
            settle()
            for k in range(args.repeat):
                for name, method in ONE_THREAD.items():
                    run(name, method)
                if k and numpy_peer:
                    continue  # one (slow, extrapolated) run of the numpy reference is enough
                pt, views["peer"] = peer.run(row, col, args.mast, h_rx, radius)
                best["peer"] = (min(best["peer"][0], pt[0]), min(best["peer"][1], pt[1]))
            numba.set_num_threads(n_threads)
            mask = in_range(grid, tx, ty, radius)
            if numpy_peer:
                mask &= peer.mask
            for a, b in AGREEMENTS:
                agree[a, b].append(float(np.mean(views[a][mask] == views[b][mask])) * 100)
            for name in names:
                times[name].append(best[name])
            visible = int(views["exact"][mask].sum())
            print(
                f"{f'({row}, {col})':>16} {int(mask.sum()):>7} {visible:>7} "
                + " ".join(
                    f"{f'{best[n][0] * 1000:.1f}/{best[n][1] * 1000:.1f}':>11}" for n in names
                )
                + " "
                + " ".join(f"{agree[p][-1]:>12.2f}" for p in AGREEMENTS)
            )
        ms = {name: np.array(v) * 1000 for name, v in times.items()}  # (site, wall/CPU)
        print("mean per site (wall / CPU ms): " + ", ".join(
            f"{name} {m[:, 0].mean():.1f} / {m[:, 1].mean():.1f}" for name, m in ms.items()
        ))  # fmt: skip
        peer_t = ms["peer"]
        ours, one = ms["sweep"], ms["sweep 1t"]
        wall, cpu1 = peer_t[:, 0] / ours[:, 0], peer_t[:, 1] / one[:, 1]
        print(
            f"peer/sweep: {peer_t[:, 0].mean() / ours[:, 0].mean():.2f}x wall with {n_threads} "
            f"threads (per site {wall.min():.2f}–{wall.max():.2f}x); "
            f"{peer_t[:, 1].mean() / one[:, 1].mean():.2f}x CPU on one thread (per site "
            f"{cpu1.min():.2f}–{cpu1.max():.2f}x)"
        )
        ours = ms["planes"]
        wall, cpu = peer_t[:, 0] / ours[:, 0], peer_t[:, 1] / ours[:, 1]
        print(
            f"peer/planes (both on one thread): {peer_t[:, 0].mean() / ours[:, 0].mean():.2f}x "
            f"wall (per site {wall.min():.2f}–{wall.max():.2f}x), "
            f"{peer_t[:, 1].mean() / ours[:, 1].mean():.2f}x CPU (per site "
            f"{cpu.min():.2f}–{cpu.max():.2f}x)"
        )
        ex = ms["exact"]
        print(f"peer/exact: {peer_t[:, 0].mean() / ex[:, 0].mean():.2f}x wall")
        print("agreement (mean %): " + ", ".join(
            f"{a} vs {b} {np.mean(v):.3f} (min {np.min(v):.3f})" for (a, b), v in agree.items()
        ))  # fmt: skip
        if isinstance(peer, GdalCli):
            pw, pc = peer_t[:, 0].mean() / 1000, peer_t[:, 1].mean() / 1000
            nw, nc = pw - peer.overhead[0], pc - peer.overhead[1]
            print(
                f"peer minus its fixed per-call cost: {nw * 1000:.1f} ms wall "
                f"({nc * 1000:.1f} ms CPU)"
            )


if __name__ == "__main__":
    main()
