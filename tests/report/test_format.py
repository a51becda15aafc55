"""Number formatting and escaping helpers of the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from telcoplan.report._format import (
    MISSING,
    Safe,
    esc,
    fmt_count,
    fmt_km,
    fmt_km2,
    fmt_m,
    fmt_money,
    fmt_num,
    fmt_pct,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (fmt_count(1_134_310.4), "1,134,310"),
        (fmt_count(np.int64(600)), "600"),
        (fmt_pct(99.927), "99.9 %"),
        (fmt_pct(100), "100.0 %"),
        (fmt_km(1234.56), "1,234.6 km"),
        (fmt_km2(1.32), "1.32 km²"),
        (fmt_km2(711.541), "711.5 km²"),
        (fmt_m(1256.86), "1,257 m"),
        (fmt_money(2_100_000.4), "USD 2,100,000"),
        (fmt_money(5, "VND"), "VND 5"),
        (fmt_num(-0.0001, 1), "0.0"),
        (fmt_num(np.float32(2.5), 2, "dBm"), "2.50 dBm"),
    ],
)
def test_numbers(text, expected):
    assert text == expected
    assert isinstance(text, Safe)


@pytest.mark.parametrize(
    "missing", [None, float("nan"), np.nan, np.float32("nan"), pd.NA, float("inf"), "x", True]
)
def test_missing_or_non_numeric_is_a_dash(missing):
    assert fmt_count(missing) == MISSING
    assert fmt_money(missing) == MISSING


def test_esc_is_idempotent_on_safe_text():
    once = esc('<a href="x">')
    assert once == "&lt;a href=&quot;x&quot;&gt;"
    assert esc(once) == once  # Safe text is not escaped twice
    assert esc("Hòa Vang") == "Hòa Vang"  # non-ASCII stays literal
