"""Group labels of the best-server kernel: the factorised names against the per-row join they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telcoplan.coverage.bestserver import _group_labels, best_server
from tests.conftest import assert_unchanged


def joined_labels(frame: pd.DataFrame, group_by) -> tuple[tuple[str, ...], np.ndarray]:
    """The former expression, verbatim: one ``"/".join`` per row, then ``tuple.index`` per row."""
    cols = [group_by] if isinstance(group_by, str) else list(group_by)
    labels = (
        frame[cols].astype(str).agg("/".join, axis=1).to_numpy()
        if len(frame)
        else np.array([], dtype=object)
    )
    groups = tuple(sorted(set(labels)))
    group = np.array([groups.index(g) for g in labels], dtype=np.int64)
    return groups, group


# operator-like names: unicode (Vietnamese, CJK, emoji), the separator itself, look-alikes of
# missing values and of numbers, so that distinct values can give equal strings or names
_WORDS = ["Viettel", "VinaPhone", "MobiFone", "Mạng Việt", "中国移动", "📶", "a/b", "a", "b", "/"]
_LOOKALIKES = ["", " ", "nan", "None", "<NA>", "1", "1.0", "True"]
_NAMES = st.one_of(st.sampled_from(_WORDS + _LOOKALIKES), st.text(alphabet="aé/ố 中", max_size=3))
_MISSING = st.sampled_from([None, np.nan])
_NUMBERS = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.0, -0.0, 1e20, np.inf]))
_KINDS = ("text", "text with missing", "mixed", "float", "int", "bool", "str dtype", "category")


@st.composite
def columns(draw, n: int) -> pd.Series:
    """One group column of ``n`` rows, of a random kind."""
    kind = draw(st.sampled_from(_KINDS))
    if kind == "text":
        return pd.Series(draw(st.lists(_NAMES, min_size=n, max_size=n)), dtype=object)
    if kind == "text with missing":
        vals = draw(st.lists(st.one_of(_NAMES, _MISSING), min_size=n, max_size=n))
        return pd.Series(vals, dtype=object)
    if kind == "mixed":
        vals = draw(st.lists(st.one_of(_NAMES, _MISSING, _NUMBERS), min_size=n, max_size=n))
        return pd.Series(vals, dtype=object)
    if kind == "float":
        vals = draw(st.lists(st.sampled_from([900.0, 1800.0, 0.1, np.nan]), min_size=n, max_size=n))
        return pd.Series(vals, dtype=np.float64)
    if kind == "int":
        return pd.Series(draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), dtype=np.int64)
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    vals = draw(st.lists(st.one_of(_NAMES, _MISSING), min_size=n, max_size=n))
    return pd.Series(vals, dtype="str" if kind == "str dtype" else "category")


@st.composite
def frames(draw) -> tuple[pd.DataFrame, str | list[str]]:
    """A frame of 0–40 rows with one or two group columns (sometimes the same one twice)."""
    n = draw(st.integers(0, 40))
    k = draw(st.integers(1, 2))
    index = pd.Index(
        draw(st.lists(st.sampled_from(["S1", "S2", "S3", "Trạm"]), min_size=n, max_size=n))
    )
    data = {f"c{j}": draw(columns(n)).set_axis(index) for j in range(k)}
    frame = pd.DataFrame(data, index=index)
    group_by = draw(
        st.sampled_from(
            ["c0", ["c0"], ["c0", "c0"]] + ([["c0", "c1"], ["c1", "c0"]] if k == 2 else [])
        )
    )
    return frame, group_by


@settings(max_examples=400, deadline=None)
@given(frames())
def test_same_groups_order_and_index_as_the_joined_labels(case):
    frame, group_by = case
    before = frame.copy()
    try:
        expected = joined_labels(frame, group_by)
    except TypeError:  # pandas ≥ 3: a missing value stays missing through astype(str)
        with pytest.raises(TypeError, match="missing value"):
            _group_labels(frame, group_by)
        return
    groups, group = _group_labels(frame, group_by)
    assert groups == expected[0]
    assert all(type(g) is str for g in groups)
    assert group.dtype == np.int64
    np.testing.assert_array_equal(group, expected[1])
    pd.testing.assert_frame_equal(frame, before)


def test_names_that_collide_are_one_group():
    # ("a/b", "c") and ("a", "b/c") both read "a/b/c"; 1 and 1.0 factorise together but print apart
    frame = pd.DataFrame(
        {"x": ["a/b", "a", "a/b", 1, 1.0], "y": ["c", "b/c", "c", "z", "z"]},
        index=["S1", "S2", "S3", "S4", "S5"],
    )
    groups, group = _group_labels(frame, ["x", "y"])
    assert groups == ("1.0/z", "1/z", "a/b/c")
    np.testing.assert_array_equal(group, [2, 2, 2, 1, 0])


def test_missing_value_names_the_column_and_tower():
    frame = pd.DataFrame({"operator": ["Viettel", None]}, index=["VT-1", "VT-2"])
    try:
        joined_labels(frame, "operator")
    except TypeError:
        with pytest.raises(TypeError, match=r"'operator' has a missing value \(tower 'VT-2'\)"):
            _group_labels(frame, "operator")
    else:  # pandas 2: astype(str) spells the missing value out, and so do the labels
        groups, group = _group_labels(frame, "operator")
        assert groups == ("None", "Viettel")
        np.testing.assert_array_equal(group, [1, 0])


def test_best_server_groups_by_operator_and_technology(towers5, grid10):
    before = towers5.copy()
    res = best_server(
        towers5, grid10, model="fspl", group_by=["operator", "technology"], validity="ignore"
    )
    assert res.groups == ("MobiFone/3G", "Viettel/4G", "Viettel/5G", "VinaPhone/4G")
    names = (towers5["operator"] + "/" + towers5["technology"]).to_numpy()
    for g, name in enumerate(res.groups):  # every layer is served by its own group's towers only
        served = np.unique(res.server[g][res.server[g] >= 0])
        assert served.size
        assert set(names[served]) == {name}
    assert_unchanged(towers5, before)


def test_equal_to_the_join_on_5k_towers():
    """The factorised labels equal the per-row join on 5,000 rows of four operators and four
    technologies, by operator and by operator/technology. (The join is the slow expression
    they replaced, ~16 s per call at 100,000 rows; timing is not a test's business.)"""
    rng = np.random.default_rng(0)
    n = 5_000
    frame = pd.DataFrame(
        {
            "operator": rng.choice(["Viettel", "VinaPhone", "MobiFone", "Mạng Việt"], n),
            "technology": rng.choice(["2G", "3G", "4G", "5G"], n),
        },
        index=[f"S{i:06d}" for i in range(n)],
    )
    for group_by in ("operator", ["operator", "technology"]):
        expected = joined_labels(frame, group_by)
        got = _group_labels(frame, group_by)
        assert got[0] == expected[0]
        np.testing.assert_array_equal(got[1], expected[1])
