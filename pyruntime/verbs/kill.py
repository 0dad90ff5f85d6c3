"""`kill [--all] ID [SIGNAL]`: signal the container's init (default SIGTERM), or with
--all every process in the container."""

from __future__ import annotations

import os

from pyruntime.cli.main import Globals
from pyruntime.container import signal_init
from pyruntime.errors import Failure
from pyruntime.signals import parse_signal
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    store = Store(g.root)
    state = store.load(values["container_id"])  # a missing id is reported first, as runc
    sig = parse_signal("TERM" if values["signal"] is None else values["signal"])
    if values["all"]:
        if store.status(state) == "stopped":
            return 0  # nothing left to signal; runc exits 0 too
        if state.data.get("cgroup"):
            # every process in the container's cgroup: v2 cgroup.kill for SIGKILL, else
            # freeze, signal each, thaw (driver.kill_all)
            from pyruntime.cgroups import of_container

            of_container(state).kill_all(sig)
            return 0
        for pid in _pid_namespace_members(state.pid):  # a container without cgroups
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
    signal_init(store, state, sig)
    return 0


def _pid_namespace_members(init_pid: int) -> list[int]:
    """Every process in the init's pid namespace other than the init.

    Without a cgroup of its own, the container's pid namespace is what bounds it; a
    container sharing the host's pid namespace has no such bound.
    """
    try:
        ns = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    if ns == os.readlink("/proc/self/ns/pid"):
        raise Failure("kill --all: the container shares the host's pid namespace and has "
                      "no cgroup of its own to find its processes by")
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != init_pid:
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == ns:
                    members.append(int(name))
            except OSError:
                continue
    return members
