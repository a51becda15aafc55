"""CRS helpers: choosing the local UTM zone and checking layers' CRSs."""

from __future__ import annotations

import math

import geopandas as gpd
from pyproj import CRS

from telcoplan.errors import CRSError

__all__ = ["crs_name", "require_crs", "same_crs", "to_projected", "utm_crs_for"]


def utm_crs_for(lon: float, lat: float) -> str:
    """EPSG code of the WGS 84 UTM zone containing (lon, lat), e.g. ``"EPSG:32649"``.

    Notes
    -----
    Zone = floor((lon + 180) / 6) + 1; EPSG 326zz north of the equator, 327zz south.
    The Norway/Svalbard exceptions are ignored (telcoplan plans cities, not the Arctic).
    """
    if not (-180.0 <= lon <= 180.0 and -80.0 <= lat <= 84.0):
        raise CRSError(f"({lon}, {lat}) is not a lon/lat position inside the UTM domain")
    zone = min(60, math.floor((lon + 180.0) / 6.0) + 1)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def crs_name(crs: object) -> str:
    """Short human name of a CRS: ``EPSG:32649 (WGS 84 / UTM zone 49N)``."""
    if crs is None:
        return "no CRS"
    c = CRS.from_user_input(crs)
    auth = c.to_authority()
    return f"{auth[0]}:{auth[1]} ({c.name})" if auth else c.name


def require_crs(gdf: gpd.GeoDataFrame, source: str) -> None:
    """Raise :class:`CRSError` naming ``source`` when ``gdf`` has no CRS."""
    if gdf.crs is None:
        raise CRSError(
            f"{source}: the layer has no CRS. Set one in the file (e.g. save it with EPSG:4326 "
            "or the local UTM zone), or give `crs:` for this layer in the plan file."
        )


def same_crs(a: object, b: object) -> bool:
    return CRS.from_user_input(a) == CRS.from_user_input(b)


def to_projected(gdf: gpd.GeoDataFrame, crs: str | None = None) -> gpd.GeoDataFrame:
    """Return ``gdf`` in ``crs``, or in its local UTM zone when ``crs`` is None (new frame)."""
    if gdf.crs is None:
        raise CRSError("layer has no CRS; cannot reproject it")
    if crs is None:
        if gdf.crs.is_projected:
            return gdf.copy()
        lon, lat = _centre_lonlat(gdf)
        crs = utm_crs_for(lon, lat)
    if not CRS.from_user_input(crs).is_projected:
        raise CRSError(f"{crs_name(crs)} is not projected; metric work needs a projected CRS")
    return gdf.to_crs(crs)


def _centre_lonlat(gdf: gpd.GeoDataFrame) -> tuple[float, float]:
    xmin, ymin, xmax, ymax = gdf.to_crs("EPSG:4326").total_bounds
    return (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
