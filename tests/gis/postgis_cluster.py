"""A throw-away PostgreSQL + PostGIS cluster for the tests.

``initdb`` into a temporary folder, ``pg_ctl start`` listening on a Unix socket in that folder
only (no TCP port), a database with PostGIS, stopped and removed at the end of the session. No
system service is used or touched.

The server is the first PostgreSQL found with PostGIS (its extension scripts and its module):
Debian's ``/usr/lib/postgresql/<version>/bin`` (newest first), else the one ``pg_config`` on the
PATH names. PostgreSQL refuses to run as root, so as root (CI) the cluster belongs to an
unprivileged user (``postgres`` when it exists, else ``nobody``), its folder made in ``/tmp``
(pytest's folders are root's alone); otherwise it runs as the current user in the folder pytest
gives. ``make postgis-deps`` (a prerequisite of ``make test``) installs Debian's
packages when they are missing.

The database ``telcoplan_test`` belongs to ``planner``, whose password (:data:`PASSWORD`) the
server requires (SCRAM): a connection as planner works only with the password from the
environment or a password file. The superuser ``postgres`` connects without one (trust) to
set up and inspect.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: planner's password: what no log, message, summary or table may show.
PASSWORD = "Pw-7f3a9c-không-lộ"
DATABASE = "telcoplan_test"
ROLE = "planner"


class UnavailableError(RuntimeError):
    """No PostgreSQL with PostGIS here, or it cannot be started (the reason says why)."""


def _version(bindir: Path) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", bindir.parent.name)) or (0,)


def find_server() -> tuple[Path, Path, Path]:
    """(bin folder with initdb and pg_ctl, share folder holding PostGIS' extension scripts,
    library folder holding its module)."""
    candidates: list[tuple[Path, Path, Path]] = []
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version, reverse=True):
        version = bindir.parent.name
        candidates.append((bindir, Path("/usr/share/postgresql") / version, bindir.parent / "lib"))
    for config in [*(b / "pg_config" for b, _, _ in candidates), shutil.which("pg_config")]:
        if config is None or not Path(config).exists():
            continue
        with contextlib.suppress(OSError, subprocess.CalledProcessError, IndexError):
            out = subprocess.run(
                [str(config), "--bindir", "--sharedir", "--pkglibdir"],
                capture_output=True, text=True, check=True,
            ).stdout.split("\n")  # fmt: skip
            found = tuple(Path(line.strip()) for line in out[:3])
            if found not in candidates:
                candidates.append(found)  # type: ignore[arg-type]
    for bindir, share, lib in candidates:
        if (
            (bindir / "initdb").exists()
            and (bindir / "pg_ctl").exists()
            and (share / "extension" / "postgis.control").exists()
            and any(lib.glob("postgis-3*.so"))
        ):
            return bindir, share, lib
    if not candidates:
        raise UnavailableError("PostgreSQL's server (initdb, pg_ctl) is not installed")
    raise UnavailableError(
        "PostGIS is not installed for the PostgreSQL found here "
        f"({', '.join(str(b) for b, _, _ in candidates)})"
    )


def _server_user() -> str | None:
    """The unprivileged user the server runs as when we are root (None: ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise UnavailableError(
        "running as root, and there is no user postgres or nobody to run the server"
    )


def _as(user: str | None, args: list[str]) -> list[str]:
    """``args`` run as ``user`` (runuser, else su), or as ourselves."""
    if user is None:
        return args
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *args]
    return ["su", user, "-s", "/bin/sh", "-c", shlex.join(args)]


@dataclass(frozen=True)
class Cluster:
    """A running cluster: its folder (the socket is there) and connection URLs."""

    folder: Path
    #: planner's URL: needs the password (PGPASSWORD or a password file)
    url: str
    #: the superuser's URL (trust: no password)
    admin_url: str
    password: str = PASSWORD

    def execute(self, statement: str, params: tuple = ()) -> list[tuple]:
        """Run one statement as the superuser (autocommit); its rows, if any."""
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            cur = conn.execute(statement, params or None)
            return cur.fetchall() if cur.description is not None else []

    def load_table(self, table: str, gdf, *, key: str | None = "gid", srid: int | None = None):
        """Create ``schema.table`` (owned by planner) from ``gdf`` with plain SQL (not
        telcoplan's writer): a serial primary key ``key`` (None: none; or the name of a column
        of ``gdf`` made the key), text/double/bigint/boolean columns, ``geom`` of the frame's
        EPSG code (or ``srid``) from WKB via ``ST_GeomFromWKB``."""
        import psycopg
        import shapely
        from psycopg import sql

        schema, name = table.split(".")
        srid = gdf.crs.to_epsg() if srid is None else srid
        data = gdf.drop(columns=gdf.geometry.name)
        kinds = {"b": "boolean", "i": "bigint", "f": "double precision"}
        cols = [(str(c), kinds.get(data[c].dtype.kind, "text")) for c in data.columns]
        defs = [sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in cols]
        if key is not None and key not in data.columns:
            defs.insert(0, sql.SQL("{} serial PRIMARY KEY").format(sql.Identifier(key)))
        elif key is not None:
            defs.append(sql.SQL("PRIMARY KEY ({})").format(sql.Identifier(key)))
        defs.append(sql.SQL("geom geometry(Geometry, {})").format(sql.Literal(srid)))
        ident = sql.Identifier(schema, name)
        wkb = shapely.to_wkb(gdf.geometry.to_numpy())
        rows = [
            (*(None if v != v else v for v in row), g)  # NaN → NULL
            for row, g in zip(data.astype(object).itertuples(index=False), wkb, strict=True)
        ]
        with psycopg.connect(self.admin_url) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(schema), sql.Identifier(ROLE)))  # fmt: skip
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, sql.SQL(", ").join(defs)))
            names = sql.SQL(", ").join(sql.Identifier(c) for c, _ in [*cols, ("geom", "")])
            marks = sql.SQL(", ").join(
                [*(sql.Placeholder() for _ in cols), sql.SQL("ST_GeomFromWKB(%s, {})").format(
                    sql.Literal(srid))]
            )  # fmt: skip
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(ident, names, marks), rows
                )
            conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(ident, sql.Identifier(ROLE)))


@contextlib.contextmanager
def running_cluster(tmp_folder: Path) -> Iterator[Cluster]:
    """Start a throw-away cluster (in ``tmp_folder`` unless we are root), stop it on exit.

    Raises :class:`UnavailableError` when there is no PostgreSQL with PostGIS, psycopg is missing,
    or the server does not start (with initdb's or the server's log)."""
    try:
        import psycopg
    except ImportError:
        raise UnavailableError("psycopg is not installed (pip install -e '.[test]')") from None
    bindir, _, _ = find_server()
    user = _server_user()
    if user is None:
        folder = Path(tempfile.mkdtemp(prefix="pg-", dir=tmp_folder))
    else:
        # pytest's folders (and maybe TMPDIR) are root's alone: the server's user could not
        # enter them; /tmp is open to all (and short: a socket path has at most 107 bytes)
        base = "/tmp" if Path("/tmp").is_dir() else tempfile.gettempdir()
        folder = Path(tempfile.mkdtemp(prefix="telcoplan-pg-", dir=base))
        info = pwd.getpwnam(user)
        os.chown(folder, info.pw_uid, info.pw_gid)
    data, log = folder / "data", folder / "server.log"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    for var in ("PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD"):
        env.pop(var, None)

    def run(args: list[str], what: str) -> None:
        done = subprocess.run(
            _as(user, args), cwd=folder, env=env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise UnavailableError(f"{what} failed: {done.stdout}{done.stderr}{tail}")

    started = False
    try:
        run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E",
             "UTF8", "--locale=C", "--no-sync"],
            "initdb",
        )  # fmt: skip
        # planner must give its password; the superuser is trusted (the socket is ours alone)
        hba = data / "pg_hba.conf"
        hba.write_text(f"local all {ROLE} scram-sha-256\nlocal all all trust\n")
        if user is not None:
            info = pwd.getpwnam(user)
            os.chown(hba, info.pw_uid, info.pw_gid)
        options = (
            f"-k {folder} -c listen_addresses='' -c fsync=off -c full_page_writes=off "
            "-c synchronous_commit=off"
        )
        run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
             "-o", options, "start"],
            "pg_ctl start",
        )  # fmt: skip
        started = True
        host = f"host={folder}"
        admin_url = f"postgresql://postgres@/postgres?{host}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        admin_url = f"postgresql://postgres@/{DATABASE}?{host}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            try:
                conn.execute("CREATE EXTENSION postgis")
            except psycopg.Error as exc:
                raise UnavailableError(f"CREATE EXTENSION postgis failed: {exc}") from None
        yield Cluster(folder, f"postgresql://{ROLE}@/{DATABASE}?{host}", admin_url)
    finally:
        if started:
            with contextlib.suppress(UnavailableError, subprocess.TimeoutExpired):
                # immediate: no shutdown checkpoint, the cluster is thrown away
                run(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                    "stop",
                )
        for _ in range(3):  # the server may still be removing its socket
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(folder)
                break
            time.sleep(0.1)
