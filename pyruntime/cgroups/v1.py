"""The cgroup v1 driver (legacy and hybrid hosts): a directory per hierarchy, as runc's fs.

On a hybrid host the container also gets a directory in the cgroup2 hierarchy (runc
does the same): no controllers there, but its cgroup.kill and cgroup.events still work.
"""

from __future__ import annotations

import errno
import os
import time

from pyruntime.cgroups.driver import (
    Denied,
    Driver,
    OomWatch,
    check_joinable,
    mkdir_failure,
    read_pids,
    read_text,
    write_failure,
    write_text,
)
from pyruntime.cgroups.settings import V1_ORDER
from pyruntime.errors import Failure

FREEZE_TIMEOUT = 10.0


class V1(Driver):
    mode = "v1"

    def dir_of(self, controller: str) -> str | None:
        for key, d in self.paths.items():
            if key and controller in key.split(","):
                return d
        return None

    def denied_for(self, controller: str) -> Denied | None:
        for key, e in self.denied.items():
            if key and controller in key.split(","):
                return e
        return None

    def _need(self, controller: str) -> str:
        d = self.dir_of(controller)
        denied = self.denied_for(controller) if d is None else None
        if denied is not None:
            raise Failure(f"cgroup: cannot set {controller} limits: "
                          f"{denied.message.removeprefix('cgroup: ')}")
        if d is None:
            from pyruntime.cgroups.detect import host

            if host().controller(controller) is not None:  # a rootless create left it out
                raise Failure(f"cgroup: the container has no {controller} cgroup: its user "
                              "could not create one (no delegation)")
            raise Failure(f"cgroup: the {controller} controller is not mounted on this host")
        return d

    def can_freeze(self) -> bool:
        return self.dir_of("freezer") is not None

    def clone_dir(self) -> str | None:
        return self.paths.get("")  # hybrid: the unified (cgroup2) hierarchy's directory

    def join_files(self) -> list[str]:
        return [os.path.join(d, "tasks") for key, d in self.paths.items() if key]

    def create(self, unit_properties: list | None = None) -> None:
        try:
            for key in sorted(self.paths, key=_rank):
                try:
                    self._make(self.paths[key], cpuset="cpuset" in key.split(","))
                except Denied as e:
                    if not self.skip_denied:
                        raise
                    self.leave_out(key, e)
        except BaseException:
            self.destroy()
            raise

    def _make(self, directory: str, *, cpuset: bool) -> None:
        missing = []
        d = directory
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        for d in reversed(missing):
            try:
                os.mkdir(d, 0o755)
            except FileExistsError:  # another create made it just now and may not have
                if cpuset:  # filled its cpus/mems yet: no task could join below it
                    _copy_cpuset_from_parent(d)
                continue
            except OSError as e:
                raise mkdir_failure(d, e) from None
            self.created.append(d)
            if cpuset:
                _copy_cpuset_from_parent(d)
        if not missing:
            check_joinable(directory)
        if not missing and read_pids(directory):
            raise Failure(f"cgroup: {directory} already has processes in it; "
                          "a container needs a cgroup of its own")

    def main_dir(self) -> str:
        for c in ("pids", "freezer", "memory", "cpu", "devices"):
            d = self.dir_of(c)
            if d is not None:
                return d
        return next(iter(self.paths.values()))

    # -- freezer ---------------------------------------------------------------------------
    def _freezer(self) -> str:
        return os.path.join(self._need("freezer"), "freezer.state")

    def frozen(self) -> bool:
        d = self.dir_of("freezer")
        if d is None:
            return False
        try:
            return read_text(os.path.join(d, "freezer.state")).strip() == "FROZEN"
        except FileNotFoundError:
            return False

    def freeze(self) -> None:
        path = self._freezer()
        deadline = time.monotonic() + FREEZE_TIMEOUT
        nap = 0.0005
        while True:
            write_text(path, "FROZEN")
            if read_text(path).strip() == "FROZEN":
                return
            if time.monotonic() > deadline:
                write_text(path, "THAWED")
                raise Failure("pause: the freezer did not freeze every process in "
                              f"{FREEZE_TIMEOUT:.0f} s; thawed again")
            time.sleep(nap)
            nap = min(nap * 2, 0.01)

    def thaw(self) -> None:
        write_text(self._freezer(), "THAWED")

    def kill_all(self, sig: int) -> None:
        unified = self.paths.get("")
        if sig == 9 and unified and os.path.exists(os.path.join(unified, "cgroup.kill")):
            write_text(os.path.join(unified, "cgroup.kill"), "1")
            if self.frozen():
                self.thaw()  # v1-frozen tasks die only once thawed
            return
        super().kill_all(sig)

    # -- events ----------------------------------------------------------------------------
    def stats(self) -> dict:
        from pyruntime.cgroups.stats import stats_v1

        return stats_v1(self.dir_of)

    def oom_watch(self) -> OomWatch | None:
        d = self.dir_of("memory")
        if d is None:
            return None
        return _V1Oom.open(d)

    def empty_watch(self) -> tuple[str, int] | None:
        unified = self.paths.get("")
        if not unified:
            return None
        path = os.path.join(unified, "cgroup.events")
        try:
            return path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None


def _rank(key: str) -> int:
    """Directories are made in the order the writes go (settings.V1_ORDER)."""
    first = key.split(",")[0]
    return V1_ORDER.index(first) if first in V1_ORDER else len(V1_ORDER)


def _copy_cpuset_from_parent(directory: str) -> None:
    """A new v1 cpuset has no cpus and no mems, and no task can join it until it has."""
    parent = os.path.dirname(directory)
    for name in ("cpuset.cpus", "cpuset.mems"):
        path = os.path.join(directory, name)
        if read_text(path).strip():
            continue
        value = read_text(os.path.join(parent, name)).strip()
        try:
            write_text(path, value)
        except OSError as e:
            raise write_failure(path, value, e) from None


class _V1Oom(OomWatch):
    """memory.oom_control registered on an eventfd through cgroup.event_control."""

    def __init__(self, fd: int, directory: str) -> None:
        import select

        super().__init__(fd, select.POLLIN)
        self.directory = directory

    @classmethod
    def open(cls, directory: str) -> _V1Oom | None:
        control = os.path.join(directory, "cgroup.event_control")
        if not os.path.exists(control):
            return None
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            ofd = os.open(os.path.join(directory, "memory.oom_control"),
                          os.O_RDONLY | os.O_CLOEXEC)
            try:
                write_text(control, f"{efd} {ofd}")
            finally:
                os.close(ofd)
        except OSError:
            os.close(efd)
            return None
        return cls(efd, directory)

    def check(self) -> int:
        try:
            count = os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0
        except OSError as e:
            if e.errno == errno.EAGAIN:
                return 0
            raise
        # the eventfd also fires when the cgroup is removed
        if not os.path.exists(os.path.join(self.directory, "cgroup.event_control")):
            return -1
        return count
