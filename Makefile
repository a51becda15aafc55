# telcoplan — set-up and checks. `make demo` and `make test` work from a fresh clone on a machine
# with only python3, pip and make.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.installed

.PHONY: demo test install bytecode lint format bench bench-national clean browser-deps postgis-deps qgis-deps clean-kernels

demo: bytecode
	$(VENV)/bin/telcoplan demo --out demo-output --overwrite

# the suite in TEST_WORKERS processes (pytest-xdist; a test file stays in one process: its
# module fixtures are made once); TEST_WORKERS=0 runs it in this process
TEST_WORKERS ?= 2

test: bytecode browser-deps postgis-deps qgis-deps
	$(PY) -m pytest -q --durations=25 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

install: bytecode

# our modules' bytecode, compiled where it is stale: pip compiles a package it installs, not an
# editable one; without it, where PYTHONDONTWRITEBYTECODE is set (as on our development machines), every
# command compiled ~90 modules on start: `telcoplan coverage` on 1 M cells 3.0 -> 2.5 s
bytecode: $(STAMP)
	$(PY) -m compileall -q telcoplan

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Re-install when the package's metadata changes ("creates or updates the same venv"; the
# version is read from telcoplan/_version.py).
$(STAMP): pyproject.toml telcoplan/_version.py | $(VENV)/bin/python
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[test,maps,bench]"
	@# compile (and cache) the numba kernels once, on a coarse demo, so that a user's first plan
	@# does not wait ~30 s for them (the cache lives beside the sources)
	$(MAKE) --no-print-directory clean-kernels
	rm -rf $(VENV)/warm-up
	$(VENV)/bin/telcoplan demo --out $(VENV)/warm-up --resolution 1000 -qq
	@# the coverage kernel of plans without terrain (the demo's has terrain; the national demo's
	@# does not: its first run would compile it for ~14 s)
	$(VENV)/bin/telcoplan coverage --towers $(VENV)/warm-up/inputs/towers.gpkg \
	  --area $(VENV)/warm-up/inputs/areas.gpkg --resolution 1000 --out $(VENV)/warm-up/flat -qq
	rm -rf $(VENV)/warm-up
	@# the terrain kernel and the site planner's candidate kernel on a DEM that is not exactly
	@# float32 (a DEM warped onto the plan grid, as the real city's SRTM tiles are; the demo's DEM
	@# is on its grid): ~1 min to compile on 2 cores
	$(VENV)/bin/python -c "import numpy as np, geopandas as gpd; from telcoplan.gis.grid import GridSpec; from telcoplan.coverage.bestserver import best_server; g = GridSpec.from_bounds((0, 0, 400, 400), 100.0, 'EPSG:32649'); t = gpd.GeoDataFrame({'operator': ['a'], 'frequency_mhz': [900.0], 'height_m': [30.0], 'eirp_dbm': [60.0]}, geometry=gpd.points_from_xy([150.0], [150.0]), crs=g.crs); best_server(t, g, dem=np.full(g.shape, 0.1), max_radius_km=1.0, coverage_rank=[0]); from telcoplan.coverage.candidates import candidate_coverage; candidate_coverage(t, g, np.arange(16), threshold_power_dbm=-100.0, dem=np.full(g.shape, 0.1), max_radius_km=1.0)"
	@# the Steiner local search used on small graphs (the demo's road graph is larger)
	$(VENV)/bin/python -c "import networkx as nx; from telcoplan.backbone.steiner import steiner_tree; g = nx.grid_2d_graph(6, 6); nx.set_edge_attributes(g, 1.0, 'weight'); steiner_tree(g, [(0, 0), (5, 5), (0, 5)])"
	@# the public API's line of sight (each method; the antenna inside and outside the grid) and
	@# terrain loss on a float64 DEM, as a notebook calls them (~26 s to compile on 2 cores)
	$(VENV)/bin/python -c "import numpy as np; from telcoplan.gis.grid import GridSpec; from telcoplan.coverage.terrain import line_of_sight; from telcoplan.coverage.profile import terrain_profile_loss; g = GridSpec.from_bounds((0, 0, 1000, 1000), 100.0, 'EPSG:32649'); d = np.random.default_rng(0).random(g.shape) * 50; [line_of_sight(d, g, x, 550.0, 30.0, radius_m=400.0, method=m) for m in ('sweep', 'planes', 'exact') for x in (550.0, -50.0)]; terrain_profile_loss(d, g, 150.0, 150.0, 30.0, 850.0, 850.0, 1.5, 900.0)"
	@# the polygon tracer of large grids (the demo's grid is polygonized by rasterio)
	$(VENV)/bin/python -c "import numpy as np; from telcoplan.gis._trace import find_runs, label_runs, trace_rings; [trace_rings(*r[:3], label_runs(*r), 3, True) for a in (np.eye(3, dtype=np.uint8), np.eye(3, dtype=np.int32)) for r in [find_runs(a)]]"
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check telcoplan tests benchmarks
	$(VENV)/bin/ruff format --check telcoplan tests benchmarks
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format telcoplan tests benchmarks
	$(VENV)/bin/ruff check --fix telcoplan tests benchmarks

bench: bytecode
	$(PY) benchmarks/bench_zonal.py
	$(PY) benchmarks/bench_bestserver.py
	$(PY) benchmarks/bench_coverage_cli.py
	$(PY) benchmarks/bench_terrain.py
	$(PY) benchmarks/bench_coverage_terrain.py
	$(PY) benchmarks/bench_steiner.py
	$(PY) benchmarks/bench_rings.py --peer-sites 100   # the full networkx peer takes ~16 min: --peer-sites 2000
	$(PY) benchmarks/bench_sites.py --milp-limit 300   # ~11 min, mostly the HiGHS reference runs
	$(PY) benchmarks/bench_review.py

# 100k sites, 33 M cells: minutes and ~2 GB
bench-national: bytecode
	$(PY) benchmarks/bench_national.py

# The browser tests drive Debian's chromium (playwright's own browser download does not work
# offline). Installed when missing and we are root with apt; otherwise say how.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  if command -v apt-get >/dev/null 2>&1 && { [ -z "$$SUDO" ] || sudo -n true 2>/dev/null; }; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: install it (sudo apt-get install chromium) or set TELCOPLAN_SKIP_BROWSER=1"; \
	  fi; }

# The PostGIS tests start a throw-away cluster of their own (initdb and pg_ctl on a Unix socket
# in a temporary folder, no service): Debian's PostgreSQL server with PostGIS is installed when
# no PostgreSQL here has PostGIS and we are root with apt; otherwise say how.
postgis-deps:
	@found=""; \
	for bin in /usr/lib/postgresql/*/bin; do \
	  v=$$(basename "$$(dirname "$$bin")"); \
	  if [ -x "$$bin/initdb" ] && [ -f "/usr/share/postgresql/$$v/extension/postgis.control" ] \
	    && ls "/usr/lib/postgresql/$$v/lib/"postgis-3*.so >/dev/null 2>&1; then found=1; fi; \
	done; \
	if [ -z "$$found" ] && command -v pg_config >/dev/null 2>&1 \
	  && [ -x "$$(pg_config --bindir)/initdb" ] \
	  && [ -f "$$(pg_config --sharedir)/extension/postgis.control" ] \
	  && ls "$$(pg_config --pkglibdir)/"postgis-3*.so >/dev/null 2>&1; then found=1; fi; \
	[ -n "$$found" ] || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  if command -v apt-get >/dev/null 2>&1 && { [ -z "$$SUDO" ] || sudo -n true 2>/dev/null; }; then \
	    echo "installing Debian's PostgreSQL server and PostGIS for the PostGIS tests"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql-postgis >/dev/null; \
	  else \
	    echo "PostgreSQL with PostGIS is missing: install it (sudo apt-get install postgresql-postgis) or set TELCOPLAN_SKIP_POSTGIS=1"; \
	  fi; }

# One test opens a run's project.qgs in QGIS itself, headless, through Debian's QGIS Python
# bindings for the system python3 (~2 min to install: about 280 packages). Installed when missing
# and we are root with apt; otherwise say how.
# (with GDAL's command-line tools, which the tests compare our viewshed and rasters with)
qgis-deps:
	@{ /usr/bin/python3 -c "import qgis.core" && command -v gdal_viewshed; } >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  if command -v apt-get >/dev/null 2>&1 && { [ -z "$$SUDO" ] || sudo -n true 2>/dev/null; }; then \
	    echo "installing Debian's QGIS Python bindings for the QGIS test"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends python3-qgis qgis-providers gdal-bin >/dev/null; \
	  else \
	    echo "QGIS's Python bindings are missing: install them (sudo apt-get install python3-qgis qgis-providers gdal-bin) or set TELCOPLAN_SKIP_QGIS=1 and TELCOPLAN_SKIP_GDAL=1"; \
	  fi; }

clean:
	rm -rf $(VENV) demo-output .pytest_cache build *.egg-info

# numba checks a cached kernel against its own file only: after editing a module whose functions a
# kernel inlines (coverage/visibility.py, profile.py, _kernel_common.py …), drop the caches
clean-kernels:
	find telcoplan -name '*.nbi' -delete -o -name '*.nbc' -delete
