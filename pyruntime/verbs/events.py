"""`events [--stats] [--interval 5s] ID`: JSON lines about a container, as runc prints them.

  {"type":"stats","id":ID,"data":{cpu, memory, pids, blkio, hugetlb}}   every interval
  {"type":"oom","id":ID}                                               at each OOM kill

--stats prints one stats line and exits; otherwise events run until the container's
init exits (or its cgroup is gone).
"""

from __future__ import annotations

import json
import os
import select
import sys

from pyruntime.cgroups import of_container
from pyruntime.cli.main import Globals
from pyruntime.errors import Failure, NotRunning
from pyruntime.state import Store

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration forms runc accepts: '5s', '500ms', '1m30s'; seconds."""
    t = text.strip()
    if t.replace(".", "", 1).isdigit():
        return float(t)  # a bare number: seconds
    total, i = 0.0, 0
    while i < len(t):
        j = i
        while j < len(t) and (t[j].isdigit() or t[j] == "."):
            j += 1
        k = j
        while k < len(t) and not (t[k].isdigit() or t[k] == "."):
            k += 1
        unit = t[j:k]
        if j == i or unit not in _DURATION_UNITS:
            raise Failure(f"events: --interval: invalid duration {text!r}")
        total += float(t[i:j]) * _DURATION_UNITS[unit]
        i = k
    return total


def _emit(kind: str, cid: str, data: dict | None = None) -> None:
    event: dict = {"type": kind, "id": cid}
    if data is not None:
        event["data"] = data
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main(g: Globals, values: dict) -> int:
    interval = parse_duration(values["interval"])
    if interval <= 0:
        raise Failure("events: --interval must be positive")
    store = Store(g.root)
    state = store.load(values["container_id"])
    if store.status(state) == "stopped":
        raise NotRunning(state.id)
    cgroup = of_container(state)
    if values["stats"]:
        _emit("stats", state.id, cgroup.stats())
        return 0
    try:
        pidfd = os.pidfd_open(state.pid)
    except ProcessLookupError:
        raise NotRunning(state.id) from None
    watch = cgroup.oom_watch()
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if watch is not None:
        poller.register(watch.fd, watch.events)
    try:
        import time

        next_stats = time.monotonic() + interval
        while True:
            timeout = max(0.0, next_stats - time.monotonic())
            ready = dict(poller.poll(int(timeout * 1000)))
            if watch is not None and watch.fd in ready:
                new = watch.check()
                for _ in range(max(new, 0)):
                    _emit("oom", state.id)
                if new < 0:
                    return 0  # the cgroup is gone
            if pidfd in ready:
                if watch is not None and watch.check() > 0:  # a last OOM, then the exit
                    _emit("oom", state.id)
                return 0
            if time.monotonic() >= next_stats:
                _emit("stats", state.id, cgroup.stats())
                next_stats += interval
    except BrokenPipeError:
        return 0
    finally:
        os.close(pidfd)
        if watch is not None:
            watch.close()
