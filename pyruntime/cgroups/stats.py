"""Container statistics for `events`, in runc's JSON shape (types.Stats).

Every reader tolerates a missing file: what the kernel does not offer is left out.
"""

from __future__ import annotations

import os
from collections.abc import Callable

_UNLIMITED_V1 = 9223372036854771712  # PAGE_COUNTER_MAX * 4096 on 64-bit: "no limit"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _int(path: str, default: int = 0) -> int:
    text = _read(path)
    if text is None:
        return default
    text = text.strip()
    if text == "max":
        return _UNLIMITED_V1
    try:
        return int(text)
    except ValueError:
        return default


def _flat(path: str) -> dict[str, int]:
    """A 'key value' per line file (memory.stat, cpu.stat, memory.events)."""
    out = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def _blkio_entries(path: str) -> list[dict]:
    """blkio.throttle.io_service_bytes_recursive lines: 'maj:min Op value'."""
    out = []
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and ":" in parts[0]:
            major, minor = parts[0].split(":")
            out.append({"major": int(major), "minor": int(minor), "op": parts[1],
                        "value": int(parts[2])})
    return out


def stats_v1(dir_of: Callable[[str], str | None]) -> dict:
    """Stats from the v1 hierarchies; `dir_of(controller)` is the container's dir or None."""
    data: dict = {}
    cpu, acct = dir_of("cpu"), dir_of("cpuacct")
    cpu_stats: dict = {}
    if acct:
        percpu = [int(x) for x in (_read(os.path.join(acct, "cpuacct.usage_percpu")) or "")
                  .split()]
        ticks = _flat(os.path.join(acct, "cpuacct.stat"))
        hz = os.sysconf("SC_CLK_TCK")
        cpu_stats["usage"] = {
            "total": _int(os.path.join(acct, "cpuacct.usage")),
            "percpu": percpu,
            "kernel": ticks.get("system", 0) * 1_000_000_000 // hz,
            "user": ticks.get("user", 0) * 1_000_000_000 // hz,
        }
    if cpu:
        st = _flat(os.path.join(cpu, "cpu.stat"))
        cpu_stats["throttling"] = {"periods": st.get("nr_periods", 0),
                                   "throttled_periods": st.get("nr_throttled", 0),
                                   "throttled_time": st.get("throttled_time", 0)}
    if cpu_stats:
        data["cpu"] = cpu_stats
    mem = dir_of("memory")
    if mem:
        def entry(prefix: str) -> dict:
            return {"limit": _int(os.path.join(mem, f"{prefix}.limit_in_bytes")),
                    "usage": _int(os.path.join(mem, f"{prefix}.usage_in_bytes")),
                    "max": _int(os.path.join(mem, f"{prefix}.max_usage_in_bytes")),
                    "failcnt": _int(os.path.join(mem, f"{prefix}.failcnt"))}

        oom = _flat(os.path.join(mem, "memory.oom_control"))
        data["memory"] = {
            "usage": entry("memory"),
            "swap": entry("memory.memsw"),
            "kernel": entry("memory.kmem"),
            "kernelTCP": {"limit": _int(os.path.join(mem, "memory.kmem.tcp.limit_in_bytes")),
                          "failcnt": _int(os.path.join(mem, "memory.kmem.tcp.failcnt"))},
            "raw": _flat(os.path.join(mem, "memory.stat")),
            "oom_kill": oom.get("oom_kill", 0),
            "under_oom": oom.get("under_oom", 0),
        }
    pids = dir_of("pids")
    if pids:
        data["pids"] = {"current": _int(os.path.join(pids, "pids.current")),
                        "limit": _int(os.path.join(pids, "pids.max"))}
    blkio = dir_of("blkio")
    data["blkio"] = {}
    if blkio:
        data["blkio"] = {
            "ioServiceBytesRecursive": _blkio_entries(
                os.path.join(blkio, "blkio.throttle.io_service_bytes_recursive")),
            "ioServicedRecursive": _blkio_entries(
                os.path.join(blkio, "blkio.throttle.io_serviced_recursive")),
        }
    data["hugetlb"] = {}
    huge = dir_of("hugetlb")
    if huge:
        for name in sorted(os.listdir(huge)):
            if name.startswith("hugetlb.") and name.endswith(".usage_in_bytes"):
                size = name.split(".")[1]
                data["hugetlb"][size] = {
                    "usage": _int(os.path.join(huge, name)),
                    "max": _int(os.path.join(huge, f"hugetlb.{size}.max_usage_in_bytes")),
                    "failcnt": _int(os.path.join(huge, f"hugetlb.{size}.failcnt")),
                }
    return data


def stats_v2(d: str) -> dict:
    """Stats from one cgroup2 directory, in the same shape as stats_v1's."""
    data: dict = {}
    st = _flat(os.path.join(d, "cpu.stat"))
    if st:
        data["cpu"] = {
            "usage": {"total": st.get("usage_usec", 0) * 1000,
                      "kernel": st.get("system_usec", 0) * 1000,
                      "user": st.get("user_usec", 0) * 1000},
            "throttling": {"periods": st.get("nr_periods", 0),
                           "throttled_periods": st.get("nr_throttled", 0),
                           "throttled_time": st.get("throttled_usec", 0) * 1000},
        }
    if os.path.exists(os.path.join(d, "memory.current")):
        events = _flat(os.path.join(d, "memory.events"))
        data["memory"] = {
            "usage": {"usage": _int(os.path.join(d, "memory.current")),
                      "limit": _int(os.path.join(d, "memory.max")),
                      "max": _int(os.path.join(d, "memory.peak")),
                      "failcnt": events.get("max", 0)},
            "swap": {"usage": _int(os.path.join(d, "memory.swap.current")),
                     "limit": _int(os.path.join(d, "memory.swap.max"))},
            "raw": _flat(os.path.join(d, "memory.stat")),
            "oom_kill": events.get("oom_kill", 0),
        }
    if os.path.exists(os.path.join(d, "pids.current")):
        data["pids"] = {"current": _int(os.path.join(d, "pids.current")),
                        "limit": _int(os.path.join(d, "pids.max"))}
    entries_bytes, entries_ops = [], []
    for line in (_read(os.path.join(d, "io.stat")) or "").splitlines():
        dev, *fields = line.split()
        if ":" not in dev:
            continue
        major, minor = (int(x) for x in dev.split(":"))
        kv = dict(f.split("=", 1) for f in fields if "=" in f)
        for key, op, target in (("rbytes", "Read", entries_bytes),
                                ("wbytes", "Write", entries_bytes),
                                ("rios", "Read", entries_ops), ("wios", "Write", entries_ops)):
            if key in kv:
                target.append({"major": major, "minor": minor, "op": op,
                               "value": int(kv[key])})
    data["blkio"] = {"ioServiceBytesRecursive": entries_bytes,
                     "ioServicedRecursive": entries_ops}
    data["hugetlb"] = {}
    try:
        names = sorted(os.listdir(d))
    except OSError:
        names = []
    for name in names:
        if name.startswith("hugetlb.") and name.endswith(".current"):
            size = name.split(".")[1]
            data["hugetlb"][size] = {
                "usage": _int(os.path.join(d, name)),
                "failcnt": _flat(os.path.join(d, f"hugetlb.{size}.events")).get("max", 0),
            }
    return data
