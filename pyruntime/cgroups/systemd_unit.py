"""The systemd cgroup driver's pure half: linux.cgroupsPath in systemd form, the unit's
name and cgroup, and linux.resources as systemd unit properties (runc's rules).

  cgroupsPath  "SLICE:PREFIX:NAME"    unit PREFIX-NAME.scope in SLICE ("" is system.slice)
               "SLICE:PREFIX:X.slice" a slice unit X.slice below SLICE (X named so:
                                       "system.slice:p:system-pod.slice")
               none                    system.slice:pyruntime:<container id>
  slices       "a-b-c.slice" nests: /a.slice/a-b.slice/a-b-c.slice

A property is (name, (D-Bus signature, value)), what jeepney sends as an "a(sv)" entry,
so everything here is unit-tested without systemd. Resources systemd has no property
for are written to the cgroup's files by the driver (systemd.py), as runc does.
"""

from __future__ import annotations

from pyruntime.cgroups.resources import (
    DeviceEntry,
    blkio_weight_to_io_weight,
    device_entries,
    shares_to_weight,
    swap_to_v2,
)
from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyruntime.spec.model import CPU, Resources

Property = tuple[str, tuple[str, object]]

DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "pyruntime"
UINT64_MAX = (1 << 64) - 1  # systemd's "infinity" for sizes, counts and USEC_INFINITY
DEFAULT_CPU_PERIOD = 100_000  # µs, the kernel's (and systemd's) default CFS period
# what systemd accepts in a unit name (unit_name_is_valid), checked before anything is made
UNIT_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            "0123456789:-_.\\@")
UNIT_NAME_MAX = 255


class UnitPath:
    """Where a container's cgroup is in systemd's terms: the parent slice and the unit."""

    __slots__ = ("slice", "prefix", "name")

    def __init__(self, slice_: str, prefix: str, name: str) -> None:
        self.slice, self.prefix, self.name = slice_, prefix, name

    @property
    def unit(self) -> str:
        """PREFIX-NAME.scope, or NAME itself when it is a slice (runc's getUnitName)."""
        if self.name.endswith(".slice"):
            return self.name
        return f"{self.prefix}-{self.name}.scope"

    def cgroup(self) -> str:
        """The unit's cgroup, from the top of the hierarchy: /system.slice/pyrt-x.scope.
        A slice is where systemd puts it, by its name (parse_cgroups_path checked that
        this is below SLICE)."""
        if self.name.endswith(".slice"):
            return expand_slice(self.name)
        return expand_slice(self.slice).rstrip("/") + "/" + self.unit


def parse_cgroups_path(cgroups_path: str | None, container_id: str) -> UnitPath:
    """linux.cgroupsPath as systemd's SLICE:PREFIX:NAME; checked before anything is made."""
    if not cgroups_path:
        return UnitPath(DEFAULT_SLICE, DEFAULT_PREFIX, container_id)
    parts = cgroups_path.split(":")
    if len(parts) != 3:
        raise Failure(f"linux.cgroupsPath: {cgroups_path!r}: with --systemd-cgroup it must be "
                      '"slice:prefix:name" (e.g. "system.slice:pyruntime:ID")')
    slice_, prefix, name = parts
    slice_ = slice_ or DEFAULT_SLICE
    expand_slice(slice_)  # checks it
    if not name:
        raise Failure(f"linux.cgroupsPath: {cgroups_path!r}: the name part is empty")
    for part in (prefix, name):
        if "/" in part or "\0" in part:
            raise Failure(f"linux.cgroupsPath: {cgroups_path!r}: {part!r} contains '/'")
    if not name.endswith(".slice") and not prefix:
        raise Failure(f"linux.cgroupsPath: {cgroups_path!r}: the prefix part is empty "
                      "(a scope is named PREFIX-NAME.scope)")
    path = UnitPath(slice_, prefix, name)
    for unit in (slice_, path.unit):
        bad = sorted(set(unit) - UNIT_NAME_CHARS)
        if bad or len(unit) > UNIT_NAME_MAX:
            why = f"has {''.join(bad)!r}" if bad else f"is longer than {UNIT_NAME_MAX}"
            raise Failure(f"linux.cgroupsPath: {cgroups_path!r}: the unit name {unit!r} {why} "
                          "(systemd takes letters, digits and ':-_.\\@')")
    if name.endswith(".slice"):
        # systemd places a slice by its name alone ("a-b.slice" is in a.slice), so a
        # NAME.slice that is not named below SLICE would not be where SLICE:PREFIX:NAME says
        # (runc then makes that directory itself, behind systemd's back): refused
        parent = expand_slice(name).rsplit("/", 1)[0] or "/"
        if parent != expand_slice(slice_):
            stem = slice_[: -len(".slice")]
            below = name if stem == "-" else f"{stem}-{name}"
            raise Failure(f"linux.cgroupsPath: {cgroups_path!r}: systemd places the slice "
                          f"{name!r} by its name at {expand_slice(name)!r}, not in {slice_!r} "
                          f"(name it e.g. {below!r})")
    return path


def expand_slice(slice_: str) -> str:
    """A slice's cgroup: "a-b.slice" -> "/a.slice/a-b.slice"; "-.slice" is the root."""
    suffix = ".slice"
    if len(slice_) <= len(suffix) - 1 or not slice_.endswith(suffix) or "/" in slice_:
        raise Failure(f"linux.cgroupsPath: invalid slice name {slice_!r}")
    stem = slice_[: -len(suffix)]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for component in stem.split("-"):
        if not component:  # "a--b.slice", "-a.slice", "a-.slice", ".slice"
            raise Failure(f"linux.cgroupsPath: invalid slice name {slice_!r}")
        path += "/" + prefix + component + suffix
        prefix += component + "-"
    return path


def unit_properties(unit: str, parent: str, description: str,
                    pid: int | None, v1: bool = False) -> list[Property]:
    """What every unit the driver starts gets (runc's Apply), before its resources: a
    scope goes into its parent slice (Slice=), a slice wants its parent (Wants=). On
    v1, block IO accounting is BlockIOAccounting (runc's legacy manager)."""
    props: list[Property] = [("Description", ("s", description))]
    if unit.endswith(".slice"):
        props.append(("Wants", ("as", [parent])))
    else:
        props.append(("Slice", ("s", parent)))
        props.append(("Delegate", ("b", True)))
    if pid is not None:
        props.append(("PIDs", ("au", [pid])))
    props += [("MemoryAccounting", ("b", True)), ("CPUAccounting", ("b", True)),
              ("BlockIOAccounting" if v1 else "IOAccounting", ("b", True)),
              ("TasksAccounting", ("b", True)),
              ("DefaultDependencies", ("b", False))]
    return props


# -- resources ------------------------------------------------------------------------------

def range_to_bits(text: str, field: str) -> bytes:
    """"0-3,8" -> the little-endian bitmask systemd's AllowedCPUs= takes ("ay")."""
    mask = 0
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise Failure(f"{field}: invalid list {text!r}") from None
        if first < 0 or last < first or last > 65535:
            raise Failure(f"{field}: invalid range {part!r}")
        for i in range(first, last + 1):
            mask |= 1 << i
    if mask == 0:
        raise Failure(f"{field}: empty list {text!r}")
    return mask.to_bytes((mask.bit_length() + 7) // 8, "little")


def _u64(value: int) -> int:
    """-1 (unlimited in OCI) -> systemd's infinity."""
    return UINT64_MAX if value < 0 else value


def cpu_quota_properties(quota: int, period: int, version: int) -> list[Property]:
    """CPUQuotaPeriodUSec / CPUQuotaPerSecUSec as runc's addCpuQuota computes them.

    systemd keeps the quota per second of CPU time in whole percents: a fraction is
    rounded up to the next 10 ms, so that a child cgroup can still get the exact quota.
    """
    props: list[Property] = []
    if period and version >= 242:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota or period:
        per_sec = UINT64_MAX
        if quota > 0:
            per_sec = quota * 1_000_000 // (period or DEFAULT_CPU_PERIOD)
            if per_sec % 10_000:
                per_sec = (per_sec // 10_000 + 1) * 10_000
        props.append(("CPUQuotaPerSecUSec", ("t", per_sec)))
    return props


def resource_properties(res: Resources, *, version: int, devices: bool,
                        proc_devices: str = "", current_period: int = 0,
                        known: Callable[[str], bool] | None = None) -> list[Property]:
    """linux.resources -> unit properties (runc's genV2ResourcesProperties).

    `devices`: at create (device rules are not changed by update). `current_period`:
    the cgroup's CFS period, for an update that gives a quota without a period.
    """
    props: list[Property] = []
    if devices:
        props += device_properties(device_entries(res.devices), proc_devices, known)
    mem = res.memory
    if mem is not None:
        limit, swap = mem.limit or 0, mem.swap or 0
        if limit:
            props.append(("MemoryMax", ("t", _u64(limit))))
        if mem.reservation:
            props.append(("MemoryLow", ("t", _u64(mem.reservation))))
        swap_max = swap_to_v2(swap, limit)
        if swap_max:
            props.append(("MemorySwapMax", ("t", _u64(swap_max))))
    cpu = res.cpu
    if cpu is not None:
        if cpu.shares:
            props.append(("CPUWeight", ("t", shares_to_weight(cpu.shares))))
        props += _quota_properties(cpu, version, current_period)
        props += _cpuset_properties(cpu, version)
    if res.pids is not None and (res.pids.limit > 0 or res.pids.limit == -1):
        props.append(("TasksMax", ("t", _u64(res.pids.limit))))
    bio = res.block_io
    if bio is not None and bio.weight:
        props.append(("IOWeight", ("t", blkio_weight_to_io_weight(bio.weight))))
    props += unified_properties(res.unified, version)
    return props


def _uint(text: str) -> int:
    """A unified value as an unsigned 64-bit number (runc parses them with ParseUint)."""
    value = int(text)
    if not 0 <= value <= UINT64_MAX:
        raise ValueError(text)
    return value


def resource_properties_v1(res: Resources, *, version: int, devices: bool,
                           proc_devices: str = "", current_period: int = 0,
                           known: Callable[[str], bool] | None = None) -> list[Property]:
    """linux.resources -> unit properties on a v1 host (runc's genV1ResourcesProperties):
    MemoryLimit, CPUShares, the CPU quota, BlockIOWeight, TasksMax, AllowedCPUs/
    AllowedMemoryNodes and the device list; everything else only in the files."""
    props: list[Property] = []
    if devices:
        props += device_properties(device_entries(res.devices), proc_devices, known)
    if res.memory is not None and res.memory.limit:
        props.append(("MemoryLimit", ("t", _u64(res.memory.limit))))
    cpu = res.cpu
    if cpu is not None:
        if cpu.shares:
            props.append(("CPUShares", ("t", cpu.shares)))
        props += _quota_properties(cpu, version, current_period)
    if res.block_io is not None and res.block_io.weight:
        props.append(("BlockIOWeight", ("t", res.block_io.weight)))
    if res.pids is not None and (res.pids.limit > 0 or res.pids.limit == -1):
        props.append(("TasksMax", ("t", _u64(res.pids.limit))))
    if cpu is not None:
        props += _cpuset_properties(cpu, version)
    return props


def _quota_properties(cpu: CPU, version: int, current_period: int) -> list[Property]:
    """The CPU quota's properties (v1 and v2 alike)."""
    quota, period = cpu.quota or 0, cpu.period or 0
    if quota and not period and current_period:
        # an update of the quota alone: the per-second value needs the period in force
        return [p for p in cpu_quota_properties(quota, current_period, version)
                if p[0] == "CPUQuotaPerSecUSec"]
    return cpu_quota_properties(quota, period, version)


def _cpuset_properties(cpu: CPU, version: int) -> list[Property]:
    """AllowedCPUs/AllowedMemoryNodes, which systemd has from version 244 on."""
    props: list[Property] = []
    if version >= 244:
        if cpu.cpus:
            props.append(("AllowedCPUs", ("ay", range_to_bits(
                cpu.cpus, "linux.resources.cpu.cpus"))))
        if cpu.mems:
            props.append(("AllowedMemoryNodes", ("ay", range_to_bits(
                cpu.mems, "linux.resources.cpu.mems"))))
    return props


_UNIFIED_MEMORY = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow",
                   "memory.min": "MemoryMin", "memory.max": "MemoryMax",
                   "memory.swap.max": "MemorySwapMax"}


def unified_properties(unified: dict[str, str], version: int) -> list[Property]:
    """linux.resources.unified entries systemd has a property for (runc's
    unifiedResToSystemdProps); the others go to the cgroup's files only."""
    props: list[Property] = []
    for key in sorted(unified):
        value = unified[key].strip()
        where = f"linux.resources.unified[{key!r}]"
        try:
            if key == "cpu.max":
                fields = value.split()
                if not 1 <= len(fields) <= 2:
                    raise ValueError(value)
                quota = 0 if fields[0] == "max" else _uint(fields[0])
                period = _uint(fields[1]) if len(fields) == 2 else DEFAULT_CPU_PERIOD
                props += cpu_quota_properties(quota, period, version)
            elif key == "cpu.weight":
                props.append(("CPUWeight", ("t", _uint(value))))
            elif key in ("cpuset.cpus", "cpuset.mems") and version >= 244:
                name = "AllowedCPUs" if key == "cpuset.cpus" else "AllowedMemoryNodes"
                props.append((name, ("ay", range_to_bits(value, where))))
            elif key in _UNIFIED_MEMORY:
                props.append((_UNIFIED_MEMORY[key],
                               ("t", UINT64_MAX if value == "max" else _uint(value))))
            elif key == "pids.max":
                props.append(("TasksMax", ("t", UINT64_MAX if value == "max"
                                           else _uint(value))))
        except ValueError:
            raise Failure(f"{where}: invalid value {unified[key]!r}") from None
    return props


# -- devices --------------------------------------------------------------------------------

def device_properties(entries: list[DeviceEntry], proc_devices: str,
                      known: Callable[[str], bool] | None = None) -> list[Property]:
    """DevicePolicy=strict and a DeviceAllow= list, from the rules in order (runc's
    generateDeviceProperties over its devices emulator).

    systemd has only an allow list: a rule set that allows everything becomes
    DevicePolicy=auto with no list; one that allows all but a few becomes deny-all here
    (the driver's own eBPF filter, attached after, enforces the exact rules either way).
    A single device the kernel does not know (`known`: /sys/dev/char/M:N exists) is left
    out, as runc does (systemd would refuse to resolve it).
    """
    if known is None:
        import os

        known = os.path.exists
    allow_all = False
    rules: dict[tuple[str, int, int], set[str]] = {}
    denied_in_allow_all = False
    for e in entries:
        if e.wildcard:
            allow_all, rules, denied_in_allow_all = e.allow, {}, False
            continue
        kinds = ("b", "c") if e.type == "a" else (e.type,)
        for kind in kinds:
            key = (kind, e.major, e.minor)
            if allow_all:
                if not e.allow:
                    denied_in_allow_all = True
                continue
            if e.allow:
                rules.setdefault(key, set()).update(e.access)
            else:
                for other, perms in list(rules.items()):
                    if _covers(key, other):
                        perms.difference_update(e.access)
                        if not perms:
                            del rules[other]
    if allow_all and not denied_in_allow_all:
        return [("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]
    props: list[Property] = [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]
    if allow_all:  # a deny list systemd cannot say: deny everything here
        return props
    allow: list[tuple[str, str]] = []
    for (kind, major, minor), perms in sorted(rules.items()):
        access = "".join(c for c in "rwm" if c in perms)
        if major < 0:
            if minor >= 0:
                continue  # "c *:5": systemd cannot say it (the eBPF filter does)
            allow.append((f"{'char' if kind == 'c' else 'block'}-*", access))
        elif minor < 0:
            group = device_group(proc_devices, kind, major)
            if group:
                allow.append((group, access))
        else:
            kind_name = "char" if kind == "c" else "block"
            if known(f"/sys/dev/{kind_name}/{major}:{minor}"):
                allow.append((f"/dev/{kind_name}/{major}:{minor}", access))
    props.append(("DeviceAllow", ("a(ss)", allow)))
    return props


def _covers(deny: tuple[str, int, int], rule: tuple[str, int, int]) -> bool:
    """A deny rule takes access away from the allow rules it matches."""
    return (deny[0] == rule[0] and deny[1] in (-1, rule[1]) and deny[2] in (-1, rule[2]))


def device_group(proc_devices: str, kind: str, major: int) -> str:
    """"char-pts" for c 136 from /proc/devices: systemd's name for a whole major."""
    section = "Character devices:" if kind == "c" else "Block devices:"
    inside = False
    for line in proc_devices.splitlines():
        line = line.strip()
        if line.endswith("devices:"):
            inside = line == section
            continue
        fields = line.split()
        if inside and len(fields) == 2 and fields[0] == str(major):
            return f"{'char' if kind == 'c' else 'block'}-{fields[1]}"
    return ""
