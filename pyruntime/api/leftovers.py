"""Find what a test left behind: state dirs, mounts, processes, pid namespaces, cgroups.

A test's footprint is recognised by its private tmp path (rootfs, bundle, state root and
the runtime's cwd all live there) and by a token that the bundle fixtures put in every
container's environment (PYRUNTIME_TEST_TOKEN), which survives pivot_root and namespaces,
and in its cgroup's name (``pyrt-test-<token>-<name>``, relative: under the test's own).
The pytest plugin (pyruntime/api/pytest_plugin.py) and pyruntime's own tests use it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

TOKEN_VAR = "PYRUNTIME_TEST_TOKEN"
MNT_DETACH = 2
CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_PREFIX = "pyrt-test-"


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    cmdline: str
    why: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.why}): {self.cmdline or '?'}"


@dataclass
class Leftovers:
    state_dirs: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    processes: list[ProcInfo] = field(default_factory=list)
    pidns_processes: list[ProcInfo] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.state_dirs or self.mounts or self.processes or self.pidns_processes)

    def report(self) -> str:
        lines = []
        if self.state_dirs:
            lines.append("state dirs left under the root: " + ", ".join(self.state_dirs))
        lines += [f"mount left: {m}" for m in self.mounts]
        lines += [f"process left: {p}" for p in self.processes]
        lines += [f"process in a pid namespace new since the test began: {p}"
                  for p in self.pidns_processes]
        return "\n".join(lines)


# -- /proc readers ---------------------------------------------------------------------------

def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _is_zombie_or_gone(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
    if not stat:
        return True
    return stat[stat.rfind(")") + 2 :][:1] in ("Z", "X")


def _cmdline(pid: int) -> str:
    return _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace").strip()


def _ppid(pid: int) -> int:
    stat = _read(f"/proc/{pid}/stat").decode(errors="replace")
    try:
        return int(stat[stat.rfind(")") + 2 :].split()[1])
    except (IndexError, ValueError):
        return 0


def _self_and_ancestors() -> set[int]:
    out, pid = set(), os.getpid()
    while pid > 0 and pid not in out:
        out.add(pid)
        pid = _ppid(pid)
    return out


def pid_namespaces() -> dict[int, str]:
    """pid -> its pid namespace ("pid:[4026531836]"), for every process we can see."""
    out = {}
    for pid in _pids():
        ns = _readlink(f"/proc/{pid}/ns/pid")
        if ns:
            out[pid] = ns
    return out


def snapshot_pid_namespaces() -> set[str]:
    return set(pid_namespaces().values())


# -- finders ---------------------------------------------------------------------------------

def find_mounts(path: Path) -> list[str]:
    """Lines of our /proc/self/mountinfo that mention *path*."""
    text = _read("/proc/self/mountinfo").decode(errors="replace")
    return [line for line in text.splitlines() if str(path) in line]


def find_processes(path: Path, token: str | None) -> list[ProcInfo]:
    """Live processes whose root, cwd, exe or argv points into *path*, or whose environment
    carries *token*.  The test process and its ancestors are not counted."""
    spath = str(path)
    skip = _self_and_ancestors()
    found = []
    for pid in _pids():
        if pid in skip or _is_zombie_or_gone(pid):
            continue
        cmdline = _cmdline(pid)
        why = []
        for what in ("root", "cwd", "exe"):
            if spath in _readlink(f"/proc/{pid}/{what}"):
                why.append(what)
        if spath in cmdline:
            why.append("cmdline")
        if token and f"{TOKEN_VAR}={token}".encode() in _read(f"/proc/{pid}/environ"):
            why.append("environ token")
        if why:
            found.append(ProcInfo(pid, cmdline, "+".join(why)))
    return found


def find_new_pidns_processes(before: set[str]) -> list[ProcInfo]:
    """Live processes in a pid namespace that no process was in when *before* was taken."""
    found = []
    for pid, ns in pid_namespaces().items():
        if ns not in before and not _is_zombie_or_gone(pid):
            found.append(ProcInfo(pid, _cmdline(pid), f"{ns}"))
    return found


def find_leftovers(
    path: Path, token: str | None, pidns_before: set[str] | None, state_root: Path | None
) -> Leftovers:
    left = Leftovers()
    if state_root is not None and state_root.is_dir():
        # <root>/images is the image store (layers may stay); a container's image bundle
        # (<root>/images/containers/<id>, from `run --image`) must go with the container
        bundles = state_root / "images" / "containers"
        left.state_dirs = sorted(
            [p.name for p in state_root.iterdir() if p.is_dir() and p.name != "images"]
            + [f"images/containers/{p.name}" for p in
               (bundles.iterdir() if bundles.is_dir() else ())])
    left.mounts = find_mounts(path)
    left.processes = find_processes(path, token)
    if pidns_before is not None:
        left.pidns_processes = find_new_pidns_processes(pidns_before)
    return left


def wait_for_no_leftovers(
    path: Path, token: str | None, pidns_before: set[str] | None, state_root: Path | None,
    grace: float = 3.0,
) -> Leftovers:
    """find_leftovers, retried for up to *grace* seconds (killed processes take a moment
    to be reaped by whoever inherited them)."""
    deadline = time.monotonic() + grace
    while True:
        left = find_leftovers(path, token, pidns_before, state_root)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


# -- cleaning up after a failed check ----------------------------------------------------------

def kill_processes(procs: list[ProcInfo]) -> None:
    """SIGKILL the given processes, by pid (only ever ones found by find_processes: they
    carry this test's token or point into its tmp path)."""
    for proc in procs:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def detach_mounts(path: Path) -> None:
    """Lazily unmount every mount at or below *path* (deepest first).  Never touches a
    mount outside *path*."""
    libc = ctypes.CDLL(None, use_errno=True)
    prefix = str(path).rstrip("/") + "/"
    text = _read("/proc/self/mountinfo").decode(errors="replace")
    points = []
    for line in text.splitlines():
        mountpoint = line.split()[4].encode().decode("unicode_escape")
        if mountpoint == prefix.rstrip("/") or mountpoint.startswith(prefix):
            points.append(mountpoint)
    for mountpoint in sorted(set(points), key=lambda p: p.count("/"), reverse=True):
        libc.umount2(mountpoint.encode(), MNT_DETACH)


# -- cgroups -----------------------------------------------------------------------------------
# Test cgroups have "pyrt" in their names and nest under the test process's own cgroups:
# linux.cgroupsPath is a relative ``pyrt-test-<token>-<bundle name>``, unique per test and
# bundle, so concurrent test runs on one host never share a cgroup.

def cgroups_path(token: str, name: str) -> str:
    return f"{CGROUP_PREFIX}{token}-{name}"


def find_cgroups(token: str, root: str = CGROUP_ROOT, max_depth: int = 6) -> list[str]:
    """Every cgroup directory under `root` whose path mentions `token`."""
    found = []
    base = root.rstrip("/").count("/")
    for top, dirs, _files in os.walk(root):
        if top.count("/") - base >= max_depth:
            dirs[:] = []
        if token in top[len(root):]:  # the cgroup named with it, and those below it
            found.append(top)
    return found


def remove_cgroups(paths: list[str]) -> None:
    """rmdir what can be removed, deepest first (a cgroup with processes stays)."""
    for path in sorted(paths, key=lambda p: p.count("/"), reverse=True):
        try:
            os.rmdir(path)
        except OSError:
            pass
