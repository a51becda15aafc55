"""GIS plumbing: CRS choice, the plan grid, raster and vector I/O (atomic), zonal sums."""

from telcoplan.gis.crs import crs_name, require_crs, same_crs, to_projected, utm_crs_for
from telcoplan.gis.grid import GridSpec
from telcoplan.gis.raster import read_raster, read_raster_on_grid, write_raster
from telcoplan.gis.vector import read_vector, write_vector, write_vector_layers
from telcoplan.gis.zonal import label_polygons, zonal_sum, zonal_sum_labels

__all__ = [
    "GridSpec",
    "crs_name",
    "label_polygons",
    "read_raster",
    "read_raster_on_grid",
    "read_vector",
    "require_crs",
    "same_crs",
    "to_projected",
    "utm_crs_for",
    "write_raster",
    "write_vector",
    "write_vector_layers",
    "zonal_sum",
    "zonal_sum_labels",
]
