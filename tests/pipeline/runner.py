"""A process that runs ``telcoplan`` command lines in forked children that a test can kill.

Each run is ``telcoplan.cli.main`` in a child forked from a process that has already imported
telcoplan and the geo stack, so a run starts at once instead of spending seconds importing:
the killed-run tests kill dozens of runs. A child is the command line exactly as ``telcoplan``
runs it, output folder, staging, publishing and all; only the start-up is shared. The server
imports (and loads the cached non-parallel numba kernels) but never runs a kernel: GNU OpenMP,
numba's threading layer here, refuses to work in a child forked after it was used. It reaps a
child only when the test says so, so that a pid it kills is never another process's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

SERVER = r"""
import importlib, json, os, pkgutil, signal, sys, traceback

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: F401
import folium  # noqa: F401
import telcoplan
from telcoplan.cli import cli

# every module a run may import, imported once here
for info in pkgutil.walk_packages(telcoplan.__path__, "telcoplan."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
# the compiled kernels numba keeps on disk, loaded once here; not the parallel ones: loading
# those starts GNU OpenMP, and a child forked after that is refused
try:
    from numba.core.registry import CPUDispatcher

    for name in [m for m in sys.modules if m.startswith("telcoplan.")]:
        for obj in list(vars(sys.modules[name]).values()):
            if (
                isinstance(obj, CPUDispatcher)
                and obj._cache is not None
                and not obj.targetoptions.get("parallel")
            ):
                for key in obj._cache._cache_file._load_index():
                    obj.compile(key[0])
except Exception:  # numba's internals changed: each run loads its kernels itself
    pass
from telcoplan.pipeline.cache import code_fingerprint
code_fingerprint()  # the code's fingerprint (a key of kept results): the same for every run


def trap(out, die_at):
    # SIGKILL this process at its die_at-th move of a file from a staging folder into out
    real, count = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        if os.path.dirname(os.fspath(dst)) == out and ".staging-" in os.fspath(src):
            count[0] += 1
            if count[0] == die_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(src, dst, *args, **kwargs)

    os.replace = replace


for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "start":
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 99
            try:
                fd = os.open(cmd["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                if cmd.get("die_at"):
                    trap(cmd["out"], cmd["die_at"])
                try:
                    cli.main(cmd["args"], prog_name="telcoplan")
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                print("<<exit %d>>" % code, file=sys.stderr)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)
    else:
        pid = cmd["pid"]
        if cmd["op"] == "kill":
            os.kill(pid, signal.SIGKILL)  # not reaped yet: the pid is still this child's
        _, status = os.waitpid(pid, 0)
        print(status, flush=True)
"""

#: How long a run may take at most (s): a hang fails the test instead of blocking it.
TIMEOUT_S = 300.0


class Runner:
    """The server process (see the module's docstring)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, **cmd) -> int:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, "the runner process ended"
        return int(answer)

    def start(self, args: list[str], log: Path, *, out: Path | None = None, die_at: int = 0) -> int:
        """Start ``telcoplan ARGS`` (stdout and stderr into ``log``); its pid. With ``die_at``,
        the run kills itself at its ``die_at``-th move of an output into ``out``."""
        return self._ask(op="start", args=args, log=str(log), out=str(out), die_at=die_at)

    def kill(self, pid: int) -> int:
        """SIGKILL the run ``pid``; its wait status."""
        return self._ask(op="kill", pid=pid)

    def wait(self, pid: int) -> int:
        """Wait for the run ``pid`` to end; its wait status."""
        return self._ask(op="wait", pid=pid)

    def run(self, args: list[str], log: Path) -> str:
        """Run ``telcoplan ARGS`` to its end; its log (an AssertionError when it failed)."""
        status = self.wait(self.start(args, log))
        text = log.read_text(encoding="utf-8")
        assert os.WIFEXITED(status), text
        assert os.WEXITSTATUS(status) == 0, text
        return text

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.proc.stdout.close()


def _watch(log: Path, until, what: str) -> list[str]:
    """The lines of the log of a running run once ``until(lines)`` holds or the run has ended;
    an AssertionError naming ``what`` after :data:`TIMEOUT_S` (a hang fails the test)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            lines = []
        if until(lines) or any(line.startswith("<<exit") for line in lines):
            return lines
        assert time.monotonic() < deadline, f"no {what} in {log} after {TIMEOUT_S} s"
        time.sleep(0.002)


def wait_for_lines(log: Path, count: int) -> list[str]:
    """The first ``count`` lines of the log of a running run, once written (fewer when the run
    ends first)."""
    return _watch(log, lambda lines: len(lines) >= count, f"{count} lines")[:count]


def wait_for(log: Path, text: str) -> bool:
    """Wait until the log of a running run has a line with ``text`` (True) or the run ended
    without one (False)."""
    lines = _watch(log, lambda lines: any(text in line for line in lines), repr(text))
    return any(text in line for line in lines)


#: A log line that tells which step of a run it is at.
_STEP = re.compile(
    r"^(?:[A-Z]+: )?(?:(study area|grid|towers|roads|memory)|(coverage|gaps|sites|backbone|map|"
    r"report|publishing|wrote))\b"
)


def step_of(lines: list[str]) -> str:
    """The step a run was at after ``lines`` of its log: loading, a stage, publishing."""
    step = "start"
    for line in lines:
        m = _STEP.match(line)
        if m:
            step = "loading" if m.group(1) else m.group(2)
    return step


def killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
