"""The /dev a container gets when its /dev is not bound from the host (as runc makes it)."""

from __future__ import annotations

import os

from pyruntime.errors import Failure
from pyruntime.plan import linux_consts as k
from pyruntime.spec.model import Spec

# path, type, major, minor: the nodes every container gets, in runc's order (visible in
# mountinfo when they are bound from the host: tests/test_differential_runc.py)
DEFAULT_DEVICES = (
    ("/dev/null", k.S_IFCHR, 1, 3),
    ("/dev/random", k.S_IFCHR, 1, 8),
    ("/dev/full", k.S_IFCHR, 1, 7),
    ("/dev/tty", k.S_IFCHR, 5, 0),
    ("/dev/zero", k.S_IFCHR, 1, 5),
    ("/dev/urandom", k.S_IFCHR, 1, 9),
)

DEFAULT_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)

_TYPES = {"c": k.S_IFCHR, "u": k.S_IFCHR, "b": k.S_IFBLK, "p": k.S_IFIFO}


class DeviceNode:
    """One node for the native code to create."""

    __slots__ = ("path", "mode", "major", "minor", "uid", "gid", "bind_from_host")

    def __init__(self, path: str, mode: int, major: int, minor: int, uid: int = 0,
                 gid: int = 0, bind_from_host: bool = False) -> None:
        self.path = path
        self.mode = mode
        self.major = major
        self.minor = minor
        self.uid = uid
        self.gid = gid
        self.bind_from_host = bind_from_host


def needs_dev_setup(spec: Spec) -> bool:
    """runc creates device nodes unless /dev itself is bind-mounted from the host."""
    for m in spec.mounts:
        if m.destination.rstrip("/") == "/dev":
            return not (m.type == "bind" or "bind" in m.options or "rbind" in m.options)
    return True


def plan_devices(spec: Spec, new_userns: bool) -> tuple[list[DeviceNode], list[tuple[str, str]]]:
    """The nodes and symlinks to create: the defaults, then linux.devices.

    A linux.devices entry replaces the default node of its path; of two entries with one
    path the first wins, as in runc (whose second mknod meets EEXIST and is skipped).
    """
    nodes: dict[str, DeviceNode] = {}
    listed: set[str] = set()
    links: list[tuple[str, str]] = []
    if needs_dev_setup(spec):
        for path, kind, major, minor in DEFAULT_DEVICES:
            nodes[path] = DeviceNode(path, kind | 0o666, major, minor, 0, 0, new_userns)
        links = list(DEFAULT_SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "/dev/core"))
    linux = spec.linux
    for i, d in enumerate(linux.devices if linux else []):
        where = f"config.json: linux.devices[{i}]"
        kind = _TYPES.get(d.type)
        if kind is None:
            raise Failure(f"{where}.type: unknown device type {d.type!r} (c, b, u or p)")
        # anywhere in the rootfs, as runc allows: native/devices.c resolves the path and
        # creates its parents inside the rootfs; relative paths are refused (the spec says
        # "full path"), and so is the root itself
        if not d.path.startswith("/") or not d.path.strip("/"):
            raise Failure(f"{where}.path: must be an absolute path below /: {d.path!r}")
        if kind != k.S_IFIFO and (d.major is None or d.minor is None):
            raise Failure(f"{where}: major and minor are required for type {d.type!r}")
        if os.path.normpath(d.path) in listed:
            continue
        listed.add(os.path.normpath(d.path))
        mode = kind | ((d.file_mode if d.file_mode is not None else 0o666) & 0o7777)
        nodes[d.path] = DeviceNode(d.path, mode, d.major or 0, d.minor or 0,
                                   d.uid or 0, d.gid or 0, new_userns)
    return list(nodes.values()), links
