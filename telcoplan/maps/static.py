"""The static plan figure: one PNG of areas, coverage and gaps, towers and backbone links.

Drawn with matplotlib's Agg canvas and artists directly (no ``pyplot`` and so no global
backend state; not ``GeoDataFrame.plot``, which imports pyplot), with DejaVu Sans, which has
every Vietnamese letter (``Ngũ Hành Sơn``). matplotlib is imported only when a figure is made.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from telcoplan import outputs
from telcoplan.errors import CRSError, TelcoplanError
from telcoplan.gis.atomic import atomic_path, check_writable
from telcoplan.gis.vector import has_shape
from telcoplan.maps._style import (
    ANY_COLOUR,
    GAP_COLOUR,
    JOINT_COLOUR,
    LINK_STATUS,
    NO_DATA_COLOUR,
    OTHER_STATUS,
    SITE_KIND_LABELS,
    SITE_KINDS,
    class_colour,
    coverage_class_labels,
    link_status,
    link_users,
    operators_at_location,
    pct_any,
    site_classes,
)

__all__ = ["figure_from_outputs", "plan_figure", "save_figure"]

log = logging.getLogger(__name__)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FONT = "DejaVu Sans"
#: Areas are labelled by default when there are at most this many (more would overlap).
MAX_AUTO_LABELS = 20


def _import_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - a dependency
        raise TelcoplanError(
            "the plan figure needs matplotlib, a dependency of telcoplan: reinstall it (pip install telcoplan)"
        ) from exc
    return matplotlib


def _dash(pattern: str | None) -> Any:
    """An SVG dash pattern (``"2 6"``) as a matplotlib line style."""
    if not pattern:
        return "solid"
    return (0, tuple(float(v) / 2 for v in pattern.split()))


def _parts(geom: Any, kind: str) -> list[Any]:
    """The ``Polygon`` or ``LineString`` parts of a geometry (others are skipped)."""
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == kind:
        return [geom]
    return [p for g in getattr(geom, "geoms", []) for p in _parts(g, kind)]


def _draw_polygons(ax: Any, geoms: gpd.GeoSeries, *, facecolors: Any, **kwargs: Any) -> None:
    """Polygons (with holes) as one PatchCollection; ``facecolors`` one per geometry or one."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path as MplPath

    per_geom = facecolors if isinstance(facecolors, list) else [facecolors] * len(geoms)
    patches, colours = [], []
    for geom, colour in zip(geoms, per_geom, strict=True):
        for poly in _parts(geom, "Polygon"):
            verts, codes = [], []
            for ring in (poly.exterior, *poly.interiors):
                xy = np.asarray(ring.coords)[:, :2]
                verts.append(xy)
                codes.append(
                    [MplPath.MOVETO] + [MplPath.LINETO] * (len(xy) - 2) + [MplPath.CLOSEPOLY]
                )
            patches.append(PathPatch(MplPath(np.concatenate(verts), np.concatenate(codes))))
            colours.append(colour)
    if patches:
        # the view is set once everything is drawn: no data limits to update
        ax.add_collection(PatchCollection(patches, facecolors=colours, **kwargs), autolim=False)


def _draw_lines(ax: Any, geoms: gpd.GeoSeries, colours: list[str], **kwargs: Any) -> None:
    """Lines (and multi-lines), one colour per geometry, as one LineCollection holding one
    path per colour: the parts of a colour one after the other, a row of NaN between two
    (matplotlib lifts the pen there). Agg strokes a few long paths faster than many short ones
    and simplifies each to the pixels as it draws it (a national backbone, 155,000 joint
    links: its part of the figure 1.0 s instead of 2.1 s)."""
    from matplotlib.collections import LineCollection

    segments, per_part = _line_parts(geoms, colours)
    if not segments:
        return
    codes, uniques = pd.factorize(pd.Series(per_part, dtype=object), use_na_sentinel=False)
    order = np.argsort(codes, kind="stable")  # the parts of each colour, in their order
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1)).tolist()
    gap = np.full((1, 2), np.nan)
    joined = []
    for a, b in itertools.pairwise(bounds):
        mine = [segments[i] for i in order[a:b].tolist()]
        joined.append(np.concatenate([x for seg in mine for x in (seg, gap)][:-1]))
    lines = LineCollection(joined, colors=list(uniques), **kwargs)
    ax.add_collection(lines, autolim=False)  # the view is set once everything is drawn


def _line_parts(geoms: gpd.GeoSeries, colours: list[str]) -> tuple[list[Any], list[str]]:
    """The (x, y) vertices of every non-empty line part of ``geoms`` and its geometry's
    colour; taken out all at once (:func:`shapely.to_ragged_array`: one array of vertices and
    where each part starts) when every geometry is a (multi-)line string (a national
    backbone's 155,000 parts one by one: 1 s), else part by part (:func:`_parts`)."""
    arr = geoms.to_numpy()
    if len(colours) != len(arr):
        raise ValueError(f"{len(colours)} colours for {len(arr)} line geometries")
    if len(arr) and np.isin(shapely.get_type_id(arr), _LINE_TYPES).all():
        _, xy, offsets = shapely.to_ragged_array(arr, include_z=False)
        starts = offsets[0]  # into xy, one a part, and the end
        if len(offsets) == 1:  # line strings: one part each
            owner = np.arange(len(arr))
        else:  # multi-line strings: offsets[1] into the parts, one a geometry, and the end
            owner = np.repeat(np.arange(len(arr)), np.diff(offsets[1]))
        keep = starts[1:] > starts[:-1]  # an empty part has no vertex
        # slices of one array (np.split: 3 times slower on 155,000 parts)
        segments = [
            xy[a:b]
            for a, b in zip(starts[:-1][keep].tolist(), starts[1:][keep].tolist(), strict=True)
        ]
        colour = list(colours)
        return segments, [colour[i] for i in owner[keep].tolist()]
    segments, per_part = [], []
    for geom, c in zip(geoms, colours, strict=True):
        for line in _parts(geom, "LineString"):
            segments.append(np.asarray(line.coords)[:, :2])
            per_part.append(c)
    return segments, per_part


#: shapely type ids of LineString and MultiLineString.
_LINE_TYPES = (1, 5)


def _projected(gdf: gpd.GeoDataFrame, crs: Any, what: str) -> gpd.GeoDataFrame:
    if gdf.crs is None:
        raise CRSError(f"{what} has no CRS; set it with gdf.set_crs('EPSG:…')")
    keep = has_shape(gdf.geometry)
    return gdf.loc[keep].to_crs(crs)


def _scale_bar(ax: Any, xmin: float, xmax: float, ymin: float, ymax: float) -> None:
    """A scale bar of a round length (km) in the lower right corner."""
    span = (xmax - xmin) / 5
    nice = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    km = max([n for n in nice if n * 1000 <= span] or [nice[0]])
    x1 = xmax - (xmax - xmin) * 0.03
    x0 = x1 - km * 1000
    y = ymin + (ymax - ymin) * 0.04
    ax.plot([x0, x1], [y, y], color="#000000", linewidth=3, solid_capstyle="butt", zorder=20)
    ax.text(
        (x0 + x1) / 2, y + (ymax - ymin) * 0.012, f"{km:g} km", ha="center", va="bottom", zorder=20
    )


def plan_figure(
    *,
    areas: gpd.GeoDataFrame,
    coverage: gpd.GeoDataFrame | None = None,
    gaps: gpd.GeoDataFrame | None = None,
    towers: gpd.GeoDataFrame | None = None,
    backbone: gpd.GeoDataFrame | None = None,
    sites: gpd.GeoDataFrame | None = None,
    title: str = "telcoplan plan",
    width_px: int = 1600,
    height_px: int = 1100,
    dpi: int = 100,
    labels: bool | None = None,
) -> bytes:
    """The plan as a PNG image (bytes).

    Parameters
    ----------
    areas : GeoDataFrame
        Areas filled by population covered by any operator (``pct_any`` in %, or
        ``covered_any``/``population``), labelled with ``name``.
    coverage : GeoDataFrame, optional
        Coverage polygons with ``operator``; the ``"any"`` row is outlined.
    gaps : GeoDataFrame, optional
        Coverage gaps, filled red.
    towers : GeoDataFrame, optional
        Towers with ``operator``: one colour per operator (as on the web map); shared sites
        (``tenants`` > 1) with a black edge.
    backbone : GeoDataFrame, optional
        Backbone links (``plan``, ``operators``, ``status``); only the joint plan is drawn
        when a ``plan`` column is present. Line style by status as on the web map.
    sites : GeoDataFrame, optional
        Proposed sites with ``kind`` (co-located / new / shared) as stars.
    title : str
        Figure title.
    width_px, height_px, dpi : int
        Image size in pixels (exact) and resolution (text size scales with ``dpi``).
    labels : bool, optional
        Write area names (``name``) on the map; default: when there are at most
        :data:`MAX_AUTO_LABELS` areas.

    Returns
    -------
    bytes
        A PNG image of ``width_px`` x ``height_px`` pixels.

    Notes
    -----
    Drawn in the areas' CRS when it is projected, else in their local UTM zone, so lengths
    on the scale bar are metres. Inputs are not modified.
    """
    _import_matplotlib()
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    for what, gdf in (
        ("areas", areas),
        ("coverage", coverage),
        ("gaps", gaps),
        ("towers", towers),
        ("backbone", backbone),
        ("sites", sites),
    ):
        if gdf is not None and not isinstance(gdf, gpd.GeoDataFrame):
            raise TypeError(f"{what} must be a GeoDataFrame, got {type(gdf).__name__}")
    if not (int(width_px) >= 100 and int(height_px) >= 100 and int(dpi) >= 10):
        raise ValueError(
            f"figure must be at least 100 x 100 px at 10 dpi, got {width_px}x{height_px}@{dpi}"
        )
    if areas.crs is None:
        raise CRSError("areas has no CRS; set it with gdf.set_crs('EPSG:…')")
    crs = areas.crs if CRS.from_user_input(areas.crs).is_projected else areas.estimate_utm_crs()
    area_p = _projected(areas, crs, "areas")

    def ops_of(gdf: gpd.GeoDataFrame | None, col: str) -> list[str]:
        if gdf is None or col not in gdf.columns:
            return []
        return list(gdf[col].dropna().astype(str).unique())  # the colours need each name once

    colours = outputs.operator_colours(
        ops_of(towers, "operator"),
        ops_of(coverage, "operator"),
        list(
            dict.fromkeys(
                o for ops in (link_users(backbone) if backbone is not None else []) for o in ops
            )
        ),
    )
    handles: list[Any] = []
    # text.parse_math off: a '$' in a name is a dollar sign, not TeX (which could fail)
    with rc_context(
        {
            "font.family": "sans-serif",
            "font.sans-serif": [_FONT],
            "font.size": 10,
            "text.parse_math": False,
        }
    ):
        fig = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.01, 0.01, 0.72, 0.92))
        ax.set_axis_off()
        ax.set_aspect("equal")

        pct = pct_any(area_p)
        _draw_polygons(
            ax,
            area_p.geometry,
            facecolors=[class_colour(p) for p in pct],
            edgecolor="#444444",
            linewidth=0.8,
            alpha=0.75,
            zorder=1,
        )
        if pct.notna().any():
            handles.append(Patch(color="none", label="Population covered (any operator)"))
            handles += [
                Patch(facecolor=c, edgecolor="#444444", label=t) for c, t in coverage_class_labels()
            ]
        if not pct.notna().all():
            handles.append(Patch(facecolor=NO_DATA_COLOUR, edgecolor="#444444", label="no figure"))

        if coverage is not None and "operator" in coverage.columns:
            any_cov = _projected(
                coverage[coverage["operator"].astype(str) == "any"], crs, "coverage"
            )
            if len(any_cov):
                _draw_polygons(
                    ax,
                    any_cov.geometry,
                    facecolors="none",
                    edgecolor=ANY_COLOUR,
                    linewidth=0.6,
                    zorder=2,
                )
                handles.append(
                    Line2D([], [], color=ANY_COLOUR, lw=1, label="coverage edge (any operator)")
                )
        if gaps is not None and len(gaps):
            _draw_polygons(
                ax,
                _projected(gaps, crs, "gaps").geometry,
                facecolors=GAP_COLOUR,
                edgecolor="#7f0000",
                linewidth=0.5,
                alpha=0.8,
                zorder=3,
            )
            handles.append(Patch(facecolor=GAP_COLOUR, edgecolor="#7f0000", label="coverage gap"))

        if backbone is not None and len(backbone):
            links = _projected(backbone, crs, "backbone")
            if "plan" in links.columns and (links["plan"].astype(str) == "joint").any():
                links = links[links["plan"].astype(str) == "joint"]
            status = link_status(links)
            users = link_users(links)
            known = list(LINK_STATUS)
            for st in sorted(set(status), key=lambda s: (known.index(s) if s in known else 99, s)):
                pick = [i for i, s in enumerate(status) if s == st]
                weight, dash, label = LINK_STATUS.get(st, (*OTHER_STATUS, st))
                cols = [
                    JOINT_COLOUR if len(users[i]) != 1 else colours.get(users[i][0], JOINT_COLOUR)
                    for i in pick
                ]
                _draw_lines(
                    ax,
                    links.geometry.iloc[pick],
                    cols,
                    linewidth=weight * 0.5,
                    linestyle=_dash(dash),
                    zorder=4,
                )
                handles.append(
                    Line2D(
                        [],
                        [],
                        color="#444444",
                        lw=weight * 0.5,
                        ls=_dash(dash),
                        label=f"backbone: {label}",
                    )
                )

        if towers is not None and len(towers) and "operator" in towers.columns:
            tw = _projected(towers, crs, "towers")
            tenants = (
                np.nan_to_num(np.asarray(tw["tenants"], dtype=float), nan=1.0)
                if "tenants" in tw.columns
                else np.ones(len(tw))
            )
            tenants = np.maximum(tenants, operators_at_location(tw).to_numpy())
            ops = tw["operator"].astype(str).to_numpy()
            x, y = tw.geometry.x.to_numpy(), tw.geometry.y.to_numpy()
            for op in sorted(set(ops)):
                # markers of one look per line: Agg draws the marker once and stamps it at
                # every point (100,000 towers: their part of the figure 0.5 s, 2.1 s as a
                # scatter of points sized one by one); an operator's shared sites on top
                for shared in (False, True):
                    sel = (ops == op) & ((tenants > 1) == shared)
                    if not sel.any():
                        continue
                    ax.add_line(
                        Line2D(
                            x[sel],
                            y[sel],
                            ls="",
                            marker="o",
                            ms=np.sqrt(22 if shared else 12),  # the diameter, in points
                            mfc=colours.get(op, "#666666"),
                            mec="#000000" if shared else "#ffffff",
                            mew=0.9 if shared else 0.3,
                            zorder=5,
                        )
                    )
                handles.append(
                    Line2D(
                        [],
                        [],
                        marker="o",
                        ls="",
                        color=colours.get(op, "#666666"),
                        mec="#ffffff",
                        ms=6,
                        label=f"towers: {op}",
                    )
                )
            if (tenants > 1).any():
                handles.append(
                    Line2D(
                        [],
                        [],
                        marker="o",
                        ls="",
                        color="#ffffff",
                        mec="#000000",
                        mew=1.2,
                        ms=7,
                        label="shared site",
                    )
                )

        if sites is not None and len(sites):
            st = _projected(sites, crs, "sites")
            kinds = site_classes(st)
            for kind in sorted(set(kinds)):
                sel = np.array([k == kind for k in kinds])
                ax.scatter(
                    st.geometry.x.to_numpy()[sel],
                    st.geometry.y.to_numpy()[sel],
                    s=90,
                    marker="*",
                    c=SITE_KINDS.get(kind, "#ffffff"),
                    edgecolors="#000000",
                    linewidths=0.6,
                    zorder=6,
                )
                handles.append(
                    Line2D(
                        [],
                        [],
                        marker="*",
                        ls="",
                        color=SITE_KINDS.get(kind, "#ffffff"),
                        mec="#000000",
                        ms=10,
                        label=f"proposed: {SITE_KIND_LABELS.get(kind, kind or 'site')}",
                    )
                )

        xmin, ymin, xmax, ymax = area_p.total_bounds
        pad = 0.02 * max(xmax - xmin, ymax - ymin, 1.0)
        ax.set_xlim(xmin - pad, xmax + pad)
        ax.set_ylim(ymin - pad, ymax + pad)
        if labels is None:
            labels = len(area_p) <= MAX_AUTO_LABELS
        if labels and "name" in area_p.columns:
            from matplotlib import patheffects

            halo = [patheffects.withStroke(linewidth=3, foreground="#ffffff")]
            for name, point in zip(area_p["name"], area_p.representative_point(), strict=True):
                ax.text(
                    point.x,
                    point.y,
                    str(name),
                    ha="center",
                    va="center",
                    fontsize=10,
                    fontweight="bold",
                    path_effects=halo,
                    zorder=10,
                )
        _scale_bar(ax, xmin - pad, xmax + pad, ymin - pad, ymax + pad)
        fig.suptitle(str(title), x=0.01, ha="left", fontsize=14, fontweight="bold")
        legend_ax = fig.add_axes((0.74, 0.01, 0.25, 0.92))
        legend_ax.set_axis_off()
        legend_ax.legend(handles=handles, loc="upper left", frameon=False, fontsize=9)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": "telcoplan"})
    return buf.getvalue()


def save_figure(png: bytes, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write PNG bytes (from :func:`plan_figure`) to ``path`` atomically.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``overwrite`` is False.
    ValueError
        If ``png`` is not a PNG image.
    """
    if not isinstance(png, bytes | bytearray) or not png.startswith(_PNG_SIGNATURE):
        raise ValueError("save_figure needs the PNG bytes returned by plan_figure")
    check_writable(path, overwrite)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(bytes(png))
    return Path(path)


def figure_from_outputs(
    out_dir: str | os.PathLike,
    layers: Mapping[str, gpd.GeoDataFrame | None] | None = None,
    *,
    summary: Mapping[str, Any] | None = None,
    title: str | None = None,
    **options: Any,
) -> bytes:
    """The plan figure (PNG bytes) of the plan in ``out_dir``; ``layers`` and ``summary`` as
    for :func:`telcoplan.maps.interactive.map_from_outputs`, ``options`` for
    :func:`plan_figure`."""
    from telcoplan.maps._outputs import read_plan_layers

    got = read_plan_layers(out_dir, layers, signal=False, summary=summary)
    keep = ("areas", "coverage", "gaps", "towers", "backbone", "sites")
    return plan_figure(
        **{k: v for k, v in got.vectors.items() if k in keep},
        title=title or str(got.summary.get("plan") or "telcoplan plan"),
        **options,
    )
