"""linux.resources -> the plan's cgroup entries, for the container's driver (v1, v2, systemd).

Made at plan time (plan/build.py, before the state directory is reserved) and by
`update`, so that a value this driver cannot express, or a controller this host does
not mount, is refused before anything is made, and create and update cannot drift.
The entries are data: apply.py is the one executor that carries them out.

The conversion itself is resources.py (cgroup files) and systemd_unit.py (unit
properties); this module puts the results in the order the executor follows and
refuses what this host cannot do. It writes nothing; it reads the host only (v2: which
controllers the hierarchy's top has; systemd's device names from
/proc/devices and /sys/dev).
"""

from __future__ import annotations

from pyruntime.cgroups.resources import CgroupWrite, convert_v1, convert_v2, device_entries
from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.cgroups.driver import Driver
    from pyruntime.spec.model import Resources

# runc's fs subsystem order for v1 writes: cpuset first (tasks cannot join an empty
# cpuset), devices before anything runs, memory before cpu.
V1_ORDER = ("cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb",
            "net_cls", "net_prio", "perf_event", "freezer", "rdma")
# v1 blkio: CFQ's files are gone on recent kernels, bfq has its own (runc falls back)
_BFQ = {"blkio.weight": "blkio.bfq.weight", "blkio.weight_device": "blkio.bfq.weight_device"}


class MemorySwap:
    """A plan entry (v1): memory.limit_in_bytes and memory.memsw.limit_in_bytes, 0 unset.
    The executor picks their order from the current limit (runc's setMemoryAndSwap:
    memsw must stay >= the limit at every step)."""

    __slots__ = ("limit", "swap")

    def __init__(self, limit: int, swap: int) -> None:
        self.limit, self.swap = limit, swap

    def __repr__(self) -> str:
        return f"MemorySwap({self.limit}, {self.swap})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemorySwap) and (self.limit, self.swap) == (other.limit,
                                                                            other.swap)


class DeviceFilter:
    """A plan entry (v2): the eBPF device program (devicefilter.py) to attach to the cgroup,
    assembled at plan time so that a rule it cannot express fails before anything exists."""

    __slots__ = ("code",)

    def __init__(self, code: bytes) -> None:
        self.code = code

    def __repr__(self) -> str:
        return f"DeviceFilter({len(self.code) // 8} insns)"


Entry = CgroupWrite | MemorySwap | DeviceFilter


class CgroupSettings:
    """What the executor does to the container's cgroup, in order.

    `unit_properties`: systemd only (None otherwise): StartTransientUnit's resource
    properties at create, SetUnitProperties' at update. `initial`: for create (devices
    are set at create only, as runc). `warnings`: what is ignored, said once applied."""

    def __init__(self, entries: list[Entry], warnings: list[str], initial: bool,
                 unit_properties: list | None = None) -> None:
        self.entries = entries
        self.warnings = warnings
        self.initial = initial
        self.unit_properties = unit_properties

    def __repr__(self) -> str:
        return f"CgroupSettings({self.entries!r}, unit_properties={self.unit_properties!r})"


def plan_resources(driver: Driver, res: Resources | None, *, initial: bool = True,
                   current_period: int = 0) -> CgroupSettings:
    """The entries that carry `res` out with `driver`. `current_period`: systemd's update,
    the cgroup's CFS period for a quota given without one."""
    systemd = getattr(driver, "systemd", False)
    if res is None:
        return CgroupSettings([], [], initial, [] if systemd else None)
    if driver.mode == "v1":
        settings = _v1(driver, res, initial)
        if systemd:
            from pyruntime.cgroups.systemd_unit import resource_properties_v1

            settings.unit_properties = resource_properties_v1(
                res, version=getattr(driver, "version", 0), devices=initial,
                proc_devices=_read_proc_devices() if initial else "",
                current_period=current_period)
        return settings
    conv = convert_v2(res)
    _check_available(driver, conv.writes)
    entries: list[Entry] = list(conv.writes)
    if initial:
        from pyruntime.cgroups.devicefilter import compile_rules

        entries.append(DeviceFilter(compile_rules(device_entries(res.devices))))
    props = None
    if systemd:
        from pyruntime.cgroups.systemd_unit import resource_properties

        props = resource_properties(res, version=getattr(driver, "version", 0),
                                    devices=initial,
                                    proc_devices=_read_proc_devices() if initial else "",
                                    current_period=current_period)
    return CgroupSettings(entries, list(conv.warnings), initial, props)


def _check_available(driver: Driver, writes: list[CgroupWrite]) -> None:
    """v2: a write whose controller the hierarchy's top does not have (its
    cgroup.controllers) can never succeed: refuse it now.  Below the top, a controller
    may be missing only because nobody enabled it yet: the v2 driver enables what the
    container needs from the top down, and systemd does so for a unit's properties;
    one that stays unavailable is reported by apply.py."""
    from pyruntime.cgroups.v2 import WANTED

    mountpoint = getattr(driver, "mountpoint", None)
    if driver.paths.get("") is None or mountpoint is None:
        return
    import os

    try:
        with open(os.path.join(mountpoint, "cgroup.controllers")) as f:
            available = set(f.read().split())
    except OSError:
        return  # nothing to tell from here: the executor finds out
    for w in writes:
        controller = w.filename.split(".", 1)[0]
        if controller in WANTED and controller not in available:
            raise Failure(f"{w.field or 'cgroup'}: cannot set {w.filename}: the {controller} "
                          f"controller is not available in {mountpoint}")


def _rank(controller: str) -> int:
    return V1_ORDER.index(controller) if controller in V1_ORDER else len(V1_ORDER)


def _v1(driver: Driver, res: Resources, initial: bool) -> CgroupSettings:
    """v1: writes in runc's subsystem order, the memory pair where memory's turn is, and a
    controller this host does not mount refused now (a rootless create may still leave a
    mounted one out later: apply.py says so then)."""
    conv = convert_v1(res, initial=initial)
    writes = sorted(conv.writes, key=lambda w: _rank(w.controller))
    entries: list[Entry] = []
    pair = MemorySwap(*conv.memory_pair) if conv.memory_pair is not None else None
    for w in writes:
        if pair is not None and _rank(w.controller) >= _rank("memory"):
            entries.append(pair)
            pair = None
        if w.filename in _BFQ:
            w.fallback = _BFQ[w.filename]
        if not w.optional and driver.dir_of(w.controller) is None:
            raise Failure(f"{w.field or 'cgroup'}: cannot set {w.filename}: the "
                          f"{w.controller} controller is not mounted on this host")
        entries.append(w)
    if pair is not None:
        entries.append(pair)
    if any(isinstance(e, MemorySwap) for e in entries) and driver.dir_of("memory") is None:
        raise Failure("cgroup: the memory controller is not mounted on this host")
    return CgroupSettings(entries, list(conv.warnings), initial)


def _read_proc_devices() -> str:
    """The host's device majors by name: systemd's DeviceAllow= names a whole major so."""
    try:
        with open("/proc/devices") as f:
            return f.read()
    except OSError:
        return ""
