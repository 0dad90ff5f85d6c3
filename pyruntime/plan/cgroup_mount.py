"""What a `cgroup` mount in config.json becomes, as runc does it.

cgroup2 (unified hosts): one cgroup2 mount. v1 and hybrid hosts: a tmpfs at the
destination, then, for each v1 hierarchy the host has, a bind mount of the container's
own cgroup directory in it (read-only if the mount asked for ro) - so the container sees
its own cgroup at /sys/fs/cgroup/<controller>, never the host's tree.
"""

from __future__ import annotations

import os

from pyruntime import caller
from pyruntime.plan import linux_consts as k


class Hierarchy:
    """A cgroup hierarchy mounted on the host: where, what kind, which controllers."""

    __slots__ = ("mountpoint", "fstype", "options")

    def __init__(self, mountpoint: str, fstype: str, options: str) -> None:
        self.mountpoint = mountpoint
        self.fstype = fstype
        self.options = options


def host_hierarchies() -> list[Hierarchy]:
    """cgroup and cgroup2 mounts of the host, from /proc/self/mountinfo."""
    found = []
    with open(f"{caller.proc()}/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _source, options = (right.split() + ["", "", ""])[:3]
            if fstype in ("cgroup", "cgroup2"):
                found.append(Hierarchy(left.split()[4], fstype, options))
    return found


def own_cgroups() -> dict[str, str]:
    """This process's cgroup per hierarchy, keyed by its controllers ("" for cgroup2)."""
    result = {}
    with open(f"{caller.proc()}/cgroup") as f:
        for line in f:
            _id, controllers, path = line.rstrip("\n").split(":", 2)
            result[controllers] = path
    return result


def _controllers_key(h: Hierarchy) -> str:
    names = [o for o in h.options.split(",") if o not in ("rw", "ro") and "=" not in o
             or o.startswith("name=")]
    return ",".join(n for n in names if n not in ("nsdelegate", "memory_recursiveprot",
                                                   "clone_children", "noprefix",
                                                   "xattr", "cpuset_v2_mode"))


def expand(destination: str, flags: int, cgroup_dirs: dict[str, str] | None = None,
           cgroupns: bool = False
           ) -> list[tuple[str | None, str, str | None, int, str | None]]:
    """The mounts (source, destination, fstype, flags, data) replacing one cgroup mount.

    `cgroup_dirs` maps a hierarchy's mount point to the container's directory in it;
    hierarchies it does not name use this process's own cgroup.  With a cgroup namespace
    (`cgroupns`) the name=systemd hierarchy is mounted afresh inside it, source "systemd",
    as runc does (a bind would show the host mount's source); its root is then the
    namespace's, the same directory the bind would show.
    """
    hierarchies = host_hierarchies()
    unified = [h for h in hierarchies if h.fstype == "cgroup2"]
    v1 = [h for h in hierarchies if h.fstype == "cgroup"]
    if not v1 and unified:
        return [("cgroup2", destination, "cgroup2", flags, None)]
    own = own_cgroups()
    steps: list[tuple[str | None, str, str | None, int, str | None]] = [
        ("tmpfs", destination, "tmpfs", flags & ~k.MS_RDONLY, "mode=755")
    ]
    bind_flags = k.MS_BIND | k.MS_REC | (flags & (k.MS_RDONLY | k.MS_NOSUID | k.MS_NODEV
                                                  | k.MS_NOEXEC | k.MS_RELATIME))
    for h in v1:
        source = (cgroup_dirs or {}).get(h.mountpoint)
        if source is None:
            source = h.mountpoint + own.get(_controllers_key(h), "/").rstrip("/")
        where = os.path.join(destination, os.path.basename(h.mountpoint))
        if cgroupns and _controllers_key(h) == "name=systemd":
            steps.append(("systemd", where, "cgroup",
                          k.MS_NOSUID | k.MS_NODEV | k.MS_NOEXEC | (flags & k.MS_RDONLY),
                          "name=systemd"))
        elif source in (cgroup_dirs or {}).values() or os.path.isdir(source):  # made by create
            steps.append((source, where, None, bind_flags, None))
    return steps


def bind_own_instead(steps: list, left_out: set[str]) -> None:
    """Rootless: the container's directories in `left_out` were never made (no rights);
    bind this process's own cgroup there instead, as for a hierarchy in which the
    container has no directory (runc 1.1.5 rootless shows the same)."""
    own = own_cgroups()
    tops = {h.mountpoint: _controllers_key(h) for h in host_hierarchies()}
    for step in steps:
        if step.source not in left_out:
            continue
        for top, key in tops.items():
            if step.source.startswith(top + "/"):
                step.source = top + own.get(key, "/").rstrip("/")
                break
