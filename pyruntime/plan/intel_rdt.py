"""linux.intelRdt: refused, naming the field (pyruntime has no resctrl support; a
config that asks for cache or memory-bandwidth allocation must not run without it)."""

from __future__ import annotations

from pyruntime.errors import Failure


def refuse_intel_rdt(spec) -> None:  # Spec (import cycle)
    if spec.linux is None or spec.linux.intel_rdt is None:
        return
    try:
        with open("/proc/self/mountinfo") as f:
            mounted = any(" - resctrl " in line for line in f)
    except OSError:
        mounted = False
    raise Failure("config.json: linux.intelRdt: Intel RDT is not supported by pyruntime"
                  + ("" if mounted else " (and this host has no resctrl mount)"))
