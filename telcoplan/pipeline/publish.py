"""Publishing a finished run to PostGIS: ``telcoplan run PLAN --publish URL [--schema NAME]``.

A run's vector outputs become tables of one schema (default ``telcoplan``), each with a
primary key ``fid`` and a GiST index on ``geom``:

======================  ======================================================================
``coverage``            coverage polygons per operator and ``any`` (``coverage.gpkg``)
``areas``               population covered per area (``coverage.gpkg``)
``towers``              the towers as the run used them (``coverage.gpkg``, layer ``sites``)
``gaps``                coverage gaps (``gaps.gpkg``)
``single_operator``     places only one operator covers (``gaps.gpkg``)
``pois``                points of interest, served or not (``gaps.gpkg``)
``sites``               proposed sites (``sites.gpkg``)
``backbone``            backbone links (``backbone.gpkg``, layer ``links``)
``runs``                one row per publication: ``id``, ``published_at``, ``tables``, ``plan``,
                        ``plan_file``, ``telcoplan_version``, ``output_folder``, ``rasters``
                        (JSONB: file name → absolute path of each GeoTIFF of the run) and
                        ``summary`` (JSONB: the run's ``summary.json``)
======================  ======================================================================

Everything is written in one transaction (:func:`telcoplan.gis.postgis.write_tables`): a
failure leaves the schema's previous tables and runs as they were. The tables hold the latest
publication (those of an earlier run that this one does not write are dropped); ``runs`` keeps
every one. Rasters stay files, referenced by path from ``runs.rasters``. The database's
password comes from ``PGPASSWORD`` or ``~/.pgpass``, never from the URL.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from telcoplan import outputs
from telcoplan.errors import DatabaseError, PlanError
from telcoplan.gis.postgis import connect, redact, url_problem

__all__ = ["DEFAULT_SCHEMA", "PUBLISHED_LAYERS", "Publication", "publication", "publish_run"]

log = logging.getLogger(__name__)

#: The schema a run is published into unless ``--schema`` says otherwise: not ``public``,
#: where a city's own layers live.
DEFAULT_SCHEMA = "telcoplan"
#: Output layers published as tables (keys of :data:`telcoplan.outputs.LAYERS`), with the
#: comment each table gets.
PUBLISHED_LAYERS = {
    "coverage": "coverage polygons per operator (and any operator)",
    "areas": "population covered per area",
    "towers": "the towers as the run used them",
    "gaps": "coverage gaps (uncovered populated places)",
    "single_operator": "places covered by one operator only",
    "pois": "points of interest, served or not",
    "sites": "proposed sites",
    "backbone": "backbone fiber links",
}


@dataclass(frozen=True)
class Publication:
    """Where runs are published: a database (URL without password) and a schema."""

    url: str
    schema: str = DEFAULT_SCHEMA

    def __str__(self) -> str:
        return f"{redact(self.url)} schema {self.schema}"


def publication(
    url: str | None, schema: str | None = None, *, check: bool = True
) -> Publication | None:
    """Where to publish (None without ``url``), checked before any run: no password in the
    URL, a plain schema name (lower-case letters, digits, ``_``) and, with ``check``, a
    database that answers and has PostGIS.

    Raises
    ------
    telcoplan.errors.PlanError
        A schema without a database, a password in the URL, a schema name that is not plain.
    telcoplan.errors.DatabaseError
        The database cannot be reached, or has no PostGIS.
    """
    if url is None:
        if schema is not None:
            raise PlanError(f"--schema {schema} names where to publish: give --publish URL too")
        return None
    problem = url_problem(url)
    if problem is not None:
        raise PlanError(f"--publish {redact(url)}: {problem}")
    name = DEFAULT_SCHEMA if schema is None else schema
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name) or name.startswith("pg_"):
        raise PlanError(
            f"--schema {name!r}: give a plain schema name (lower-case letters, digits and _, "
            "at most 63, not starting with pg_), e.g. telcoplan or quy_hoach_2025"
        )
    target = Publication(url.strip(), name)
    if check:
        with connect(target.url) as conn:
            found = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'").fetchone()
        if found is None:
            raise DatabaseError(
                f"{redact(url)}: PostGIS is not installed in this database; CREATE EXTENSION "
                "postgis (as a user allowed to), or publish to a database that has it"
            )
    return target


def publish_run(out_dir: str | os.PathLike, target: Publication, *, batch: bool = False) -> int:
    """Publish the finished run in ``out_dir`` to ``target``.

    With ``batch`` (one of several plans run together) the run goes into a schema of its own:
    the target's name followed by the output folder's (``telcoplan_danang_2025``), so that
    the plans of a batch do not replace each other's tables.

    Returns the run's ``id`` in the schema's ``runs`` table.

    Raises
    ------
    telcoplan.errors.InputFileError
        ``out_dir`` holds no finished run.
    telcoplan.errors.DatabaseError
        Nothing was published (the message says why; the previous tables are as they were).
    """
    out = Path(out_dir).resolve()
    summary = outputs.read_summary(out)
    listed = set(summary.get("outputs") or [])
    tables = {}
    for name in PUBLISHED_LAYERS:
        if listed and outputs.LAYERS[name][0] not in listed:
            continue
        layer = outputs.read_layer(out, name)
        if layer is not None:
            tables[name] = layer
    rasters = {n: str(out / n) for n in sorted(listed) if n.lower().endswith((".tif", ".tiff"))}
    provenance = summary.get("provenance") or {}
    run: dict[str, Any] = {
        "plan": summary.get("plan"),
        "plan_file": provenance.get("plan_file"),
        "telcoplan_version": summary.get("telcoplan_version"),
        "output_folder": str(out),
        "rasters": rasters,
        "summary": summary,
    }
    from telcoplan.gis.postgis import write_tables

    schema = _batch_schema(target, out) if batch else target.schema
    try:
        run_id = write_tables(target.url, schema, tables, run=run, descriptions=PUBLISHED_LAYERS)
    except DatabaseError as exc:
        raise DatabaseError(f"publishing {out} failed: {exc}") from None
    log.info(
        "published %s (%d tables, %d rasters by path) to %s schema %s as run %d",
        out, len(tables), len(rasters), redact(target.url), schema, run_id,
    )  # fmt: skip
    return run_id


def _batch_schema(target: Publication, folder: Path) -> str:
    """The schema of one plan of a batch: the target's, then the plan's output folder name
    (``telcoplan_danang_2025``), at most 63 characters."""
    stem = re.sub(r"[^a-z0-9]+", "_", outputs.slug(folder.name)).strip("_") or "plan"
    return f"{target.schema}_{stem}"[:63]
