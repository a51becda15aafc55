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
    assert len(cluster_io._inputs.paths()) == cluster_io._CACHED


def test_a_file_that_is_not_an_exchange_file_is_refused(tmp_path):
    path = tmp_path / "other"
    path.write_bytes(b"x" * 64)
    with pytest.raises(ValueError, match="not a telcoplan exchange file"):
        Stored(str(path)).load()


class _Client:
    """A client of workers ``answers`` (address: "read" when it reads our files, else its
    answer to the probe); ``probes`` counts the probes."""

    def __init__(self, answers):
        self.answers = answers
        self.probes = 0

    def nthreads(self):
        return dict.fromkeys(self.answers, 1)

    def run(self, fn, path, on_error):
        if fn is cluster_io._forget:  # at close: the workers let go of the folder
            assert on_error == "ignore"
            return {w: fn(path) for w in self.answers}
        assert on_error == "return"
        self.probes += 1
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
    kept = [*cluster_io._inputs.paths(), *cluster_io._arrays.paths()]
    assert not any(p.startswith(str(ex.folder)) for p in kept)
    assert any(p.startswith(str(other.folder)) for p in cluster_io._inputs.paths())  # not another's


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


def test_recent_keeps_what_it_made_of_the_last_paths():
    """The per-process cache of the workers' inputs and shared arrays: each path made once
    while kept, the least recently asked for let go first, a folder's paths forgotten."""
    import threading

    made = []

    def make(path):
        made.append(path)
        return [path]

    kept = cluster_io._Recent(2)
    a = kept.get("/x/a", make)
    assert a == ["/x/a"]
    assert kept.get("/x/a", make) is a  # made once
    b = kept.get("/y/b", make)
    assert kept.get("/x/a", make) is a  # a asked for last: b goes first
    c = kept.get("/x/c", make)
    assert kept.paths() == ["/x/a", "/x/c"]
    assert kept.get("/y/b", make) is not b  # made again
    assert made == ["/x/a", "/y/b", "/x/c", "/y/b"]
    assert kept.paths() == ["/x/c", "/y/b"]
    assert kept.get("/x/c", make) is c
    kept.forget("/x/")
    assert kept.paths() == ["/y/b"]
    # threads asking at once for one path all get the one kept
    gate = threading.Barrier(6)

    def slow(path):
        gate.wait(timeout=10)
        return [path]

    got = []
    threads = [threading.Thread(target=lambda: got.append(kept.get("/z", slow))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6
    assert all(g is got[0] for g in got)
    assert kept.paths() == ["/y/b", "/z"]


def test_the_workers_are_probed_once_while_they_stay_the_same():
    client = _Client({"w1": "read", "w2": "read"})
    for _ in range(3):
        ex = Exchange.open(client)
        assert ex is not None
        ex.close()
    assert client.probes == 1
    other = _Client({"w1": "read"})  # another client: probed on its own
    Exchange.open(other).close()
    assert (client.probes, other.probes) == (1, 1)
    del client.answers["w2"]  # a worker gone: the others still share our files
    Exchange.open(client).close()
    assert client.probes == 1
    client.answers["w3"] = None  # one of another machine joins: probed again, refused
    assert Exchange.open(client) is None
    assert client.probes == 2
    assert Exchange.open(client) is None  # the refusal is kept too
    assert client.probes == 2
    del client.answers["w3"]
    client.answers["w4"] = "read"  # w1 and a restarted worker (a new address): probed again
    Exchange.open(client).close()
    assert client.probes == 3
    tmp = Path(cluster_io.tempfile.gettempdir())
    assert list(tmp.glob(f"telcoplan-exchange-{os.getpid()}-*")) == []


def test_no_answer_to_the_probe_is_not_kept():
    class Silent(_Client):
        def run(self, fn, path, on_error):
            if fn is cluster_io._forget:
                return {}
            self.probes += 1
            raise OSError("the scheduler went away")

    class Plain:  # a client that cannot be weakly referenced: probed every time
        __slots__ = ("answers", "probes")
        nthreads = _Client.nthreads
        run = _Client.run

        def __init__(self, answers):
            self.answers = answers
            self.probes = 0

    silent = Silent({"w": "read"})
    assert Exchange.open(silent) is None
    assert Exchange.open(silent) is None
    assert silent.probes == 2
    plain = Plain({"w": "read"})
    for _ in range(2):
        Exchange.open(plain).close()
    assert plain.probes == 2
