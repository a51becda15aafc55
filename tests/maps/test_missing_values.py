"""One missing-value test for every output: ``telcoplan.outputs.is_missing`` says what
``pandas.isna`` says of a single value, and the map's operator lists and flags use it."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pandas as pd
import pytest

from telcoplan.maps._style import split_ops, truthy
from telcoplan.outputs import is_missing

VALUES = [
    None,
    float("nan"),
    -float("nan"),
    math.inf,
    0.0,
    -0.0,
    1.5,
    0,
    7,
    True,
    False,
    "",
    "nan",
    "Viettel;MobiFone",
    b"x",
    np.float32("nan"),
    np.float64("nan"),
    np.float16(2.0),
    np.complex64(complex("nan")),
    np.int64(3),
    np.uint8(0),
    np.bool_(False),
    np.str_("VinaPhone"),
    np.datetime64("NaT"),
    np.datetime64("2026-12-08"),
    np.timedelta64("NaT"),
    np.timedelta64(3, "s"),
    pd.NA,
    pd.NaT,
    pd.Timestamp("2026-12-08"),
    datetime.date(2026, 12, 8),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_is_missing_is_pandas_isna_on_one_value(value: object) -> None:
    assert is_missing(value) == bool(pd.isna(value))


@pytest.mark.parametrize("value", [None, float("nan"), pd.NA, np.datetime64("NaT"), pd.NaT])
def test_a_missing_operator_list_or_flag_is_empty_or_false(value: object) -> None:
    assert split_ops(value) == []
    assert truthy(value) is False


def test_operator_lists_and_flags_of_present_values() -> None:
    assert split_ops("Viettel; MobiFone,VinaPhone") == ["Viettel", "MobiFone", "VinaPhone"]
    assert split_ops(np.str_("Viettel")) == ["Viettel"]
    assert [truthy(v) for v in ("yes", "No", 1, 0, np.bool_(True), 2.5)] == [
        True,
        False,
        True,
        False,
        True,
        True,
    ]
