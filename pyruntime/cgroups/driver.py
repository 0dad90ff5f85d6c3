"""The one interface both cgroup drivers (v1.py, v2.py) implement, and their shared helpers.

A driver owns the container's cgroup directories: `paths` maps a hierarchy key
(detect.Hierarchy.key; "" is cgroup2) to a directory, `created` lists the directories
this runtime made (parents before children), which are exactly the ones `destroy`
removes. Both are recorded in state.json through to_record() / from_record().
"""

from __future__ import annotations

import errno
import os
import select
import time

from pyruntime.errors import Failure

RMDIR_TIMEOUT = 5.0


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def write_text(path: str, value: str) -> None:
    """One write(2) of the whole value, as the cgroup files require."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write_failure(path: str, value: str, e: OSError) -> Failure:
    return Failure(f"cgroup: write {value!r} to {path}: {e.strerror or e}")


class Denied(Failure):
    """A cgroup directory this caller may not make (EACCES, EPERM, EROFS)."""


DENIED_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)


def mkdir_failure(directory: str, e: OSError) -> Failure:
    """mkdir of a container's cgroup failed.  Refused for lack of rights, a non-root caller
    has no delegated subtree there: say so (Denied, which a rootless create may skip)."""
    if e.errno in DENIED_ERRNOS:
        if os.geteuid() != 0:
            return Denied(f"cgroup: cannot write cgroup {directory}: "
                          f"{(e.strerror or '').lower()} (no delegation)")
        return Denied(f"cgroup: mkdir {directory}: {e.strerror}")
    return Failure(f"cgroup: mkdir {directory}: {e.strerror}")


def check_joinable(directory: str) -> None:
    """An existing cgroup a non-root caller could not put the init into is refused like
    one it could not make (runc's rootless manager skips both alike)."""
    if os.geteuid() != 0 and not os.access(os.path.join(directory, "cgroup.procs"), os.W_OK):
        raise mkdir_failure(directory, OSError(errno.EACCES, os.strerror(errno.EACCES)))


def read_pids(directory: str) -> list[int]:
    """Every pid in the cgroup at `directory` and in the cgroups below it."""
    pids: list[int] = []
    for top, dirs, _files in os.walk(directory):
        try:
            text = read_text(os.path.join(top, "cgroup.procs"))
        except (FileNotFoundError, ProcessLookupError):
            continue
        pids.extend(int(x) for x in text.split())
        dirs.sort()
    return pids


class Driver:
    """What a cgroup driver does for one container."""

    mode = ""

    def __init__(self, paths: dict[str, str], created: list[str] | None = None) -> None:
        self.paths = paths
        self.created: list[str] = created or []
        # Rootless without linux.cgroupsPath (pyruntime/rootless.py): a hierarchy whose
        # directory the caller may not make is left out of `paths`, as runc's rootless
        # cgroup manager does, and noted in `denied` (key -> the refusal) and `left_out`
        # (key -> the directory it would have had).
        self.skip_denied = False
        self.denied: dict[str, Denied] = {}
        self.left_out: dict[str, str] = {}

    def leave_out(self, key: str, e: Denied) -> None:
        """Rootless: go without the hierarchy `key` (create was refused its directory)."""
        self.left_out[key] = self.paths.pop(key)
        self.denied[key] = e

    # -- state.json ------------------------------------------------------------------------
    def to_record(self) -> dict:
        return {"mode": self.mode, "paths": self.paths, "created": self.created}

    def planned_record(self) -> dict:
        """to_record() as if create() had run now: `created` lists the directories that do
        not exist yet.  The provisional record keeps it, so that the leftover of a runtime
        killed during create is removed without touching a cgroup it did not make."""
        planned: list[str] = []
        for d in self.paths.values():
            while d not in ("", "/") and d not in planned and not os.path.isdir(d):
                planned.append(d)
                d = os.path.dirname(d)
        return {**self.to_record(), "created": planned}

    # -- lifecycle -------------------------------------------------------------------------
    def create(self, unit_properties: list | None = None) -> None:
        """Make the directories; on failure remove what was made and raise Failure.

        `unit_properties`: systemd's, from the plan (settings.py); the cgroup files are
        written by apply.py either way."""
        raise NotImplementedError

    def started(self, init_pid: int) -> None:
        """Called once the init is in the cgroup (systemd: the scope's placeholder goes)."""

    def procs_files(self) -> list[str]:
        """The cgroup.procs files the init's pid is written to before it runs."""
        return [os.path.join(d, "cgroup.procs") for d in self.paths.values()]

    def clone_dir(self) -> str | None:
        """The cgroup2 directory for clone3's CLONE_INTO_CGROUP (v2, or hybrid's unified)."""
        return None

    def join_files(self) -> list[str]:
        """The files stage1 writes itself ("0") into before it clones init: a v1
        hierarchy's `tasks`.  stage1 is a single thread, so that moves the whole process,
        without the global threadgroup lock a cgroup.procs write takes (an RCU grace
        period: ~15 ms here, the largest cost of a create)."""
        return []

    def add_pid(self, pid: int) -> None:
        for path in self.procs_files():
            try:
                write_text(path, str(pid))
            except OSError as e:
                raise write_failure(path, str(pid), e) from None

    # -- verbs -----------------------------------------------------------------------------
    def main_dir(self) -> str:
        raise NotImplementedError

    def pids(self) -> list[int]:
        return read_pids(self.main_dir())

    def can_freeze(self) -> bool:
        """Whether the container has a cgroup that freezes (v1: a freezer directory)."""
        return True

    def freeze(self) -> None:
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    def kill_all(self, sig: int) -> None:
        """Signal every process: freeze so none forks away, signal each, thaw (runc's way).

        A paused container stays paused unless the signal is SIGKILL (frozen processes
        cannot die).  Without a freezer cgroup (a rootless create may go without one) the
        processes are signalled unfrozen, as runc does then.
        """
        freezes = self.can_freeze()
        was_frozen = freezes and self.frozen()
        if freezes and not was_frozen:
            self.freeze()
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if freezes and (not was_frozen or sig == 9):
                self.thaw()

    def stats(self) -> dict:
        raise NotImplementedError

    def oom_watch(self) -> OomWatch | None:
        return None

    def empty_watch(self) -> tuple[str, int] | None:
        """(cgroup.events path, fd) to poll for 'populated 0', if the host has one."""
        return None

    def destroy(self) -> None:
        """Kill what is left, then remove the directories this runtime made, deepest first."""
        if not self.created:
            return
        try:
            if self.pids():
                self.kill_all(9)
        except OSError:
            pass
        deadline = time.monotonic() + RMDIR_TIMEOUT
        left = []
        leaves = set(self.paths.values())
        for d in sorted(self.created, key=lambda p: p.count("/"), reverse=True):
            if d not in leaves and _has_children(d):
                continue  # a parent this create made, now shared with another container
            if not _rmdir_retry(d, deadline, self):
                left.append(d)
        self.created = left
        if left:
            raise Failure("cgroup: could not remove " + ", ".join(left) + ": still busy")


class OomWatch:
    """An fd to poll (with `events`) that becomes ready when the cgroup has an OOM kill;
    `check()` returns how many new OOM events there were since the last call."""

    def __init__(self, fd: int, events: int) -> None:
        self.fd = fd
        self.events = events

    def check(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def _has_children(path: str) -> bool:
    try:
        return any(e.is_dir(follow_symlinks=False) for e in os.scandir(path))
    except FileNotFoundError:
        return False


def _rmdir_retry(path: str, deadline: float, driver: Driver) -> bool:
    """rmdir, retrying on EBUSY until `deadline` (exiting tasks leave the cgroup late).

    Waits on cgroup.events (poll POLLPRI: the kernel flags every change of 'populated')
    where there is one, in short naps otherwise.
    """
    watch = driver.empty_watch()
    try:
        nap = 0.001
        while True:
            try:
                os.rmdir(path)
                return True
            except FileNotFoundError:
                return True
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() >= deadline:
                    return False
            if watch is not None:
                poller = select.poll()
                poller.register(watch[1], select.POLLPRI)
                poller.poll(int(min(nap * 10, 0.1) * 1000) + 1)
                os.lseek(watch[1], 0, os.SEEK_SET)
                os.read(watch[1], 4096)
            else:
                time.sleep(nap)
            nap = min(nap * 2, 0.05)
    finally:
        if watch is not None:
            os.close(watch[1])
