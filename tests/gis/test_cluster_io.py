"""The files through which a local cluster's workers get their inputs and give their results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from telcoplan.gis import cluster_io
from telcoplan.gis.cluster_io import Exchange, Stored, store


def _value():
    rng = np.random.default_rng(3)
    big = rng.normal(size=(300, 200)).astype(np.float32)
    return {
        "c": big,
        "f": np.asfortranarray(rng.integers(0, 9, (7, 5))),
        "strided": big[::3, 1::2],  # not contiguous: pickled in band
        "empty": np.zeros((0, 4), dtype=np.int16),
        "bool": rng.random(33) < 0.5,
        "text": ("Viettel", "Mobi<Fone>", None),
        "nested": [np.arange(5, dtype=np.uint8), {"x": 1.5}],
    }


def _assert_same(got, want):
    assert got.keys() == want.keys()
    for key, w in want.items():
        g = got[key]
        if isinstance(w, np.ndarray):
            assert g.dtype == w.dtype
            assert g.shape == w.shape
            assert np.array_equal(g, w)
            assert g.flags.f_contiguous == w.flags.f_contiguous
        elif key == "nested":
            assert np.array_equal(g[0], w[0])
            assert g[1] == w[1]
        else:
            assert g == w


def test_values_come_back_equal_as_writable_views_of_the_mapped_file(tmp_path):
    want = _value()
    ex = Exchange(tmp_path)
    handle = ex.put(want)
    got = handle.load()
    _assert_same(got, want)
    # the large arrays are views of the file's mapping (no copy), aligned, and writable
    # copy-on-write: writing changes neither the file nor another load
    assert got["c"].base is not None
    assert got["c"].ctypes.data % 64 == 0
    got["c"][0, 0] = 1e9
    again = handle.load()
    assert again["c"][0, 0] == want["c"][0, 0]
    assert [p.name for p in tmp_path.iterdir()] == [Path(handle.path).name]  # no .part left


def test_a_result_is_taken_once_and_its_file_removed(tmp_path):
    want = _value()
    handle = store(str(tmp_path), want)
    got = handle.take()
    _assert_same(got, want)
    assert not Path(handle.path).exists()
    _assert_same(got, want)  # the mapping outlives the file


def test_cached_loads_keep_the_last_inputs_of_a_process(tmp_path):
    ex = Exchange(tmp_path)
    handles = [ex.put(np.full(3, i)) for i in range(3)]
    first = handles[0].load(cache=True)
    assert handles[0].load(cache=True) is first  # loaded once per process
    handles[1].load(cache=True)
    handles[2].load(cache=True)  # the oldest is dropped
    assert handles[0].load(cache=True) is not first
    assert len(cluster_io._cache) == cluster_io._CACHED


def test_a_file_that_is_not_an_exchange_file_is_refused(tmp_path):
    path = tmp_path / "other"
    path.write_bytes(b"x" * 64)
    with pytest.raises(ValueError, match="not a telcoplan exchange file"):
        Stored(str(path)).load()


class _Client:
    def __init__(self, answers):
        self.answers = answers

    def run(self, fn, path, on_error):
        if fn is cluster_io._forget:  # at close: the workers let go of the folder
            assert on_error == "ignore"
            return {w: fn(path) for w in self.answers}
        assert on_error == "return"
        return {w: (fn(path) if a == "read" else a) for w, a in self.answers.items()}


def test_the_probe_tells_whether_the_workers_share_our_files():
    shared = Exchange.open(_Client({"w1": "read", "w2": "read"}))
    assert shared is not None
    folder = shared.folder
    assert folder.is_dir()
    shared.close()
    assert not folder.exists()
    # another machine's workers cannot read the file; a worker lost meanwhile is no answer
    assert Exchange.open(_Client({"w1": "read", "w2": None})) is None
    partial = Exchange.open(_Client({"w1": "read", "w2": OSError("gone")}))
    assert partial is not None
    partial.close()
    assert Exchange.open(_Client({"w1": OSError("gone")})) is None
    tmp = Path(cluster_io.tempfile.gettempdir())
    assert list(tmp.glob(f"telcoplan-exchange-{os.getpid()}-*")) == []  # refused: none left


def test_folders_of_processes_that_died_are_removed():
    child = subprocess.run(
        [sys.executable, "-c", "import tempfile; print(tempfile.mkdtemp(prefix="
         "'telcoplan-exchange-' + str(__import__('os').getpid()) + '-'))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    dead = Path(child.stdout.strip())
    (dead / "input-x").write_bytes(b"left by a killed run")
    alive = Exchange.open(_Client({"w": "read"}))
    assert alive is not None
    assert not dead.exists()
    assert alive.folder.exists()
    alive.close()


def test_shared_arrays_written_by_another_process_are_seen_here(tmp_path):
    """A worker's writes (here: a child process) land in this process's array, which stays
    valid once the exchange is closed; empty arrays need no file."""
    ex = Exchange(tmp_path / "ex")
    ex.folder.mkdir()
    here, handle = ex.array((2, 3, 5), np.float32)
    assert here.shape == (2, 3, 5)
    assert here.dtype == np.float32
    assert not here.any()  # zeros until written
    code = (
        "import pickle, sys, numpy as np; h = pickle.loads(sys.stdin.buffer.read()); "
        "a = h.open(); a[1, :, 2:4] = np.arange(6, dtype=np.float32).reshape(3, 2)"
    )
    import pickle

    subprocess.run([sys.executable, "-c", code], input=pickle.dumps(handle), check=True)
    want = np.zeros((2, 3, 5), np.float32)
    want[1, :, 2:4] = np.arange(6).reshape(3, 2)
    assert np.array_equal(here, want)
    ex.close()
    assert not ex.folder.exists()
    assert np.array_equal(here, want)  # the mapping outlives the file
    empty, h0 = Exchange(tmp_path).array((0, 4), np.int32)
    assert empty.shape == (0, 4)
    assert h0.open().shape == (0, 4)


def test_closing_lets_the_workers_drop_what_they_keep(tmp_path):
    ex = Exchange(tmp_path / "ex", _Client({"w": "read"}))
    ex.folder.mkdir()
    kept = ex.put(np.arange(3))
    kept.load(cache=True)
    _, handle = ex.array((4,), np.int16)
    handle.open()
    other = Exchange(tmp_path / "other")
    other.folder.mkdir()
    other.put(np.arange(2)).load(cache=True)
    ex.close()
    assert not any(p.startswith(str(ex.folder)) for p in [*cluster_io._cache, *cluster_io._arrays])
    assert any(p.startswith(str(other.folder)) for p in cluster_io._cache)  # not another's


def test_a_full_disk_is_a_clear_error(tmp_path, monkeypatch):
    import errno

    from telcoplan.errors import ClusterError

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    ex = Exchange(tmp_path)
    monkeypatch.setattr(cluster_io.os, "posix_fallocate", full)
    with pytest.raises(ClusterError, match=r"no space left in .* point TMPDIR"):
        ex.array((1000,), np.float64)
    monkeypatch.setattr(cluster_io, "_write", lambda value, path: full())
    with pytest.raises(ClusterError, match="no space left"):
        ex.put(np.arange(3))
