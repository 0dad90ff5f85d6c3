"""cgroups on real containers: limits visible and enforced, pause/resume, update, kill --all,
ps, events, and nothing left in /sys/fs/cgroup afterwards.

The container's cgroup is found from outside, through /proc/PID/cgroup of its init, so the
same tests run against runc (PYRUNTIME_TEST_RUNTIME=runc). Tests of what only cgroup v2
has are marked cgroupv2: they run in the v2 lane (make test-cgroupv2).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from pyruntime.cgroups.detect import UNIFIED, host
from support import Runtime, using_other_runtime
from support.cgroups import find_cgroups, remove_cgroups
from support.checks import assert_clean_failure, wait_for
from support.config import DELETE

SLEEP = ["sleep", "1000"]
MiB = 1 << 20
V2 = host().mode == UNIFIED
# every test here adapts to the host's mode; on a unified host (the v2 lane) all of them
# are cgroupv2 tests, so that `pytest -m cgroupv2` runs them there
pytestmark = [pytest.mark.root, *([pytest.mark.cgroupv2] if V2 else [])]
only_v1 = pytest.mark.skipif(V2, reason="cgroup v1 files (this host's mode is unified)")


def cgroup_dir(pid: int, controller: str) -> str:
    """The directory of `pid`'s cgroup in the hierarchy carrying `controller` ("" on v2)."""
    h = host()
    hierarchy = h.v2 if V2 or not controller else h.controller(controller)
    assert hierarchy is not None, f"no {controller} hierarchy"
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if (V2 or not controller) and names == "":
                return hierarchy.dir_of(path)
            if not V2 and controller in names.split(","):
                return hierarchy.dir_of(path)
    raise AssertionError(f"pid {pid} has no {controller} cgroup")


def read(pid: int, controller: str, name: str) -> str:
    return Path(cgroup_dir(pid, controller), name).read_text().strip()


def started(runtime: Runtime, bundle_dir: object, cid: str) -> int:
    runtime.create(bundle_dir, cid)
    runtime.start(cid)
    return runtime.state(cid)["pid"]


def resources(**r: object) -> dict:
    return {"linux": {"resources": r}}


# -- limits visible -------------------------------------------------------------------------

def test_limits_are_in_the_cgroup_files(runtime: Runtime, bundle) -> None:
    b = bundle(SLEEP, resources(
        devices=[{"allow": False, "access": "rwm"}],
        memory={"limit": 64 * MiB, "swap": 64 * MiB, "reservation": 32 * MiB},
        cpu={"shares": 512, "quota": 50000, "period": 100000},
        pids={"limit": 32},
    ))
    pid = started(runtime, b, "lim")
    if V2:
        assert read(pid, "", "memory.max") == str(64 * MiB)
        assert read(pid, "", "memory.swap.max") == "0"
        assert read(pid, "", "memory.low") == str(32 * MiB)
        assert read(pid, "", "cpu.max") == "50000 100000"
        assert read(pid, "", "cpu.weight") == "20"  # runc: 1 + (512-2)*9999/262142
        assert read(pid, "", "pids.max") == "32"
    else:
        assert read(pid, "memory", "memory.limit_in_bytes") == str(64 * MiB)
        assert read(pid, "memory", "memory.memsw.limit_in_bytes") == str(64 * MiB)
        assert read(pid, "memory", "memory.soft_limit_in_bytes") == str(32 * MiB)
        assert read(pid, "cpu", "cpu.shares") == "512"
        assert read(pid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert read(pid, "cpu", "cpu.cfs_period_us") == "100000"
        assert read(pid, "pids", "pids.max") == "32"
        devices = read(pid, "devices", "devices.list").splitlines()
        assert "a *:* rwm" not in devices and "c 1:3 rwm" in devices  # runc's default list
    runtime.delete("lim", force=True)


def test_default_cgroup_is_the_id_under_our_own(runtime: Runtime, bundle, test_token) -> None:
    """No cgroupsPath: runc's default, the id as a relative path (nested under ours)."""
    cid = f"pyrt-test-{test_token}-default"
    b = bundle(SLEEP, {"linux": {"cgroupsPath": DELETE}})
    pid = started(runtime, b, cid)
    with open("/proc/self/cgroup") as f:
        own = {names: path for _, names, path in
               (line.rstrip("\n").split(":", 2) for line in f)}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            assert path == os.path.join(own[names], cid), line
    runtime.delete(cid, force=True)
    assert not find_cgroups(cid)


# -- enforcement ----------------------------------------------------------------------------

def _events(runtime: Runtime, cid: str) -> subprocess.Popen[str]:
    return runtime.popen("events", "--interval", "1s", cid)


def _read_events(proc: subprocess.Popen[str], want: str, timeout: float) -> list[dict]:
    """Lines from a running `events` until one has type `want`."""
    assert proc.stdout is not None
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(proc.stdout, select.POLLIN)
    while time.monotonic() < deadline:
        if not poller.poll(100):
            continue
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(json.loads(line))
        if seen[-1]["type"] == want:
            return seen
    raise AssertionError(f"no {want!r} event in {timeout} s; saw {[e['type'] for e in seen]}")


def test_allocation_past_the_limit_is_oom_killed_and_reported(runtime: Runtime, bundle) -> None:
    script = ("while [ ! -e /go ]; do sleep 0.05; done; "
              "dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd=$?; sleep 1000")
    b = bundle(["sh", "-c", script],
               resources(memory={"limit": 24 * MiB, "swap": 24 * MiB}))
    started(runtime, b, "oom")
    events = _events(runtime, "oom")
    try:
        _read_events(events, "stats", timeout=60)  # its OOM watch is set before the 1st line
        (b.rootfs / "go").write_text("")
        seen = _read_events(events, "oom", timeout=20)
        assert seen[-1] == {"type": "oom", "id": "oom"}
        wait_for(lambda: "dd=" in runtime.output("oom"), what="dd's exit status")
        assert "dd=137" in runtime.output("oom")  # SIGKILL by the OOM killer
        pid = runtime.state("oom")["pid"]
        if V2:
            counts = dict(line.split() for line in read(pid, "", "memory.events").splitlines())
        else:
            counts = dict(line.split()
                          for line in read(pid, "memory", "memory.oom_control").splitlines())
        assert int(counts["oom_kill"]) >= 1
    finally:
        runtime.delete("oom", force=True)
        events.communicate(timeout=30)  # it ends with the container


def test_fork_bomb_stops_at_the_pids_limit(runtime: Runtime, bundle) -> None:
    bomb = "bomb() { bomb | bomb & }; bomb & exec sleep 1000"  # the init itself never forks
    b = bundle(["sh", "-c", bomb], resources(pids={"limit": 64}))
    pid = started(runtime, b, "bomb")
    controller = "" if V2 else "pids"

    def refused() -> int:  # pids.events "max N": forks refused at the limit
        return int(read(pid, controller, "pids.events").split()[-1])

    # the bomb's population can reach the limit and die out between two samples of
    # pids.current, so the proof is the kernel's count of refused forks
    wait_for(refused, timeout=60, what="a fork refused at the limit")
    for _ in range(20):
        assert int(read(pid, controller, "pids.current")) <= 64
        time.sleep(0.05)
    runtime.delete("bomb", force=True)  # kills all of them through the cgroup


def test_denied_device_cannot_be_opened(runtime: Runtime, bundle) -> None:
    """/dev/kmsg (1:11) is not in runc's default allow list; opening it write-only
    needs no capability, so only the device cgroup (v2: the eBPF filter) stands in the
    way."""
    kmsg = {"path": "/dev/pyrt-kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o200}
    script = "printf '' > /dev/pyrt-kmsg && echo opened"
    denied = bundle(["sh", "-c", script], {"linux": {"devices": [kmsg]}}, name="denied")
    r = runtime.run_bundle(denied, "denied", check=False)
    assert "opened" not in r.stdout and "Operation not permitted" in r.stderr, r
    allow = {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "w"}
    allowed = bundle(["sh", "-c", script], {"linux": {
        "devices": [kmsg], "resources": {"devices": [{"allow": False, "access": "rwm"}, allow]},
    }}, name="allowed")
    r = runtime.run_bundle(allowed, "allowed", check=False)
    assert "opened" in r.stdout, r
    # no rules at all: runc's defaults only, from deny-all (runc 1.1 on v1 and v2)
    none = bundle(["sh", "-c", script], {"linux": {
        "devices": [kmsg], "resources": {"devices": []}}}, name="none")
    r = runtime.run_bundle(none, "none", check=False)
    assert "opened" not in r.stdout and "Operation not permitted" in r.stderr, r


# -- verbs ----------------------------------------------------------------------------------

def test_pause_freezes_every_process_and_resume_thaws(runtime: Runtime, bundle) -> None:
    counter = ("i=0; while :; do i=$((i+1)); echo $i > /count; sleep 0.02; done & "
               "sleep 1000 & wait")
    b = bundle(["sh", "-c", counter])
    pid = started(runtime, b, "frz")
    count = b.rootfs / "count"
    wait_for(count.exists, what="the counter")
    runtime.run("pause", "frz", check=True)
    assert runtime.status("frz") == "paused"
    if V2:
        assert read(pid, "", "cgroup.freeze") == "1"
    else:
        assert read(pid, "freezer", "freezer.state") == "FROZEN"
    before = count.read_text()
    time.sleep(0.4)
    assert count.read_text() == before  # nothing runs
    r = runtime.run("pause", "frz")
    assert r.returncode != 0 and "not running" in r.stderr
    runtime.run("resume", "frz", check=True)
    assert runtime.status("frz") == "running"
    wait_for(lambda: count.read_text() != before, what="the counter to move again")
    r = runtime.run("resume", "frz")
    assert r.returncode != 0 and "not paused" in r.stderr
    runtime.delete("frz", force=True)


def test_delete_force_of_a_paused_container(runtime: Runtime, bundle) -> None:
    started(runtime, bundle(["sh", "-c", "sleep 1000 & sleep 1000"]), "pz")
    runtime.run("pause", "pz", check=True)
    runtime.delete("pz", force=True)  # thaws, or the frozen processes never die (timeout)
    assert runtime.ids() == []


def test_update_changes_limits_live(runtime: Runtime, bundle) -> None:
    b = bundle(SLEEP, resources(memory={"limit": 64 * MiB}, pids={"limit": 32}))
    pid = started(runtime, b, "upd")
    runtime.run("update", "--memory", "128m", "--pids-limit", "50", "upd", check=True)
    mem = ("", "memory.max") if V2 else ("memory", "memory.limit_in_bytes")
    pids = ("" if V2 else "pids", "pids.max")
    assert read(pid, *mem) == str(128 * MiB)
    assert read(pid, *pids) == "50"
    # containerd's form: LinuxResources JSON on stdin
    body = json.dumps({"memory": {"limit": 100 * MiB}, "pids": {"limit": 20},
                       "cpu": {"shares": 256}})
    runtime.run("update", "--resources", "-", "upd", input=body, check=True)
    assert read(pid, *mem) == str(100 * MiB)
    assert read(pid, *pids) == "20"
    if not V2:
        assert read(pid, "cpu", "cpu.shares") == "256"
    r = runtime.run("update", "--memory", "lots", "upd")
    assert r.returncode != 0 and "invalid size" in r.stderr
    runtime.delete("upd", force=True)
    r = runtime.run("update", "--memory", "1g", "upd")
    assert r.returncode != 0


def test_kill_all_reaches_every_process_without_a_pid_namespace(runtime: Runtime,
                                                                 bundle) -> None:
    """With the host's pid namespace, only the cgroup says which processes are the
    container's."""
    b = bundle(["sh", "-c", "sleep 1001 & sleep 1002 & wait"])
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"]
                                       if ns["type"] != "pid"]
    b.write()
    pid = started(runtime, b, "ka")
    procs = cgroup_dir(pid, "" if V2 else "pids") + "/cgroup.procs"
    wait_for(lambda: len(Path(procs).read_text().split()) == 3, what="3 processes")
    members = [int(p) for p in Path(procs).read_text().split()]
    runtime.kill("ka", "TERM", "--all")
    wait_for(lambda: all(_gone(p) for p in members), what="every process to exit")
    runtime.delete("ka")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_kill_all_sigkill(runtime: Runtime, bundle) -> None:
    pid = started(runtime, bundle(["sh", "-c", "sleep 1001 & sleep 1002 & wait"]), "ka9")
    runtime.kill("ka9", "KILL", "--all")
    wait_for(lambda: _gone(pid), what="the init to die")
    runtime.wait_status("ka9", "stopped")
    runtime.delete("ka9")


def test_ps(runtime: Runtime, bundle) -> None:
    pid = started(runtime, bundle(["sh", "-c", "sleep 1001 & sleep 1002 & wait"]), "ps")
    procs = Path(cgroup_dir(pid, "" if V2 else "pids"), "cgroup.procs")
    wait_for(lambda: len(procs.read_text().split()) == 3, what="3 processes")
    listed = json.loads(runtime.run("ps", "--format", "json", "ps", check=True).stdout)
    assert sorted(listed) == sorted(int(p) for p in procs.read_text().split())
    assert pid in listed
    table = runtime.run("ps", "ps", check=True).stdout.splitlines()
    assert "PID" in table[0].split() and len(table) == 4
    assert any("sleep 1002" in line for line in table)
    runtime.delete("ps", force=True)


def test_events_stats(runtime: Runtime, bundle) -> None:
    b = bundle(SLEEP, resources(memory={"limit": 64 * MiB}, pids={"limit": 10}))
    started(runtime, b, "ev")
    event = json.loads(runtime.run("events", "--stats", "ev", check=True).stdout)
    assert event["type"] == "stats" and event["id"] == "ev"
    data = event["data"]
    assert data["memory"]["usage"]["limit"] == 64 * MiB
    assert data["pids"] == {"current": 1, "limit": 10}
    assert data["cpu"]["usage"]["total"] > 0
    # the stream: a stats line each interval, ends when the container does
    proc = runtime.popen("events", "--interval", "200ms", "ev")
    lines = _read_events(proc, "stats", timeout=5)
    assert lines[-1]["data"]["pids"]["current"] == 1
    runtime.kill("ev", "KILL")
    if using_other_runtime():  # runc's stream goes on after the container is gone
        proc.kill()
        proc.communicate()
    else:
        proc.communicate(timeout=30)  # drain: a full pipe would block it
        assert proc.returncode == 0
    runtime.delete("ev")


# -- nothing left ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["bad-resource", "bad-process",
                                  pytest.param("nested-path", marks=pytest.mark.pyruntime_only)])
def test_failed_create_leaves_no_cgroup(runtime: Runtime, bundle, test_token, case) -> None:
    overrides: dict = {
        "bad-resource": resources(cpu={"cpus": "999"}),  # no such CPU: the write fails
        "bad-process": {"process": {"args": ["/no/such/program"]}},
        "nested-path": {"linux": {"cgroupsPath": f"pyrt-test-{test_token}-n/a/b",
                                  "resources": {"cpu": {"cpus": "999"}}}},
    }[case]
    b = bundle(SLEEP, overrides)
    r = runtime.run("create", "--bundle", b, "bad")
    assert r.returncode != 0
    assert find_cgroups(test_token) == []
    assert runtime.ids() == []


@pytest.mark.pyruntime_only  # PYRUNTIME_FAULT is ours
def test_resources_are_refused_before_the_state_dir_is_reserved(runtime: Runtime, bundle,
                                                               test_token) -> None:
    """linux.resources is converted at plan time: the runtime, told to die once the state
    dir is reserved (pyruntime/errors.py crash_point), fails on the value first."""
    b = bundle(SLEEP, resources(hugepageLimits=[{"pageSize": "2XB", "limit": 4096}]))
    r = runtime.run("create", "--bundle", b, "early",
                    env={**os.environ, "PYRUNTIME_FAULT": "create:reserved"})
    assert_clean_failure(r, runtime, "early", "linux.resources.hugepageLimits")
    assert find_cgroups(test_token) == []


@pytest.mark.pyruntime_only  # runc leaves the parents it made
def test_delete_removes_the_parents_it_made(runtime: Runtime, bundle, test_token) -> None:
    path = f"pyrt-test-{test_token}-p/x/y"
    pid = started(runtime, bundle(SLEEP, {"linux": {"cgroupsPath": path}}), "nest")
    assert cgroup_dir(pid, "" if V2 else "memory").endswith(path)
    runtime.delete("nest", force=True)
    assert find_cgroups(test_token) == []


@pytest.mark.pyruntime_only
def test_shared_parent_stays_while_another_container_uses_it(runtime: Runtime, bundle,
                                                              test_token) -> None:
    base = f"pyrt-test-{test_token}-shared"
    started(runtime, bundle(SLEEP, {"linux": {"cgroupsPath": f"{base}/one"}}, name="b1"), "one")
    pid = started(runtime, bundle(SLEEP, {"linux": {"cgroupsPath": f"{base}/two"}}, name="b2"),
                  "two")
    runtime.delete("one", force=True)  # made the parent, which "two" still sits in
    assert cgroup_dir(pid, "" if V2 else "memory").endswith(f"{base}/two")
    runtime.delete("two", force=True)
    # "two" did not make the parent, so it leaves it (as runc leaves every parent): the
    # client that shares a parent between containers removes it
    left = find_cgroups(base)
    assert left and all(p.endswith(base) for p in left)
    remove_cgroups(left)


# -- cgroup v2 only -------------------------------------------------------------------------

@pytest.mark.cgroupv2
def test_v2_init_starts_in_its_cgroup_and_unified_keys(runtime: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", "cat /proc/self/cgroup; sleep 1000"],
               resources(unified={"memory.high": str(48 * MiB)}, memory={"limit": 64 * MiB,
                                                                         "swap": 96 * MiB}))
    pid = started(runtime, b, "v2")
    assert read(pid, "", "memory.high") == str(48 * MiB)
    assert read(pid, "", "memory.swap.max") == str(32 * MiB)  # swap - limit
    wait_for(lambda: runtime.output("v2"), what="output")
    assert runtime.output("v2").startswith("0::/")
    runtime.delete("v2", force=True)


@pytest.mark.cgroupv2
def test_v2_unified_key_that_does_not_exist_fails(runtime: Runtime, bundle, test_token) -> None:
    b = bundle(SLEEP, resources(unified={"memory.nosuchfile": "1"}))
    r = runtime.run("create", "--bundle", b, "v2bad")
    assert r.returncode != 0 and "memory.nosuchfile" in r.stderr
    assert find_cgroups(test_token) == []


@pytest.mark.cgroupv2
def test_v2_one_device_filter_stays_through_update(runtime: Runtime, bundle) -> None:
    from pyruntime._native import lib

    pid = started(runtime, bundle(SLEEP, resources(pids={"limit": 32})), "v2dev")
    fd = os.open(cgroup_dir(pid, ""), os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert lib.pyrt_device_filter_count(fd) == 1
        runtime.run("update", "--pids-limit", "40", "v2dev", check=True)
        assert lib.pyrt_device_filter_count(fd) == 1
    finally:
        os.close(fd)
    runtime.delete("v2dev", force=True)
