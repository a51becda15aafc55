"""Coverage thresholds per technology, and the one power convention used everywhere.

Convention
----------
Signal rasters hold the **total received power** P (dBm) of the serving carrier:
P = EIRP − L_path + A(φ, θ). Each technology's planning threshold is stated in its own metric,
obtained from P by a fixed offset (:data:`METRIC_OFFSET_DB`):

============  =================================  =========================================
technology    metric                             offset from total power
============  =================================  =========================================
2G            RxLev of the BCCH carrier          0 dB (one 200 kHz carrier at full power)
3G            CPICH RSCP                         −10 dB (pilot ≈ 10 % of the carrier power)
4G            RSRP (per resource element)        −10 log10(12 · 100) = −30.8 dB (20 MHz)
5G            SS-RSRP                            −10 log10(12 · 273) = −35.2 dB (100 MHz, 30 kHz)
============  =================================  =========================================

A cell is covered by a technology when P + offset ≥ threshold. Defaults
(:data:`DEFAULT_THRESHOLDS_DBM`) are common planning levels: outdoor 2G −95 dBm, 3G −100 dBm,
4G −105 dBm, 5G −110 dBm; indoor adds a building penetration margin
(:data:`INDOOR_MARGIN_DB`, 10 dB, i.e. 4G −95 dBm). All are plan parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "DEFAULT_THRESHOLDS_DBM",
    "INDOOR_MARGIN_DB",
    "METRIC_NAMES",
    "METRIC_OFFSET_DB",
    "Thresholds",
]

METRIC_OFFSET_DB: dict[str, float] = {
    "2G": 0.0,
    "3G": -10.0,
    "4G": -10.0 * math.log10(12 * 100),
    "5G": -10.0 * math.log10(12 * 273),
}
#: The metric each technology's level and threshold are stated in.
METRIC_NAMES: dict[str, str] = {"2G": "RxLev", "3G": "RSCP", "4G": "RSRP", "5G": "SS-RSRP"}
DEFAULT_THRESHOLDS_DBM: dict[str, float] = {"2G": -95.0, "3G": -100.0, "4G": -105.0, "5G": -110.0}
INDOOR_MARGIN_DB = 10.0


@dataclass(frozen=True)
class Thresholds:
    """Per-technology thresholds in each technology's own metric (dBm), outdoor or indoor."""

    levels_dbm: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS_DBM))
    indoor: bool = False
    indoor_margin_db: float = INDOOR_MARGIN_DB

    def __post_init__(self) -> None:
        levels = dict(DEFAULT_THRESHOLDS_DBM) | {
            str(k).upper(): float(v) for k, v in self.levels_dbm.items()
        }
        unknown = set(levels) - set(METRIC_OFFSET_DB)
        if unknown:
            raise ValueError(
                f"thresholds for unknown technologies {sorted(unknown)}; use 2G, 3G, 4G, 5G"
            )
        for tech, v in levels.items():
            if not -150.0 <= v <= -30.0:
                raise ValueError(
                    f"threshold for {tech} = {v} dBm is implausible; expected −150…−30 dBm"
                )
        object.__setattr__(self, "levels_dbm", levels)

    def metric_threshold(self, technology: str) -> float:
        """Threshold in the technology's metric (dBm), indoor margin included."""
        return self.levels_dbm[technology] + (self.indoor_margin_db if self.indoor else 0.0)

    def power_threshold(self, technology: str) -> float:
        """The same threshold expressed on total received power (dBm)."""
        return self.metric_threshold(technology) - METRIC_OFFSET_DB[technology]

    def to_dict(self) -> dict:
        return {
            "convention": "total received power P; covered when P + offset >= threshold (technology metric)",
            "indoor": self.indoor,
            "indoor_margin_db": self.indoor_margin_db,
            "threshold_dbm": dict(self.levels_dbm),
            "metric_offset_db": {k: round(v, 2) for k, v in METRIC_OFFSET_DB.items()},
            "power_threshold_dbm": {k: round(self.power_threshold(k), 2) for k in self.levels_dbm},
        }
