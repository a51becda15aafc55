"""Plain numpy per-tower-window best server: the independent reference for tests and benchmarks.

For every tower, the cells of its bounding window within its radius are evaluated with the
public ``path_loss`` and ``sector_attenuation`` functions, and the per-group maximum is kept.
No pruning, no tables: slow but obviously right.
"""

from __future__ import annotations

import numpy as np

from telcoplan.coverage.antenna import azimuth_deg, sector_attenuation
from telcoplan.coverage.bestserver import default_radius_km
from telcoplan.coverage.propagation import path_loss


def reference_best_server(
    towers,
    grid,
    *,
    model="hata",
    environment="urban",
    h_rx_m=1.5,
    max_radius_km=None,
    group_by="operator",
    floor_dbm=-150.0,
):
    groups = tuple(sorted(towers[group_by].astype(str).unique()))
    H, W = grid.shape
    power = np.full((len(groups), H, W), -np.inf)
    server = np.full((len(groups), H, W), -1, dtype=np.int32)
    xs, ys = grid.x_centres(), grid.y_centres()
    res = grid.resolution
    for t, (_, row) in enumerate(towers.iterrows()):
        g = groups.index(str(row[group_by]))
        x, y = row.geometry.x, row.geometry.y
        r_km = (
            default_radius_km(np.array([row["frequency_mhz"]]))[0]
            if max_radius_km is None
            else max_radius_km
        )
        r = r_km * 1000.0
        c0 = max(int(np.floor((x - r - grid.transform.c) / res)), 0)
        c1 = min(int(np.ceil((x + r - grid.transform.c) / res)) + 1, W)
        r0 = max(int(np.floor((grid.transform.f - (y + r)) / res)), 0)
        r1 = min(int(np.ceil((grid.transform.f - (y - r)) / res)) + 1, H)
        if c0 >= c1 or r0 >= r1:
            continue
        dx = xs[c0:c1][None, :] - x
        dy = ys[r0:r1][:, None] - y
        d = np.sqrt(dx**2 + dy**2)
        inside = d <= r
        loss = path_loss(
            model,
            freq_mhz=row["frequency_mhz"],
            distance_km=d / 1000.0,
            h_tx_m=row["height_m"],
            h_rx_m=h_rx_m,
            environment=environment,
            validity="ignore",
        )
        p = row["eirp_dbm"] - loss
        az = row.get("azimuth_deg", np.nan)
        tilt = row.get("tilt_deg", np.nan)
        bw = row.get("beamwidth_deg", np.nan)
        if np.isfinite(az) or np.isfinite(tilt):
            dep = np.degrees(np.arctan2(row["height_m"] - h_rx_m, np.maximum(d, 1.0)))
            p = p + sector_attenuation(
                azimuth_deg(dx, dy),
                dep,
                azimuth=az,
                beamwidth=bw if np.isfinite(bw) else None,
                tilt=tilt,
            )
        p = np.where(inside, p, -np.inf)
        win = power[g, r0:r1, c0:c1]
        better = p > win
        win[better] = p[better]
        server[g, r0:r1, c0:c1][better] = t
    low = power < floor_dbm
    server[low] = -1
    power[low] = np.nan
    return groups, power, server
