"""What reading a PostGIS database needs in both :mod:`telcoplan.gis.postgis` (vector layers)
and :mod:`telcoplan.gis.postgis_raster` (rasters): psycopg imported when used, one-line error
reasons, table names resolved against the catalog, SRIDs as CRSs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from telcoplan.errors import DatabaseError

if TYPE_CHECKING:
    import psycopg

#: The catalog view listing a kind of spatial column (for "no table …; tables with …").
_CATALOGS = {
    "geometry": ("geometry_columns", "f_table_schema", "f_table_name"),
    "raster": ("raster_columns", "r_table_schema", "r_table_name"),
}


def psycopg_module():
    """The ``psycopg`` module; :class:`DatabaseError` with the install command without it."""
    try:
        import psycopg
    except ImportError:
        raise DatabaseError(
            "reading or writing PostGIS needs psycopg: pip install 'telcoplan[postgis]' "
            "(or pip install 'psycopg[binary]')"
        ) from None
    return psycopg


def reason(exc: BaseException) -> str:
    """One line of a database error (libpq's messages never hold the password)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def quoted(name: str) -> str:
    """An identifier as SQL writes it: quoted unless plain lower case."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def parse_table_name(name: str) -> tuple[str | None, str]:
    """``schema.table`` (or ``table``) as (schema or None, table), as PostgreSQL reads it:
    unquoted names in lower case, ``"Quoted"`` ones as written.

    Raises :class:`ValueError` for a name that is not one or two identifiers."""
    part = r'"(?:[^"]|"")+"|[^".\s]+'
    m = re.fullmatch(rf"\s*(?:({part})\.)?({part})\s*", str(name))
    if m is None:
        raise ValueError(
            f"{name!r} is not a table name; give schema.table, e.g. public.towers "
            '(quote names with capitals or dots: "Hạ tầng"."Trạm")'
        )

    def ident(text: str | None) -> str | None:
        if text is None:
            return None
        if text.startswith('"'):
            return text[1:-1].replace('""', '"')
        return text.lower()

    return ident(m.group(1)), ident(m.group(2))  # type: ignore[return-value]


def resolve_table(
    conn: psycopg.Connection, where: str, table: str, *, kind: str = "geometry"
) -> tuple[str, str, list[str]]:
    """The schema, name and primary-key columns of ``table`` (``schema.table``); a missing
    table is a :class:`DatabaseError` listing the tables with a ``kind`` column (geometry or
    raster), those of the schema named first."""
    from psycopg import sql

    try:
        schema, name = parse_table_name(table)
    except ValueError as exc:
        raise DatabaseError(f"{where}: {exc}") from None
    ident = sql.Identifier(name) if schema is None else sql.Identifier(schema, name)
    row = conn.execute(
        "SELECT c.oid::int, n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        (ident.as_string(conn),),
    ).fetchone()
    if row is None:
        view, s, t = _CATALOGS[kind]
        known = []
        if conn.execute("SELECT to_regclass(%s)", (view,)).fetchone()[0] is not None:
            known = [
                f"{a}.{b}"
                for a, b in conn.execute(
                    sql.SQL("SELECT {s}, {t} FROM {v} ORDER BY {s} <> %s, 1, 2 LIMIT 30").format(
                        s=sql.Identifier(s), t=sql.Identifier(t), v=sql.Identifier(view)
                    ),
                    (schema or "public",),
                ).fetchall()
            ]
        raise DatabaseError(
            f"{where}: no table {table}; tables with {kind}: {', '.join(known) or '(none)'}"
        )
    oid, schema, name = row
    return schema, name, primary_key(conn, oid)


def primary_key(conn: psycopg.Connection, oid: int) -> list[str]:
    """The primary-key columns of the table ``oid``, in key order (empty: none)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
            "WHERE i.indrelid = %s AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)",
            (oid,),
        ).fetchall()
    ]


def crs_of_srid(conn: psycopg.Connection, srid: int) -> str | None:
    """The CRS of a PostGIS SRID: ``AUTH:CODE`` from ``spatial_ref_sys``, else its WKT, else
    ``EPSG:<srid>``; None for SRID 0 (unknown)."""
    if not srid:
        return None
    row = conn.execute(
        "SELECT auth_name, auth_srid, srtext FROM spatial_ref_sys WHERE srid = %s", (srid,)
    ).fetchone()
    if row is None:
        return f"EPSG:{srid}"
    auth, code, wkt = row
    if auth and code:
        return f"{auth}:{code}"
    return wkt or f"EPSG:{srid}"
