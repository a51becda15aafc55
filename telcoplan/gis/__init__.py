"""GIS plumbing: CRS choice, the plan grid, raster and vector I/O (atomic), zonal sums.

The names below are imported on first use: ``import telcoplan.gis.grid`` loads neither
geopandas nor rasterio.
"""

from telcoplan._lazy import lazy_names

#: Public name → the module that defines it.
_API = {
    "GridSpec": "telcoplan.gis.grid",
    "crs_name": "telcoplan.gis.crs",
    "label_polygons": "telcoplan.gis.zonal",
    "read_raster": "telcoplan.gis.raster",
    "read_raster_on_grid": "telcoplan.gis.raster",
    "read_vector": "telcoplan.gis.vector",
    "require_crs": "telcoplan.gis.crs",
    "same_crs": "telcoplan.gis.crs",
    "to_projected": "telcoplan.gis.crs",
    "utm_crs_for": "telcoplan.gis.crs",
    "write_raster": "telcoplan.gis.raster",
    "write_vector": "telcoplan.gis.vector",
    "write_vector_layers": "telcoplan.gis.vector",
    "zonal_sum": "telcoplan.gis.zonal",
    "zonal_sum_labels": "telcoplan.gis.zonal",
}

__all__ = sorted(_API)

__getattr__, __dir__ = lazy_names(__name__, _API, __all__)
