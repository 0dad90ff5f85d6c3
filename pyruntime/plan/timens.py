"""linux.timeOffsets: the lines native/timens.c writes to /proc/self/timens_offsets of
the new time namespace.  The offsets must be written before any process enters it, so
stage1 makes the namespace itself and the init is cloned into it."""

from __future__ import annotations

from pyruntime.errors import Failure
from pyruntime.plan import linux_consts as k

TIME_CLOCKS = ("monotonic", "boottime")


def plan_time_offsets(spec, plan) -> None:  # Spec, Plan (import cycle)
    linux = spec.linux
    if linux is None or not linux.time_offsets:
        return
    if not plan.clone_flags & k.CLONE_NEWTIME:
        raise _fail("linux.timeOffsets", "needs a new time namespace (linux.namespaces)")
    lines = []
    for clock, off in linux.time_offsets.items():
        if clock not in TIME_CLOCKS:
            raise _fail(f"linux.timeOffsets.{clock}", "only monotonic and boottime")
        lines.append(f"{clock} {off.secs} {off.nanosecs}\n")
    # stage1 makes the namespace itself (to write the offsets): init is cloned into it
    plan.clone_flags &= ~k.CLONE_NEWTIME
    plan.timens_offsets = "".join(lines)


def _fail(path: str, problem: str) -> Failure:
    return Failure(f"config.json: {path}: {problem}")
