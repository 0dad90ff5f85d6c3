"""The systemd driver's pure half (pyruntime/cgroups/systemd_unit.py): cgroupsPath in
systemd form, slice expansion, and resources as unit properties, by runc's rules."""

from __future__ import annotations

import pytest

from pyruntime.cgroups.resources import device_entries
from pyruntime.cgroups.systemd_unit import (
    UINT64_MAX,
    device_properties,
    expand_slice,
    parse_cgroups_path,
    range_to_bits,
    resource_properties,
    resource_properties_v1,
    unit_properties,
)
from pyruntime.errors import Failure
from pyruntime.spec.model import Resources
from pyruntime.spec.record import decode

PROC_DEVICES = """Character devices:
  1 mem
  4 tty
  5 /dev/tty
136 pts
254 gpiochip

Block devices:
  7 loop
  8 sd
"""


def res(data: dict) -> Resources:
    return decode(Resources, data, "linux.resources")


def props(data: dict, version: int = 252, **kw) -> dict:
    kw.setdefault("devices", False)
    return dict(resource_properties(res(data), version=version, **kw))


@pytest.mark.parametrize("path, cid, slice_, unit, cgroup", [
    ("system.slice:pyrt:c1", "x", "system.slice", "pyrt-c1.scope",
     "/system.slice/pyrt-c1.scope"),
    (":pyrt:c1", "x", "system.slice", "pyrt-c1.scope", "/system.slice/pyrt-c1.scope"),
    ("machine-pod1.slice:cri:c2", "x", "machine-pod1.slice", "cri-c2.scope",
     "/machine.slice/machine-pod1.slice/cri-c2.scope"),
    ("a-b-c.slice:p:n", "x", "a-b-c.slice", "p-n.scope",
     "/a.slice/a-b.slice/a-b-c.slice/p-n.scope"),
    ("system.slice:pyrt:system-pod9.slice", "x", "system.slice", "system-pod9.slice",
     "/system.slice/system-pod9.slice"),
    (":pyrt:system-pod9.slice", "x", "system.slice", "system-pod9.slice",
     "/system.slice/system-pod9.slice"),
    ("a-b.slice:p:a-b-c.slice", "x", "a-b.slice", "a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
    ("-.slice:p:pod9.slice", "x", "-.slice", "pod9.slice", "/pod9.slice"),
    ("-.slice:pyrt:c3", "x", "-.slice", "pyrt-c3.scope", "/pyrt-c3.scope"),
    (None, "abc", "system.slice", "pyruntime-abc.scope", "/system.slice/pyruntime-abc.scope"),
    ("", "abc", "system.slice", "pyruntime-abc.scope", "/system.slice/pyruntime-abc.scope"),
])
def test_cgroups_path(path, cid, slice_, unit, cgroup) -> None:
    p = parse_cgroups_path(path, cid)
    assert (p.slice, p.unit, p.cgroup()) == (slice_, unit, cgroup)


@pytest.mark.parametrize("path, words", [
    ("/sys/fs/cgroup/x", "slice:prefix:name"),
    ("a:b", "slice:prefix:name"),
    ("a:b:c:d", "slice:prefix:name"),
    ("system:pyrt:c1", "invalid slice name"),
    ("a--b.slice:pyrt:c1", "invalid slice name"),
    ("-a.slice:pyrt:c1", "invalid slice name"),
    ("a/b.slice:pyrt:c1", "invalid slice name"),
    (".slice:pyrt:c1", "invalid slice name"),
    ("system.slice:pyrt:", "name part is empty"),
    ("system.slice::c1", "prefix part is empty"),
    ("system.slice:pyrt:a/b", "contains '/'"),
    # a slice is where its name puts it: pod9.slice is in -.slice, not in system.slice
    ("system.slice:pyrt:pod9.slice", "'system-pod9.slice'"),
    ("a.slice:p:b-c.slice", "at '/b.slice/b-c.slice', not in 'a.slice'"),
    ("system.slice:pyrt:a--b.slice", "invalid slice name"),
    # what systemd would refuse as a unit name is refused before anything is made
    ("system.slice:pyrt:a b", "'pyrt-a b.scope' has ' '"),
    ("system slice.slice:pyrt:c1", "'system slice.slice' has ' '"),
    ("system.slice:pyrt:" + "x" * 250, "longer than 255"),
])
def test_bad_cgroups_path(path, words) -> None:
    with pytest.raises(Failure) as e:
        parse_cgroups_path(path, "x")
    assert "linux.cgroupsPath" in str(e.value) and words in str(e.value)


def test_expand_slice() -> None:
    assert expand_slice("system.slice") == "/system.slice"
    assert expand_slice("user-1000.slice") == "/user.slice/user-1000.slice"


def test_scope_properties() -> None:
    got = unit_properties("pyrt-c1.scope", "system.slice", "d", 42)
    assert got == [("Description", ("s", "d")), ("Slice", ("s", "system.slice")),
                   ("Delegate", ("b", True)), ("PIDs", ("au", [42])),
                   ("MemoryAccounting", ("b", True)), ("CPUAccounting", ("b", True)),
                   ("IOAccounting", ("b", True)), ("TasksAccounting", ("b", True)),
                   ("DefaultDependencies", ("b", False))]


def test_slice_properties() -> None:
    got = dict(unit_properties("pod.slice", "system.slice", "d", None))
    assert got["Wants"] == ("as", ["system.slice"])
    assert "Slice" not in got and "PIDs" not in got and "Delegate" not in got


def test_memory() -> None:
    got = props({"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20}})
    assert got["MemoryMax"] == ("t", 64 << 20)
    assert got["MemorySwapMax"] == ("t", 32 << 20)  # OCI swap is memory+swap
    assert got["MemoryLow"] == ("t", 32 << 20)
    got = props({"memory": {"limit": -1}})
    assert got["MemoryMax"] == ("t", UINT64_MAX) and got["MemorySwapMax"] == ("t", UINT64_MAX)


def test_cpu() -> None:
    got = props({"cpu": {"shares": 1024, "quota": 50000, "period": 100000}})
    assert got["CPUWeight"] == ("t", 39)
    assert got["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert got["CPUQuotaPerSecUSec"] == ("t", 500000)
    # a fraction of a percent is rounded up to the next 10 ms per second (runc)
    assert props({"cpu": {"quota": 33333, "period": 100000}})["CPUQuotaPerSecUSec"] == (
        "t", 340000)
    assert props({"cpu": {"quota": -1, "period": 100000}})["CPUQuotaPerSecUSec"] == (
        "t", UINT64_MAX)
    # systemd before 242 has no CPUQuotaPeriodUSec
    assert "CPUQuotaPeriodUSec" not in props({"cpu": {"quota": 1, "period": 1000}}, 241)


def test_cpu_quota_update_uses_the_period_in_force() -> None:
    got = props({"cpu": {"quota": 20000}}, current_period=50000)
    assert got == {"CPUQuotaPerSecUSec": ("t", 400000)}


def test_cpuset_bits() -> None:
    assert range_to_bits("0", "f") == b"\x01"
    assert range_to_bits("0-3,8", "f") == b"\x0f\x01"
    assert range_to_bits("1,9-10", "f") == b"\x02\x06"
    got = props({"cpu": {"cpus": "0-1", "mems": "0"}})
    assert got["AllowedCPUs"] == ("ay", b"\x03") and got["AllowedMemoryNodes"] == ("ay", b"\x01")
    assert "AllowedCPUs" not in props({"cpu": {"cpus": "0"}}, 243)
    for bad in ("", "a", "3-1", "-1"):
        with pytest.raises(Failure):
            range_to_bits(bad, "linux.resources.cpu.cpus")


def test_pids_and_io() -> None:
    assert props({"pids": {"limit": 32}})["TasksMax"] == ("t", 32)
    assert props({"pids": {"limit": -1}})["TasksMax"] == ("t", UINT64_MAX)
    assert "TasksMax" not in props({"pids": {"limit": 0}})
    assert props({"blockIO": {"weight": 500}})["IOWeight"] == ("t", 4950)


def test_unified() -> None:
    got = props({"unified": {"memory.high": "50000000", "memory.min": "max",
                             "pids.max": "7", "cpu.max": "25000 50000", "cpu.weight": "80",
                             "memory.oom.group": "1"}})
    assert got["MemoryHigh"] == ("t", 50000000)
    assert got["MemoryMin"] == ("t", UINT64_MAX)
    assert got["TasksMax"] == ("t", 7)
    assert got["CPUQuotaPerSecUSec"] == ("t", 500000)
    assert got["CPUQuotaPeriodUSec"] == ("t", 50000)
    assert got["CPUWeight"] == ("t", 80)
    assert "memory.oom.group" not in str(got)  # no property: the file only
    with pytest.raises(Failure, match="memory.high"):
        props({"unified": {"memory.high": "lots"}})
    # unsigned, as runc parses them (a negative one would not even reach systemd)
    for key in ("memory.max", "pids.max", "cpu.weight", "cpu.max"):
        with pytest.raises(Failure, match=key):
            props({"unified": {key: "-1"}})


NO_TUN = "/sys/dev/char/10:200"  # as in the lane's VM: no tun module loaded


def allow_list(rules: list[dict]) -> tuple[str, list]:
    got = dict(device_properties(device_entries(res({"devices": rules}).devices),
                                 PROC_DEVICES, known=lambda path: path != NO_TUN))
    return got["DevicePolicy"][1], got["DeviceAllow"][1]


def test_devices_default() -> None:
    policy, allow = allow_list([{"allow": False, "access": "rwm"}])
    assert policy == "strict"
    assert ("char-*", "m") in allow and ("block-*", "m") in allow
    assert ("/dev/char/1:3", "rwm") in allow
    assert ("/dev/char/10:200", "rwm") not in allow  # a device the kernel does not have
    assert ("char-pts", "rwm") in allow  # c 136:* by its /proc/devices group
    assert len(allow) == len(set(allow)) == 10


def test_devices_merge_and_deny() -> None:
    _, allow = allow_list([{"allow": False, "access": "rwm"},
                           {"allow": True, "type": "c", "major": 4, "minor": 1, "access": "r"},
                           {"allow": True, "type": "c", "major": 4, "minor": 1, "access": "w"},
                           {"allow": True, "type": "b", "major": 8, "access": "r"},
                           {"allow": False, "type": "c", "major": 1, "minor": 3,
                            "access": "rwm"}])
    assert ("/dev/char/4:1", "rw") in allow
    assert ("block-sd", "r") in allow
    # the default c 1:3 comes after the deny, as runc appends its defaults
    assert ("/dev/char/1:3", "rwm") in allow


def test_devices_allow_all() -> None:
    assert allow_list([{"allow": True, "access": "rwm"}]) == ("auto", [])
    # a deny list systemd cannot express: deny-all there (the eBPF filter is exact)
    policy, allow = allow_list([{"allow": True, "access": "rwm"},
                                {"allow": False, "type": "c", "major": 1, "minor": 3}])
    assert (policy, allow) == ("strict", [])


# -- v1 hosts (runc's legacy systemd manager) ---------------------------------------------------

def props_v1(data: dict, version: int = 252, **kw) -> dict:
    kw.setdefault("devices", False)
    return dict(resource_properties_v1(res(data), version=version, **kw))


def test_v1_scope_properties() -> None:
    got = dict(unit_properties("pyrt-c1.scope", "system.slice", "d", 42, v1=True))
    assert got["BlockIOAccounting"] == ("b", True) and "IOAccounting" not in got
    assert got["Delegate"] == ("b", True) and got["PIDs"] == ("au", [42])


def test_v1_resources() -> None:
    got = props_v1({"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 1 << 20},
                    "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
                    "blockIO": {"weight": 300}, "pids": {"limit": 20},
                    "unified": {"memory.high": "5"}})
    assert got == {"MemoryLimit": ("t", 64 << 20), "CPUShares": ("t", 512),
                   "CPUQuotaPeriodUSec": ("t", 100000), "CPUQuotaPerSecUSec": ("t", 500000),
                   "BlockIOWeight": ("t", 300), "TasksMax": ("t", 20),
                   "AllowedCPUs": ("ay", b"\x01")}
    # v1 has no MemoryLow/MemorySwapMax/MemoryHigh properties: the files only (runc)
    assert props_v1({"memory": {"limit": -1}}) == {"MemoryLimit": ("t", UINT64_MAX)}
    assert props_v1({"cpu": {"quota": 20000}}, current_period=50000) == {
        "CPUQuotaPerSecUSec": ("t", 400000)}
    devices = props_v1({"devices": [{"allow": False, "access": "rwm"}]}, devices=True,
                       proc_devices=PROC_DEVICES)
    assert devices["DevicePolicy"] == ("s", "strict")
