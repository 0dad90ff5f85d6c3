"""linux.resources -> the cgroup file writes that carry it out, for v1 and for v2.

Pure functions: a `Resources` (spec/model.py) in, a list of `CgroupWrite`s and warnings
out, so every conversion is unit-tested without a cgroup. settings.py puts them in the
plan (with the device filter and systemd's unit properties); apply.py is the one
executor. Values follow runc where the spec leaves room: 0 means "unset" for memory and
cpu values as in runc's configs, -1 means unlimited.
"""

from __future__ import annotations

from pyruntime.errors import Failure

KEEP_QUOTA = "_"  # in a v2 cpu.max write: the quota the cgroup has now

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.spec.model import DeviceRule, Resources

class CgroupWrite:
    """A plan entry: write `value` to `filename` in the cgroup of `controller` ("" on v2:
    the one dir).

    `optional`: a missing file is a warning, not an error (kernel-dropped features).
    `fallback`: the file to write instead where `filename` does not exist (v1 blkio: CFQ's
    files are gone, bfq has its own).
    """

    __slots__ = ("controller", "filename", "value", "optional", "field", "fallback")

    def __init__(self, controller: str, filename: str, value: str, optional: bool = False,
                 field: str | None = None, fallback: str | None = None):
        self.controller = controller
        self.filename = filename
        self.value = value
        self.optional = optional
        self.field = field  # the config field, where the error should name it
        self.fallback = fallback

    def __repr__(self) -> str:
        return f"CgroupWrite({self.controller!r}, {self.filename!r}, {self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CgroupWrite) and (
            (self.controller, self.filename, self.value)
            == (other.controller, other.filename, other.value))


class Converted:
    """The writes for one resources object, and what could not be honoured but is harmless."""

    def __init__(self) -> None:
        self.writes: list[CgroupWrite] = []
        self.warnings: list[str] = []
        self.memory_pair: tuple[int, int] | None = None  # v1 (limit, memsw): order matters

    def add(self, controller: str, filename: str, value: object, optional: bool = False,
            field: str | None = None):
        self.writes.append(CgroupWrite(controller, filename, str(value), optional, field))


# -- conversions runc makes -----------------------------------------------------------------

def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) -> cpu.weight (1..10000), runc's ConvertCPUSharesToCgroupV2Value."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), runc's ConvertBlkIOToIOWeightValue."""
    if weight == 0:
        return 0
    return 1 + (weight - 10) * 9999 // 990


def swap_to_v2(swap: int, limit: int) -> int:
    """OCI's swap is memory+swap (v1's memsw); v2's memory.swap.max is swap alone.

    runc's ConvertMemorySwapToCgroupV2Value: -1 is unlimited, 0 is unset.
    """
    if limit == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise Failure("linux.resources.memory.swap: a swap limit needs a memory limit")
    if swap < limit:
        raise Failure("linux.resources.memory.swap: memory+swap must be at least the memory "
                      "limit")
    return swap - limit


def _max(value: int) -> str:
    return "max" if value < 0 else str(value)


class DeviceEntry:
    """One device rule, checked and normalized: major/minor -1 is any, access a subset
    of "rwm". What v1's devices.allow/deny lines and v2's eBPF filter are both made of."""

    __slots__ = ("allow", "type", "major", "minor", "access")

    def __init__(self, allow: bool, kind: str, major: int, minor: int, access: str) -> None:
        self.allow, self.type, self.major, self.minor, self.access = (
            allow, kind, major, minor, access)

    @property
    def wildcard(self) -> bool:
        """"a *:* rwm": every device, every access (v1's reset to allow-all or deny-all)."""
        return (self.type == "a" and self.major < 0 and self.minor < 0
                and set(self.access) == set("rwm"))

    def text(self) -> str:
        """The v1 devices.allow/deny line: "c 1:3 rwm", "a *:* rwm"."""
        major = "*" if self.major < 0 else str(self.major)
        minor = "*" if self.minor < 0 else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    def __repr__(self) -> str:
        return f"DeviceEntry({'allow' if self.allow else 'deny'} {self.text()})"


def device_entry(rule: DeviceRule) -> DeviceEntry:
    kind = rule.type or "a"
    if kind not in ("a", "b", "c"):
        raise Failure(f"linux.resources.devices: invalid device type {kind!r}")
    major = -1 if rule.major is None or rule.major < 0 else rule.major
    minor = -1 if rule.minor is None or rule.minor < 0 else rule.minor
    if major > 0x7FFFFFFF or minor > 0x7FFFFFFF:
        raise Failure(f"linux.resources.devices: invalid device number {major}:{minor}")
    access = rule.access or "rwm"
    if set(access) - set("rwm"):
        raise Failure(f"linux.resources.devices: invalid access {access!r}")
    return DeviceEntry(rule.allow, kind, major, minor, access)


# runc 1.1's specconv.AllowedDevices, appended after the spec's rules (as runc does): the
# devices every container gets, whatever its rules say. (type, major, minor, access)
DEFAULT_ALLOWED_DEVICES = (
    ("c", -1, -1, "m"), ("b", -1, -1, "m"),
    ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"), ("c", 5, 0, "rwm"),
    ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 136, -1, "rwm"), ("c", 5, 2, "rwm"),
    ("c", 10, 200, "rwm"),
)


def device_entries(rules: list[DeviceRule], *, defaults: bool = True) -> list[DeviceEntry]:
    """The spec's rules, then runc's defaults: the list both v1 and v2 enforce."""
    out = [device_entry(r) for r in rules]
    if defaults:
        out.extend(DeviceEntry(True, *d) for d in DEFAULT_ALLOWED_DEVICES)
    return out


DENY_ALL = (False, "a *:* rwm")


def device_rules(rules: list[DeviceRule], *, defaults: bool = True) -> list[tuple[bool, str]]:
    """The v1 writes, (allow, "type major:minor access") in order, for device_entries.

    As runc 1.1 on v1 (measured: devices [] leaves only its defaults in devices.list) and
    as the v2 filter, the cgroup starts from deny-all unless the first rule is "a *:* rwm"
    itself. Any other type "a" rule is written as a "c" and a "b" line: the kernel reads
    every line that starts with "a" as that reset, whatever follows it.
    """
    entries = device_entries(rules, defaults=defaults)
    out = [] if entries and entries[0].wildcard else [DENY_ALL]
    for e in entries:
        if e.type == "a" and not e.wildcard:
            rest = e.text()[1:]
            out += [(e.allow, "c" + rest), (e.allow, "b" + rest)]
        else:
            out.append((e.allow, e.text()))
    return out


def _hugepage_size(page_size: str) -> str:
    """'2MB' / '1GB' as the file names use them; reject anything else."""
    size = page_size.strip()
    if not size or not size[:-2].isdigit() or size[-2:] not in ("KB", "MB", "GB"):
        raise Failure(f"linux.resources.hugepageLimits: invalid pageSize {page_size!r}")
    return size


# -- v1 ---------------------------------------------------------------------------------------

def convert_v1(res: Resources, *, initial: bool = True) -> Converted:
    """The writes for cgroup v1. `initial`: at create (devices get runc's defaults)."""
    out = Converted()
    cpu = res.cpu
    if cpu is not None:
        if cpu.cpus:
            out.add("cpuset", "cpuset.cpus", cpu.cpus)
        if cpu.mems:
            out.add("cpuset", "cpuset.mems", cpu.mems)
        if cpu.shares:
            out.add("cpu", "cpu.shares", cpu.shares)
        if cpu.period:
            out.add("cpu", "cpu.cfs_period_us", cpu.period)
        if cpu.quota:
            out.add("cpu", "cpu.cfs_quota_us", cpu.quota)
        if cpu.burst is not None:
            out.add("cpu", "cpu.cfs_burst_us", cpu.burst)
        if cpu.realtime_period:
            out.add("cpu", "cpu.rt_period_us", cpu.realtime_period)
        if cpu.realtime_runtime:
            out.add("cpu", "cpu.rt_runtime_us", cpu.realtime_runtime)
        if cpu.idle is not None:
            out.add("cpu", "cpu.idle", cpu.idle)
    mem = res.memory
    if mem is not None:
        limit, swap = mem.limit or 0, mem.swap or 0
        if limit or swap:
            out.memory_pair = (limit, swap)
        if mem.reservation:
            out.add("memory", "memory.soft_limit_in_bytes", mem.reservation)
        if mem.kernel:
            out.add("memory", "memory.kmem.limit_in_bytes", mem.kernel, optional=True)
            out.warnings.append("linux.resources.memory.kernel is deprecated: kernels since "
                                "5.4 ignore or refuse kernel memory limits")
        if mem.kernel_tcp:
            out.add("memory", "memory.kmem.tcp.limit_in_bytes", mem.kernel_tcp, optional=True)
        if mem.swappiness is not None and mem.swappiness >= 0:
            if mem.swappiness > 100:
                raise Failure("linux.resources.memory.swappiness: must be 0..100, "
                              f"not {mem.swappiness}")
            out.add("memory", "memory.swappiness", mem.swappiness)
        if mem.disable_oom_killer:
            out.add("memory", "memory.oom_control", 1)
    if res.pids is not None and res.pids.limit:  # runc: 0 is unset, <0 is unlimited
        out.add("pids", "pids.max", _max(res.pids.limit))
    bio = res.block_io
    if bio is not None:
        if bio.weight:
            out.add("blkio", "blkio.weight", bio.weight)
        if bio.leaf_weight:
            out.add("blkio", "blkio.leaf_weight", bio.leaf_weight)
        for d in bio.weight_device:
            if d.weight:
                out.add("blkio", "blkio.weight_device", f"{d.major}:{d.minor} {d.weight}")
            if d.leaf_weight:
                out.add("blkio", "blkio.leaf_weight_device",
                        f"{d.major}:{d.minor} {d.leaf_weight}")
        for field, name in _THROTTLE:
            for t in getattr(bio, field):
                out.add("blkio", f"blkio.throttle.{name}_device", f"{t.major}:{t.minor} {t.rate}")
    for h in res.hugepage_limits:
        out.add("hugetlb", f"hugetlb.{_hugepage_size(h.page_size)}.limit_in_bytes", h.limit)
    for device, r in res.rdma.items():
        out.add("rdma", "rdma.max", _rdma_line(device, r))
    net = res.network
    if net is not None:
        if net.class_id is not None:
            out.add("net_cls", "net_cls.classid", net.class_id,
                    field="linux.resources.network.classID")
        for i, p in enumerate(net.priorities):
            out.add("net_prio", "net_prio.ifpriomap", f"{p.name} {p.priority}",
                    field=f"linux.resources.network.priorities[{i}]")
    if res.unified:
        raise Failure("linux.resources.unified: cgroup v2 settings, but this host's "
                      "controllers are cgroup v1")
    if initial:  # devices are set at create only (runc's update leaves them too)
        for allow, text in device_rules(res.devices, defaults=initial):
            out.add("devices", "devices.allow" if allow else "devices.deny", text)
    return out


_THROTTLE = (
    ("throttle_read_bps_device", "read_bps"),
    ("throttle_write_bps_device", "write_bps"),
    ("throttle_read_iops_device", "read_iops"),
    ("throttle_write_iops_device", "write_iops"),
)


def _rdma_line(device: str, r: object) -> str:
    parts = [device]
    handles, objects = getattr(r, "hca_handles", None), getattr(r, "hca_objects", None)
    if handles is not None:
        parts.append(f"hca_handle={handles}")
    if objects is not None:
        parts.append(f"hca_object={objects}")
    return " ".join(parts)


# -- v2 ---------------------------------------------------------------------------------------

def convert_v2(res: Resources) -> Converted:
    """The writes for cgroup v2 (all in the one cgroup dir, controller "")."""
    out = Converted()
    net = res.network
    if net is not None and (net.class_id is not None or net.priorities):
        raise Failure("linux.resources.network: net_cls and net_prio are cgroup v1 "
                      "controllers; cgroup v2 has neither")
    cpu = res.cpu
    if cpu is not None:
        if cpu.realtime_period or cpu.realtime_runtime:
            raise Failure("linux.resources.cpu.realtimeRuntime/realtimePeriod: not supported "
                          "on cgroup v2")
        if cpu.shares:
            out.add("", "cpu.weight", shares_to_weight(cpu.shares))
        if cpu.quota or cpu.period:
            # "QUOTA PERIOD"; "QUOTA" alone keeps the period; "_ PERIOD" (the period
            # alone, from update) keeps the quota: apply.py reads it back (KEEP_QUOTA)
            if not cpu.quota:
                quota = KEEP_QUOTA
            else:
                quota = "max" if cpu.quota < 0 else str(cpu.quota)
            out.add("", "cpu.max", f"{quota} {cpu.period}" if cpu.period else quota)
        if cpu.burst is not None:
            out.add("", "cpu.max.burst", cpu.burst)
        if cpu.idle is not None:
            out.add("", "cpu.idle", cpu.idle)
        if cpu.cpus:
            out.add("", "cpuset.cpus", cpu.cpus)
        if cpu.mems:
            out.add("", "cpuset.mems", cpu.mems)
    mem = res.memory
    if mem is not None:
        limit, swap = mem.limit or 0, mem.swap or 0
        swap_max = swap_to_v2(swap, limit)
        # swap first: lowering memory.max never depends on it, and a failure here leaves
        # the memory limit unchanged
        if swap_max or swap > 0:  # swap == limit: no swap at all ("0"), as runc
            out.add("", "memory.swap.max", _max(swap_max), optional=swap_max == -1)
        if limit:
            out.add("", "memory.max", _max(limit))
        if mem.reservation:
            out.add("", "memory.low", _max(mem.reservation))
        if mem.kernel or mem.kernel_tcp:
            out.warnings.append("linux.resources.memory.kernel/kernelTCP: cgroup v2 has no "
                                "separate kernel memory limit; ignored")
        if mem.swappiness is not None and mem.swappiness >= 0:
            out.warnings.append("linux.resources.memory.swappiness: not supported on cgroup "
                                "v2; ignored")
        if mem.disable_oom_killer:
            out.warnings.append("linux.resources.memory.disableOOMKiller: not supported on "
                                "cgroup v2; ignored")
    if res.pids is not None and res.pids.limit:
        out.add("", "pids.max", _max(res.pids.limit))
    bio = res.block_io
    if bio is not None:
        if bio.weight:
            out.add("", "io.weight", f"default {blkio_weight_to_io_weight(bio.weight)}")
        for d in bio.weight_device:
            if d.weight:
                out.add("", "io.weight",
                        f"{d.major}:{d.minor} {blkio_weight_to_io_weight(d.weight)}")
        for field, key in (("throttle_read_bps_device", "rbps"),
                           ("throttle_write_bps_device", "wbps"),
                           ("throttle_read_iops_device", "riops"),
                           ("throttle_write_iops_device", "wiops")):
            for t in getattr(bio, field):
                out.add("", "io.max", f"{t.major}:{t.minor} {key}={_max(t.rate or -1)}")
    for h in res.hugepage_limits:
        out.add("", f"hugetlb.{_hugepage_size(h.page_size)}.max", h.limit)
    for device, r in res.rdma.items():
        out.add("", "rdma.max", _rdma_line(device, r))
    for key in sorted(res.unified):
        if "/" in key or key in ("", ".", "..") or key.startswith("cgroup."):
            raise Failure(f"linux.resources.unified: {key!r}: not a cgroup resource file")
        out.add("", key, res.unified[key])
    return out


def controllers_v2(res: Resources | None) -> set[str]:
    """The v2 controllers the writes of `res` need enabled in the parent."""
    if res is None:
        return set()
    needed: set[str] = set()
    for w in convert_v2(res).writes:
        needed.add(w.filename.split(".", 1)[0])
    return needed
