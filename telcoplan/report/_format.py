"""Text helpers of the HTML report: escaping and number formatting with units.

Every function returns :class:`Safe` text (already HTML-escaped), which the report's builders
insert as is; any other value they receive is escaped first. Missing values (None, NaN, pandas
NA) read as an em dash.
"""

from __future__ import annotations

import html
import math
import numbers

from telcoplan.outputs import is_missing

__all__ = [
    "MISSING",
    "Safe",
    "esc",
    "fmt_count",
    "fmt_km",
    "fmt_km2",
    "fmt_m",
    "fmt_money",
    "fmt_num",
    "fmt_pct",
    "is_missing",
    "number",
]

#: What a missing value reads as.
MISSING = "—"


class Safe(str):
    """Text that is already HTML (escaped or built from escaped parts); inserted as is."""

    __slots__ = ()


def esc(value: object) -> Safe:
    """HTML-escape any value for element text or a quoted attribute value (``&<>"'``).

    :class:`Safe` text is returned unchanged, so escaping twice does no harm.
    """
    if isinstance(value, Safe):
        return value
    return Safe(html.escape(str(value), quote=True))


def number(value: object) -> float | None:
    """``value`` as a finite float, or None when it is missing, non-numeric or not finite."""
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            value = value.item()
        except (TypeError, ValueError):
            return None
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def fmt_num(value: object, digits: int = 0, unit: str = "") -> Safe:
    """``value`` with thousands separators and ``digits`` decimals, then ``unit`` after a space."""
    v = number(value)
    if v is None:
        return Safe(MISSING)
    text = f"{v:,.{digits}f}"
    if text.startswith("-") and float(text.replace(",", "")) == 0:
        text = text[1:]  # no "-0"
    return esc(f"{text} {unit}" if unit else text)


def fmt_count(value: object) -> Safe:
    """A count of persons or things: rounded to a whole number, thousands separators."""
    return fmt_num(value, 0)


def fmt_pct(value: object, digits: int = 1) -> Safe:
    """A percentage: ``99.9 %``."""
    return fmt_num(value, digits, "%")


def fmt_km(value: object) -> Safe:
    """A length in kilometres with one decimal: ``1,234.5 km``."""
    return fmt_num(value, 1, "km")


def fmt_km2(value: object) -> Safe:
    """An area in square kilometres; two decimals below 10 km², one above."""
    v = number(value)
    return fmt_num(v, 2 if v is not None and abs(v) < 10 else 1, "km²")


def fmt_m(value: object) -> Safe:
    """A distance in metres, whole metres: ``1,257 m``."""
    return fmt_num(value, 0, "m")


def fmt_money(value: object, currency: str = "USD") -> Safe:
    """An amount of money in whole units with the currency first: ``USD 1,234,567``."""
    v = number(value)
    if v is None:
        return Safe(MISSING)
    return esc(f"{currency} {v:,.0f}")
