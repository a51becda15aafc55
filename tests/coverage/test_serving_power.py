"""The coverage result's serving power computed when read (ServingPower) is numpy's float32
``margin + threshold[server]`` (NaN without a server) to the bit, for every way the code indexes
it, and pickles with its result without a copy of the margin or the server."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from telcoplan.coverage.analysis import ServingPower, compute_coverage


@pytest.fixture
def arrays():
    """Margins with NaN (no signal), servers with -1 (none), per-tower thresholds of many
    magnitudes (float32 sums that round)."""
    rng = np.random.default_rng(7)
    margin = rng.normal(-5, 20, (3, 40, 50)).astype(np.float32)
    server = rng.integers(-1, 30, margin.shape).astype(np.int32)
    margin[server < 0] = np.nan
    margin[0, :3] = np.nan  # NaN margin with a server too
    threshold = (rng.uniform(-125, -60, 30) + rng.normal(0, 1e-3, 30)).astype(np.float32)
    return margin, server, threshold


def _reference(margin, server, threshold):
    """The reference in numpy: float32 sums, NaN where no tower serves (the coverage kernel's
    former ``serving_power``)."""
    return np.where(server >= 0, margin + threshold[server], np.float32(np.nan))


def _bits(a):
    return np.asarray(a, dtype=np.float32).view(np.uint32)


def test_every_index_gives_the_references_bits(arrays):
    margin, server, threshold = arrays
    want = _reference(margin, server, threshold)
    lazy = ServingPower(margin, server, threshold)
    assert lazy.shape == want.shape
    assert lazy.dtype == np.float32
    assert lazy.ndim == 3
    assert len(lazy) == 3
    assert np.array_equal(_bits(np.asarray(lazy)), _bits(want))
    rr, cc = np.array([0, 5, 39, 5]), np.array([0, 49, 7, 49])
    for i in range(3):
        assert np.array_equal(_bits(lazy[i]), _bits(want[i]))
        assert np.array_equal(_bits(lazy[i, rr, cc]), _bits(want[i, rr, cc]))
    assert np.array_equal(_bits(lazy[:, rr, cc]), _bits(want[:, rr, cc]))
    assert np.array_equal(_bits(lazy[1, 2:9, ::3]), _bits(want[1, 2:9, ::3]))
    mask = margin > 0
    assert np.array_equal(_bits(lazy[mask]), _bits(want[mask]))
    one = lazy[2, 11, 13]
    assert np.isscalar(one)
    assert _bits(one) == _bits(want[2, 11, 13])
    assert np.isnan(lazy[0, 0, 0])  # NaN margin: NaN
    assert np.isnan(np.asarray(lazy)[server < 0]).all()
    assert np.asarray(lazy, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match="needs a copy"):  # numpy 2: no view of it
        np.asarray(lazy, copy=False)


def test_the_result_pickles_with_one_copy_of_its_arrays(towers5, grid10):
    cov = compute_coverage(towers5, grid10)
    assert isinstance(cov.power_dbm, ServingPower)
    back = pickle.loads(pickle.dumps(cov))
    assert back.power_dbm.margin is back.margin_db  # shared, not a second copy
    assert back.power_dbm.server is back.server
    assert np.array_equal(np.asarray(back.power_dbm), np.asarray(cov.power_dbm), equal_nan=True)
    # the covered cells are those with a margin >= 0, as the kernel says
    assert np.array_equal(cov.covered, np.nan_to_num(cov.margin_db, nan=-1) >= 0)
