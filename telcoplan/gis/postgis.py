"""PostGIS: a layer read from a table or a query, and tables written in one transaction.

A database is named by a libpq connection URL, ``postgresql://user@host:port/dbname`` (also
``postgresql:///dbname?host=/run/postgresql`` for a Unix socket). The URL never holds the
password: libpq takes it from the environment (``PGPASSWORD``) or the password file
(``~/.pgpass``, or the file ``PGPASSFILE`` names), so plans, logs, messages and summaries hold
none. A URL with a password is refused (:func:`url_problem`).

Geometries travel as (E)WKB: read as the geometry type's hex EWKB text and parsed by shapely,
written as hex EWKB with their SRID (the CRS's EPSG code). psycopg is imported only when a
database is used (``pip install 'telcoplan[postgis]'``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from telcoplan.errors import DatabaseError
from telcoplan.gis._database import crs_of_srid as _crs_of_srid
from telcoplan.gis._database import parse_table_name
from telcoplan.gis._database import psycopg_module as _psycopg
from telcoplan.gis._database import quoted as _quoted
from telcoplan.gis._database import reason as _reason
from telcoplan.gis._database import resolve_table as _table

if TYPE_CHECKING:
    import geopandas as gpd
    import psycopg

log = logging.getLogger(__name__)

__all__ = [
    "OUTPUT_MARK",
    "RUN_TABLE",
    "SCHEMES",
    "connect",
    "is_database_url",
    "parse_table_name",
    "read_postgis",
    "redact",
    "row_keys",
    "rows_sha256",
    "url_problem",
    "write_table",
    "write_tables",
]

#: URL schemes of a PostgreSQL connection (libpq accepts both).
SCHEMES = ("postgresql://", "postgres://")
#: Start of the comment telcoplan gives the tables it writes: only such tables are replaced.
OUTPUT_MARK = "telcoplan output"
#: The table of a schema listing the runs published into it (one row per publication).
RUN_TABLE = "runs"

_PASSWORD_HELP = (
    "remove it (postgresql://user@host/dbname) and give the password in the environment "
    "(PGPASSWORD) or in the password file ~/.pgpass (host:port:dbname:user:password, mode 0600)"
)


# ------------------------------------------------------------------------------ connection
def is_database_url(path: object) -> bool:
    """Whether ``path`` is a PostgreSQL connection URL (``postgresql://…``, ``postgres://…``)."""
    return isinstance(path, str) and path.strip().lower().startswith(SCHEMES)


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot name a database (a password in it, not a PostgreSQL URL), or None.

    The message never repeats the password."""
    if not is_database_url(url):
        return "not a PostgreSQL connection URL (postgresql://user@host/dbname)"
    parts = urlsplit(url.strip())
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    if ":" in userinfo:
        return "the connection URL holds a password; " + _PASSWORD_HELP
    if any(k.strip().lower() == "password" for k, _ in parse_qsl(parts.query, True)):
        return "the connection URL holds a password (`password=`); " + _PASSWORD_HELP
    return None


def redact(url: str) -> str:
    """``url`` without any password (in its user part or its ``password=`` parameter): what
    messages, logs and provenance show. A URL without one is returned as it is."""
    text = str(url).strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    rest, hash_, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}@{hosts}"
    if query:
        kept = [
            part for part in query.split("&")
            if part.partition("=")[0].strip().lower() != "password"
        ]  # fmt: skip
        query = "&".join(kept)
        question = "?" if query else ""
    return f"{scheme}://{netloc}{slash}{path}{question}{query}{hash_}{fragment}"


@contextlib.contextmanager
def connect(url: str, *, read_only: bool = False) -> Iterator[psycopg.Connection]:
    """A psycopg connection to ``url`` (closed on leaving the block; a transaction still open
    is rolled back).

    The password comes from ``PGPASSWORD`` or ``~/.pgpass``, never from the URL: a URL with
    one is refused. With ``read_only`` every transaction is read-only (a query cannot change
    the database).

    Raises
    ------
    telcoplan.errors.DatabaseError
        The URL holds a password, psycopg is missing, or the database cannot be reached.
    """
    problem = url_problem(url)
    if problem is not None:
        raise DatabaseError(f"{redact(url)}: {problem}")
    psycopg = _psycopg()
    try:
        conn = psycopg.connect(url.strip(), application_name="telcoplan")
    except psycopg.Error as exc:
        raise DatabaseError(f"{redact(url)}: cannot connect ({_reason(exc)})") from None
    try:
        conn.read_only = read_only
        yield conn
    finally:
        conn.close()


# ------------------------------------------------------------------------------ reading
def read_postgis(
    url: str,
    *,
    table: str | None = None,
    sql: str | None = None,
    crs: str | None = None,
) -> gpd.GeoDataFrame:
    """Read a table (``table="schema.table"``) or the result of a query (``sql="SELECT …"``)
    into a GeoDataFrame with a fresh 0..n-1 index.

    A table is read in the order of its primary key; a query's rows come in its own order. The
    one geometry column (PostGIS ``geometry``) becomes the frame's geometry, named ``geometry``
    and placed last whatever the table calls it, as :func:`~telcoplan.gis.vector.read_vector`
    gives a file's; its SRID is the CRS. ``crs`` is the CRS to assign when the SRID is 0, or
    to use instead of the stated one (with a warning). Queries run in a read-only transaction.

    The frame's ``attrs["postgis"]`` records the source: ``source`` (what messages call it),
    ``connection`` (the URL without password), ``table`` or ``sql``, ``primary_key`` (the key
    columns of a table, or of the table a query selects them from; empty when unknown),
    ``geometry_column`` (the geometry's name in the table or query) and ``sha256`` (a digest
    of the rows as the database returned them, whatever their order).

    Raises
    ------
    telcoplan.errors.DatabaseError
        Cannot connect, no such table, a failing query, no or several geometry columns,
        another column named ``geometry``, several SRIDs.
    """
    import geopandas as gpd
    import shapely

    from telcoplan.gis.vector import assign_crs

    if (table is None) == (sql is None):
        raise ValueError("give either table= or sql=")
    where = redact(url)
    psycopg = _psycopg()
    with connect(url, read_only=True) as conn:
        try:
            got = _fetch(conn, where, table, sql)
        except psycopg.Error as exc:
            raise DatabaseError(f"{where}: {_reason(exc)}") from None
    g = got.geometry
    if got.names[g] != "geometry" and "geometry" in got.names:
        raise DatabaseError(
            f"{got.label}: has a column named geometry that is not its geometry column "
            f"({got.names[g]} is); give it another name in a query (sql: SELECT …, "
            f"geometry AS geometry_text, {_quoted(got.names[g])} FROM …)"
        )
    geoms = shapely.from_wkb([r[g] for r in got.rows], on_invalid="ignore")
    data = {n: [_plain(r[i]) for r in got.rows] for i, n in enumerate(got.names) if i != g}
    # named and placed as read_vector names a file's geometry (last, `geometry`), whatever
    # the table calls it: code joining layers with frames made in the run sees one column
    gdf = gpd.GeoDataFrame(
        data, geometry=gpd.GeoSeries(shapely.set_srid(geoms, 0), name="geometry"), crs=got.crs
    )
    gdf = assign_crs(gdf, crs, source=got.label, stated_by="the geometries' SRID says")
    gdf.attrs["postgis"] = {
        "source": got.label,
        "connection": where,
        "table": got.table,
        "sql": None if sql is None else str(sql),
        "primary_key": list(got.key),
        "geometry_column": got.names[g],
        "sha256": rows_sha256(got.names, got.rows),
    }
    log.info("%s: %d rows", got.label, len(gdf))
    return gdf


@dataclass(frozen=True)
class _Result:
    """A query's result as read: where from (``label``), column names, rows (geometries as
    hex EWKB), the geometry column's position, the CRS of its SRID, the key columns."""

    label: str
    table: str | None
    names: list[str]
    rows: list[tuple]
    geometry: int
    crs: str | None
    key: list[str]


def _fetch(conn: psycopg.Connection, where: str, table: str | None, query: str | None) -> _Result:
    """Run the table's ``SELECT *`` (in key order) or the query, and check its columns."""
    import shapely
    from psycopg import Error, sql

    geometry_oid, geography_oid = _geometry_oids(conn, where)
    declared = None
    if table is not None:
        schema, name, key = _table(conn, where, table)
        table = f"{_quoted(schema)}.{_quoted(name)}"
        label = f"{where} table {table}"
        statement = sql.SQL("SELECT * FROM {}").format(sql.Identifier(schema, name))
        if key:
            statement += sql.SQL(" ORDER BY {}").format(
                sql.SQL(", ").join(map(sql.Identifier, key))
            )
    else:
        label = f"{where} query"
        statement = str(query).strip().rstrip(";").strip()
    try:
        cur = conn.execute(statement)
    except Error as exc:
        raise DatabaseError(f"{label}: the query fails ({_reason(exc)})") from None
    if cur.description is None:
        raise DatabaseError(f"{label}: the statement returns no rows; give a SELECT")
    names = [c.name for c in cur.description]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DatabaseError(
            f"{label}: column names repeat ({', '.join(twice)}); give them aliases "
            "(SELECT a.id AS a_id, …)"
        )
    if table is None:
        key = _result_key(conn, cur, names)
    rows = cur.fetchall()
    found = [i for i, c in enumerate(cur.description) if c.type_code == geometry_oid]
    if len(found) != 1:
        geography = [c.name for c in cur.description if c.type_code == geography_oid]
        if found:
            what = f"{len(found)} geometry columns ({', '.join(names[i] for i in found)})"
            fix = "; select one in a query (sql: SELECT id, …, geom FROM …)"
        elif geography:
            what = f"a geography column ({', '.join(geography)}) but no geometry column"
            fix = "; cast it in a query (sql: SELECT …, geog::geometry AS geom FROM …)"
        else:
            what = "no geometry column"
            fix = f"; its columns: {', '.join(names) or '(none)'}"
        raise DatabaseError(f"{label}: has {what}{fix}")
    g = found[0]
    if table is not None:
        declared = _declared_srid(conn, schema, name, names[g])
    geoms = shapely.from_wkb([r[g] for r in rows], on_invalid="ignore")
    srids = {int(s) for s in shapely.get_srid(geoms[~shapely.is_missing(geoms)])} - {0}
    if len(srids) > 1:
        raise DatabaseError(
            f"{label}: the geometries have several SRIDs ({', '.join(map(str, sorted(srids)))}); "
            "transform them to one in a query (sql: SELECT …, ST_Transform(geom, 4326) AS geom …)"
        )
    srid = next(iter(srids), declared)
    crs = _crs_of_srid(conn, srid) if srid else None
    return _Result(label, table, names, rows, g, crs, key)


def row_keys(gdf: gpd.GeoDataFrame) -> list[str] | None:
    """Each row's primary key as text (``gid=17``, ``site_id='VT-1'``, ``a=1, b='x'``) for a
    frame read by :func:`read_postgis` whose key is known; None otherwise."""
    key = (gdf.attrs.get("postgis") or {}).get("primary_key")
    if not key or not all(k in gdf.columns for k in key):
        return None
    parts = [[f"{k}={v!r}" for v in gdf[k].tolist()] for k in key]
    return [", ".join(p) for p in zip(*parts, strict=True)]


def rows_sha256(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """SHA-256 of a result: its column names, and its rows as the database returned them
    (hex EWKB geometry, numbers and text as written), whatever their order."""
    per_row = sorted(
        hashlib.sha256("\x1f".join(map(repr, row)).encode("utf-8")).digest() for row in rows
    )
    h = hashlib.sha256(json.dumps(list(names)).encode("utf-8"))
    for d in per_row:
        h.update(d)
    return h.hexdigest()


def _plain(value: object) -> object:
    """A value as pandas keeps it: NUMERIC as float, the rest as psycopg gives it."""
    return float(value) if isinstance(value, Decimal) else value


def _geometry_oids(conn: psycopg.Connection, where: str) -> tuple[int, int | None]:
    """The type OIDs of PostGIS ``geometry`` and ``geography`` in this database."""
    found = dict(
        conn.execute(
            "SELECT typname, oid::int FROM pg_type WHERE typname IN ('geometry', 'geography')"
        ).fetchall()
    )
    if "geometry" not in found:
        raise DatabaseError(
            f"{where}: PostGIS is not installed in this database (no geometry type); "
            "CREATE EXTENSION postgis, or name the database that holds the layers"
        )
    return found["geometry"], found.get("geography")


def _result_key(conn: psycopg.Connection, cur: psycopg.Cursor, names: list[str]) -> list[str]:
    """The result columns of a query that hold the whole primary key of a table it selects
    from (``SELECT * FROM towers WHERE …`` keeps the table's key); empty when there are none."""
    res = cur.pgresult
    if res is None:
        return []
    origin: dict[int, dict[int, str]] = {}
    for i, n in enumerate(names):
        table, column = res.ftable(i), res.ftablecol(i)
        if table and column:
            origin.setdefault(int(table), {}).setdefault(int(column), n)
    for oid, columns in origin.items():
        key = conn.execute(
            "SELECT a.attnum, a.attname FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
            "WHERE i.indrelid = %s AND i.indisprimary "
            "ORDER BY array_position(i.indkey::int2[], a.attnum)",
            (oid,),
        ).fetchall()
        if key and all(num in columns for num, _ in key):
            return [columns[num] for num, _ in key]
    return []


def _declared_srid(conn: psycopg.Connection, schema: str, name: str, column: str) -> int | None:
    """The SRID a table declares for its geometry column (``geometry_columns``), or None."""
    row = conn.execute(
        "SELECT srid FROM geometry_columns WHERE f_table_schema = %s AND f_table_name = %s "
        "AND f_geometry_column = %s",
        (schema, name, column),
    ).fetchone()
    return int(row[0]) if row and row[0] else None


# ------------------------------------------------------------------------------ writing
def write_tables(
    url: str,
    schema: str,
    tables: Mapping[str, gpd.GeoDataFrame],
    *,
    run: Mapping[str, Any],
    descriptions: Mapping[str, str] | None = None,
) -> int:
    """Write ``tables`` into ``schema`` and add a row to its run table, in one transaction.

    Each GeoDataFrame becomes the table of its name (replacing the one there): a primary key
    ``fid``, its columns, its geometry as ``geom`` (SRID of its CRS) with a GiST index. Tables
    that the previous run of the schema wrote and this one does not are dropped. The run table
    (:data:`RUN_TABLE`) gets one row: ``id``, ``published_at``, ``tables`` and the values of
    ``run`` (mappings and lists as JSONB). The schema is created when missing.

    Either everything is written or, on any failure, nothing changes: the previous tables and
    runs stay as they were. A table of the schema that telcoplan did not write (its comment
    does not start with :data:`OUTPUT_MARK`) is never replaced. Returns the run's ``id``.

    Raises
    ------
    telcoplan.errors.DatabaseError
        Cannot connect, a table telcoplan did not write stands in the way, or any statement
        fails; nothing was changed.
    """
    psycopg = _psycopg()
    from psycopg import sql

    where = f"{redact(url)} schema {schema}"
    descriptions = dict(descriptions or {})
    with connect(url) as conn:
        try:
            with conn.transaction(), conn.cursor() as cur:
                # one publication at a time per schema
                lock = int.from_bytes(
                    hashlib.sha256(schema.encode()).digest()[:8], "big", signed=True
                )
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                _require_postgis(cur, where)
                cur.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                )
                previous = _previous_tables(cur, schema)
                for name in [*tables, *previous]:
                    _check_ours(cur, schema, name, where)
                for name in previous:
                    if name not in tables:
                        cur.execute(
                            sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, name))
                        )
                for name, gdf in tables.items():
                    write_table(
                        cur, schema, name, gdf,
                        comment=f"{OUTPUT_MARK}: {descriptions.get(name, name)}",
                    )  # fmt: skip
                run_id = _add_run(cur, schema, list(tables), run)
        except DatabaseError as exc:
            raise DatabaseError(f"{exc}; nothing was changed in {where}") from None
        except psycopg.Error as exc:
            raise DatabaseError(
                f"{where}: {_reason(exc)}; nothing was changed (the previous tables are as "
                "they were)"
            ) from None
    log.info("published %d tables to %s (run %d)", len(tables), where, run_id)
    return run_id


def write_table(
    cur: psycopg.Cursor, schema: str, name: str, gdf: gpd.GeoDataFrame, *, comment: str
) -> None:
    """(Re)create table ``schema.name`` from ``gdf`` in the cursor's transaction: a primary
    key ``fid`` (1…n), the columns (a named index becomes one), geometry ``geom`` with a GiST
    index, and ``comment`` as the table's comment."""
    import shapely
    from psycopg import sql

    if gdf.index.name is not None and gdf.index.name not in gdf.columns:
        gdf = gdf.reset_index()
    srid = _srid_for(gdf, f"{schema}.{name}")
    geoms = _promoted(gdf.geometry.to_numpy())
    kind = _geometry_kind(geoms)
    data = gdf.drop(columns=gdf.geometry.name)
    taken = {str(c) for c in data.columns}
    fid = "fid" if "fid" not in taken else "telcoplan_fid"
    geom = "geom" if "geom" not in taken else "telcoplan_geom"
    columns = [(str(c), _sql_type(data[c])) for c in data.columns]
    ident = sql.Identifier(schema, name)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
    cur.execute(
        sql.SQL("CREATE TABLE {} ({} bigint PRIMARY KEY, {}{} geometry({}, {}))").format(
            ident,
            sql.Identifier(fid),
            sql.SQL("").join(
                sql.SQL("{} {}, ").format(sql.Identifier(c), sql.SQL(t)) for c, t in columns
            ),
            sql.Identifier(geom),
            sql.SQL(kind),
            sql.Literal(srid),
        )
    )
    values = [_python_values(data[c]) for c in data.columns]
    hexes = shapely.to_wkb(shapely.set_srid(geoms, srid), hex=True, include_srid=True)
    names = sql.SQL(", ").join(map(sql.Identifier, [fid, *(c for c, _ in columns), geom]))
    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(ident, names)) as copy:
        for i, row in enumerate(zip(*values, hexes, strict=True)):
            copy.write_row((i + 1, *row))
    cur.execute(
        sql.SQL("CREATE INDEX {} ON {} USING GIST ({})").format(
            sql.Identifier(f"{name[:50]}_geom_idx"), ident, sql.Identifier(geom)
        )
    )
    cur.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(comment)))
    cur.execute(sql.SQL("ANALYZE {}").format(ident))


def _require_postgis(cur: psycopg.Cursor, where: str) -> None:
    cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
    if cur.fetchone() is None:
        raise DatabaseError(
            f"{where}: PostGIS is not installed in this database; CREATE EXTENSION postgis "
            "(as a user allowed to), or publish to a database that has it"
        )


def _previous_tables(cur: psycopg.Cursor, schema: str) -> list[str]:
    """The tables the schema's latest published run wrote (none without a run table)."""
    from psycopg import sql

    cur.execute("SELECT to_regclass(%s)", (sql.Identifier(schema, RUN_TABLE).as_string(cur),))
    if cur.fetchone()[0] is None:
        return []
    cur.execute(
        sql.SQL("SELECT tables FROM {} ORDER BY id DESC LIMIT 1").format(
            sql.Identifier(schema, RUN_TABLE)
        )
    )
    row = cur.fetchone()
    return [str(t) for t in (row[0] if row and row[0] else [])]


def _check_ours(cur: psycopg.Cursor, schema: str, name: str, where: str) -> None:
    """Refuse to replace a relation of ``schema`` that telcoplan did not write."""
    cur.execute(
        "SELECT c.relkind, obj_description(c.oid, 'pg_class') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    row = cur.fetchone()
    if row is None:
        return
    kind, comment = row
    if kind not in ("r", b"r") or not str(comment or "").startswith(OUTPUT_MARK):
        raise DatabaseError(
            f"{where}: {schema}.{name} exists and was not written by telcoplan; it is left "
            "alone: publish into another schema (--schema), or drop or rename it yourself"
        )


def _add_run(cur: psycopg.Cursor, schema: str, tables: list[str], run: Mapping[str, Any]) -> int:
    """Append the run's row to the run table (created, or given new columns, as needed)."""
    from psycopg import sql
    from psycopg.types.json import Jsonb

    ident = sql.Identifier(schema, RUN_TABLE)
    cur.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "published_at timestamptz NOT NULL DEFAULT now(), tables text[] NOT NULL)"
        ).format(ident)
    )
    cur.execute(
        sql.SQL("COMMENT ON TABLE {} IS {}").format(
            ident, sql.Literal(f"{OUTPUT_MARK}: the runs published into this schema")
        )
    )
    names, values = ["tables"], [tables]
    for key, value in run.items():
        if isinstance(value, Mapping | list | tuple):
            kind, value = "jsonb", Jsonb(value)
        elif isinstance(value, bool):
            kind = "boolean"
        elif isinstance(value, int):
            kind = "bigint"
        elif isinstance(value, float):
            kind = "double precision"
        else:
            kind, value = "text", None if value is None else str(value)
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                ident, sql.Identifier(key), sql.SQL(kind)
            )
        )
        names.append(key)
        values.append(value)
    cur.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
            ident,
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.Placeholder() * len(values)),
        ),
        values,
    )
    return int(cur.fetchone()[0])


def _srid_for(gdf: gpd.GeoDataFrame, where: str) -> int:
    """The SRID of ``gdf``'s CRS: its EPSG code."""
    if gdf.crs is None:
        raise DatabaseError(f"{where}: the layer has no CRS; it cannot be given an SRID")
    code = gdf.crs.to_epsg()
    if code is None:
        raise DatabaseError(
            f"{where}: the layer's CRS ({gdf.crs.name}) has no EPSG code, which PostGIS needs "
            "as its SRID; use an EPSG CRS in the plan (crs: EPSG:32649)"
        )
    return int(code)


def _promoted(geoms):
    """Geometries of one type per table: single parts made multi-part where the layer mixes
    both (a Polygon beside MultiPolygons becomes a one-part MultiPolygon)."""
    import numpy as np
    import shapely

    types = shapely.get_type_id(geoms)
    present = set(types[types >= 0].tolist())
    out = np.array(geoms, dtype=object)
    for single, multi, make in ((0, 4, shapely.multipoints), (1, 5, shapely.multilinestrings),
                                (3, 6, shapely.multipolygons)):  # fmt: skip
        if single in present and multi in present:
            idx = np.flatnonzero(types == single)
            out[idx] = [make([g]) for g in out[idx]]
    return out


def _geometry_kind(geoms) -> str:
    """PostGIS geometry type of a column holding ``geoms`` (``Geometry`` when they mix)."""
    import shapely

    names = {
        0: "Point", 1: "LineString", 2: "LineString", 3: "Polygon", 4: "MultiPoint",
        5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection",
    }  # fmt: skip
    types = shapely.get_type_id(geoms)
    kinds = {names[int(t)] for t in types if t >= 0}
    kind = kinds.pop() if len(kinds) == 1 else "Geometry"
    if len(geoms) and bool(shapely.has_z(geoms[types >= 0]).any()):
        kind += "Z"
    return kind


def _sql_type(series) -> str:
    """The PostgreSQL type of a column."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "bigint"
    if pd.api.types.is_float_dtype(series):
        return "double precision"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamptz" if getattr(series.dtype, "tz", None) is not None else "timestamp"
    return "text"


def _python_values(series) -> list[object]:
    """A column's values as Python objects for COPY (None for missing and NaN; text columns
    as str)."""
    import pandas as pd

    text = _sql_type(series) == "text"
    out: list[object] = []
    for v in series.astype(object).tolist():
        if v is None or (pd.api.types.is_scalar(v) and not isinstance(v, str) and pd.isna(v)):
            out.append(None)
        elif text:
            out.append(v if isinstance(v, str) else str(v))
        else:
            out.append(v.item() if hasattr(v, "item") else v)
    return out
