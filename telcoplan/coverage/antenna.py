"""Antenna patterns: omnidirectional, and the 3GPP macro sector pattern.

Attenuation is relative to the antenna's boresight (≤ 0 dB); the towers' ``eirp_dbm`` already
includes the maximum antenna gain, so received power = EIRP − path loss + pattern.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "A_M_DB",
    "PHI_3DB_DEG",
    "SLA_V_DB",
    "THETA_3DB_DEG",
    "azimuth_deg",
    "sector_attenuation",
]

PHI_3DB_DEG = 65.0  #: horizontal half-power beamwidth (3GPP TR 36.814 macro sector)
A_M_DB = 30.0  #: front-to-back ratio (maximum attenuation)
THETA_3DB_DEG = 10.0  #: vertical half-power beamwidth (TR 36.814 macro)
SLA_V_DB = 20.0  #: vertical side-lobe attenuation


def azimuth_deg(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Bearing from the antenna to (dx, dy) in degrees clockwise from north (grid north), 0…360."""
    return np.degrees(np.arctan2(dx, dy)) % 360.0


def sector_attenuation(
    bearing_deg: np.ndarray,
    depression_deg: np.ndarray,
    *,
    azimuth: float | None,
    beamwidth: float | None = None,
    tilt: float | None = None,
    front_to_back_db: float = A_M_DB,
    vertical_beamwidth: float = THETA_3DB_DEG,
    side_lobe_db: float = SLA_V_DB,
) -> np.ndarray:
    """Pattern attenuation (dB, ≤ 0) towards receivers at ``bearing_deg`` / ``depression_deg``.

    Parameters
    ----------
    bearing_deg
        Bearing from the antenna to each receiver, degrees clockwise from north.
    depression_deg
        Angle of each receiver below the antenna's horizontal plane (degrees; positive = below).
    azimuth
        Sector boresight (degrees from north); ``None`` or NaN = omnidirectional horizontally.
    beamwidth
        Horizontal 3 dB beamwidth φ_3dB (degrees); default 65°.
    tilt
        Downtilt θ_tilt (degrees, positive = down; electrical + mechanical); ``None`` or NaN = no
        vertical pattern.

    Notes
    -----
    3GPP TR 36.814 Table A.2.1.1-2 / TR 38.901 §7.3:
    A_H(φ) = −min(12 (φ/φ_3dB)², A_m), A_V(θ) = −min(12 ((θ − θ_tilt)/θ_3dB)², SLA_V),
    A(φ, θ) = −min(−(A_H + A_V), A_m), with A_m = 30 dB, θ_3dB = 10°, SLA_V = 20 dB.
    """
    bearing = np.asarray(bearing_deg, dtype=np.float64)
    depression = np.asarray(depression_deg, dtype=np.float64)
    a_h = np.zeros(np.broadcast_shapes(bearing.shape, depression.shape))
    if azimuth is not None and np.isfinite(azimuth):
        phi3 = PHI_3DB_DEG if beamwidth is None or not np.isfinite(beamwidth) else float(beamwidth)
        phi = (bearing - float(azimuth) + 180.0) % 360.0 - 180.0
        a_h = a_h - np.minimum(12.0 * (phi / phi3) ** 2, front_to_back_db)
    a_v = 0.0
    if tilt is not None and np.isfinite(tilt):
        a_v = -np.minimum(
            12.0 * ((depression - float(tilt)) / vertical_beamwidth) ** 2, side_lobe_db
        )
    return -np.minimum(-(a_h + a_v), front_to_back_db)
