"""The re-run cache reads its pickles only from entries this user signed: a run folder from
someone else (a zipped run, a shared drive) cannot run code in this user's re-run.

An attacker who can write into the output folder replaces a kept summary with a pickle that
runs a command when loaded, and puts its SHA-256 in the entry's manifest (which the manifest
alone cannot tell from a genuine one): the re-run does not load it, computes the stage again and
writes the outputs a fresh run writes; entries signed with another user's key are ignored the
same way; the user's own entries are reused as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle

import pytest

import telcoplan.pipeline.cache as cache_module
from telcoplan.pipeline import read_plan, run_plan


class _Payload:
    """Unpickling it creates ``marker`` (as a forged summary would run any command)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _outputs(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")}


@pytest.fixture
def own_key(tmp_path, monkeypatch):
    """This test's user key, in a file of its own (the real user's key untouched)."""
    monkeypatch.setenv(cache_module.KEY_ENV, str(tmp_path / "keys" / "mine"))
    cache_module.signing_key.cache_clear()
    yield tmp_path / "keys" / "mine"
    cache_module.signing_key.cache_clear()


def _forge(entry, marker) -> None:
    """Replace the entry's summary with the payload and its SHA-256 in the manifest."""
    data = pickle.dumps(_Payload(str(marker)))
    (entry / "summary.pickle").write_bytes(data)
    manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
    manifest["summary"] = hashlib.sha256(data).hexdigest()
    (entry / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_forged_entry_is_not_unpickled(small_plan, tmp_path, own_key, caplog):
    out, marker = tmp_path / "out", tmp_path / "PWNED"
    run_plan(read_plan(small_plan), out, cache=True)
    assert own_key.stat().st_mode & 0o077 == 0, "the key is the user's alone"
    entries = sorted((out / ".telcoplan-cache").glob("coverage-*"))
    assert len(entries) == 1
    manifest = json.loads((entries[0] / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["signature"]) == 64
    _forge(entries[0], marker)
    caplog.clear()  # (the first run's messages too, where an earlier test left INFO on)
    with caplog.at_level(logging.INFO, logger="telcoplan"):
        run_plan(read_plan(small_plan), out, cache=True, overwrite=True)
    assert not marker.exists(), "the forged pickle was loaded"
    assert "coverage: kept results not signed by this user" in caplog.text
    summary = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("reused"))
    assert summary.endswith("computed coverage"), summary
    run_plan(read_plan(small_plan), tmp_path / "fresh")
    assert _outputs(out) == _outputs(tmp_path / "fresh")


def test_another_users_entries_are_ignored_and_ones_own_reused(
    small_plan, tmp_path, monkeypatch, own_key, caplog
):
    out = tmp_path / "out"
    monkeypatch.setenv(cache_module.KEY_ENV, str(tmp_path / "keys" / "theirs"))
    cache_module.signing_key.cache_clear()
    run_plan(read_plan(small_plan), out, cache=True)  # "their" run
    monkeypatch.setenv(cache_module.KEY_ENV, str(own_key))
    cache_module.signing_key.cache_clear()
    assert cache_module.signing_key() != (tmp_path / "keys" / "theirs").read_bytes()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="telcoplan"):
        run_plan(read_plan(small_plan), out, cache=True, overwrite=True)
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("reused 0 of ") for m in said), said
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="telcoplan"):
        run_plan(read_plan(small_plan), out, cache=True, overwrite=True)  # now its own entries
    said = [r.getMessage() for r in caplog.records]
    assert not any("not signed" in m for m in said)
    assert not any(m.startswith("reused 0 of ") for m in said), said


def test_without_a_key_the_cache_is_off_and_the_run_succeeds(small_plan, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv(cache_module.KEY_ENV, str(blocker / "key"))  # cannot be made
    cache_module.signing_key.cache_clear()
    try:
        out = tmp_path / "out"
        run_plan(read_plan(small_plan), out, cache=True)
        assert (
            not list((out / ".telcoplan-cache").glob("*-*"))
            if (out / ".telcoplan-cache").exists()
            else True
        )
        run_plan(read_plan(small_plan), tmp_path / "fresh")
        assert _outputs(out) == _outputs(tmp_path / "fresh")
    finally:
        cache_module.signing_key.cache_clear()


@pytest.mark.parametrize("signature", ["é" * 64, 12345, None, ["x"]])
def test_a_manifest_with_a_strange_signature_is_recomputed(
    small_plan, tmp_path, own_key, signature
):
    """Whatever a manifest's signature holds (not text, not ASCII), the entry is not read and
    the run goes on (compare_digest raised TypeError on non-ASCII text)."""
    out = tmp_path / "out"
    run_plan(read_plan(small_plan), out, cache=True)
    for manifest_path in (out / ".telcoplan-cache").glob("*/manifest.json"):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["signature"] = signature
        manifest_path.write_text(json.dumps(manifest), encoding="utf-8")
    run_plan(read_plan(small_plan), out, cache=True, overwrite=True)
    run_plan(read_plan(small_plan), tmp_path / "fresh")
    assert _outputs(out) == _outputs(tmp_path / "fresh")


def test_the_key_without_a_home_folder_or_hard_links(tmp_path, monkeypatch):
    """No home folder to be found (a container's user without one): the key the variable
    names is used, the home never looked up; a file system without hard links: the key is
    created in place."""
    import pathlib

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(pathlib.Path, "home", staticmethod(no_home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv(cache_module.KEY_ENV, str(tmp_path / "k" / "key"))

    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(cache_module.os, "link", no_links)
    cache_module.signing_key.cache_clear()
    try:
        key = cache_module.signing_key()
        assert key is not None
        assert len(key) == 32
        assert (tmp_path / "k" / "key").read_bytes() == key
        assert [p.name for p in (tmp_path / "k").iterdir()] == ["key"]  # no temporary left
        monkeypatch.delenv(cache_module.KEY_ENV)  # now the home is needed, and missing
        cache_module.signing_key.cache_clear()
        assert cache_module.signing_key() is None  # cache off, no crash
    finally:
        cache_module.signing_key.cache_clear()
