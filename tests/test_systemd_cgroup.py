"""--systemd-cgroup: the container's cgroup is a transient systemd unit.

Where systemd is not PID 1 (this host) the flag is refused before anything is made.
The tests marked `systemd` need systemd as PID 1: they run in the systemd lane
(make test-systemd, integration/systemd/), where each is checked from outside through
/proc/PID/cgroup and `systemctl show`, and against runc's systemd driver.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import Runtime
from support.cgroups import cgroups_path
from support.checks import wait_for

SLEEP = ["sleep", "1000"]
MiB = 1 << 20
SYSTEMD = os.path.isdir("/run/systemd/system")
pytestmark = pytest.mark.root

# what both runtimes are compared on (systemctl show's names)
COMPARED = ("Slice", "ControlGroup", "Delegate", "MemoryAccounting", "CPUAccounting",
            "IOAccounting", "TasksAccounting", "MemoryMax", "MemoryLow", "MemorySwapMax",
            "MemoryHigh", "TasksMax", "CPUWeight", "CPUQuotaPerSecUSec",
            "CPUQuotaPeriodUSec", "AllowedCPUs", "AllowedMemoryNodes", "DevicePolicy",
            "DeviceAllow", "DefaultDependencies", "ActiveState")


def systemd_path(token: str, name: str) -> tuple[str, str]:
    """(cgroupsPath, unit): a scope named with the test's token (leftover checks find it)."""
    name = cgroups_path(token, name)
    return f"system.slice:pyrt:{name}", f"pyrt-{name}.scope"


def show(unit: str, *names: str) -> dict[str, str]:
    """`systemctl show UNIT`; a property printed on several lines (DeviceAllow=) has
    them joined with newlines."""
    out = subprocess.run(["systemctl", "show", "--no-pager", unit,
                          *(["-p", ",".join(names)] if names else [])],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    props: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key] = f"{props[key]}\n{value}" if key in props else value
    return props




def own_cgroup(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return next(line.rstrip("\n").split(":", 2)[2] for line in f if line.startswith("0::"))


# -- this host: no systemd ----------------------------------------------------------------------

@pytest.mark.pyruntime_only
@pytest.mark.skipif(SYSTEMD, reason="systemd is PID 1 here: the refusal is for hosts without")
@pytest.mark.parametrize("verb", ["create", "run"])
def test_refused_without_systemd(runtime: Runtime, bundle, test_token: str, verb: str) -> None:
    path, _unit = systemd_path(test_token, "b")
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path}})
    r = runtime.run("--systemd-cgroup", verb, "--bundle", b, "c1")
    assert r.returncode == 1, r
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "systemd is not running" in lines[0], r.stderr
    assert "/run/systemd/system" in lines[0]
    assert not os.path.exists(runtime.root / "c1")
    # nothing in cgroupfs either (the old fallback made a directory named after the path)
    assert not any(test_token in d for d, _, _ in os.walk("/sys/fs/cgroup"))


# -- the systemd lane ---------------------------------------------------------------------------

def systemd_create(runtime: Runtime, b: object, cid: str) -> int:
    r = runtime.run("--systemd-cgroup", "create", "--bundle", b, cid, timeout=120)
    assert r.returncode == 0, r
    runtime.run("start", cid, check=True, timeout=120)
    return runtime.state(cid)["pid"]


LIMITS = {
    "memory": {"limit": 64 * MiB, "reservation": 16 * MiB, "swap": 96 * MiB},
    "cpu": {"shares": 512, "quota": 30000, "period": 100000, "cpus": "0", "mems": "0"},
    "pids": {"limit": 40},
    "unified": {"memory.high": str(48 * MiB)},
}


@pytest.mark.systemd
def test_scope_holds_the_container_with_its_limits(runtime: Runtime, bundle,
                                                   test_token: str) -> None:
    path, unit = systemd_path(test_token, "b")
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path, "resources": LIMITS}})
    pid = systemd_create(runtime, b, "c1")
    assert own_cgroup(pid) == f"/system.slice/{unit}"
    props = show(unit)
    assert props["ActiveState"] == "active" and props["Delegate"] == "yes", props
    assert props["ControlGroup"] == f"/system.slice/{unit}"
    assert props["MemoryMax"] == str(64 * MiB)
    assert props["MemoryHigh"] == str(48 * MiB)
    assert props["MemorySwapMax"] == str(32 * MiB)
    assert props["TasksMax"] == "40"
    assert props["CPUWeight"] == "20"  # shares 512 -> weight, as runc converts
    assert props["CPUQuotaPerSecUSec"] == "300ms"
    assert props["AllowedCPUs"] == "0"
    assert props["DevicePolicy"] == "strict"
    assert "/dev/char/1:3 rwm" in props["DeviceAllow"].splitlines()
    for key in ("MemoryAccounting", "CPUAccounting", "IOAccounting", "TasksAccounting"):
        assert props[key] == "yes", key
    # the files say the same (written by systemd and by the driver)
    d = Path("/sys/fs/cgroup/system.slice", unit)
    assert (d / "memory.max").read_text().strip() == str(64 * MiB)
    assert (d / "pids.max").read_text().strip() == "40"
    assert (d / "cpu.max").read_text().split() == ["30000", "100000"]
    # ps, events --stats work on the scope
    ps = json.loads(runtime.run("ps", "--format", "json", "c1", check=True).stdout)
    assert ps == [pid]
    stats = runtime.run("events", "--stats", "c1", check=True, timeout=60).stdout
    assert json.loads(stats.splitlines()[0])["data"]["pids"]["current"] >= 1
    # kill --all: every process of the scope; systemd then drops the empty scope itself
    runtime.run("exec", "-d", "c1", "sleep", "999", check=True, timeout=60)
    assert len(json.loads(runtime.run("ps", "--format", "json", "c1").stdout)) == 2
    runtime.run("kill", "--all", "c1", "KILL", check=True, timeout=60)
    wait_for(lambda: runtime.state("c1")["status"] == "stopped", "the container to stop")
    wait_for(lambda: show(unit, "LoadState")["LoadState"] == "not-found", "the unit to go")
    runtime.run("delete", "c1", check=True, timeout=60)


@pytest.mark.systemd
def test_pause_exec_update_kill_delete(runtime: Runtime, bundle, test_token: str) -> None:
    path, unit = systemd_path(test_token, "b")
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path,
                                 "resources": {"memory": {"limit": 64 * MiB}}}})
    pid = systemd_create(runtime, b, "c1")
    d = Path("/sys/fs/cgroup/system.slice", unit)

    runtime.run("pause", "c1", check=True, timeout=60)
    assert (d / "cgroup.freeze").read_text().strip() == "1"
    assert "frozen 1" in (d / "cgroup.events").read_text()
    assert runtime.state("c1")["status"] == "paused"
    runtime.run("resume", "c1", check=True, timeout=60)
    assert "frozen 0" in (d / "cgroup.events").read_text()

    # exec joins the scope
    r = runtime.run("exec", "c1", "cat", "/proc/self/cgroup", check=True, timeout=60)
    assert r.stdout.strip() == f"0::/system.slice/{unit}"

    # update: the unit's property and the file
    runtime.run("update", "--memory", "80m", "--pids-limit", "25", "c1", check=True,
                timeout=60)
    props = show(unit, "MemoryMax", "TasksMax")
    assert props == {"MemoryMax": str(80 * MiB), "TasksMax": "25"}, props
    assert (d / "memory.max").read_text().strip() == str(80 * MiB)

    # delete --force of the running container stops the unit
    runtime.run("exec", "-d", "c1", "sleep", "999", check=True, timeout=60)
    assert show(unit, "ActiveState")["ActiveState"] == "active"
    runtime.run("delete", "--force", "c1", check=True, timeout=60)
    assert show(unit, "LoadState")["LoadState"] == "not-found"
    assert not d.exists()
    assert not os.path.exists(f"/proc/{pid}")


@pytest.mark.systemd
def test_failed_create_leaves_no_unit(runtime: Runtime, bundle, test_token: str) -> None:
    path, unit = systemd_path(test_token, "b")
    b = bundle(["/no/such/program"], {"linux": {"cgroupsPath": path}})
    r = runtime.run("--systemd-cgroup", "run", "--bundle", b, "c1", timeout=120)
    assert r.returncode != 0
    assert show(unit, "LoadState")["LoadState"] == "not-found"


@pytest.mark.systemd
def test_bad_cgroups_path_refused(runtime: Runtime, bundle, test_token: str) -> None:
    b = bundle(SLEEP, {"linux": {"cgroupsPath": f"/pyrt-{test_token}"}})
    r = runtime.run("--systemd-cgroup", "create", "--bundle", b, "c1", timeout=60)
    assert r.returncode == 1 and "slice:prefix:name" in r.stderr, r
    assert not os.path.exists(runtime.root / "c1")


@pytest.mark.systemd
@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_same_unit_properties_as_runc(runtime: Runtime, bundle, test_token: str,
                                      tmp_path: Path) -> None:
    """The same bundle under runc's systemd driver and ours: the same unit properties."""
    path, unit = systemd_path(test_token, "b")
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path, "resources": LIMITS}})
    got = {}
    runc_root = tmp_path / "runc-root"
    runc = ["runc", "--root", str(runc_root), "--systemd-cgroup"]
    with open(tmp_path / "runc.out", "w") as out:
        subprocess.run([*runc, "create", "--bundle", str(b), "c1"], check=True, timeout=120,
                       stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        got["runc"] = show(unit, *COMPARED)
    finally:
        subprocess.run([*runc, "delete", "--force", "c1"], timeout=120, check=False)
    assert show(unit, "LoadState")["LoadState"] == "not-found"
    systemd_create(runtime, b, "c1")
    got["pyruntime"] = show(unit, *COMPARED)
    def norm(props: dict[str, str], key: str) -> object:
        value = props.get(key)  # DeviceAllow: a list, its order is not kept
        return sorted(value.splitlines()) if key == "DeviceAllow" and value else value

    diff = {k: (norm(got["pyruntime"], k), norm(got["runc"], k)) for k in COMPARED
            if norm(got["pyruntime"], k) != norm(got["runc"], k)}
    assert not diff, (diff, (tmp_path / "runc.out").read_text())
