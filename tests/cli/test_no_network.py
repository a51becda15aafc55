"""No network at run time (issue 13 item 5): the demo — scenario, every stage, the map, the
report — runs with every socket to anything but the loopback refused, and nothing tries to
reach out. Python's sockets are guarded in the process (every attempt recorded); with
``strace`` the system calls of every library (GDAL, PROJ, …) are watched too."""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys

#: Runs ``telcoplan ARGS`` (or Python code, ``--code``) with sockets guarded: a connection,
#: datagram or name lookup for anything but the loopback (or a Unix socket) is refused and
#: recorded in the file named first.
GUARD = r"""
import ipaddress, json, socket, sys

record, mode, *args = sys.argv[1:]
attempts = []


def loopback(host):
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def refuse(what, where):
    attempts.append([what, repr(where)])
    with open(record, "w", encoding="utf-8") as fh:
        json.dump(attempts, fh)
    raise OSError(101, f"network is blocked in this test ({what} {where!r})")


def check(what, address):
    # a Unix socket's address is a path; an Internet one a (host, port, ...) tuple
    if isinstance(address, tuple) and not loopback(address[0]):
        refuse(what, address)


def guard(name):
    real = getattr(socket.socket, name)

    def guarded(self, *args):
        if self.family != getattr(socket, "AF_UNIX", None):
            check(name, args[-1])  # connect(address), sendto(data[, flags], address)
        return real(self, *args)

    setattr(socket.socket, name, guarded)


for name in ("connect", "connect_ex", "sendto"):
    guard(name)
real_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *rest, **kw):
    if not loopback(host):
        refuse("getaddrinfo", host)
    return real_getaddrinfo(host, *rest, **kw)


socket.getaddrinfo = getaddrinfo
with open(record, "w", encoding="utf-8") as fh:
    json.dump(attempts, fh)
if mode == "--code":
    exec(args[0])
else:
    from telcoplan.cli import cli

    cli.main(args, prog_name="telcoplan")
"""


def _guarded(tmp_path, mode, *args, strace=None):
    record = tmp_path / "attempts.json"
    command = [sys.executable, "-c", GUARD, str(record), mode, *args]
    if strace is not None:
        command = [*strace, *command]
    proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    return proc, json.loads(record.read_text(encoding="utf-8"))


def _strace(tmp_path):
    """The strace command line that records the connections of a process and its children,
    when strace works here (it needs ptrace); else None."""
    if shutil.which("strace") is None:
        return None
    trace = tmp_path / "trace.txt"
    base = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace)]
    for command in (["strace", "--seccomp-bpf", *base[1:]], base):  # the first stops less
        if subprocess.run([*command, "true"], capture_output=True, check=False).returncode == 0:
            return command, trace
    return None


#: An Internet address in strace's output, and what it shows of a loopback one.
ADDRESS = re.compile(r'inet_(?:addr|pton)\((?:AF_INET6?, )?"([^"]+)"')


def test_the_guard_catches_a_connection(tmp_path):
    """The guard does refuse and record (so that an empty record means something)."""
    code = (
        "import socket, urllib.request\n"
        "for reach in (lambda: urllib.request.urlopen('http://example.com', timeout=5),\n"
        "              lambda: socket.socket().connect(('192.0.2.1', 9)),\n"
        "              lambda: socket.socket(type=socket.SOCK_DGRAM).sendto(b'x', ('192.0.2.1', 9))):\n"
        "    try:\n"
        "        reach()\n"
        "    except OSError:\n"
        "        pass\n"
        "socket.socket().connect_ex(('127.0.0.1', 9))  # the loopback: allowed\n"
    )
    proc, attempts = _guarded(tmp_path, "--code", code)
    assert proc.returncode == 0, proc.stderr
    assert [a[0] for a in attempts] == ["getaddrinfo", "connect", "sendto"]


def test_the_demo_runs_without_network(tmp_path):
    watch = _strace(tmp_path)
    proc, attempts = _guarded(
        tmp_path,
        "--cli",
        "demo",
        "--out",
        str(tmp_path / "demo"),
        "--resolution",
        "500",
        strace=watch[0] if watch else None,
    )
    assert proc.returncode == 0, proc.stderr
    assert attempts == []
    assert (tmp_path / "demo" / "outputs" / "map.html").exists()
    assert (tmp_path / "demo" / "outputs" / "report.html").exists()
    if watch is None:  # strace cannot run here: Python's sockets were watched, no more
        return
    outside = [
        line
        for line in watch[1].read_text(encoding="utf-8").splitlines()
        if "AF_INET" in line
        and not (
            (found := ADDRESS.findall(line))
            and all(ipaddress.ip_address(a).is_loopback for a in found)
        )
    ]
    assert outside == []
