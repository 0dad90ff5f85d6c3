"""The systemd cgroup driver (--systemd-cgroup) on cgroup v2 hosts: the container's cgroup
is a transient unit systemd made and owns, PREFIX-NAME.scope (or NAME.slice).

create: StartTransientUnit with Delegate=yes, DefaultDependencies=no, accounting on and
the resources systemd has properties for (planned by settings.py with systemd_unit.py),
the job waited for; then, as runc's systemd driver, every resource is also written to
the cgroup's files (apply.py, as for cgroupfs v2), which is how the ones without a
property get set.

A scope must hold a process when it starts. runc names its init (a process that will
fork the container's init later); here the init is cloned by stage1 straight into the
finished cgroup (CLONE_INTO_CGROUP, as with cgroupfs), so the scope is started holding a
placeholder child of the runtime, blocked on a pipe, which ends once the init is in.
The init therefore never runs outside the scope, and a cgroup namespace sees the scope
as its root. Everything else (freeze, ps, kill --all, events, exec) works on the scope's
directory as on any v2 cgroup; update also sets the unit's properties
(set_unit_properties, called by apply.py); delete stops it.
"""

from __future__ import annotations

import os

from pyruntime.cgroups.v2 import V2
from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.cgroups.detect import Host
    from pyruntime.cgroups.systemd_unit import UnitPath


class SystemdV2(V2):
    mode = "systemd"

    def __init__(self, paths: dict[str, str], created: list[str] | None = None,
                 mountpoint: str = "/sys/fs/cgroup", unit: str = "", slice_: str = "",
                 version: int = 0) -> None:
        super().__init__(paths, created, mountpoint)
        self.unit = unit
        self.slice = slice_
        self.version = version
        self._bus = None
        self._placeholder: tuple[int, int] | None = None  # (pid, pipe write end)

    @classmethod
    def for_new(cls, path: UnitPath, host: Host) -> SystemdV2:
        """Connect (so an unreachable systemd is reported before anything is made)."""
        from pyruntime.cgroups.detect import UNIFIED

        if host.mode != UNIFIED:
            raise Failure("--systemd-cgroup: only cgroup v2 (unified) hosts are supported; "
                          f"this host's cgroups are {host.mode}")
        h = host.hierarchies[0]
        try:
            directory = h.dir_of(path.cgroup())
        except ValueError as e:
            raise Failure(f"linux.cgroupsPath: {e}") from None
        driver = cls({"": directory}, [], h.mountpoint, path.unit, path.slice)
        driver._connect()
        driver.version = driver._bus.version()  # type: ignore[union-attr]
        return driver

    def to_record(self) -> dict:
        record = super().to_record()
        record.update(unit=self.unit, slice=self.slice, version=self.version)
        return record

    def _connect(self):  # systemd_bus.Systemd (imported only here)
        if self._bus is None:
            from pyruntime.cgroups.systemd_bus import Systemd

            self._bus = Systemd()
        return self._bus

    # -- create ----------------------------------------------------------------------------
    def create(self, unit_properties: list | None = None) -> None:
        from pyruntime.cgroups.systemd_unit import unit_properties as base_properties

        pid = None if self.unit.endswith(".slice") else self._start_placeholder()
        props = base_properties(self.unit, self.slice, f"pyruntime container {self.unit}", pid)
        props += unit_properties or []
        try:
            self._connect().start_transient_unit(self.unit, props)
            if not os.path.isdir(self.dir):
                raise Failure(f"systemd: unit {self.unit} started, but its cgroup {self.dir} "
                              "is not there")
            self._enable_parents()
        except BaseException:
            try:
                self.destroy()
            except Failure:
                pass  # the first error is the one to report
            raise

    def _enable_parents(self) -> None:
        """The controllers systemd does not manage (hugetlb, rdma, misc) enabled down
        to the unit's parent, as runc's systemd driver does."""
        rel = os.path.relpath(os.path.dirname(self.dir), self.mountpoint)
        current = self.mountpoint
        self._enable_controllers(current)
        if rel != ".":
            for part in rel.split("/"):
                current = os.path.join(current, part)
                self._enable_controllers(current)

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
    def destroy(self) -> None:
        """Kill what is left, then stop the unit (systemd removes the cgroup)."""
        self._end_placeholder()
        try:
            if os.path.isdir(self.dir) and self.pids():
                self.kill_all(9)
        except OSError:
            pass
        self._connect().stop_unit(self.unit)
        self.created = []

