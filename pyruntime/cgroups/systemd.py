"""The systemd cgroup driver (--systemd-cgroup): the container's cgroup is a transient unit
systemd made and owns, PREFIX-NAME.scope (or NAME.slice). SystemdV2 on cgroup v2 hosts;
SystemdV1 on v1 (legacy and hybrid) hosts, as runc's legacy systemd manager.

create: StartTransientUnit with Delegate=yes, DefaultDependencies=no, accounting on and
the resources systemd has properties for (planned by settings.py with systemd_unit.py),
the job waited for; then, as runc's systemd driver, every resource is also written to
the cgroup's files (apply.py, as for cgroupfs), which is how the ones without a property
get set. On v1, systemd makes the unit's directory in the hierarchies it manages
(name=systemd, memory, cpu, blkio, pids, devices, and the unified one of a hybrid host);
the driver makes it in the others (cpuset, freezer, ...), and removes those at delete.

A scope must hold a process when it starts. runc names its init (a process that will
fork the container's init later); here the init is cloned by stage1 straight into the
finished cgroup (CLONE_INTO_CGROUP on v2; on v1 stage1 joins every hierarchy first), so
the scope is started holding a placeholder child of the runtime, blocked on a pipe, which
ends once the init is in. The init therefore never runs outside the scope, and a cgroup
namespace sees the scope as its root. Everything else (freeze, ps, kill --all, events,
exec) works on the unit's directories as on any cgroup; update also sets the unit's
properties (set_unit_properties, called by apply.py); delete stops it.
"""

from __future__ import annotations

import os

from pyruntime.cgroups.driver import read_text
from pyruntime.cgroups.v1 import V1, _rank
from pyruntime.cgroups.v2 import V2
from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.cgroups.detect import Host
    from pyruntime.cgroups.systemd_unit import UnitPath


class _Unit:
    """The unit half both drivers share: the bus, the placeholder, start, stop."""

    systemd = True  # settings.py, update: plan and set the unit's properties too
    record_mode = ""
    paths: dict[str, str]
    created: list[str]

    def _init_unit(self, unit: str, slice_: str, version: int) -> None:
        self.unit = unit
        self.slice = slice_
        self.version = version
        self._bus = None
        self._placeholder: tuple[int, int] | None = None  # (pid, pipe write end)

    def to_record(self) -> dict:
        record = super().to_record()  # type: ignore[misc]
        record.update(mode=self.record_mode, unit=self.unit, slice=self.slice,
                      version=self.version)
        return record

    def _connect(self):  # systemd_bus.Systemd (imported only here)
        if self._bus is None:
            from pyruntime.cgroups.systemd_bus import Systemd

            self._bus = Systemd()
        return self._bus

    def unit_dir(self) -> str:
        """The unit's directory systemd makes (checked once the unit is started)."""
        raise NotImplementedError

    def create(self, unit_properties: list | None = None) -> None:
        """Start the unit, then do what systemd leaves to the driver (_after_start); on
        any failure, what was made goes again."""
        try:
            self._start_unit(unit_properties)
            self._after_start()
        except BaseException:
            try:
                self.destroy()  # type: ignore[attr-defined]
            except Failure:
                pass  # the first error is the one to report
            raise

    def _after_start(self) -> None:
        """What the driver does itself once systemd has made the unit's directory."""
        raise NotImplementedError

    def _start_unit(self, unit_properties: list | None) -> None:
        """StartTransientUnit holding a placeholder (a scope), with the base properties
        and the planned resource ones; the unit's directory must then be there."""
        from pyruntime.cgroups.systemd_unit import unit_properties as base_properties

        pid = None if self.unit.endswith(".slice") else self._start_placeholder()
        props = base_properties(self.unit, self.slice, f"pyruntime container {self.unit}",
                                pid, v1=isinstance(self, V1))
        props += unit_properties or []
        self._connect().start_transient_unit(self.unit, props)
        if not os.path.isdir(self.unit_dir()):
            raise Failure(f"systemd: unit {self.unit} started, but its cgroup "
                          f"{self.unit_dir()} is not there")

    def _start_placeholder(self) -> int:
        """A child blocked on a pipe: the scope's first process (see the module doc).
        The pipe ends it should the runtime die; otherwise it is killed."""
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child only waits for EOF
            try:
                os.close(w)
                os.read(r, 1)
            finally:
                os._exit(0)
        os.close(r)
        self._placeholder = (pid, w)
        return pid

    def started(self, init_pid: int) -> None:
        """The init is in the cgroup now: the placeholder can go."""
        self._end_placeholder()

    def _end_placeholder(self) -> None:
        if self._placeholder is None:
            return
        pid, w = self._placeholder
        self._placeholder = None
        os.close(w)  # (stage1 and init inherited it: no EOF until init execs)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    # -- update ----------------------------------------------------------------------------
    def set_unit_properties(self, props: list) -> None:
        """update: the planned resource properties (settings.py), before the files."""
        self._connect().set_unit_properties(self.unit, props)

    # -- delete ----------------------------------------------------------------------------
    def _stop_unit(self) -> None:
        """Kill what is left, then stop the unit (systemd removes its directories)."""
        self._end_placeholder()
        try:
            if os.path.isdir(self.unit_dir()) and self.pids():  # type: ignore[attr-defined]
                self.kill_all(9)  # type: ignore[attr-defined]
        except OSError:
            pass
        self._connect().stop_unit(self.unit)


def _check_path(host: Host, path: UnitPath) -> None:
    try:
        for h in host.hierarchies:
            h.dir_of(path.cgroup())
    except ValueError as e:
        raise Failure(f"linux.cgroupsPath: {e}") from None


class SystemdV2(_Unit, V2):
    mode = "systemd"
    record_mode = "systemd"

    def __init__(self, paths: dict[str, str], created: list[str] | None = None,
                 mountpoint: str = "/sys/fs/cgroup", unit: str = "", slice_: str = "",
                 version: int = 0) -> None:
        V2.__init__(self, paths, created, mountpoint)
        self._init_unit(unit, slice_, version)

    @classmethod
    def for_new(cls, path: UnitPath, host: Host) -> SystemdV2:
        """Connect (so an unreachable systemd is reported before anything is made)."""
        _check_path(host, path)
        h = host.hierarchies[0]
        driver = cls({"": h.dir_of(path.cgroup())}, [], h.mountpoint, path.unit, path.slice)
        driver.version = driver._connect().version()
        return driver

    def unit_dir(self) -> str:
        return self.dir

    def _after_start(self) -> None:
        """The controllers systemd does not manage (hugetlb, rdma, misc) enabled down
        to the unit's parent, as runc's systemd driver does."""
        rel = os.path.relpath(os.path.dirname(self.dir), self.mountpoint)
        current = self.mountpoint
        self._enable_controllers(current)
        if rel != ".":
            for part in rel.split("/"):
                current = os.path.join(current, part)
                self._enable_controllers(current)

    def destroy(self) -> None:
        self._stop_unit()
        self.created = []


class SystemdV1(_Unit, V1):
    """v1 hosts: `paths` has the unit's directory in every hierarchy (and the unified one
    of a hybrid host); `created` only those the driver made itself."""

    mode = "v1"  # the files are v1's (settings.py, apply.py)
    record_mode = "systemd-v1"

    def __init__(self, paths: dict[str, str], created: list[str] | None = None,
                 unit: str = "", slice_: str = "", version: int = 0) -> None:
        V1.__init__(self, paths, created)
        self._init_unit(unit, slice_, version)

    @classmethod
    def for_new(cls, path: UnitPath, host: Host) -> SystemdV1:
        _check_path(host, path)
        if not any(h.key == "name=systemd" for h in host.hierarchies):
            raise Failure("--systemd-cgroup: this cgroup v1 host has no name=systemd "
                          "hierarchy: systemd does not manage its cgroups")
        paths = {h.key: h.dir_of(path.cgroup()) for h in host.hierarchies}
        driver = cls(paths, [], path.unit, path.slice)
        driver.version = driver._connect().version()
        return driver

    def unit_dir(self) -> str:
        return self.paths["name=systemd"]

    def _after_start(self) -> None:
        """The unit's directory in the hierarchies systemd does not manage."""
        for key in sorted(self.paths, key=_rank):
            if not os.path.isdir(self.paths[key]):  # one systemd does not manage
                self._make(self.paths[key], cpuset="cpuset" in key.split(","))

    def cpu_period(self) -> int:
        """The CFS period in force, 0 if unknown (update: a quota without a period)."""
        d = self.dir_of("cpu")
        try:
            return int(read_text(os.path.join(d, "cpu.cfs_period_us"))) if d else 0
        except (OSError, ValueError):
            return 0

    def destroy(self) -> None:
        """Stop the unit, then remove the directories made alongside it."""
        self._stop_unit()
        V1.destroy(self)
