"""The re-run cache keeps results in a background thread (issue 12): ``ResultCache.put`` only
links the files and returns; hashing, pickling and installing the entry go on while the run
does, and the run waits for them before it publishes. Entries are installed complete or not at
all; what cannot be kept (not picklable, disk full) is logged and never fails the run; a failed
run keeps what its finished stages made; an interrupted one stops keeping."""

from __future__ import annotations

import errno
import gc
import hashlib
import json
import logging
import pickle
import threading
import weakref
from dataclasses import replace
from logging.handlers import BufferingHandler

import numpy as np
import pytest

import telcoplan.pipeline.cache as cache_module
from telcoplan.errors import PlanError
from telcoplan.pipeline import read_plan, run_plan
from telcoplan.pipeline.cache import ResultCache
from telcoplan.pipeline.stages import STAGES

ALL = list(STAGES)


@pytest.fixture
def messages():
    """The messages telcoplan logs (DEBUG and up), whatever the CLI did to logging before."""
    logger, handler = logging.getLogger("telcoplan"), BufferingHandler(1_000_000)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield _Said(handler)
    logger.removeHandler(handler)
    logger.setLevel(level)


class _Said:
    """The messages a handler kept so far (``in``, iteration, :meth:`clear`)."""

    def __init__(self, handler: BufferingHandler) -> None:
        self.handler = handler

    def __iter__(self):
        return iter([r.getMessage() for r in self.handler.buffer])

    def __contains__(self, message: str) -> bool:
        return message in list(self)

    def clear(self) -> None:
        self.handler.flush()


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _entries(cache_folder):
    """The cache's entries by what they keep, each checked complete: its files those its
    manifest lists with their SHA-256 (hashed here, from the files), its pickles too."""
    entries = sorted(cache_folder.iterdir()) if cache_folder.exists() else []
    found = {}
    for entry in entries:
        manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
        kept = [p for p in (entry / "files").rglob("*") if p.is_file()]
        hashed = {p.relative_to(entry / "files").as_posix(): _sha(p) for p in kept}
        pickles = {n: entry / f"{n}.pickle" for n in ("summary", "value")}
        assert (hashed, {n: _sha(p) if p.exists() else None for n, p in pickles.items()}) == (
            manifest["files"],
            {n: manifest[n] for n in pickles},
        ), entry
        found[manifest["what"]] = entry
    return found


def _outputs(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}


class _Gate:
    """A value that can be pickled only once ``opened`` is set (as ``"gate"``)."""

    def __init__(self, opened: threading.Event) -> None:
        self.opened = opened

    def __reduce__(self):
        assert self.opened.wait(30)
        return (str, ("gate",))


def _stage_files(tmp_path):
    folder = tmp_path / "stage"
    folder.mkdir()
    (folder / "a.tif").write_bytes(b"a" * 1000)
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text("b")
    work = tmp_path / "work"
    work.mkdir()
    return folder, work


KEY = "0" * 64


class _Value:
    """A result: an object holding an array."""

    def __init__(self) -> None:
        self.array = np.zeros(1000)


def test_put_returns_before_the_value_is_pickled(tmp_path):
    """``put`` returns with the value not yet pickled; the stage's files may move away at once
    (they are linked); :meth:`wait` installs the entry complete, its SHA-256s those of the
    bytes on disk."""
    folder, work = _stage_files(tmp_path)
    cache = ResultCache(tmp_path / "cache")
    opened = threading.Event()
    cache.put("stage", KEY, folder, ["a.tif", "sub"], {"n": 1}, _Gate(opened), work)
    (folder / "a.tif").rename(tmp_path / "moved.tif")  # what move_files does next
    assert cache.get("stage", KEY) is None  # not installed yet: the pickling waits at the gate
    opened.set()
    cache.wait()
    entry = cache.get("stage", KEY)
    assert entry is not None
    assert set(_entries(tmp_path / "cache")) == {"stage"}
    assert entry.manifest["files"] == {
        "a.tif": hashlib.sha256(b"a" * 1000).hexdigest(),
        "sub/b.txt": hashlib.sha256(b"b").hexdigest(),
    }
    assert entry.summary() == {"n": 1}
    assert entry.load_value(entry.value_path) == "gate"
    assert list(work.iterdir()) == []  # the entry was built there and renamed away


def test_a_large_value_is_hashed_as_it_is_written(tmp_path):
    """Arrays larger than the pieces the writer hashes (a C- and an F-ordered one, a view):
    the manifest's SHA-256 is that of the file, and the value comes back equal."""
    _, work = _stage_files(tmp_path)
    cache = ResultCache(tmp_path / "cache")
    rng = np.random.default_rng(12)
    big = rng.random((3, 700, 1100), dtype=np.float32)  # 9.2 MB > 2 pieces
    value = {"c": big, "f": np.asfortranarray(big[0]), "view": big[:, ::3], "s": "x" * 70_000}
    cache.put("stage", KEY, None, [], None, value, work)
    cache.wait()
    entry = cache.get("stage", KEY)
    assert entry.manifest["value"] == _sha(entry.value_path)
    back = entry.load_value(entry.value_path)
    assert back.keys() == value.keys()
    for name in ("c", "f", "view"):
        np.testing.assert_array_equal(back[name], value[name])
    assert back["f"].flags.f_contiguous
    assert back["s"] == value["s"]
    # the same bytes as a plain pickle.dump of the value
    assert entry.value_path.read_bytes() == pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def test_the_value_is_dropped_once_kept(tmp_path):
    """The background put holds the value only until it is pickled: once the caller has
    dropped it too, it is gone after :meth:`wait` (no reference left in the cache)."""
    _, work = _stage_files(tmp_path)
    cache = ResultCache(tmp_path / "cache")

    value = _Value()
    gone = weakref.ref(value)
    cache.put("stage", KEY, None, [], {"k": 1}, value, work)
    del value
    cache.wait()
    gc.collect()
    assert gone() is None
    assert cache.get("stage", KEY) is not None


def test_what_cannot_be_kept_is_logged(tmp_path, messages):
    """A value that cannot be pickled, and a full disk: no entry, no half-built entry left,
    no error; the disk's is a warning."""
    folder, work = _stage_files(tmp_path)
    cache = ResultCache(tmp_path / "cache")
    cache.put("lambda", KEY, folder, ["a.tif"], None, lambda: 1, work)
    cache.wait()
    assert cache.get("lambda", KEY) is None
    assert any(m.startswith("lambda: result not kept for re-runs (function") for m in messages)

    class Full:
        def __reduce__(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    cache.put("full", KEY, folder, ["a.tif"], None, Full(), work)
    cache.wait()
    assert cache.get("full", KEY) is None
    assert "full: result not kept for re-runs (No space left on device)" in messages
    assert list(work.iterdir()) == []
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_cancelled_put_installs_nothing(tmp_path):
    """``wait(cancel=True)`` (an interrupted run) stops a put being written: nothing installed,
    the half-built entry removed; later puts keep again."""
    folder, work = _stage_files(tmp_path)
    cache = ResultCache(tmp_path / "cache")
    opened = threading.Event()
    cache.put("stage", KEY, folder, ["a.tif"], None, [_Gate(opened), np.zeros(10)], work)
    timer = threading.Timer(0.3, opened.set)  # the gate opens while wait() has cancelled
    timer.start()
    cache.wait(cancel=True)
    timer.join()
    assert cache.get("stage", KEY) is None
    assert list(work.iterdir()) == []
    cache.put("stage", KEY, folder, ["a.tif"], None, np.zeros(10), work)
    cache.wait()
    assert cache.get("stage", KEY) is not None


def test_a_full_disk_never_fails_the_run(small_plan, tmp_path, monkeypatch, messages):
    """Every pickle fails as on a full disk: the run succeeds with the outputs of a run
    without a cache, warns, and leaves no entry (and no staging folder) behind."""

    def full(path, obj, cache):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module, "_write_pickle", full)
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out, cache=True)
    monkeypatch.undo()
    for name in ALL:
        assert f"{name}: result not kept for re-runs (No space left on device)" in messages
    assert _entries(out / ".telcoplan-cache") == {}
    assert not list(out.glob(".staging-*"))
    run_plan(read_plan(small_plan), tmp_path / "fresh")
    assert _outputs(out) == _outputs(tmp_path / "fresh")


def test_a_failed_run_keeps_what_its_stages_made(small_plan, tmp_path, monkeypatch):
    """A stage fails while coverage's result is still being kept: the run raises the stage's
    error once the put is done; the coverage entry is installed complete (the next run reuses
    it), nothing is published and no staging folder is left."""
    opened = threading.Event()
    write = cache_module._write_pickle

    def slow(path, obj, cache):
        if path.parent.name == ".entry-coverage" and path.name == "value.pickle":
            assert opened.wait(30)  # still writing when gaps fails
        return write(path, obj, cache)

    def fails(inputs, params, staging):
        opened.set()
        raise PlanError("gaps fails")

    monkeypatch.setattr(cache_module, "_write_pickle", slow)
    monkeypatch.setitem(STAGES, "gaps", replace(STAGES["gaps"], run=fails))
    out = tmp_path / "out"
    with pytest.raises(PlanError, match="gaps fails"):
        run_plan(read_plan(small_plan), out, cache=True)
    monkeypatch.undo()
    assert set(_entries(out / ".telcoplan-cache")) == {"inputs", "coverage"}
    assert not list(out.glob(".staging-*"))
    assert _outputs(out) == {}


def test_concurrent_stages_keep_their_results(small_plan, tmp_path, messages):
    """Stages run at the same time keep their results as well: the next run reuses them
    all, with the bytes of a run without a cache."""
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out, cache=True, concurrent=True)
    kept = _entries(out / ".telcoplan-cache")
    assert set(kept) == {"inputs", *ALL, "styles"}
    messages.clear()
    run_plan(read_plan(small_plan), out, overwrite=True, cache=True, concurrent=True)
    assert any(m.startswith(f"reused {len(ALL)} of {len(ALL)} stages") for m in messages)
    run_plan(read_plan(small_plan), tmp_path / "fresh")
    assert _outputs(out) == _outputs(tmp_path / "fresh")


def test_the_run_drops_a_value_only_once_it_is_written(tmp_path):
    """``wait_for_value`` (the run calls it as it drops a result after its last reader)
    returns once the put has written the value, not before; at once for a value never put."""
    _, work = _stage_files(tmp_path)
    cache = ResultCache(tmp_path / "cache")
    opened = threading.Event()
    cache.put("stage", KEY, None, [], None, _Gate(opened), work)
    waiter = threading.Thread(target=cache.wait_for_value, args=("stage",))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # the value is still being pickled
    opened.set()
    waiter.join(30)
    assert not waiter.is_alive()
    cache.wait()
    cache.wait_for_value("other")
    assert cache.get("stage", KEY) is not None
