"""Per-process kernel attributes: names from config.json to the numbers native/sched.c
passes to personality(2), ioprio_set(2), sched_setattr(2) and set_mempolicy(2). Each
error names the field.  (Time namespace offsets: plan/timens.py; linux.intelRdt:
plan/intel_rdt.py.)
"""

from __future__ import annotations

from pyruntime.errors import Failure

PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
PERSONALITY_FLAGS = {  # uapi linux/personality.h
    "UNAME26": 0x0020000, "ADDR_NO_RANDOMIZE": 0x0040000, "FDPIC_FUNCPTRS": 0x0080000,
    "MMAP_PAGE_ZERO": 0x0100000, "ADDR_COMPAT_LAYOUT": 0x0200000,
    "READ_IMPLIES_EXEC": 0x0400000, "ADDR_LIMIT_32BIT": 0x0800000,
    "SHORT_INODE": 0x1000000, "WHOLE_SECONDS": 0x2000000, "STICKY_TIMEOUTS": 0x4000000,
    "ADDR_LIMIT_3GB": 0x8000000,
}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {
    "SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
    "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
    "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
    "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40,
}
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_NUMA_BALANCING": 1 << 13}
MAX_NODES = 1024  # the plan's mask: uint64_t[16]


def _fail(path: str, problem: str) -> Failure:
    return Failure(f"config.json: {path}: {problem}")


def _name(table: dict[str, int], name: str, path: str, what: str) -> int:
    value = table.get(name)
    if value is None:
        raise _fail(path, f"unknown {what} {name!r} (one of {', '.join(table)})")
    return value


def parse_nodes(text: str, path: str) -> list[int]:
    """"0-1,3" -> [0, 1, 3]."""
    nodes: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi if sep else lo)
        except ValueError:
            raise _fail(path, f"bad node list {text!r} (e.g. \"0-1,3\")") from None
        if not 0 <= first <= last < MAX_NODES:
            raise _fail(path, f"bad node range {part!r} in {text!r}")
        nodes.update(range(first, last + 1))
    return sorted(nodes)


def plan_sched(spec, plan) -> None:  # Spec, Plan (import cycle)
    p = spec.process
    linux = spec.linux
    if linux is not None and linux.personality is not None:
        pers = linux.personality
        value = _name(PERSONALITY_DOMAINS, pers.domain, "linux.personality.domain", "domain")
        for i, flag in enumerate(pers.flags):
            value |= _name(PERSONALITY_FLAGS, flag, f"linux.personality.flags[{i}]", "flag")
        plan.personality = value
    if p is not None and p.io_priority is not None:
        cls = _name(IOPRIO_CLASSES, p.io_priority.class_, "process.ioPriority.class", "class")
        plan.ioprio = cls << 13 | p.io_priority.priority
    if p is not None and p.scheduler is not None:
        plan.scheduler = _scheduler(p.scheduler)
    if linux is not None and linux.memory_policy is not None:
        plan.mempolicy = _mempolicy(linux.memory_policy)


def _scheduler(s) -> tuple[int, int, int, int, int, int, int]:
    where = "process.scheduler"
    policy = _name(SCHED_POLICIES, s.policy, f"{where}.policy", "policy")
    if policy == 4:
        raise _fail(f"{where}.policy", "SCHED_ISO is not implemented by Linux")
    flags = 0
    for i, f in enumerate(s.flags):
        flags |= _name(SCHED_FLAGS, f, f"{where}.flags[{i}]", "flag")
    realtime = policy in (1, 2)
    if realtime and not 1 <= s.priority <= 99:
        raise _fail(f"{where}.priority", f"{s.policy} needs a priority from 1 to 99")
    if not realtime and s.priority:
        raise _fail(f"{where}.priority", f"must be 0 for {s.policy}")
    if policy == 6 and not (0 < s.runtime <= s.deadline <= (s.period or s.deadline)):
        raise _fail(where, "SCHED_DEADLINE needs 0 < runtime <= deadline <= period")
    return (policy, s.nice, s.priority, flags, s.runtime, s.deadline, s.period)


def _mempolicy(m) -> tuple[int, list[int]]:
    where = "linux.memoryPolicy"
    mode = _name(MPOL_MODES, m.mode, f"{where}.mode", "mode")
    for i, f in enumerate(m.flags):
        mode |= _name(MPOL_FLAGS, f, f"{where}.flags[{i}]", "flag")
    nodes = parse_nodes(m.nodes, f"{where}.nodes") if m.nodes else []
    base = mode & 0xFF
    if base in (0, 4) and nodes:  # DEFAULT, LOCAL: the kernel wants no nodes
        raise _fail(f"{where}.nodes", f"must be empty for {m.mode}")
    if base in (2, 3, 5, 6) and not nodes:
        raise _fail(f"{where}.nodes", f"{m.mode} needs at least one node")
    return mode, nodes
