"""The layer contracts: one :class:`LayerSchema` per vector layer.

Column names are part of the public contract (scripts and other tools rely on them).
Units: metres, dBm, MHz, persons. Raster layers (population raster, DEM) are documented in
:mod:`telcoplan.layers.population` and :mod:`telcoplan.layers.dem`.
"""

from __future__ import annotations

from telcoplan.layers._schema import Column, LayerSchema

__all__ = [
    "AREAS",
    "CANDIDATES",
    "FIBER",
    "MEASUREMENTS",
    "OPERATOR_CHOICES",
    "POIS",
    "POPULATION_POLYGONS",
    "ROADS",
    "SCHEMAS",
    "TECHNOLOGIES",
    "TOWERS",
]

TECHNOLOGIES = ("2G", "3G", "4G", "5G")
TOWER_TYPES = ("A1", "A2a", "A2b")
ROAD_CLASSES = (
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "residential",
    "service",
    "track",
)
POI_CATEGORIES = ("ward_office", "school", "clinic", "hospital", "police", "other")
#: Free text; kept as a name for documentation
OPERATOR_CHOICES = None

_FREQ = {"min": 100.0, "max": 100_000.0, "unit": "MHz"}
_HEIGHT = {"min": 0.0, "max": 500.0, "min_exclusive": True, "unit": "m"}

TOWERS = LayerSchema(
    name="towers",
    geometry="Point",
    id_column="site_id",
    description="Existing radio sites (one row per operator site / technology).",
    columns=(
        Column("site_id", "str", unique=True, description="unique site id; becomes the index"),
        Column("operator", "str", description="operator name, e.g. Viettel"),
        Column("technology", "str", choices=TECHNOLOGIES, description="radio technology"),
        Column("frequency_mhz", "float", description="carrier frequency", **_FREQ),
        Column("height_m", "float", description="antenna height above ground", **_HEIGHT),
        Column(
            "eirp_dbm",
            "float",
            min=-30.0,
            max=90.0,
            unit="dBm",
            description="EIRP incl. antenna gain",
        ),
        Column("name", "str", required=False, description="site name"),
        Column(
            "azimuth_deg",
            "float",
            required=False,
            min=0.0,
            max=360.0,
            unit="°",
            description="sector azimuth, clockwise from north; empty = omni",
        ),
        Column(
            "beamwidth_deg",
            "float",
            required=False,
            min=1.0,
            max=360.0,
            unit="°",
            description="horizontal 3 dB beamwidth",
        ),
        Column(
            "tilt_deg",
            "float",
            required=False,
            min=-20.0,
            max=30.0,
            unit="°",
            description="downtilt (positive = down)",
        ),
        Column(
            "tower_type",
            "str",
            required=False,
            choices=TOWER_TYPES,
            description="A1 camouflaged, A2a main street, A2b rural",
        ),
        Column(
            "tenants",
            "int",
            required=False,
            min=1.0,
            max=10.0,
            description="number of operators on the structure",
        ),
    ),
)

FIBER = LayerSchema(
    name="fiber",
    geometry="LineString",
    id_column="fiber_id",
    description="Existing fiber cables per operator.",
    columns=(
        Column("fiber_id", "str", unique=True, description="unique cable id"),
        Column("operator", "str", description="owner operator"),
        Column("cores", "int", required=False, min=1.0, max=10_000.0, description="fibre cores"),
        Column(
            "status",
            "str",
            required=False,
            choices=("existing", "planned"),
            description="cable status",
        ),
    ),
)

ROADS = LayerSchema(
    name="roads",
    geometry="LineString",
    id_column="road_id",
    description="Road centre lines (trench routes for new fiber).",
    columns=(
        Column("road_id", "str", unique=True, description="unique road segment id"),
        Column(
            "road_class",
            "str",
            choices=ROAD_CLASSES,
            description="OSM-style class; sets trench cost",
        ),
        Column("name", "str", required=False, description="street name"),
    ),
)

AREAS = LayerSchema(
    name="areas",
    geometry="Polygon",
    id_column="name",
    description="Administrative or planning areas for per-area results; their union is the study area.",
    columns=(
        Column("name", "str", unique=True, description="area name"),
        Column(
            "population",
            "float",
            required=False,
            min=0.0,
            max=1e10,
            unit="persons",
            description="census population",
        ),
        Column("urban", "bool", required=False, description="urban (true) or rural (false)"),
    ),
)

POPULATION_POLYGONS = LayerSchema(
    name="population",
    geometry="Polygon",
    description="Population counts per polygon (spread onto the plan grid, totals conserved).",
    columns=(
        Column(
            "population",
            "float",
            min=0.0,
            max=1e10,
            unit="persons",
            description="persons in the polygon (another column can be named)",
        ),
    ),
)

CANDIDATES = LayerSchema(
    name="candidates",
    geometry="Point",
    id_column="candidate_id",
    description="Candidate sites for new or shared towers.",
    columns=(
        Column("candidate_id", "str", unique=True, description="unique candidate id"),
        Column(
            "kind",
            "str",
            required=False,
            choices=("existing_tower", "rooftop", "greenfield", "public_land"),
            description="what the site is",
        ),
        Column("cost", "float", required=False, min=0.0, unit="USD", description="build cost"),
        Column(
            "max_height_m",
            "float",
            required=False,
            description="permitted antenna height",
            **_HEIGHT,
        ),
        Column(
            "tower_type",
            "str",
            required=False,
            choices=TOWER_TYPES,
            description="tower type the zoning allows",
        ),
        Column("name", "str", required=False, description="site name"),
    ),
)

POIS = LayerSchema(
    name="pois",
    geometry="Point",
    id_column="poi_id",
    description="Points of interest that must be served (ward offices, schools, clinics).",
    columns=(
        Column("poi_id", "str", unique=True, description="unique POI id"),
        Column("name", "str", description="name"),
        Column("category", "str", choices=POI_CATEGORIES, description="kind of POI"),
        Column(
            "required_dbm",
            "float",
            required=False,
            min=-140.0,
            max=-30.0,
            unit="dBm",
            description="signal level it needs",
        ),
    ),
)

MEASUREMENTS = LayerSchema(
    name="measurements",
    geometry="Point",
    description="Drive-test / crowd-sourced signal measurements for calibration.",
    columns=(
        Column("site_id", "str", description="serving site id (matches towers.site_id)"),
        Column(
            "rssi_dbm",
            "float",
            min=-150.0,
            max=0.0,
            unit="dBm",
            description="measured received power",
        ),
        Column("freq_mhz", "float", required=False, description="carrier frequency", **_FREQ),
    ),
)

#: Every vector layer schema by name.
SCHEMAS: dict[str, LayerSchema] = {
    s.name: s
    for s in (TOWERS, FIBER, ROADS, AREAS, POPULATION_POLYGONS, CANDIDATES, POIS, MEASUREMENTS)
}
