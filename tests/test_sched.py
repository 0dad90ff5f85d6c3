"""personality, ioPriority, scheduler, memoryPolicy, timeOffsets, intelRdt: each seen
from inside the container, and each bad value failing with one line naming the field.

This host: SCHED_FIFO/RR get EPERM (the v1 cpu controller has no real-time budget), so
the scheduler is shown with SCHED_BATCH and SCHED_IDLE; one NUMA node (node 0); no resctrl.
"""

from __future__ import annotations

import pytest

from support import Runtime, assert_clean_failure

pytestmark = pytest.mark.root


def run(runtime: Runtime, bundle, script: str, overrides: dict) -> str:
    return runtime.run_bundle(bundle(["sh", "-c", script], overrides), "c1").stdout


def stat_field(text: str, n: int) -> str:
    """Field n (1-based, as proc(5) counts) of a /proc/PID/stat line."""
    after_comm = text[text.rindex(")") + 2:].split()
    return after_comm[n - 3]


def test_personality_linux32(runtime: Runtime, bundle) -> None:
    out = run(runtime, bundle, "uname -m; cat /proc/self/personality",
              {"linux": {"personality": {"domain": "LINUX32"}}})
    machine, pers = out.split()
    assert machine in ("i686", "i386"), out
    assert int(pers, 16) == 0x0008


def test_personality_flags(runtime: Runtime, bundle) -> None:
    out = run(runtime, bundle, "cat /proc/self/personality",
              {"linux": {"personality": {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}}})
    assert int(out, 16) == 0x0040000


@pytest.mark.parametrize(("cls", "prio", "shown"), [
    ("IOPRIO_CLASS_BE", 6, "best-effort: prio 6"),
    ("IOPRIO_CLASS_IDLE", 0, "idle"),
    ("IOPRIO_CLASS_RT", 2, "realtime: prio 2"),
])
def test_io_priority(runtime: Runtime, bundle, cls: str, prio: int, shown: str) -> None:
    out = run(runtime, bundle, "ionice -p 1",
              {"process": {"ioPriority": {"class": cls, "priority": prio}}})
    assert out.strip() == shown


@pytest.mark.parametrize(("policy", "number", "nice"), [
    ("SCHED_BATCH", 3, 7),
    ("SCHED_IDLE", 5, 0),
    ("SCHED_OTHER", 0, -5),
])
def test_scheduler(runtime: Runtime, bundle, policy: str, number: int, nice: int) -> None:
    out = run(runtime, bundle, "cat /proc/1/stat",
              {"process": {"scheduler": {"policy": policy, "nice": nice}}})
    assert stat_field(out, 41) == str(number)  # policy
    if policy != "SCHED_IDLE":
        assert stat_field(out, 19) == str(nice)  # nice


def test_scheduler_reset_on_fork(runtime: Runtime, bundle) -> None:
    sched = {"policy": "SCHED_OTHER", "nice": -5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    # pid 1 keeps its negative nice; its child (cat) is reset to 0 (sched(7))
    out = run(runtime, bundle, "cat /proc/1/stat; cat /proc/self/stat; exit 0",
              {"process": {"scheduler": sched}})
    init, child = out.splitlines()
    assert stat_field(init, 19) == "-5" and stat_field(child, 19) == "0"


def test_realtime_scheduler_here(runtime: Runtime, bundle) -> None:
    """SCHED_FIFO works where the cgroup grants real-time time; this host's v1 cpu
    controller grants none, so create fails with EPERM naming the scheduler."""
    b = bundle(["sh", "-c", "cat /proc/1/stat"],
               {"process": {"scheduler": {"policy": "SCHED_FIFO", "priority": 10}}})
    result = runtime.run("run", "--bundle", b, "c1")
    if result.returncode == 0:
        assert stat_field(result.stdout, 41) == "1"
    else:
        line = assert_clean_failure(result, runtime, "c1", ("scheduler",))
        assert "not permitted" in line.lower()


@pytest.mark.parametrize(("mode", "flags", "shown"), [
    ("MPOL_BIND", [], "bind:0"),
    ("MPOL_INTERLEAVE", [], "interleave:0"),
    ("MPOL_PREFERRED", [], "prefer:0"),
    ("MPOL_BIND", ["MPOL_F_STATIC_NODES"], "bind=static:0"),
    ("MPOL_INTERLEAVE", ["MPOL_F_RELATIVE_NODES"], "interleave=relative:0"),
    ("MPOL_LOCAL", [], "local"),
    ("MPOL_DEFAULT", [], "default"),
])
def test_memory_policy(runtime: Runtime, bundle, mode: str, flags: list[str],
                       shown: str) -> None:
    nodes = "" if mode in ("MPOL_LOCAL", "MPOL_DEFAULT") else "0"
    out = run(runtime, bundle, "grep heap /proc/self/numa_maps",
              {"linux": {"memoryPolicy": {"mode": mode, "nodes": nodes, "flags": flags}}})
    assert out.split()[1] == shown, out


def test_time_offsets(runtime: Runtime, bundle) -> None:
    overrides = {"linux": {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "time")],
        "timeOffsets": {"monotonic": {"secs": 864000, "nanosecs": 5},
                        "boottime": {"secs": 1728000}}}}
    out = run(runtime, bundle, "cat /proc/self/timens_offsets; cut -d. -f1 /proc/uptime",
              overrides)
    lines = out.splitlines()
    assert lines[0].split() == ["monotonic", "864000", "5"]
    assert lines[1].split() == ["boottime", "1728000", "0"]
    assert int(lines[2]) >= 1728000  # uptime is boottime: shifted by 20 days


def test_time_namespace_without_offsets(runtime: Runtime, bundle) -> None:
    overrides = {"linux": {"namespaces": [{"type": t} for t in
                                          ("pid", "network", "ipc", "uts", "mount", "time")]}}
    out = run(runtime, bundle, "cat /proc/self/timens_offsets", overrides)
    assert [line.split()[1:] for line in out.splitlines()] == [["0", "0"], ["0", "0"]]


BAD = [
    ("personality-domain", {"linux": {"personality": {"domain": "LINUX64"}}},
     "linux.personality.domain"),
    ("personality-flag", {"linux": {"personality": {"domain": "LINUX", "flags": ["NOPE"]}}},
     "linux.personality.flags[0]"),
    ("ioprio-class", {"process": {"ioPriority": {"class": "IOPRIO_CLASS_X"}}},
     "process.ioPriority.class"),
    ("ioprio-level", {"process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}},
     "process.ioPriority.priority"),
    ("sched-policy", {"process": {"scheduler": {"policy": "SCHED_NOPE"}}},
     "process.scheduler.policy"),
    ("sched-flag", {"process": {"scheduler": {"policy": "SCHED_OTHER", "flags": ["X"]}}},
     "process.scheduler.flags[0]"),
    ("sched-nice", {"process": {"scheduler": {"policy": "SCHED_OTHER", "nice": 40}}},
     "process.scheduler.nice"),
    ("sched-fifo-no-priority", {"process": {"scheduler": {"policy": "SCHED_FIFO"}}},
     "process.scheduler.priority"),
    ("mempolicy-mode", {"linux": {"memoryPolicy": {"mode": "MPOL_NOPE", "nodes": "0"}}},
     "linux.memoryPolicy.mode"),
    ("mempolicy-nodes", {"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0-x"}}},
     "linux.memoryPolicy.nodes"),
    ("mempolicy-flag", {"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0",
                                                   "flags": ["MPOL_F_X"]}}},
     "linux.memoryPolicy.flags[0]"),
    ("mempolicy-bind-no-nodes", {"linux": {"memoryPolicy": {"mode": "MPOL_BIND"}}},
     "linux.memoryPolicy.nodes"),
    ("mempolicy-missing-node", {"linux": {"memoryPolicy": {"mode": "MPOL_BIND",
                                                           "nodes": "1000"}}},
     "memoryPolicy"),
    ("time-offsets-without-timens",
     {"linux": {"timeOffsets": {"monotonic": {"secs": 1}}}}, "linux.timeOffsets"),
    ("intel-rdt", {"linux": {"intelRdt": {"closID": "x"}}}, "linux.intelRdt"),
]


@pytest.mark.parametrize(("overrides", "mentions"), [(o, m) for _, o, m in BAD],
                         ids=[name for name, _, _ in BAD])
def test_bad_values(runtime: Runtime, bundle, overrides: dict, mentions: str) -> None:
    result = runtime.run("create", "--bundle", bundle(["true"], overrides), "c1")
    assert_clean_failure(result, runtime, "c1", (mentions,))
