"""What cgroup layout this host has, read once per invocation.

Modes, as runc names them:
  unified  /sys/fs/cgroup is a cgroup2 mount: one hierarchy with every controller
  hybrid   v1 controller hierarchies, plus a cgroup2 mount at /sys/fs/cgroup/unified
           (usually without controllers: only its core files work there)
  legacy   v1 hierarchies only

The mount table (/proc/self/mountinfo) says which filesystem is mounted where; that is
what statfs(2)'s f_type (CGROUP2_SUPER_MAGIC 0x63677270) would say, without ctypes.
/proc/self/cgroup says where this process sits in each hierarchy: relative cgroupsPaths
nest under those places.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"
UNIFIED = "unified"
HYBRID = "hybrid"
LEGACY = "legacy"
V2_KEY = ""  # the key of the cgroup2 hierarchy in every {hierarchy: ...} mapping


class Hierarchy:
    """One mounted cgroup hierarchy.

    `key` names it in state.json and in path mappings: "" for cgroup2, otherwise the
    comma-joined controllers of the mount ("cpu", "cpu,cpuacct", "name=systemd").
    `root` is the cgroup the mount shows at its mountpoint (not "/" inside a cgroup
    namespace), `own` is this process's cgroup in the hierarchy.
    """

    __slots__ = ("key", "controllers", "mountpoint", "root", "own")

    def __init__(self, key: str, controllers: tuple[str, ...], mountpoint: str, root: str,
                 own: str) -> None:
        self.key = key
        self.controllers = controllers
        self.mountpoint = mountpoint
        self.root = root
        self.own = own

    def dir_of(self, cgroup: str) -> str:
        """The directory of `cgroup` (a path in the hierarchy, from its top)."""
        rel = os.path.relpath(cgroup, self.root) if self.root != "/" else cgroup.lstrip("/")
        if rel == ".":
            return self.mountpoint
        if rel.startswith(".."):
            raise ValueError(f"cgroup {cgroup} is outside the mount of {self.root} at "
                             f"{self.mountpoint}")
        return os.path.join(self.mountpoint, rel)

    def __repr__(self) -> str:
        return f"Hierarchy({self.key!r}, {self.mountpoint!r}, own={self.own!r})"


class Host:
    """The host's cgroup mode and hierarchies."""

    def __init__(self, mode: str, hierarchies: list[Hierarchy]) -> None:
        self.mode = mode
        self.hierarchies = hierarchies

    @property
    def v2(self) -> Hierarchy | None:
        for h in self.hierarchies:
            if h.key == V2_KEY:
                return h
        return None

    @property
    def v1(self) -> list[Hierarchy]:
        return [h for h in self.hierarchies if h.key != V2_KEY]

    def controller(self, name: str) -> Hierarchy | None:
        """The v1 hierarchy that carries controller `name`, if it is mounted."""
        for h in self.hierarchies:
            if h.key != V2_KEY and name in h.controllers:
                return h
        return None


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[str, str, str, str]]:
    """(mountpoint, root, fstype, super options) of every cgroup/cgroup2 mount, in order."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fstype, _source, super_opts = (right.split(" ") + ["", ""])[:3]
        if fstype not in ("cgroup", "cgroup2"):
            continue
        fields = left.split(" ")
        mounts.append((_unescape(fields[4]), _unescape(fields[3]), fstype, super_opts))
    return mounts


def parse_proc_cgroup(text: str) -> dict[frozenset[str], str]:
    """/proc/PID/cgroup as {controllers: path}; frozenset() is the cgroup2 entry ("0::/x")."""
    own = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            own[frozenset(c for c in parts[1].split(",") if c)] = parts[2]
    return own


_V1_KNOWN = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio",
             "perf_event", "net_prio", "hugetlb", "pids", "rdma", "misc")


def build_host(mountinfo: str, proc_cgroup: str, root: str = CGROUP_ROOT) -> Host:
    """Decide the mode from the mount table; pure, so it is tested without a host."""
    mounts = parse_mountinfo(mountinfo)
    own = parse_proc_cgroup(proc_cgroup)
    by_point: dict[str, tuple[str, str, str, str]] = {}
    for m in mounts:  # a later mount on the same point hides the earlier one
        by_point[m[0]] = m
    top = by_point.get(root)
    if top is not None and top[2] == "cgroup2":
        return Host(UNIFIED, [Hierarchy(V2_KEY, (), root, top[1], own.get(frozenset(), "/"))])
    hierarchies = []
    seen = set()
    for point, mroot, fstype, opts in by_point.values():
        if not (point == root or point.startswith(root + "/")):
            continue
        if fstype == "cgroup2":
            if point == os.path.join(root, "unified"):
                hierarchies.append(Hierarchy(V2_KEY, (), point, mroot, own.get(frozenset(), "/")))
            continue
        controllers = tuple(o for o in opts.split(",") if o in _V1_KNOWN or o.startswith("name="))
        if not controllers:
            continue
        key = ",".join(controllers)
        if key in seen:  # the same hierarchy mounted twice (cpu,cpuacct + its links)
            continue
        seen.add(key)
        hierarchies.append(Hierarchy(key, controllers, point, mroot,
                                     own.get(frozenset(controllers), "/")))
    mode = HYBRID if any(h.key == V2_KEY for h in hierarchies) else LEGACY
    return Host(mode, hierarchies)


_host: Host | None = None


def host() -> Host:
    """The host's layout, read on first use and kept for the rest of the invocation."""
    global _host
    if _host is None:
        from pyruntime import caller

        with open(f"{caller.proc()}/mountinfo") as f:
            mountinfo = f.read()
        with open(f"{caller.proc()}/cgroup") as f:
            proc_cgroup = f.read()
        _host = build_host(mountinfo, proc_cgroup)
    return _host
