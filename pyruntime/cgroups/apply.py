"""The one executor of the plan's cgroup entries (settings.py), for create and update.

The driver makes and removes the directories (and, with systemd, starts the unit with
the planned properties); this module writes what the entries say, in their order. It
decides nothing about resources: only what the host answers (a missing file, a
controller not enabled, a hierarchy a rootless create was refused) is handled here.
"""

from __future__ import annotations

import errno
import os

from pyruntime.cgroups.driver import read_text, write_failure, write_text
from pyruntime.cgroups.resources import KEEP_QUOTA, CgroupWrite
from pyruntime.cgroups.settings import DeviceFilter, MemorySwap
from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyruntime.cgroups.driver import Driver
    from pyruntime.cgroups.settings import CgroupSettings
    from pyruntime.plan.build import Plan


def setup(driver: Driver, plan: Plan, warn: Callable[[str], None] | None = None) -> None:
    """create: make the container's cgroups and apply plan.cgroup_settings; on failure
    remove them again.  A rootless create that left hierarchies out plans the init's
    joins again without them (joins.plan_left_out)."""
    make(driver, plan.cgroup_settings, warn)
    if driver.left_out:
        from pyruntime.cgroups.joins import plan_left_out

        plan_left_out(plan, driver)


def make(driver: Driver, settings: CgroupSettings | None,
         warn: Callable[[str], None] | None = None) -> None:
    """Make the cgroups (systemd: with the planned unit properties), then apply."""
    driver.create(settings.unit_properties if settings is not None else None)
    try:
        if settings is not None:
            for message in apply(driver, settings):
                if warn is not None:
                    warn(message)
    except BaseException:
        driver.destroy()
        raise


def apply(driver: Driver, settings: CgroupSettings) -> list[str]:
    """Carry the entries out in order; return the warnings (features the kernel dropped).
    An update with systemd sets the unit's properties first (create passed them to
    StartTransientUnit), then writes the files, as runc's systemd driver."""
    warnings = list(settings.warnings)
    if settings.unit_properties is not None and not settings.initial:
        driver.set_unit_properties(settings.unit_properties)  # type: ignore[attr-defined]
    v2 = _V2Files(driver) if driver.mode != "v1" else None
    for entry in settings.entries:
        if isinstance(entry, CgroupWrite):
            directory = v2.directory(entry) if v2 is not None else _v1_directory(driver, entry)
            if directory is not None:
                _write(directory, entry, warnings)
        elif isinstance(entry, MemorySwap):
            _memory_swap(_v1_directory(driver, CgroupWrite("memory", "memory.limit_in_bytes",
                                                           "")), entry)
        elif isinstance(entry, DeviceFilter):
            directory = driver.paths.get("")
            if directory is not None:  # none: a rootless create was refused it
                from pyruntime.cgroups.devicefilter import attach_code

                attach_code(directory, entry.code)
        else:  # pragma: no cover - settings.Entry lists every kind
            raise TypeError(f"not a cgroup plan entry: {entry!r}")
    return warnings


def _v1_directory(driver: Driver, w: CgroupWrite) -> str | None:
    """The hierarchy's directory for `w`, or None to skip it."""
    d = driver.dir_of(w.controller)  # type: ignore[attr-defined]
    if d is not None:
        return d
    if w.optional:
        return None
    denied = driver.denied_for(w.controller)  # type: ignore[attr-defined]
    if denied is not None:
        if w.controller == "devices":  # runc: not expected to work rootless
            return None
        raise Failure(f"{w.field or 'cgroup'}: cannot set {w.filename}: "
                      f"{denied.message.removeprefix('cgroup: ')}")
    raise Failure(f"{w.field or 'cgroup'}: cannot set {w.filename}: the {w.controller} "
                  "controller is not mounted on this host")


class _V2Files:
    """v2's one directory, and which controllers it has (read once per apply)."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._enabled: set[str] | None = None

    def directory(self, w: CgroupWrite) -> str:
        d = self.driver.paths.get("")
        if d is None:  # rootless: create was refused the directory
            denied = self.driver.denied.get("")
            reason = denied.message.removeprefix("cgroup: ") if denied else "no cgroup"
            raise Failure(f"{w.field or 'cgroup'}: cannot set {w.filename}: {reason}")
        if self._enabled is None:
            self._enabled = set(read_text(os.path.join(d, "cgroup.controllers")).split())
        from pyruntime.cgroups.v2 import WANTED

        controller = w.filename.split(".", 1)[0]
        if controller in WANTED and controller not in self._enabled:
            raise Failure(f"cgroup: cannot set {w.filename}: the {controller} controller "
                          f"is not enabled for {d}")
        return d


def _write(directory: str, w: CgroupWrite, warnings: list[str]) -> None:
    filename = w.filename
    if w.fallback and not os.path.exists(os.path.join(directory, filename)):
        filename = w.fallback
    path = os.path.join(directory, filename)
    value = w.value
    if filename == "cpu.max" and value.startswith(KEEP_QUOTA + " "):  # v2: the quota in force
        value = read_text(path).split()[0] + value[len(KEEP_QUOTA):]
    try:
        write_text(path, value)
    except FileNotFoundError:
        if w.optional:
            warnings.append(f"cgroup: {filename} does not exist on this kernel; ignored")
            return
        raise Failure(f"cgroup: {path}: no such file (not supported by this kernel or "
                      "its controller is not enabled)") from None
    except OSError as e:
        if w.optional and e.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTSUP):
            warnings.append(f"cgroup: {filename}: {e.strerror}; ignored")
            return
        raise write_failure(path, value, e) from None


def _memory_swap(d: str | None, pair: MemorySwap) -> None:
    """runc's setMemoryAndSwap: memsw must stay >= the limit at every step."""
    assert d is not None
    limit, swap = pair.limit, pair.swap
    memsw = os.path.join(d, "memory.memsw.limit_in_bytes")
    has_swap = os.path.exists(memsw)
    if limit == -1 and swap == 0 and has_swap:
        swap = -1
    if swap and not has_swap:
        raise Failure("linux.resources.memory.swap: this kernel has no swap accounting "
                      "(memory.memsw.limit_in_bytes)")
    order = [("memory.limit_in_bytes", limit), ("memory.memsw.limit_in_bytes", swap)]
    if limit and swap:
        current = int(read_text(os.path.join(d, "memory.limit_in_bytes")))
        if swap == -1 or current < swap:
            order.reverse()
    for name, value in order:
        if value:
            path = os.path.join(d, name)
            try:
                write_text(path, str(value))
            except OSError as e:
                raise write_failure(path, str(value), e) from None
