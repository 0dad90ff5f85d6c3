"""The cgroup v2 driver (unified hosts): one directory, controllers enabled from the top.

Each ancestor of the container's cgroup (below the mount's top, which is never
touched) gets the controllers the container needs in cgroup.subtree_control, as runc
and crun do; the init is cloned straight into the cgroup (clone3 CLONE_INTO_CGROUP,
native/spawn.c) or written to cgroup.procs before it runs. Device rules become an eBPF
program attached to the directory before that (devicefilter.py), v2's devices controller.
"""

from __future__ import annotations

import os
import select

from pyruntime.cgroups.driver import (
    Denied,
    Driver,
    OomWatch,
    check_joinable,
    mkdir_failure,
    read_pids,
    read_text,
    write_text,
)
from pyruntime.errors import Failure

FREEZE_TIMEOUT_MS = 10_000
# what runc enables when it can (all of the parent's), in the kernel's order
WANTED = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")


class V2(Driver):
    mode = "v2"

    def __init__(self, paths: dict[str, str], created: list[str] | None = None,
                 mountpoint: str = "/sys/fs/cgroup") -> None:
        super().__init__(paths, created)
        self.mountpoint = mountpoint

    def to_record(self) -> dict:
        record = super().to_record()
        record["mountpoint"] = self.mountpoint
        return record

    @property
    def dir(self) -> str:
        return self.paths[""]

    def main_dir(self) -> str:
        return self.dir

    def clone_dir(self) -> str | None:
        return self.paths.get("")

    def create(self, unit_properties: list | None = None) -> None:
        try:
            self._make()
        except Denied as e:
            self.destroy()
            if not self.skip_denied:
                raise
            self.leave_out("", e)
        except BaseException:
            self.destroy()
            raise

    def _make(self) -> None:
        directory = self.dir
        rel = os.path.relpath(directory, self.mountpoint)
        if rel.startswith(".."):
            raise Failure(f"cgroup: {directory} is not under {self.mountpoint}")
        parts = rel.split("/")
        current = self.mountpoint
        for i, part in enumerate(parts):
            # enable the controllers for the level below before making it
            self._enable_controllers(current)
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
                self.created.append(current)
            except FileExistsError:
                if i == len(parts) - 1:
                    check_joinable(current)
                if i == len(parts) - 1 and read_pids(current):
                    raise Failure(f"cgroup: {current} already has processes in it; "
                                  "a container needs a cgroup of its own") from None
            except OSError as e:
                raise mkdir_failure(current, e) from None

    def _enable_controllers(self, directory: str) -> None:
        """Enable in `directory`'s subtree_control what it has and we want.

        The mount's top is the host's business only if it is the real root cgroup;
        enabling there is what every runtime does, and is idempotent.
        """
        try:
            available = set(read_text(os.path.join(directory, "cgroup.controllers")).split())
            enabled = set(read_text(os.path.join(directory, "cgroup.subtree_control")).split())
        except OSError as e:
            raise Failure(f"cgroup: {directory}: {e.strerror}") from None
        wanted = [c for c in WANTED if c in available and c not in enabled]
        if not wanted:
            return
        path = os.path.join(directory, "cgroup.subtree_control")
        try:
            write_text(path, " ".join("+" + c for c in wanted))
        except OSError:
            # one at a time, so one refused controller (a threaded subtree, a busy
            # cgroup with processes of its own) does not cost the others
            for c in wanted:
                try:
                    write_text(path, "+" + c)
                except OSError:
                    pass

    def cpu_period(self) -> int:
        """The CFS period in force (cpu.max), 0 if unknown: systemd's quota property is
        per second, so an update of the quota alone needs it."""
        try:
            return int(read_text(os.path.join(self.dir, "cpu.max")).split()[1])
        except (OSError, IndexError, ValueError):
            return 0

    # -- freezer ---------------------------------------------------------------------------
    def frozen(self) -> bool:
        try:
            return read_text(os.path.join(self.dir, "cgroup.freeze")).strip() == "1"
        except FileNotFoundError:
            return False

    def _set_frozen(self, value: str) -> None:
        """Write cgroup.freeze and wait for cgroup.events to agree.

        cgroup.events is opened before the write: once thawed, processes signalled while
        frozen die, and a systemd scope left empty is removed at once; a cgroup gone during
        a thaw has nothing left frozen in it.
        """
        events = os.path.join(self.dir, "cgroup.events")
        fd = os.open(events, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                write_text(os.path.join(self.dir, "cgroup.freeze"), value)
            except FileNotFoundError:
                if value == "0":
                    return
                raise
            want = "frozen " + value
            poller = select.poll()
            poller.register(fd, select.POLLPRI)
            remaining = FREEZE_TIMEOUT_MS
            while True:
                os.lseek(fd, 0, os.SEEK_SET)
                try:
                    text = os.read(fd, 4096).decode()
                except OSError:  # ENODEV: the cgroup was removed
                    if value == "0":
                        return
                    raise
                if want in text.splitlines():
                    return
                if remaining <= 0:
                    break
                poller.poll(100)
                remaining -= 100
        finally:
            os.close(fd)
        if value == "1":
            write_text(os.path.join(self.dir, "cgroup.freeze"), "0")
            raise Failure("pause: the cgroup did not freeze in 10 s; thawed again")

    def freeze(self) -> None:
        self._set_frozen("1")

    def thaw(self) -> None:
        self._set_frozen("0")

    def kill_all(self, sig: int) -> None:
        kill = os.path.join(self.dir, "cgroup.kill")
        if sig == 9 and os.path.exists(kill):
            write_text(kill, "1")  # frozen or not, every process in the subtree
            return
        super().kill_all(sig)

    # -- events ----------------------------------------------------------------------------
    def stats(self) -> dict:
        from pyruntime.cgroups.stats import stats_v2

        return stats_v2(self.dir)

    def oom_watch(self) -> OomWatch | None:
        path = os.path.join(self.dir, "memory.events")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        return _V2Oom(fd)

    def empty_watch(self) -> tuple[str, int] | None:
        path = os.path.join(self.dir, "cgroup.events")
        try:
            return path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None


class _V2Oom(OomWatch):
    """memory.events: the kernel flags changes with POLLPRI; oom_kill counts the kills."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, select.POLLPRI)
        self.seen = self._count()

    def _count(self) -> int:
        os.lseek(self.fd, 0, os.SEEK_SET)
        try:
            text = os.read(self.fd, 4096).decode()
        except OSError:
            return -1
        counts = dict(line.split() for line in text.splitlines() if " " in line)
        return int(counts.get("oom_kill", counts.get("oom", 0)))

    def check(self) -> int:
        now = self._count()
        if now < 0:
            return -1
        new, self.seen = now - self.seen, now
        return new
