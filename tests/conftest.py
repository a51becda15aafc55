"""Tiny synthetic fixtures, built in code, each with an explicit projected CRS."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, box

from telcoplan.gis.grid import GridSpec

UTM49 = "EPSG:32649"
#: Lower-left corner of the fixtures: an arbitrary point in UTM zone 49N (m).
X0, Y0 = 830_000.0, 1_775_000.0


@pytest.fixture
def grid10() -> GridSpec:
    """A 10x10 grid of 100 m cells in UTM 49N with its lower-left corner at (X0, Y0)."""
    return GridSpec.from_bounds((X0, Y0, X0 + 1000, Y0 + 1000), 100.0, UTM49)


@pytest.fixture
def areas4() -> gpd.GeoDataFrame:
    """Four 500 m x 500 m quadrant areas covering grid10, with round populations (total 10,000)."""
    boxes = [
        box(X0, Y0, X0 + 500, Y0 + 500),
        box(X0 + 500, Y0, X0 + 1000, Y0 + 500),
        box(X0, Y0 + 500, X0 + 500, Y0 + 1000),
        box(X0 + 500, Y0 + 500, X0 + 1000, Y0 + 1000),
    ]
    return gpd.GeoDataFrame(
        {
            "name": ["SW", "SE", "NW", "NE"],
            "population": [1000.0, 2000.0, 3000.0, 4000.0],
            "urban": [True, True, False, False],
        },
        geometry=boxes,
        crs=UTM49,
    )


@pytest.fixture
def towers5() -> gpd.GeoDataFrame:
    """Five valid towers of three operators inside areas4 (the schema's required and some optional columns)."""
    return gpd.GeoDataFrame(
        {
            "site_id": ["VT-1", "VT-2", "VNP-1", "MBF-1", "VT-3"],
            "operator": ["Viettel", "Viettel", "VinaPhone", "MobiFone", "Viettel"],
            "technology": ["4G", "4G", "4G", "3G", "5G"],
            "frequency_mhz": [1800.0, 1800.0, 2100.0, 2100.0, 3500.0],
            "height_m": [30.0, 35.0, 30.0, 25.0, 28.0],
            "eirp_dbm": [60.0, 60.0, 59.0, 58.0, 62.0],
            "name": ["Trạm Hải Châu 1", "Trạm 2", "Trạm 3", "Trạm 4", "Trạm 5"],
            "tenants": [1, 2, 2, 1, 1],
        },
        geometry=[
            Point(X0 + 100, Y0 + 100),
            Point(X0 + 400, Y0 + 600),
            Point(X0 + 400, Y0 + 600),
            Point(X0 + 900, Y0 + 200),
            Point(X0 + 700, Y0 + 800),
        ],
        crs=UTM49,
    )


@pytest.fixture
def roads3() -> gpd.GeoDataFrame:
    """Three connected road segments forming an L plus a spur."""
    return gpd.GeoDataFrame(
        {
            "road_id": ["r1", "r2", "r3"],
            "road_class": ["primary", "secondary", "residential"],
            "name": ["A", "B", "C"],
        },
        geometry=[
            LineString([(X0 + 50, Y0 + 50), (X0 + 950, Y0 + 50)]),
            LineString([(X0 + 950, Y0 + 50), (X0 + 950, Y0 + 950)]),
            LineString([(X0 + 500, Y0 + 50), (X0 + 500, Y0 + 500)]),
        ],
        crs=UTM49,
    )


def frame_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Deep equality of two (Geo)DataFrames, geometry included."""
    try:
        pd.testing.assert_frame_equal(a, b, check_dtype=True)
    except AssertionError:
        return False
    return True


def assert_unchanged(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> None:
    """Invariant: an input frame was not mutated (values, index, CRS, geometry)."""
    pd.testing.assert_frame_equal(before, after)
    assert before.crs == after.crs
    assert np.all(before.geometry.geom_equals_exact(after.geometry, 0.0))


def gdal_tool_or_skip(name: str) -> str:
    """Path of a GDAL command-line tool (Debian's gdal-bin), or skip the test; but fail when
    CI is set, as the PostGIS, browser and QGIS tests do (skipped with TELCOPLAN_SKIP_GDAL=1).

    In CI ``make test`` installs them: its ``qgis-deps`` installs Debian's python3-qgis, whose
    python3-qgis-common depends on gdal-bin. GDAL's own tools run in a subprocess: importing
    GDAL's Python bindings next to rasterio's bundled GDAL would load two GDAL libraries into
    one process (a crash)."""
    import os
    import shutil

    if os.environ.get("TELCOPLAN_SKIP_GDAL") == "1":
        pytest.skip("TELCOPLAN_SKIP_GDAL=1")
    exe = shutil.which(name)
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(
                f"the tests against GDAL's {name} must run in CI but it is absent; install "
                "Debian's gdal-bin (`make qgis-deps` brings it with QGIS), or set "
                "TELCOPLAN_SKIP_GDAL=1 to skip them deliberately",
                pytrace=False,
            )
        pytest.skip(f"{name} is absent (apt-get install gdal-bin)")
    return exe


@pytest.fixture(scope="session")
def postgis(tmp_path_factory):
    """A throw-away PostgreSQL + PostGIS cluster on a Unix socket, for the whole session
    (:mod:`tests.gis.postgis_cluster`): ``.url`` (role planner, whose password the server
    requires), ``.admin_url`` (superuser, no password), ``.password``, ``.execute(sql)``,
    ``.load_table(name, gdf)``.

    Skipped with TELCOPLAN_SKIP_POSTGIS=1; without PostgreSQL and PostGIS (``make
    postgis-deps`` installs them) the tests skip, but fail when CI is set."""
    import contextlib
    import os

    from tests.gis.postgis_cluster import UnavailableError, running_cluster

    if os.environ.get("TELCOPLAN_SKIP_POSTGIS") == "1":
        pytest.skip("TELCOPLAN_SKIP_POSTGIS=1")
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(running_cluster(tmp_path_factory.mktemp("postgis")))
        except UnavailableError as exc:
            if os.environ.get("CI"):
                pytest.fail(
                    f"the PostGIS tests must run in CI but {exc}; run `make postgis-deps` (as "
                    "root with apt: Debian's postgresql and postgresql-postgis), or set "
                    "TELCOPLAN_SKIP_POSTGIS=1 to skip them deliberately",
                    pytrace=False,
                )
            pytest.skip(f"{exc} (the PostGIS tests run in CI; make postgis-deps installs it)")
        yield cluster


@pytest.fixture(scope="session")
def dask_cluster():
    """A ``distributed.LocalCluster`` of 2 worker processes (one thread each, no dashboard),
    shared by the session's tests; the cluster's address is ``dask_cluster.scheduler_address``.
    Tests that need a client open their own (``distributed.Client(dask_cluster)``) and close it."""
    import warnings

    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        # distributed's start-up may warn about ports or slow scratch folders: not our concern
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    try:
        yield cluster
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cluster.close()


@pytest.fixture
def dask_client(dask_cluster):
    """A client of the session's :func:`dask_cluster` (closed after the test)."""
    import warnings

    import distributed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = distributed.Client(dask_cluster)
    try:
        yield client
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.close()


class ElsewhereClient:
    """A client whose workers answer the probe of :mod:`telcoplan.gis.cluster_io` as workers
    on other machines do (they cannot read this machine's temporary files): data then goes
    through Dask (scattered), as with a remote ``--scheduler``."""

    def __init__(self, client):
        self._client = client

    def run(self, fn, *args, **kw):
        return dict.fromkeys(self._client.nthreads())

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.fixture(params=["files", "scatter"])
def dask_client_both_ways(request, dask_client):
    """:func:`dask_client` as it is (its workers share our files) and as an
    :class:`ElsewhereClient` (data scattered)."""
    return dask_client if request.param == "files" else ElsewhereClient(dask_client)
