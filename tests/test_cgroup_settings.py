"""linux.resources as plan entries, checked as data without root or a cgroup: what the
executor (pyruntime/cgroups/apply.py) will do for v1, v2 and systemd, in which order,
and what is refused at plan time, before anything is made."""

from __future__ import annotations

import json

import pytest

from pyruntime.cgroups.devicefilter import compile_rules
from pyruntime.cgroups.joins import plan_joins
from pyruntime.cgroups.resources import CgroupWrite, device_entries
from pyruntime.cgroups.settings import DeviceFilter, MemorySwap, plan_resources
from pyruntime.cgroups.systemd import SystemdV2
from pyruntime.cgroups.v1 import V1
from pyruntime.cgroups.v2 import V2
from pyruntime.errors import Failure
from pyruntime.plan import linux_consts as k
from pyruntime.plan.build import Plan, build_plan
from pyruntime.spec.default import default_spec
from pyruntime.spec.load import parse_config
from pyruntime.spec.model import Resources
from pyruntime.spec.record import decode

# never made: the drivers are only asked for their paths
TOP = "/nonexistent/pyrt-settings"
V1_PATHS = {key: f"{TOP}/{key or 'unified'}/c1" for key in (
    "cpuset", "cpu,cpuacct", "memory", "devices", "pids", "blkio", "freezer", "")}


def res(data: dict) -> Resources:
    return decode(Resources, data, "linux.resources")


def v1(paths: dict[str, str] | None = None) -> V1:
    return V1(dict(V1_PATHS if paths is None else paths))


def v2() -> V2:
    return V2({"": f"{TOP}/c1"}, mountpoint=TOP)


def systemd(version: int = 252) -> SystemdV2:
    return SystemdV2({"": f"{TOP}/system.slice/pyrt-c1.scope"}, mountpoint=TOP,
                     unit="pyrt-c1.scope", slice_="system.slice", version=version)


def writes(entries: list) -> list[tuple[str, str, str]]:
    return [(e.controller, e.filename, e.value) for e in entries
            if isinstance(e, CgroupWrite)]


# -- v1 ---------------------------------------------------------------------------------------

def test_v1_entries_in_runc_order_with_the_memory_pair_at_memory_s_turn() -> None:
    s = plan_resources(v1(), res({
        "pids": {"limit": 10},
        "cpu": {"shares": 512, "cpus": "0"},
        "memory": {"limit": 100, "swap": 200, "reservation": 50},
        "blockIO": {"weight": 300},
        "devices": [],
    }))
    kinds = [type(e).__name__ + ":" + getattr(e, "controller", "memory") for e in s.entries]
    first_of = {kind: kinds.index(kind) for kind in kinds}
    assert first_of["CgroupWrite:cpuset"] < first_of["CgroupWrite:devices"] \
        < first_of["MemorySwap:memory"] < first_of["CgroupWrite:memory"] \
        < first_of["CgroupWrite:cpu"] < first_of["CgroupWrite:pids"] \
        < first_of["CgroupWrite:blkio"]
    assert MemorySwap(100, 200) in s.entries
    assert ("devices", "devices.deny", "a *:* rwm") in writes(s.entries)  # deny-all first
    blkio = next(e for e in s.entries if getattr(e, "filename", "") == "blkio.weight")
    assert blkio.fallback == "blkio.bfq.weight"
    assert s.unit_properties is None and s.initial


def test_v1_update_leaves_devices_alone() -> None:
    s = plan_resources(v1(), res({"pids": {"limit": 5}}), initial=False)
    assert writes(s.entries) == [("pids", "pids.max", "5")]
    assert not s.initial


def test_v1_memory_pair_alone_is_the_last_entry() -> None:
    s = plan_resources(v1(), res({"memory": {"limit": 64}}), initial=False)
    assert s.entries == [MemorySwap(64, 0)]


@pytest.mark.parametrize(("data", "words"), [
    ({"pids": {"limit": 10}}, "pids.max: the pids controller is not mounted"),
    ({"network": {"classID": 7}}, "linux.resources.network.classID: cannot set"),
    ({"hugepageLimits": [{"pageSize": "2XB", "limit": 1}]}, "invalid pageSize"),
    ({"unified": {"memory.high": "1"}}, "cgroup v1"),
    ({"devices": [{"allow": True, "type": "x"}]}, "invalid device type"),
])
def test_v1_refused_at_plan_time(data: dict, words: str) -> None:
    without_pids = {key: d for key, d in V1_PATHS.items() if key != "pids"}
    with pytest.raises(Failure, match=words):
        plan_resources(v1(without_pids), res(data))


def test_v1_memory_pair_needs_the_memory_controller() -> None:
    no_memory = {key: d for key, d in V1_PATHS.items() if key != "memory"}
    with pytest.raises(Failure, match="memory controller is not mounted"):
        plan_resources(v1(no_memory), res({"memory": {"limit": 64}}), initial=False)


# -- v2 and systemd ---------------------------------------------------------------------------

def test_v2_entries_end_with_the_device_filter_at_create_only() -> None:
    data = {"pids": {"limit": 10}, "memory": {"limit": 100},
            "devices": [{"allow": False, "type": "c", "major": 1, "minor": 9, "access": "r"}]}
    s = plan_resources(v2(), res(data))
    assert writes(s.entries) == [("", "memory.max", "100"), ("", "pids.max", "10")]
    assert isinstance(s.entries[-1], DeviceFilter)
    assert s.entries[-1].code == compile_rules(device_entries(res(data).devices))
    assert s.unit_properties is None
    update = plan_resources(v2(), res({"pids": {"limit": 10}}), initial=False)
    assert not any(isinstance(e, DeviceFilter) for e in update.entries)


@pytest.mark.parametrize("data", [
    {"network": {"classID": 1}},
    {"cpu": {"realtimeRuntime": 5}},
    {"memory": {"limit": 100, "swap": 50}},
    {"unified": {"cgroup.procs": "1"}},
])
def test_v2_refused_at_plan_time(data: dict) -> None:
    for driver in (v2(), systemd()):
        with pytest.raises(Failure, match="linux.resources"):
            plan_resources(driver, res(data))


def test_v2_controller_the_hierarchy_lacks_is_refused_at_plan_time(tmp_path) -> None:
    """cgroup.controllers of the hierarchy's top bounds what any cgroup can get (here a
    directory standing in for the mount's top)."""
    (tmp_path / "cgroup.controllers").write_text("memory pids\n")
    driver = V2({"": str(tmp_path / "a" / "c1")}, mountpoint=str(tmp_path))
    ok = plan_resources(driver, res({"pids": {"limit": 3}, "memory": {"limit": 9}}))
    assert writes(ok.entries) == [("", "memory.max", "9"), ("", "pids.max", "3")]
    with pytest.raises(Failure, match=f"cpu.weight: the cpu controller is not available "
                                      f"in {tmp_path}$"):
        plan_resources(driver, res({"cpu": {"shares": 1024}}))
    with pytest.raises(Failure, match="hugetlb controller is not available"):
        plan_resources(driver, res({"unified": {"hugetlb.2MB.max": "0"}}))


def test_v2_controller_not_yet_enabled_below_the_top_is_planned(tmp_path) -> None:
    """An existing parent without cpu in its cgroup.controllers (nobody enabled it for
    it yet, as systemd's system.slice before a unit asks): the driver, or systemd,
    enables it from the top down, so the plan keeps the write."""
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "system.slice").mkdir()
    (tmp_path / "system.slice" / "cgroup.controllers").write_text("memory pids\n")
    for driver in (V2({"": str(tmp_path / "system.slice" / "c1")}, mountpoint=str(tmp_path)),
                   systemd()):
        s = plan_resources(driver, res({"cpu": {"shares": 1024}}))
        assert [w[1] for w in writes(s.entries)] == ["cpu.weight"], s


def test_systemd_has_the_files_and_the_unit_properties() -> None:
    s = plan_resources(systemd(), res({"pids": {"limit": 32}, "memory": {"limit": 64}}))
    assert writes(s.entries) == [("", "memory.max", "64"), ("", "pids.max", "32")]
    assert isinstance(s.entries[-1], DeviceFilter)
    props = dict(s.unit_properties or [])
    assert props["TasksMax"] == ("t", 32) and props["MemoryMax"] == ("t", 64)
    assert props["DevicePolicy"] == ("s", "strict")


def test_systemd_update_uses_the_period_in_force_and_leaves_devices() -> None:
    s = plan_resources(systemd(), res({"cpu": {"quota": 20000}}), initial=False,
                       current_period=50000)
    assert dict(s.unit_properties or []) == {"CPUQuotaPerSecUSec": ("t", 400000)}
    assert writes(s.entries) == [("", "cpu.max", "20000")]


def test_no_resources_is_no_entry() -> None:
    assert plan_resources(v1(), None).entries == []
    assert plan_resources(v2(), None).unit_properties is None
    assert plan_resources(systemd(), None).unit_properties == []


# -- the init's joins -------------------------------------------------------------------------

def test_joins_v1_tasks_and_the_unified_clone_dir() -> None:
    plan = Plan()
    plan_joins(plan, v1())
    assert plan.cgroup_procs == [f"{d}/tasks" for key, d in V1_PATHS.items() if key]
    assert plan.cgroup_dir == V1_PATHS[""]
    assert plan.cgroup_dir_procs == V1_PATHS[""] + "/cgroup.procs"


def test_joins_with_a_joined_user_namespace_write_cgroup_procs() -> None:
    plan = Plan()
    plan.joins = [(k.CLONE_NEWUSER, "/proc/1/ns/user")]
    plan_joins(plan, v2())
    assert plan.cgroup_procs == [f"{TOP}/c1/cgroup.procs"]
    assert plan.cgroup_dir is None and plan.cgroup_dir_procs is None


# -- build_plan: before anything is made ------------------------------------------------------

def _build(tmp_path, resources: dict, driver: object) -> Plan:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    spec = default_spec()
    spec["linux"]["resources"] = resources
    return build_plan(parse_config(json.dumps(spec)), str(tmp_path), "/fifo", cgroup=driver)


def test_build_plan_carries_the_entries_and_the_joins(tmp_path) -> None:
    plan = _build(tmp_path, {"pids": {"limit": 7}}, v2())
    assert plan.cgroup_settings is not None
    assert writes(plan.cgroup_settings.entries) == [("", "pids.max", "7")]
    assert plan.cgroup_dir == f"{TOP}/c1"


def test_build_plan_refuses_what_the_driver_cannot_express(tmp_path) -> None:
    with pytest.raises(Failure, match="linux.resources.unified"):
        _build(tmp_path, {"unified": {"memory.high": "1"}}, v1())
    with pytest.raises(Failure, match="pids controller is not mounted"):
        _build(tmp_path, {"pids": {"limit": 7}},
               v1({key: d for key, d in V1_PATHS.items() if key != "pids"}))
