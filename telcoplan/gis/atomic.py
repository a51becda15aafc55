"""Atomic file writes: write to a temporary name in the target folder, then rename.

Also the folders a process works in before it publishes (:func:`owned_folder`): each holds an
owner file that its process keeps locked, so that a later process can tell a folder whose
process died — even by SIGKILL, which runs no clean-up — from one still in use, and remove only
the former (:func:`remove_abandoned`). :func:`folder_lock` serialises the short steps that
change a folder shared by several processes (publishing, removing what dead ones left).
Locks are ``flock`` locks: the kernel releases them when their process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from telcoplan.errors import OutputExistsError

try:  # POSIX; elsewhere nothing is locked and no folder is ever taken for abandoned
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "JOURNAL",
    "OWNER",
    "atomic_path",
    "check_writable",
    "final_path",
    "folder_lock",
    "link",
    "link_files",
    "link_tree",
    "move_files",
    "new_files",
    "owned_folder",
    "publish_files",
    "remove_abandoned",
    "remove_tree",
    "undo_publish",
]

log = logging.getLogger(__name__)

#: The file of an owned folder that names its process (JSON) and that the process keeps locked.
OWNER = ".owner"
#: What :func:`owned_folder` adds to the prefix: :func:`tempfile.mkdtemp`'s 8 characters.
_SUFFIX = re.compile(r"[a-z0-9_]{8}")
#: An owned folder without an owner file this old (s) was left by a process killed as it made
#: it, or by a telcoplan from before owner files.
ORPHAN_AGE_S = 60.0
#: The journal of :func:`publish_files`, in its staging folder.
JOURNAL = ".publish.json"


def check_writable(path: str | os.PathLike, overwrite: bool) -> Path:
    """Raise :class:`OutputExistsError` if ``path`` exists and ``overwrite`` is False."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} already exists; pass --overwrite to replace it")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` (if it existed) is untouched.
    """
    target = check_writable(path, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    os.unlink(tmp)  # writers (GDAL) want to create the file themselves
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        for leftover in (tmp_path, *tmp_path.parent.glob(tmp_path.name + "*")):
            if leftover.exists():
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink()


def final_path(path: str | os.PathLike) -> Path:
    """Where a file written into a run's staging folder (``.staging-*``, or a stage's own
    folder ``.stage-*`` in it) will end up: the path to show the user."""
    p = Path(path)
    folder = p.parent
    if folder.name.startswith(".stage-") and folder.parent.name.startswith(".staging-"):
        folder = folder.parent
    return folder.parent / p.name if folder.name.startswith(".staging-") else p


@contextlib.contextmanager
def owned_folder(parent: str | os.PathLike, prefix: str) -> Iterator[Path]:
    """A new folder ``parent``/``prefix`` + 8 random characters, owned by this process for
    the block, then removed with everything in it.

    The folder's :data:`OWNER` file names the process (pid, host, start) and stays locked while
    the block runs; the lock is taken before the file gets its name, so the folder is never seen
    with an unlocked owner file while its process lives. A process killed in the block leaves
    the folder, with an owner file nobody holds: :func:`remove_abandoned` removes it.
    """
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    fd = None
    try:
        fd = _claim(folder)
        yield folder
    finally:
        if (folder / JOURNAL).exists():  # moves not undone: the next run undoes them from it
            log.warning("%s: left for the next run to undo what it moved", folder)
        else:
            _remove_folder(folder)
        if fd is not None:
            os.close(fd)


def _claim(folder: Path) -> int:
    """Create ``folder``/:data:`OWNER`, locked by this process; its open descriptor."""
    new = folder / f"{OWNER}-new"
    fd = os.open(new, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:  # a file system without locks: nobody can test this one
                log.debug("%s: cannot lock the owner file (%s)", folder, exc)
        record = {"pid": os.getpid(), "host": platform.node(), "started": time.time()}
        os.write(fd, json.dumps(record).encode("ascii") + b"\n")
        os.replace(new, folder / OWNER)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _remove_folder(folder: Path) -> None:
    """Remove ``folder``: everything but the owner file, then the owner file, then the folder,
    so that a process killed half-way leaves a folder that is still recognisably abandoned."""
    with contextlib.suppress(FileNotFoundError):
        for child in folder.iterdir():
            if child.name == OWNER:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    (folder / OWNER).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: something was added meanwhile; left
        folder.rmdir()


def remove_abandoned(
    parent: str | os.PathLike,
    prefix: str,
    *,
    before: Callable[[Path], None] | None = None,
) -> list[Path]:
    """Remove the folders :func:`owned_folder` made in ``parent`` with ``prefix`` whose process
    has ended; returns them.

    A folder is removed only when its name is ``prefix`` and 8 characters of
    :func:`tempfile.mkdtemp`, it is a real folder (not a link), and either its owner file can
    be locked (no process holds it: its owner ended) or it has no owner file and has not changed
    for :data:`ORPHAN_AGE_S` seconds. Anything else is left as it is, including every folder
    when the owner's lock cannot be tested (no ``flock`` on this system or file system).
    ``before(folder)`` is called first (while the folder is locked), e.g. to undo what the
    dead process had half done.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return []
    removed: list[Path] = []
    try:
        children = sorted(Path(parent).iterdir())
    except OSError:
        return []
    for folder in children:
        name = folder.name
        if not (name.startswith(prefix) and _SUFFIX.fullmatch(name[len(prefix) :])):
            continue
        if folder.is_symlink() or not folder.is_dir():
            continue
        try:
            fd = os.open(folder / OWNER, os.O_RDWR)
        except FileNotFoundError:
            if _orphan(folder):
                if before is not None:
                    before(folder)
                _remove_folder(folder)
                removed.append(folder)
            continue
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: its process is running (or the lock cannot be tested)
                continue
            if before is not None:
                before(folder)
            _remove_folder(folder)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed


def _orphan(folder: Path) -> bool:
    """Whether ``folder`` (without an owner file) has not changed for :data:`ORPHAN_AGE_S`."""
    try:
        return time.time() - folder.lstat().st_mtime > ORPHAN_AGE_S
    except OSError:
        return False


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` for the block, waiting for any other holder.

    Every process changing a shared folder in more than one step takes it, so those steps do
    not interleave. Without ``flock`` (or on a file system that refuses it) the block runs
    unlocked. Never nest it on one folder: a second lock waits for the first.
    """
    fd = None
    if fcntl is not None:
        try:
            fd = os.open(folder, os.O_RDONLY)
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            log.debug("%s: cannot lock the folder (%s); going on without", folder, exc)
            if fd is not None:
                os.close(fd)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


# ------------------------------------------------------------------- links and moves
def link(src: Path, dst: Path) -> None:
    """``dst`` the same file as ``src``: a hard link, or a copy where links are refused."""
    try:
        os.link(src, dst)
    except OSError:
        if not src.is_file():
            raise
        shutil.copyfile(src, dst)


def link_tree(src: Path, dst: Path) -> None:
    """:func:`link` of a file, or of every file of a folder into a new folder ``dst``."""
    if src.is_dir() and not src.is_symlink():
        dst.mkdir()
        for child in sorted(src.iterdir()):
            link_tree(child, dst / child.name)
    else:
        link(src, dst)


def link_files(root: Path, folder: Path, names: Iterable[str]) -> None:
    """A new ``folder`` holding :func:`link` s of ``names`` of ``root``."""
    folder.mkdir()
    for n in names:
        link_tree(root / n, folder / n)


def new_files(folder: Path, root: Path, linked: Iterable[str]) -> list[str]:
    """What was written into ``folder`` after ``linked`` files of ``root`` were linked there:
    the names that were not linked, and the linked names now another file."""
    linked = set(linked)
    found = []
    for p in sorted(folder.iterdir()):
        if p.name not in linked:
            found.append(p.name)
        else:
            with contextlib.suppress(OSError):
                if not os.path.samefile(p, root / p.name):
                    found.append(p.name)
    return found


def move_files(folder: Path, root: Path, names: Iterable[str]) -> None:
    """Move ``names`` from ``folder`` into ``root`` (in place of what is there), then remove
    ``folder``."""
    for n in names:
        if (root / n).is_dir() and not (root / n).is_symlink():
            shutil.rmtree(root / n)
        os.replace(folder / n, root / n)
    remove_tree(folder)


def remove_tree(folder: Path) -> None:
    """Remove ``folder`` and everything in it, if it is there."""
    if folder.is_dir() and not folder.is_symlink():
        shutil.rmtree(folder)


# -------------------------------------------------------------------------- publishing
def publish_files(staging: Path, out: Path, names: list[str], stale: list[str]) -> None:
    """Move ``names`` from ``staging`` into ``out`` (in order: put the one that says the set is
    complete last) and take ``stale`` out of ``out``, all together or not at all.

    Files replaced and ``stale`` ones are moved aside into ``staging`` (``.previous-<name>``),
    not deleted. What will move is written first into ``staging``/:data:`JOURNAL`, removed once
    everything has moved: a process killed in between leaves the journal, from which
    :func:`undo_publish` puts the previous files back. If a move fails, every move is undone
    and the error raised.
    """
    journal = staging / JOURNAL
    with atomic_path(journal, overwrite=True) as tmp:
        tmp.write_text(json.dumps({"names": names, "stale": stale}), encoding="utf-8")
    try:
        for name in stale:
            if (out / name).is_file():
                os.replace(out / name, staging / f".previous-{name}")
        for name in names:
            target = out / name
            if target.exists():
                os.replace(target, staging / f".previous-{name}")
            os.replace(staging / name, target)
    except BaseException:  # a failed move, or Ctrl-C: the previous files go back at once
        undo_publish(staging, out)
        raise
    journal.unlink()


def undo_publish(staging: Path, out: Path) -> bool:
    """Undo the moves of a :func:`publish_files` that did not finish, from its journal in
    ``staging``: the previous files go back where they were, the new ones placed so far are
    removed. False when there is no journal (nothing moved yet, or everything did)."""
    try:
        journal = json.loads((staging / JOURNAL).read_text(encoding="utf-8"))
        names, stale = list(journal["names"]), list(journal["stale"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for name in [*reversed(names), *stale]:
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            continue
        held = staging / f".previous-{name}"
        if os.path.lexists(held):
            os.replace(held, out / name)
        elif name in names and not os.path.lexists(staging / name):
            (out / name).unlink(missing_ok=True)  # placed, new: nothing was there before
    (staging / JOURNAL).unlink()
    return True
