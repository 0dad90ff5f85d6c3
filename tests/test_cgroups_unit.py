"""cgroups without a kernel: mode detection, path placement, resource conversions."""

from __future__ import annotations

import pytest

from pyruntime.cgroups.detect import HYBRID, LEGACY, UNIFIED, build_host
from pyruntime.cgroups.paths import resolve
from pyruntime.cgroups.resources import (
    CgroupWrite,
    blkio_weight_to_io_weight,
    controllers_v2,
    convert_v1,
    convert_v2,
    device_rules,
    shares_to_weight,
    swap_to_v2,
)
from pyruntime.errors import Failure
from pyruntime.spec.model import Resources
from pyruntime.spec.record import decode

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_SELF = """\
9:name=systemd:/
4:memory:/process_api/abc
5:devices:/
2:cpuacct:/
1:cpu:/
0::/
"""
UNIFIED_MOUNTINFO = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"


def res(data: dict) -> Resources:
    return decode(Resources, data, "linux.resources")


# -- detect -----------------------------------------------------------------------------------

def test_hybrid_host() -> None:
    host = build_host(HYBRID_MOUNTINFO, HYBRID_SELF)
    assert host.mode == HYBRID
    keys = [h.key for h in host.hierarchies]
    assert keys == ["cpu", "cpuacct", "memory", "devices", "name=systemd", ""]
    assert host.controller("memory").own == "/process_api/abc"
    assert host.v2 is not None and host.v2.mountpoint == "/sys/fs/cgroup/unified"


def test_unified_and_legacy_hosts() -> None:
    assert build_host(UNIFIED_MOUNTINFO, "0::/user.slice\n").mode == UNIFIED
    legacy = "\n".join(line for line in HYBRID_MOUNTINFO.splitlines() if "cgroup2" not in line)
    assert build_host(legacy, HYBRID_SELF).mode == LEGACY


def test_comounted_hierarchy_and_mount_root() -> None:
    mountinfo = ("32 31 0:29 /sub /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup "
                 "rw,cpu,cpuacct\n")
    host = build_host(mountinfo, "1:cpu,cpuacct:/sub/me\n")
    (h,) = host.hierarchies
    assert h.key == "cpu,cpuacct" and h.own == "/sub/me"
    assert h.dir_of("/sub/me/c1") == "/sys/fs/cgroup/cpu,cpuacct/me/c1"


# -- paths ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("cgroups_path", "memory", "cpu"), [
    (None, "/sys/fs/cgroup/memory/process_api/abc/c1", "/sys/fs/cgroup/cpu/c1"),
    ("pyrt/x", "/sys/fs/cgroup/memory/process_api/abc/pyrt/x", "/sys/fs/cgroup/cpu/pyrt/x"),
    ("/pyrt/x", "/sys/fs/cgroup/memory/pyrt/x", "/sys/fs/cgroup/cpu/pyrt/x"),
    ("../../pyrt", "/sys/fs/cgroup/memory/process_api/abc/pyrt", "/sys/fs/cgroup/cpu/pyrt"),
])
def test_paths_as_runc_places_them(cgroups_path: str | None, memory: str, cpu: str) -> None:
    dirs = resolve(build_host(HYBRID_MOUNTINFO, HYBRID_SELF), cgroups_path, "c1")
    assert dirs["memory"] == memory and dirs["cpu"] == cpu
    assert dirs[""].startswith("/sys/fs/cgroup/unified/")


def test_path_naming_the_top_is_refused() -> None:
    with pytest.raises(Failure, match="top of the hierarchy"):
        resolve(build_host(HYBRID_MOUNTINFO, HYBRID_SELF), "/", "c1")


# -- conversions ------------------------------------------------------------------------------

@pytest.mark.parametrize(("shares", "weight"), [(0, 0), (2, 1), (1024, 39), (262144, 10000)])
def test_shares_to_weight_as_runc(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


def test_blkio_weight_to_io_weight() -> None:
    assert blkio_weight_to_io_weight(10) == 1
    assert blkio_weight_to_io_weight(1000) == 10000
    assert blkio_weight_to_io_weight(500) == 1 + 490 * 9999 // 990


@pytest.mark.parametrize(("swap", "limit", "expected"), [
    (0, -1, -1), (-1, 100, -1), (0, 100, 0), (300, 100, 200), (100, 100, 0)])
def test_swap_to_v2(swap: int, limit: int, expected: int) -> None:
    assert swap_to_v2(swap, limit) == expected


@pytest.mark.parametrize(("swap", "limit"), [(50, 100), (100, 0)])
def test_swap_to_v2_refuses_nonsense(swap: int, limit: int) -> None:
    with pytest.raises(Failure):
        swap_to_v2(swap, limit)


def test_v2_writes() -> None:
    out = convert_v2(res({
        "memory": {"limit": 100, "swap": 300, "reservation": 50},
        "cpu": {"shares": 1024, "quota": 50000, "cpus": "0-1", "burst": 10},
        "pids": {"limit": 10},
        "blockIO": {"weight": 1000, "throttleReadBpsDevice": [{"major": 8, "minor": 0,
                                                                "rate": 100}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4096}],
        "unified": {"memory.high": "90"},
    }))
    assert out.writes == [
        CgroupWrite("", "cpu.weight", "39"), CgroupWrite("", "cpu.max", "50000"),
        CgroupWrite("", "cpu.max.burst", "10"), CgroupWrite("", "cpuset.cpus", "0-1"),
        CgroupWrite("", "memory.swap.max", "200"), CgroupWrite("", "memory.max", "100"),
        CgroupWrite("", "memory.low", "50"), CgroupWrite("", "pids.max", "10"),
        CgroupWrite("", "io.weight", "default 10000"), CgroupWrite("", "io.max", "8:0 rbps=100"),
        CgroupWrite("", "hugetlb.2MB.max", "4096"), CgroupWrite("", "memory.high", "90"),
    ]
    assert not out.warnings


def test_v2_swap_equal_to_limit_means_no_swap() -> None:
    out = convert_v2(res({"memory": {"limit": 100, "swap": 100}}))
    assert out.writes == [CgroupWrite("", "memory.swap.max", "0"),
                          CgroupWrite("", "memory.max", "100")]


def test_v2_unlimited_and_warnings() -> None:
    out = convert_v2(res({"memory": {"limit": -1, "kernel": 5, "disableOOMKiller": True},
                          "pids": {"limit": -1}, "cpu": {"quota": -1, "period": 1000}}))
    assert CgroupWrite("", "memory.max", "max") in out.writes
    assert CgroupWrite("", "memory.swap.max", "max") in out.writes
    assert CgroupWrite("", "pids.max", "max") in out.writes
    assert CgroupWrite("", "cpu.max", "max 1000") in out.writes
    assert len(out.warnings) == 2


@pytest.mark.parametrize("data", [
    {"unified": {"../x": "1"}}, {"unified": {"cgroup.procs": "1"}},
    {"cpu": {"realtimeRuntime": 1000}},
])
def test_v2_refuses(data: dict) -> None:
    with pytest.raises(Failure):
        convert_v2(res(data))


def test_v2_controllers_needed() -> None:
    assert controllers_v2(res({"memory": {"limit": 1}, "pids": {"limit": 2}})) == {
        "memory", "pids"}


def test_v1_writes() -> None:
    out = convert_v1(res({
        "memory": {"limit": 100, "swap": 200, "reservation": 50, "swappiness": 10,
                   "disableOOMKiller": True, "kernel": 1},
        "cpu": {"shares": 512, "quota": 5000, "period": 10000, "mems": "0"},
        "pids": {"limit": 0},
        "blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 20}]},
    }), initial=False)
    assert out.memory_pair == (100, 200)
    assert out.writes == [
        CgroupWrite("cpuset", "cpuset.mems", "0"), CgroupWrite("cpu", "cpu.shares", "512"),
        CgroupWrite("cpu", "cpu.cfs_period_us", "10000"),
        CgroupWrite("cpu", "cpu.cfs_quota_us", "5000"),
        CgroupWrite("memory", "memory.soft_limit_in_bytes", "50"),
        CgroupWrite("memory", "memory.kmem.limit_in_bytes", "1"),
        CgroupWrite("memory", "memory.swappiness", "10"),
        CgroupWrite("memory", "memory.oom_control", "1"),
        CgroupWrite("blkio", "blkio.weight", "300"),
        CgroupWrite("blkio", "blkio.weight_device", "8:0 20"),
    ]
    assert out.warnings  # kernel memory


def test_network_is_net_cls_and_net_prio_on_v1_only() -> None:
    network = {"network": {"classID": 1048577,
                           "priorities": [{"name": "lo", "priority": 5},
                                          {"name": "eth0", "priority": 2}]}}
    out = convert_v1(res(network), initial=False)
    assert out.writes == [CgroupWrite("net_cls", "net_cls.classid", "1048577"),
                          CgroupWrite("net_prio", "net_prio.ifpriomap", "lo 5"),
                          CgroupWrite("net_prio", "net_prio.ifpriomap", "eth0 2")]
    assert [w.field for w in out.writes] == [
        "linux.resources.network.classID", "linux.resources.network.priorities[0]",
        "linux.resources.network.priorities[1]"]
    with pytest.raises(Failure, match="linux.resources.network: net_cls and net_prio"):
        convert_v2(res(network))
    assert convert_v2(res({"network": {}})).writes == []  # an empty object asks for nothing


def test_v1_refuses_unified() -> None:
    with pytest.raises(Failure, match="cgroup v1"):
        convert_v1(res({"unified": {"memory.high": "1"}}))


def test_device_rules_then_runc_defaults() -> None:
    rules = device_rules(res({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"},
    ]}).devices)
    assert rules[:2] == [(False, "a *:* rwm"), (True, "c 1:11 w")]
    assert (True, "c 136:* rwm") in rules and (True, "b *:* m") in rules
    assert all(allow for allow, _ in rules[1:])


@pytest.mark.parametrize("rule", [{"allow": True, "type": "x"},
                                  {"allow": True, "access": "rwx"}])
def test_bad_device_rules(rule: dict) -> None:
    with pytest.raises(Failure):
        device_rules(res({"devices": [rule]}).devices)


def test_device_rules_v1_start_from_deny_all_as_runc() -> None:
    """runc 1.1 on v1 with devices []: only its defaults in devices.list (so does the v2
    filter: default deny); a first "a *:* rwm" rule says itself what the start is."""
    assert device_rules(res({"devices": []}).devices)[:2] == [(False, "a *:* rwm"),
                                                              (True, "c *:* m")]
    rules = device_rules(res({"devices": [{"allow": True, "access": "rwm"}]}).devices)
    assert rules[0] == (True, "a *:* rwm") and (False, "a *:* rwm") not in rules


def test_device_rules_v1_type_a_that_is_not_the_reset() -> None:
    """The kernel reads any line starting with "a" as allow-all/deny-all: "a 5:0 rw"
    would allow every device. It is written as a "c" and a "b" line."""
    rules = device_rules(res({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "a", "major": 5, "minor": 0, "access": "rw"},
        {"allow": False, "type": "a", "access": "w"},
    ]}).devices, defaults=False)
    assert rules == [(False, "a *:* rwm"), (True, "c 5:0 rw"), (True, "b 5:0 rw"),
                     (False, "c *:* w"), (False, "b *:* w")]
