"""Make a folium map self-contained: its JavaScript and CSS come inline from the xstatic packages.

folium links Leaflet, jQuery, Bootstrap, Font Awesome, … from CDNs. :func:`inline_assets` walks
the map's element tree, takes those links away and puts the files that telcoplan's maps need
(Leaflet, Leaflet.markercluster, jQuery) into the page header instead, with Leaflet's CSS
images as ``data:`` URIs. Bootstrap, awesome-markers and Font Awesome are dropped (telcoplan's
maps use none of them); any other asset is an error rather than a silent network request.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from telcoplan.errors import TelcoplanError

__all__ = ["external_references", "inline_assets", "walk"]

#: folium asset name -> (xstatic package, file); inlined, in this order.
_INLINE: dict[str, tuple[str, str]] = {
    "leaflet_css": ("leaflet", "leaflet.css"),
    "markerclustercss": ("leaflet_markercluster", "MarkerCluster.css"),
    "markerclusterdefaultcss": ("leaflet_markercluster", "MarkerCluster.Default.css"),
    "leaflet": ("leaflet", "leaflet.js"),
    "jquery": ("jquery", "jquery.min.js"),
    "markerclusterjs": ("leaflet_markercluster", "leaflet.markercluster.js"),
}
#: folium defaults that telcoplan's maps do not use: left out of the page.
_DROPPED = frozenset(
    {
        "bootstrap",
        "bootstrap_css",
        "glyphicons_css",
        "awesome_markers",
        "awesome_markers_css",
        "awesome_markers_font_css",
        "awesome_rotate_css",
    }
)
_SOURCE_MAP = re.compile(r"(//[#@] sourceMappingURL=\S*|/\*[#@] sourceMappingURL=[^*]*\*/)")
_CSS_IMAGE = re.compile(r"url\((['\"]?)images/([\w.-]+\.png)\1\)")
_EXTERNAL_ATTR = re.compile(
    r"<(?:script|link|img|iframe|source|embed|object|audio|video)\b[^>]*?"
    r"\b(?:src|href|data|srcset)\s*=\s*[\"']?\s*((?:https?:)?//[^\"'\s>]+)",
    re.IGNORECASE,
)
_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)</style\s*>", re.IGNORECASE | re.DOTALL)
_STYLE_ATTR = re.compile(r"<[a-z][^>]*?\bstyle\s*=\s*(\"[^\"]*\"|'[^']*')", re.IGNORECASE)
_EXTERNAL_CSS = re.compile(r"(?:@import\s+|url\(\s*)[\"']?\s*((?:https?:)?//[^\"')\s]+)", re.I)


def _xstatic_dir(package: str) -> Path:
    import importlib

    try:
        module = importlib.import_module(f"xstatic.pkg.{package}")
    except ImportError as exc:
        raise TelcoplanError(
            f"the offline map needs the xstatic-{package.replace('_', '-')} package, "
            "which is missing; reinstall telcoplan (pip install telcoplan)"
        ) from exc
    return Path(module.BASE_DIR)


def _read_asset(name: str) -> str:
    package, filename = _INLINE[name]
    base = _xstatic_dir(package)
    text = _SOURCE_MAP.sub("", (base / filename).read_text(encoding="utf-8"))
    if filename.endswith(".css"):

        def data_uri(match: re.Match[str]) -> str:
            png = (base / "images" / match.group(2)).read_bytes()
            return f'url("data:image/png;base64,{base64.b64encode(png).decode("ascii")}")'

        text = _CSS_IMAGE.sub(data_uri, text)
        return "<style>\n" + text.replace("</style", "<\\/style") + "\n</style>"
    return "<script>\n" + text.replace("</script", "<\\/script") + "\n</script>"


def walk(element: Any) -> Iterator[Any]:
    """``element`` and every element under it, in tree order (depth first)."""
    yield element
    for child in list(getattr(element, "_children", {}).values()):
        yield from walk(child)


def _raw_element(text: str) -> Any:
    from branca.element import Element

    class _Raw(Element):
        """An element that renders to fixed text (not a Jinja template: JS may contain '{#')."""

        def render(self, **kwargs: Any) -> str:
            return text

    return _Raw()


def inline_assets(figure: Any) -> list[str]:
    """Replace the CDN links of every element under ``figure`` by inline copies.

    Modifies the element tree in place (idempotent): each element's ``default_js`` and
    ``default_css`` are emptied and the needed files are added to ``figure.header``.
    Returns the names of the inlined assets.

    Raises
    ------
    TelcoplanError
        If an element needs an asset that cannot be inlined (a folium plugin telcoplan does
        not ship offline), naming the asset and its URL.
    """
    wanted: dict[str, str] = {}
    for element in walk(figure):
        for attr in ("default_js", "default_css"):
            links = getattr(element, attr, None)
            if links:
                wanted.update(dict(links))
                setattr(element, attr, [])  # instance attribute: the class keeps its list
    unknown = {n: u for n, u in wanted.items() if n not in _INLINE and n not in _DROPPED}
    if unknown:
        listed = ", ".join(f"{n} ({u})" for n, u in sorted(unknown.items()))
        raise TelcoplanError(
            f"the map uses assets that cannot be embedded for offline use: {listed}; "
            "build the map with telcoplan.maps.interactive.build_map or drop those elements"
        )
    if "leaflet" in wanted:  # no favicon request either
        figure.header.add_child(_raw_element('<link rel="icon" href="data:,">'), name="tp_icon")
    names = [n for n in _INLINE if n in wanted]
    for name in names:
        figure.header.add_child(_raw_element(_read_asset(name)), name=f"tp_asset_{name}")
    return names


def external_references(html: str) -> list[str]:
    """URLs the page would fetch by itself: ``src``/``href`` of resource tags and CSS
    ``url()``/``@import`` pointing at ``http(s)://`` or ``//`` (links in ``<a>`` do not count).
    """
    css = [*_STYLE_BLOCK.findall(html), *_STYLE_ATTR.findall(html)]  # not the page's data
    return sorted(
        {*_EXTERNAL_ATTR.findall(html), *(u for c in css for u in _EXTERNAL_CSS.findall(c))}
    )
