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
from support.cgroups import PREFIX, cgroups_path
from support.checks import wait_for

SLEEP = ["sleep", "1000"]
MiB = 1 << 20
SYSTEMD = os.path.isdir("/run/systemd/system")
V2_HOST = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
pytestmark = pytest.mark.root
# v2's files and properties (the v1 systemd lane runs tests/test_systemd_v1.py instead)
v2_only = pytest.mark.skipif(not V2_HOST, reason="a cgroup v2 host (v1: test_systemd_v1.py)")

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
@v2_only
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
    assert props["AllowedCPUs"] == "0" and props["AllowedMemoryNodes"] == "0"
    assert props["MemoryLow"] == str(16 * MiB)
    assert props["CPUQuotaPeriodUSec"] == "100ms"
    assert props["DefaultDependencies"] == "no"
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
@v2_only
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
@v2_only
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


def stop_slice(unit: str) -> None:
    subprocess.run(["systemctl", "stop", unit], capture_output=True, timeout=60, check=False)


@pytest.mark.systemd
@pytest.mark.parametrize("form", ["empty slice", "nested slice", "slice name"])
def test_cgroups_path_forms(runtime: Runtime, bundle, test_token: str, form: str) -> None:
    """runc's rules, seen from systemd: an empty SLICE is system.slice, `-` in a slice's
    name nests it, and a NAME ending in .slice is a slice unit holding the container."""
    name = f"{PREFIX}{test_token}-b"  # pyrt-test-<token>-b
    top = f"{PREFIX}{test_token}.slice"  # pyrt-test-<token>.slice: in pyrt.slice/pyrt-test.slice
    nested = f"/pyrt.slice/pyrt-test.slice/{top}"
    if form == "empty slice":
        path, unit, slice_ = f":pyrt:{name}", f"pyrt-{name}.scope", "system.slice"
        cgroup = f"/system.slice/{unit}"
    elif form == "nested slice":
        path, unit, slice_ = f"{top}:pyrt:{name}", f"pyrt-{name}.scope", top
        cgroup = f"{nested}/{unit}"
    else:
        path, unit, slice_ = f"{top}:pyrt:{name}.slice", f"{name}.slice", top
        cgroup = f"{nested}/{unit}"
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path,
                                 "resources": {"pids": {"limit": 30}}}})
    try:
        pid = systemd_create(runtime, b, "c1")
        assert own_cgroup(pid) == cgroup
        props = show(unit, "ControlGroup", "ActiveState", "TasksMax", "Slice", "Delegate")
        assert props["ControlGroup"] == cgroup and props["ActiveState"] == "active", props
        assert props["TasksMax"] == "30"
        if unit.endswith(".slice"):  # a slice's parent comes from its name
            assert props["Slice"] == top, props
        else:
            assert props["Slice"] == slice_ and props["Delegate"] == "yes", props
        r = runtime.run("exec", "c1", "cat", "/proc/self/cgroup", check=True, timeout=60)
        assert f"0::{cgroup}" in r.stdout.splitlines()  # (v1: hybrid's unified line)
        runtime.run("delete", "--force", "c1", check=True, timeout=60)
        # a scope is gone; a stopped slice may stay loaded (inactive) while its parent
        # slice is there, as with runc
        wait_for(lambda: show(unit, "ActiveState", "LoadState") in (
            {"ActiveState": "inactive", "LoadState": "not-found"},
            {"ActiveState": "inactive", "LoadState": "loaded"} if unit.endswith(".slice")
            else {}), "the unit to stop")
        assert not os.path.exists(f"/sys/fs/cgroup{cgroup}")
        assert not os.path.exists(f"/sys/fs/cgroup/unified{cgroup}")
    finally:
        stop_slice(top)  # the parent slices stay, as with runc


@pytest.mark.systemd
@v2_only
def test_io_weight_and_cpu_quota_update(runtime: Runtime, bundle, test_token: str) -> None:
    """IOWeight at create; update sets CPUQuotaPerSecUSec with the period in force, and
    IOWeight, on the unit and in the files."""
    path, unit = systemd_path(test_token, "b")
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path, "resources": {
        "blockIO": {"weight": 500}, "cpu": {"quota": 20000, "period": 50000}}}})
    systemd_create(runtime, b, "c1")
    d = Path("/sys/fs/cgroup/system.slice", unit)
    props = show(unit, "IOWeight", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec")
    assert props == {"IOWeight": "4950", "CPUQuotaPerSecUSec": "400ms",
                     "CPUQuotaPeriodUSec": "50ms"}, props
    assert (d / "io.weight").read_text().split()[:2] == ["default", "4950"]
    runtime.run("update", "--cpu-quota", "10000", "--blkio-weight", "1000", "c1", check=True,
                timeout=60)
    props = show(unit, "IOWeight", "CPUQuotaPerSecUSec", "CPUQuotaPeriodUSec")
    assert props == {"IOWeight": "10000", "CPUQuotaPerSecUSec": "200ms",
                     "CPUQuotaPeriodUSec": "50ms"}, props
    assert (d / "cpu.max").read_text().split() == ["10000", "50000"]
    runtime.run("delete", "--force", "c1", check=True, timeout=60)


def leftovers(runtime: Runtime, token: str, unit: str) -> list[str]:
    """What a refused create must not leave: state, the unit, a cgroup named after it."""
    found = []
    if (runtime.root / "c1").exists():
        found.append("state dir")
    if show(unit, "LoadState")["LoadState"] != "not-found":
        found.append(f"unit {unit}")
    found += [d for d, _, _ in os.walk("/sys/fs/cgroup") if token in d]
    return found


@pytest.mark.systemd
def test_unreachable_bus_is_one_line_before_anything(runtime: Runtime, bundle,
                                                     test_token: str, tmp_path: Path) -> None:
    path, unit = systemd_path(test_token, "b")
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path}})
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={tmp_path}/no-bus")
    r = runtime.run("--systemd-cgroup", "create", "--bundle", b, "c1", env=env, timeout=60)
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and len(lines) == 1, r
    assert "systemd is not reachable" in lines[0] and "no-bus" in lines[0], r.stderr
    assert leftovers(runtime, test_token, unit) == []


@pytest.mark.systemd
def test_unit_systemd_refuses_leaves_nothing(runtime: Runtime, bundle,
                                             test_token: str) -> None:
    """systemd refuses the unit (CPUWeight, v1: CPUShares, out of its range): one line,
    and neither the placeholder, the unit, the state nor a cgroup is left."""
    path, unit = systemd_path(test_token, "b")
    res, prop = (({"unified": {"cpu.weight": "20000"}}, "CPUWeight") if V2_HOST
                 else ({"cpu": {"shares": 1}}, "CPUShares"))
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path, "resources": res}})
    before = set(os.listdir("/proc"))
    r = runtime.run("--systemd-cgroup", "create", "--bundle", b, "c1", timeout=120)
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and len(lines) == 1, r
    assert f"start unit {unit}" in lines[0] and prop in lines[0], r.stderr
    assert leftovers(runtime, test_token, unit) == []
    # a placeholder outlives the runtime that forked it (its parent is gone); served, the
    # server's new spare workers are pyruntime too, but their parent is the server
    new = {p for p in set(os.listdir("/proc")) - before if p.isdigit()}
    left = [p for p in new if _is_pyruntime(p) and not _is_pyruntime(_parent(p))]
    assert not left, "a placeholder is left"


def _is_pyruntime(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"pyruntime" in f.read()
    except OSError:
        return False


def _parent(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return "0"


# -- jeepney (D-Bus) only with the flag -----------------------------------------------------------

def imports(tmp_path: Path, runtime: Runtime, *args: str) -> tuple[int, set[str]]:
    """Run one verb cold through the installed launcher under -X importtime: its exit
    status and the modules it imported."""
    import sys

    from pyruntime.cli import launcher

    entry = tmp_path / "pyruntime-launcher"
    if not entry.exists():
        launcher.write(str(entry))
    log = tmp_path / "importtime.txt"
    with open(log, "w") as err:  # a file: a created init keeps the runtime's stdio open
        rc = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", str(entry),
                             "--root", str(runtime.root), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err, timeout=120).returncode
    return rc, {line.rsplit("|", 1)[1].strip() for line in log.read_text().splitlines()
                if line.startswith("import time:") and "|" in line}


@pytest.mark.pyruntime_only
@pytest.mark.skipif(SYSTEMD, reason="the lane checks the flag's imports (the next test)")
def test_no_dbus_library_without_the_flag(runtime: Runtime, bundle, test_token: str,
                                          tmp_path: Path) -> None:
    """jeepney (10-15 ms to import, measured) is loaded by no verb run without
    --systemd-cgroup; and the flag refused here (no systemd) does not load it either."""
    b = str(bundle(SLEEP))
    rc, mods = imports(tmp_path, runtime, "--systemd-cgroup", "create", "--bundle", b, "c0")
    assert rc == 1 and "jeepney" not in mods
    steps = [("create", "--bundle", b, "c1"), ("start", "c1"), ("state", "c1"),
             ("ps", "c1"), ("exec", "c1", "true"), ("pause", "c1"), ("resume", "c1"),
             ("update", "--pids-limit", "50", "c1"), ("events", "--stats", "c1"),
             ("kill", "c1", "KILL"), ("delete", "--force", "c1")]
    for args in steps:
        rc, mods = imports(tmp_path, runtime, *args)
        assert rc == 0, args
        assert "jeepney" not in mods, args


@pytest.mark.systemd
@pytest.mark.pyruntime_only
def test_dbus_library_with_the_flag(runtime: Runtime, bundle, test_token: str,
                                    tmp_path: Path) -> None:
    """With the flag, create loads jeepney; of the verbs on a systemd container only
    update (the unit's properties) and delete (StopUnit) need the bus."""
    path, _unit = systemd_path(test_token, "b")
    b = str(bundle(SLEEP, {"linux": {"cgroupsPath": path}}))
    steps = [("--systemd-cgroup", "create", "--bundle", b, "c1"), ("start", "c1"),
             ("state", "c1"), ("ps", "c1"), ("exec", "c1", "true"), ("pause", "c1"),
             ("resume", "c1"), ("update", "--pids-limit", "50", "c1"),
             ("events", "--stats", "c1"), ("kill", "c1", "KILL"), ("delete", "--force", "c1")]
    loaded = []
    for args in steps:
        rc, mods = imports(tmp_path, runtime, *args)
        assert rc == 0, args
        if "jeepney" in mods:
            loaded.append(args[1] if args[0] == "--systemd-cgroup" else args[0])
    assert loaded == ["create", "update", "delete"], loaded


@pytest.mark.systemd
@pytest.mark.pyruntime_only
def test_restore_refuses_the_flag(runtime: Runtime, bundle, test_token: str,
                                  tmp_path: Path) -> None:
    """restore has no systemd driver yet: refused in one line rather than a container
    in cgroupfs directories behind the flag's back."""
    path, unit = systemd_path(test_token, "b")
    b = bundle(SLEEP, {"linux": {"cgroupsPath": path}})
    (tmp_path / "image").mkdir()
    r = runtime.run("--systemd-cgroup", "restore", "--image-path", tmp_path / "image",
                    "--bundle", b, "c1", timeout=60)
    lines = r.stderr.splitlines()
    assert r.returncode == 1 and len(lines) == 1, r
    assert "--systemd-cgroup is not supported by restore" in lines[0], r.stderr
    assert leftovers(runtime, test_token, unit) == []
