"""Parse /proc/PID/mountinfo (proc(5))."""

from __future__ import annotations

import re
from dataclasses import dataclass


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _options(text: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in text.split(","):
        if not item:
            continue
        key, sep, value = item.partition("=")
        out[key] = value if sep else None
    return out


@dataclass(frozen=True)
class MountEntry:
    mount_id: int
    parent_id: int
    major_minor: str
    root: str
    mountpoint: str
    options: dict[str, str | None]  # per-mount options: rw/ro, nosuid, nodev, noexec, ...
    optional: tuple[str, ...]  # shared:N, master:N, ...
    fstype: str
    source: str
    super_options: dict[str, str | None]  # per-superblock: size=, mode=, gid=, ...

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    def has(self, option: str) -> bool:
        """True if *option* ("nosuid", "size=1024k", "mode=700", ...) is among the
        per-mount or the superblock options."""
        key, sep, value = option.partition("=")
        for opts in (self.options, self.super_options):
            if key in opts and (not sep or opts[key] == value):
                return True
        return False


def parse_mountinfo(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split()
        sep = fields.index("-", 6)
        entries.append(
            MountEntry(
                mount_id=int(fields[0]),
                parent_id=int(fields[1]),
                major_minor=fields[2],
                root=_unescape(fields[3]),
                mountpoint=_unescape(fields[4]),
                options=_options(fields[5]),
                optional=tuple(fields[6:sep]),
                fstype=fields[sep + 1],
                source=_unescape(fields[sep + 2]),
                super_options=_options(fields[sep + 3] if len(fields) > sep + 3 else ""),
            )
        )
    return entries


def find_mount(entries: list[MountEntry], mountpoint: str) -> MountEntry | None:
    """The visible (last) mount at *mountpoint*, or None."""
    found = None
    for entry in entries:
        if entry.mountpoint == mountpoint:
            found = entry
    return found


def cgroup_mount(pid: int) -> tuple[str, str]:
    """(root, fstype) of a process's /sys/fs/cgroup, from its mountinfo (a container's,
    to see its cgroup view is the same after a restore)."""
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/sys/fs/cgroup":
                return fields[3], fields[fields.index("-") + 1]
    raise AssertionError(f"no /sys/fs/cgroup in /proc/{pid}/mountinfo")
