"""--systemd-cgroup on a cgroup v1 systemd host, as runc's legacy systemd manager: the unit
PREFIX-NAME.scope with v1's properties (MemoryLimit, CPUShares, ...), its directory in
every hierarchy (systemd makes those it manages, the driver the others), pause through
the v1 freezer, delete stopping the unit and removing the driver's directories.

Runs in the systemd lane booted with cgroup v1 (`PYRT_SYSTEMD_UNIFIED=0
integration/systemd/run.sh`: systemd's hybrid layout, as this host's); skipped where
systemd is not PID 1 or the host is cgroup v2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_systemd_cgroup import SLEEP, show, systemd_create, systemd_path

from support import Runtime
from support.checks import wait_for

MiB = 1 << 20
V1_HOST = not os.path.exists("/sys/fs/cgroup/cgroup.controllers")
pytestmark = [pytest.mark.root, pytest.mark.systemd,
              pytest.mark.skipif(not V1_HOST, reason="a cgroup v1 host (the v1 systemd lane: "
                                 "PYRT_SYSTEMD_UNIFIED=0 integration/systemd/run.sh)")]

LIMITS = {
    "memory": {"limit": 64 * MiB},
    "cpu": {"shares": 512, "quota": 30000, "period": 100000},
    "pids": {"limit": 40},
}
COMPARED = ("Slice", "ControlGroup", "Delegate", "MemoryAccounting", "CPUAccounting",
            "BlockIOAccounting", "TasksAccounting", "MemoryLimit", "CPUShares", "TasksMax",
            "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec", "DevicePolicy", "DeviceAllow",
            "DefaultDependencies", "ActiveState")


def cgroups_of(pid: int) -> dict[str, str]:
    """/proc/PID/cgroup as {hierarchy: path} ("" for the unified one)."""
    with open(f"/proc/{pid}/cgroup") as f:
        return {line.split(":", 2)[1]: line.rstrip("\n").split(":", 2)[2] for line in f}


def v1_dirs(cgroup: str) -> list[Path]:
    """The cgroup's directory in every v1 hierarchy mounted under /sys/fs/cgroup."""
    return [p / cgroup.lstrip("/") for p in Path("/sys/fs/cgroup").iterdir()
            if p.is_dir() and not p.is_symlink() and p.name != "unified"]


def test_v1_scope_lifecycle(runtime: Runtime, bundle, test_token: str) -> None:
    path, unit = systemd_path(test_token, "b")
    cgroup = f"/system.slice/{unit}"
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path, "resources": LIMITS}})
    pid = systemd_create(runtime, b, "c1")
    where = cgroups_of(pid)
    # in the unit's cgroup in every hierarchy: systemd's and the driver's
    assert {k: v for k, v in where.items() if v != cgroup} == {}, where
    for key in ("name=systemd", "memory", "pids", "freezer", "cpuset", "devices"):
        assert any(key in k.split(",") for k in where), (key, where)
    props = show(unit)
    assert props["ActiveState"] == "active" and props["Delegate"] == "yes", props
    assert props["MemoryLimit"] == str(64 * MiB) and props["TasksMax"] == "40"
    assert props["CPUShares"] == "512" and props["CPUQuotaPerSecUSec"] == "300ms"
    assert props["BlockIOAccounting"] == "yes" and props["DevicePolicy"] == "strict"
    fs = Path("/sys/fs/cgroup")
    assert (fs / "memory" / cgroup.lstrip("/") / "memory.limit_in_bytes").read_text().strip() \
        == str(64 * MiB)
    assert (fs / "pids" / cgroup.lstrip("/") / "pids.max").read_text().strip() == "40"
    freezer = fs / "freezer" / cgroup.lstrip("/") / "freezer.state"

    runtime.run("pause", "c1", check=True, timeout=60)
    assert freezer.read_text().strip() == "FROZEN"
    runtime.run("resume", "c1", check=True, timeout=60)
    assert freezer.read_text().strip() == "THAWED"

    r = runtime.run("exec", "c1", "cat", "/proc/self/cgroup", check=True, timeout=60)
    assert all(line.split(":", 2)[2] == cgroup for line in r.stdout.splitlines()), r.stdout

    runtime.run("update", "--memory", "80m", "--pids-limit", "25", "c1", check=True,
                timeout=60)
    assert show(unit, "MemoryLimit", "TasksMax") == {"MemoryLimit": str(80 * MiB),
                                                     "TasksMax": "25"}
    assert (fs / "pids" / cgroup.lstrip("/") / "pids.max").read_text().strip() == "25"

    runtime.run("exec", "-d", "c1", "sleep", "999", check=True, timeout=60)
    assert len(json.loads(runtime.run("ps", "--format", "json", "c1").stdout)) == 2
    stats = runtime.run("events", "--stats", "c1", check=True, timeout=60).stdout
    assert json.loads(stats.splitlines()[0])["data"]["pids"]["current"] == 2

    runtime.run("delete", "--force", "c1", check=True, timeout=60)
    assert show(unit, "LoadState")["LoadState"] == "not-found"
    left = [str(d) for d in v1_dirs(cgroup) if d.exists()]
    assert left == [], left
    assert not os.path.exists(f"/proc/{pid}")


def test_v1_kill_all_and_stop(runtime: Runtime, bundle, test_token: str) -> None:
    path, unit = systemd_path(test_token, "b")
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path}})
    systemd_create(runtime, b, "c1")
    runtime.run("exec", "-d", "c1", "sleep", "999", check=True, timeout=60)
    runtime.run("kill", "--all", "c1", "KILL", check=True, timeout=60)
    wait_for(lambda: runtime.state("c1")["status"] == "stopped", "the container to stop")
    runtime.run("delete", "c1", check=True, timeout=60)
    assert show(unit, "LoadState")["LoadState"] == "not-found"
    left = [str(d) for d in v1_dirs(f"/system.slice/{unit}") if d.exists()]
    assert left == [], left


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_v1_same_as_runc(runtime: Runtime, bundle, test_token: str, tmp_path: Path) -> None:
    """The same bundle under runc's legacy systemd manager and ours: the same unit
    properties, and the init in the same cgroup of every hierarchy."""
    path, unit = systemd_path(test_token, "b")
    cgroup = f"/system.slice/{unit}"
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path, "resources": LIMITS}})
    got, where = {}, {}
    runc = ["runc", "--root", str(tmp_path / "runc-root"), "--systemd-cgroup"]
    with open(tmp_path / "runc.out", "w") as out:
        subprocess.run([*runc, "create", "--bundle", str(b), "c1"], check=True, timeout=120,
                       stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        state = json.loads(subprocess.run([*runc, "state", "c1"], capture_output=True,
                                          check=True, timeout=60).stdout)
        got["runc"], where["runc"] = show(unit, *COMPARED), cgroups_of(state["pid"])
    finally:
        subprocess.run([*runc, "delete", "--force", "c1"], timeout=120, check=False)
    assert show(unit, "LoadState")["LoadState"] == "not-found"
    pid = systemd_create(runtime, b, "c1")
    got["pyruntime"], where["pyruntime"] = show(unit, *COMPARED), cgroups_of(pid)
    runtime.run("delete", "--force", "c1", check=True, timeout=60)

    def norm(props: dict[str, str], key: str) -> object:
        value = props.get(key)
        return sorted(value.splitlines()) if key == "DeviceAllow" and value else value

    diff = {k: (norm(got["pyruntime"], k), norm(got["runc"], k)) for k in COMPARED
            if norm(got["pyruntime"], k) != norm(got["runc"], k)}
    assert not diff, (diff, (tmp_path / "runc.out").read_text())
    # runc 1.1.5's legacy manager does not know the misc hierarchy (its init stays in
    # misc's root); pyruntime puts the container in it as in every other one
    assert where["pyruntime"].pop("misc", cgroup) == cgroup
    where["runc"].pop("misc", None)
    assert where["pyruntime"] == where["runc"]
