"""Drive-test measurements: their checks and the geometry of their paths.

The inputs of :func:`telcoplan.coverage.calibration.predict_rssi` and
:func:`telcoplan.coverage.calibration.calibrate`, computed per measurement from its serving
tower: EIRP, the uncorrected model's path loss, the sector pattern's attenuation, the distance
and — with a DEM (:class:`MeasurementTerrain`) — the knife-edge diffraction loss of the terrain
profile, all exactly as the coverage kernel takes them (see the notes of
:mod:`telcoplan.coverage.calibration`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd

from telcoplan.coverage.antenna import azimuth_deg, sector_attenuation
from telcoplan.coverage.propagation import path_loss
from telcoplan.errors import LayerValidationError, Problem
from telcoplan.gis.crs import require_crs, to_projected, utm_crs_for
from telcoplan.gis.grid import GridSpec

__all__ = [
    "DIFFRACTION_NAMES",
    "MeasurementGeometry",
    "MeasurementTerrain",
    "check_measurements",
    "format_rows",
    "measurement_geometry",
    "site_keys",
]

#: Ids of the towers layer shown in an unknown-site message.
_SHOW_IDS = 10
#: Rows shown in a message about measurements outside a raster.
_SHOW_ROWS = 10
#: Diffraction methods (the names of :data:`telcoplan.coverage.profile.DIFFRACTION_METHODS`,
#: repeated here so that reading a calibration does not import numba).
DIFFRACTION_NAMES = ("bullington", "deygout", "epstein-peterson")
_SPEED_OF_LIGHT = 299_792_458.0  # m/s


def format_rows(index: np.ndarray) -> str:
    """1-based rows of the first positions in ``index``, e.g. ``'3, 8, 12, …'`` (for messages)."""
    shown = ", ".join(str(int(i) + 1) for i in index[:_SHOW_ROWS])
    return shown + (", …" if len(index) > _SHOW_ROWS else "")


# ------------------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class MeasurementGeometry:
    """Per-measurement inputs of the prediction (arrays of length n)."""

    eirp_dbm: np.ndarray
    loss_db: np.ndarray
    pattern_db: np.ndarray
    distance_km: np.ndarray
    terrain_db: np.ndarray
    freq_mhz: np.ndarray | None = None

    @property
    def predicted_dbm(self) -> np.ndarray:
        """Uncalibrated received power (dBm)."""
        return self.eirp_dbm - self.loss_db - self.terrain_db + self.pattern_db


# ------------------------------------------------------------------------------ terrain
@dataclass(frozen=True)
class MeasurementTerrain:
    """A checked DEM on its grid, with the diffraction method's code for the numba kernel."""

    dem: np.ndarray  # float64, NaN at voids (for the coverage checks)
    ground: np.ndarray  # C-contiguous float64, voids at 0 m as in the coverage kernel
    grid: GridSpec
    method: int
    source: str

    @classmethod
    def make(
        cls, dem: np.ndarray | None, grid: GridSpec | None, diffraction: str, source: str
    ) -> MeasurementTerrain | None:
        """The checked terrain of ``dem`` on ``grid`` (None without a DEM); raises ValueError on
        a grid without a DEM or the reverse, an unknown ``diffraction`` or a shape mismatch."""
        if dem is None:
            if grid is not None:
                raise ValueError("grid= only applies with dem=; pass both or neither")
            return None
        if grid is None:
            raise ValueError("dem= needs the grid it lies on: pass grid=")
        if diffraction not in DIFFRACTION_NAMES:
            raise ValueError(
                f"unknown diffraction method {diffraction!r}; choose one of "
                f"{', '.join(DIFFRACTION_NAMES)}"
            )
        arr = np.asarray(dem, dtype=np.float64)
        if arr.shape != grid.shape:
            raise ValueError(
                f"the DEM has shape {arr.shape} but the grid is {grid.shape} (rows, cols); warp "
                "it onto the grid first (telcoplan.layers.dem.load_dem)"
            )
        from telcoplan.coverage.profile import DIFFRACTION_METHODS

        ground = np.ascontiguousarray(np.nan_to_num(arr, nan=0.0), dtype=np.float64)
        return cls(arr, ground, grid, DIFFRACTION_METHODS[diffraction], source)

    def covered(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(outside the grid, on a void) masks of points in the grid's CRS."""
        r, c = self.grid.rowcol(x, y)
        inside = self.grid.contains_rowcol(r, c)
        void = np.zeros(len(r), dtype=bool)
        void[inside] = ~np.isfinite(self.dem[r[inside], c[inside]])
        return ~inside, void

    def ground_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Ground (m) of the cell containing each point, as the coverage kernel takes it."""
        r, c = self.grid.rowcol(x, y)
        r = np.clip(r, 0, self.grid.height - 1)
        c = np.clip(c, 0, self.grid.width - 1)
        return self.ground[r, c]

    def check(
        self, px: np.ndarray, py: np.ndarray, sx: np.ndarray, sy: np.ndarray, ids: np.ndarray,
        used: np.ndarray, source: str,
    ) -> None:  # fmt: skip
        """Raise if measurements (px, py) or the used towers (sx, sy) are not on the DEM."""
        problems: list[Problem] = []
        out, void = self.covered(px, py)
        bad = np.flatnonzero(out | void)
        if len(bad):
            problems.append(
                Problem(
                    None,
                    None,
                    f"{len(bad)} of {len(px)} measurements of {source} are not on the DEM "
                    f"({int(out.sum())} outside its grid, {int(void.sum())} where it has no elevation "
                    f"data: beyond the DEM file or on its voids; rows "
                    f"{format_rows(bad)}); give a DEM that covers the drive test and its towers, or "
                    "leave those rows out",
                )
            )
        out, void = self.covered(sx[used], sy[used])
        bad = np.flatnonzero(out | void)
        if len(bad):
            shown = ", ".join(repr(str(i)) for i in ids[used][bad][:_SHOW_IDS])
            problems.append(
                Problem(
                    None,
                    None,
                    f"{len(bad)} serving tower(s) are not on the DEM ({shown}"
                    f"{', …' if len(bad) > _SHOW_IDS else ''}); give a DEM that covers them",
                )
            )
        if problems:
            raise LayerValidationError(self.source, "dem", problems)

    def loss(
        self, sx: np.ndarray, sy: np.ndarray, h_tx_abs: np.ndarray, px: np.ndarray,
        py: np.ndarray, h_rx_abs: np.ndarray, freq_mhz: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        """Diffraction loss (dB) of each obstructed path, 0 dB in line of sight (as coverage)."""
        from telcoplan.coverage.profile import path_terrain_loss

        t = self.grid.transform
        x0, y0, res = float(t.c), float(t.f), float(t.a)
        wavelength = _SPEED_OF_LIGHT / (freq_mhz * 1e6)
        out = np.zeros(len(px))
        for i in range(len(px)):
            loss, clearance = path_terrain_loss(
                self.ground, x0, y0, res,
                float(sx[i]), float(sy[i]), float(h_tx_abs[i]),
                float(px[i]), float(py[i]), float(h_rx_abs[i]),
                float(wavelength[i]), self.method,
            )  # fmt: skip
            # only an obstructed line of sight counts: the empirical models already include
            # the ground near the receiver (the coverage kernel's rule)
            if clearance > 0.0:
                out[i] = loss
        return out


# ------------------------------------------------------------------------------ measurements
def _tower_table(towers: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The towers indexed by ``site_id`` as strings (a view or a new frame; never mutated)."""
    if towers.index.name != "site_id" and "site_id" in towers.columns:
        towers = towers.set_index("site_id")
    if not towers.index.is_unique:
        dup = sorted(map(str, towers.index[towers.index.duplicated()].unique()))
        raise LayerValidationError(
            "<towers>",
            "towers",
            [Problem(None, "site_id", f"site_id {d!r} occurs more than once") for d in dup],
        )
    out = towers.copy()
    out.index = out.index.map(str)
    return out


def site_keys(measurements: gpd.GeoDataFrame) -> np.ndarray:
    """Serving site id of each measurement as text (None where empty)."""
    ids = measurements["site_id"].to_numpy(dtype=object)
    return np.array([None if pd.isna(v) else str(v) for v in ids], dtype=object)


def check_measurements(
    towers: gpd.GeoDataFrame, measurements: gpd.GeoDataFrame, *, need_rssi: bool
) -> list[Problem]:
    """Every problem of the measurements that stops a prediction (or a fit), with rows."""
    require_crs(measurements, "measurements")
    require_crs(towers, "towers")
    problems: list[Problem] = []
    required = ["site_id", *(["rssi_dbm"] if need_rssi else [])]
    absent = [c for c in required if c not in measurements.columns]
    if absent:
        hint = "columns are lon, lat, site_id, rssi_dbm (dBm) and optionally freq_mhz (MHz)"
        return [Problem(None, c, f"required column {c!r} is missing; {hint}") for c in absent]
    known = set(_tower_table(towers).index)
    shown = ", ".join(sorted(known)[:_SHOW_IDS]) + (", …" if len(known) > _SHOW_IDS else "")
    keys = site_keys(measurements)
    rssi = (
        pd.to_numeric(measurements["rssi_dbm"], errors="coerce").to_numpy(dtype=np.float64)
        if need_rssi
        else None
    )
    geoms = measurements.geometry
    for i, key in enumerate(keys):
        row = i + 1
        if key is None:
            problems.append(Problem(row, "site_id", "site_id is empty; give the serving site"))
        elif key not in known:
            problems.append(
                Problem(
                    row,
                    "site_id",
                    f"site_id {key!r} is not in the towers layer (its ids: {shown}); fix the id "
                    "or add the tower",
                    feature_id=key,
                )
            )
        if rssi is not None and not np.isfinite(rssi[i]):
            problems.append(Problem(row, "rssi_dbm", "rssi_dbm is empty or not a number (dBm)"))
        g = geoms.iloc[i]
        if g is None or g.is_empty or g.geom_type != "Point":
            problems.append(
                Problem(row, "geometry", "the measurement needs a point position (lon, lat)")
            )
    return problems


def measurement_geometry(
    towers: gpd.GeoDataFrame,
    measurements: gpd.GeoDataFrame,
    model: str,
    environment: str,
    h_rx_m: float,
    terrain: MeasurementTerrain | None = None,
    source: str = "<measurements>",
    validity: str = "warn",
) -> MeasurementGeometry:
    """EIRP, uncorrected path loss, pattern, distance and terrain loss of every measurement.

    ``validity`` is passed to :func:`telcoplan.coverage.propagation.path_loss` (``"ignore"``
    for the alternative models a cross-validation tries without being asked).
    """
    n = len(measurements)
    table = _tower_table(towers)
    if n == 0:
        empty = np.empty(0)
        return MeasurementGeometry(empty, empty, empty, empty, empty, empty)
    # one metric CRS for both layers: the DEM grid's with terrain, else the measurements' own
    # if projected (as to_projected keeps it), else the local UTM zone of their centre
    if terrain is not None:
        crs = terrain.grid.crs
    elif measurements.crs.is_projected:
        crs = measurements.crs
    else:
        xmin, ymin, xmax, ymax = measurements.geometry.to_crs("EPSG:4326").total_bounds
        crs = utm_crs_for((xmin + xmax) / 2.0, (ymin + ymax) / 2.0)
    pts = to_projected(gpd.GeoDataFrame(geometry=measurements.geometry.copy()), crs).geometry
    sites = to_projected(gpd.GeoDataFrame(geometry=table.geometry.copy()), crs).geometry
    pos = table.index.get_indexer(site_keys(measurements))

    def col(name: str, default: float = math.nan) -> np.ndarray:
        if name not in table.columns:
            return np.full(n, default)
        return pd.to_numeric(table[name], errors="coerce").to_numpy(dtype=np.float64)[pos]

    px, py = pts.x.to_numpy(), pts.y.to_numpy()
    sx, sy = sites.x.to_numpy()[pos], sites.y.to_numpy()[pos]
    if terrain is not None:
        used = np.zeros(len(table), dtype=bool)
        used[pos] = True
        terrain.check(
            px, py, sites.x.to_numpy(), sites.y.to_numpy(), table.index.to_numpy(), used, source
        )
    dx, dy = px - sx, py - sy
    d_m = np.hypot(dx, dy)
    freq = col("frequency_mhz")
    if "freq_mhz" in measurements.columns:
        own = pd.to_numeric(measurements["freq_mhz"], errors="coerce").to_numpy(dtype=np.float64)
        freq = np.where(np.isfinite(own), own, freq)
    h_tx = col("height_m")
    eirp = col("eirp_dbm")
    env = (
        table["environment"].fillna(environment).astype(str).to_numpy()[pos]
        if "environment" in table.columns
        else np.full(n, environment, dtype=object)
    )
    loss = np.empty(n)
    for e in pd.unique(env):
        sel = env == e
        loss[sel] = path_loss(
            model,
            freq_mhz=freq[sel],
            distance_km=d_m[sel] / 1000.0,
            h_tx_m=h_tx[sel],
            h_rx_m=h_rx_m,
            environment=str(e),
            check_distance=False,
            validity=validity,  # type: ignore[arg-type]
        )
    # heights above sea level with terrain (the ground of the cell under each antenna), so the
    # depression angle and the profile see the terrain; flat earth: relative heights suffice
    terrain_db = np.zeros(n)
    dh = h_tx - h_rx_m
    if terrain is not None:
        h_tx_abs = terrain.ground_at(sx, sy) + h_tx
        h_rx_abs = terrain.ground_at(px, py) + h_rx_m
        dh = h_tx_abs - h_rx_abs
        terrain_db = terrain.loss(sx, sy, h_tx_abs, px, py, h_rx_abs, freq)
    # antenna pattern, per tower, as the coverage kernel does (omni without azimuth and tilt)
    pattern = np.zeros(n)
    azimuth, beam, tilt = col("azimuth_deg"), col("beamwidth_deg"), col("tilt_deg")
    sectored = np.isfinite(azimuth) | np.isfinite(tilt)
    for t in np.unique(pos[sectored]):
        sel = pos == t
        i = int(np.flatnonzero(sel)[0])
        depression = np.degrees(np.arctan2(dh[sel], np.maximum(d_m[sel], 1.0)))
        pattern[sel] = sector_attenuation(
            azimuth_deg(dx[sel], dy[sel]),
            depression,
            azimuth=float(azimuth[i]),
            beamwidth=float(beam[i]) if np.isfinite(beam[i]) else None,
            tilt=float(tilt[i]),
        )
    return MeasurementGeometry(eirp, loss, pattern, d_m / 1000.0, terrain_db, freq)
