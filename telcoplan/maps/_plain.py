"""folium elements whose rendered text is not compiled again as a Jinja template.

branca's ``MacroElement.render`` wraps the text each macro renders (``header``, ``html``,
``script``) in ``Element(text)``, which compiles it as a Jinja template, and renders that
template once more when the page is put together. For a GeoJSON layer, an image overlay or the
towers' arrays that text holds the layer's data: a national map's 30 MB went through Jinja's
lexer twice more (4 s). The elements here render the same way, except that a text without
Jinja syntax is kept as it is; rendering it as a template would give the text back unchanged
but for one trailing newline, which is dropped here too, so the page is byte-identical. A text
with ``{{``, ``{%``, ``{#`` or a carriage return (which Jinja would turn into a newline) still
goes through Jinja, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

__all__ = ["plain_classes", "text_element"]

#: What Jinja would not give back unchanged in a template's text.
_JINJA = ("{{", "{%", "{#", "\r")


@cache
def _text_class() -> type:
    from branca.element import Element

    class Text(Element):
        """Fixed text, as ``Element(text)`` renders it when ``text`` has no Jinja syntax."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

        def render(self, **kwargs: Any) -> str:
            return self.text

    return Text


def text_element(text: str) -> Any:
    """An element that renders like ``branca.element.Element(text)``, without compiling
    ``text`` when it has no Jinja syntax (Jinja then only drops one trailing newline)."""
    from branca.element import Element

    if any(s in text for s in _JINJA):
        return Element(text)
    return _text_class()(text[:-1] if text.endswith("\n") else text)


@cache
def plain_classes() -> tuple[type, type, type]:
    """``(PlainMacro, GeoJson, ImageOverlay)``: a ``MacroElement`` base whose rendered macros
    are kept as text (:func:`text_element`), and folium's GeoJSON layer and image overlay
    rendering that way (same options, same page)."""
    import folium
    from branca.element import Figure, MacroElement

    class PlainMacro(MacroElement):
        """``MacroElement`` whose rendered header, html and script are not compiled again."""

        def finish_text(self, part: str, text: str) -> str:
            """The rendered text of ``part`` (header, html or script) as it goes on the page."""
            return text

        def render(self, **kwargs: Any) -> None:
            # MacroElement.render (branca 0.8), with text_element for Element
            figure = self.get_root()
            if not isinstance(figure, Figure):
                raise TypeError("You cannot render this Element if it is not in a Figure.")
            macros = self._template.module.__dict__
            for part in ("header", "html", "script"):
                macro = macros.get(part)
                if macro is not None:
                    getattr(figure, part).add_child(
                        text_element(self.finish_text(part, macro(self, kwargs))),
                        name=self.get_name(),
                    )
            for element in self._children.values():
                element.render(**kwargs)

    class GeoJson(folium.GeoJson, PlainMacro):
        """folium's GeoJson, its data not compiled as a template; with ``fill`` (from
        :func:`telcoplan.maps._web.feature_collection_deferred`), its data's coordinates are
        put in its script's text then."""

        fill: Callable[[str], str] | None = None

        def finish_text(self, part: str, text: str) -> str:
            return self.fill(text) if part == "script" and self.fill is not None else text

    class ImageOverlay(folium.raster_layers.ImageOverlay, PlainMacro):
        """folium's ImageOverlay, its ``data:`` URI not compiled as a template."""

    return PlainMacro, GeoJson, ImageOverlay
