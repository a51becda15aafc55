"""Loading rasters into the test cluster as ``raster2pgsql -t`` does (a table ``rid``,
``rast`` of tiles), with PostGIS' own GDAL reader (``ST_FromGDALRaster``, enabled for the
superuser's session only: the planner reads without it)."""

from __future__ import annotations

from pathlib import Path


def load_raster(
    cluster, table: str, path: Path, *, tile: tuple[int, int] = (7, 5), srid: int | None = None
) -> int:
    """Create ``schema.table`` (owned by planner) from the GeoTIFF ``path``, cut into tiles of
    ``tile`` cells (``ST_Tile``; edge tiles smaller); ``srid`` instead of the file's. Returns
    the number of tiles."""
    import psycopg
    from psycopg import sql

    schema, name = table.split(".")
    ident = sql.Identifier(schema, name)
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis_raster")
        conn.execute("SET postgis.gdal_enabled_drivers = 'GTiff'")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION planner").format(
            sql.Identifier(schema)))  # fmt: skip
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
        conn.execute(sql.SQL("CREATE TABLE {} (rid serial PRIMARY KEY, rast raster)").format(ident))
        source = sql.SQL("ST_FromGDALRaster(%s)")
        if srid is not None:
            source = sql.SQL("ST_SetSRID(ST_FromGDALRaster(%s), {})").format(sql.Literal(srid))
        conn.execute(
            sql.SQL("INSERT INTO {} (rast) SELECT ST_Tile({}, %s, %s)").format(ident, source),
            (Path(path).read_bytes(), *tile),
        )
        conn.execute(sql.SQL("ALTER TABLE {} OWNER TO planner").format(ident))
        return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()[0]
