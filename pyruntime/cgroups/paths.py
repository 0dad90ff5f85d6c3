"""linux.cgroupsPath -> the container's directory in each hierarchy, as runc places them.

  relative ("a/b")   under this process's own cgroup in each hierarchy
  absolute ("/a/b")  from the top of each hierarchy, as given
  none               the container id, as a relative path (runc's cgroupfs default)

Measured with Debian's runc 1.1.5 on this hybrid host: `memory:/process_api/<h>/ID`
next to `cpu:/ID` and `0::/ID` when our own memory cgroup is /process_api/<h>.
Like runc's CleanPath, ".." cannot climb above the start: "../../x" is "x".
"""

from __future__ import annotations

import posixpath

from pyruntime.cgroups.detect import Host
from pyruntime.errors import Failure


def clean(cgroups_path: str) -> tuple[bool, str]:
    """(absolute, cleaned path without the leading '/'); '' for the hierarchy's top."""
    if "\0" in cgroups_path:
        raise Failure("linux.cgroupsPath: contains a NUL byte")
    absolute = cgroups_path.startswith("/")
    cleaned = posixpath.normpath("/" + cgroups_path).lstrip("/")
    return absolute, cleaned


def cgroup_path(own: str, cgroups_path: str | None, container_id: str) -> str:
    """The container's cgroup, as a path from the top of one hierarchy."""
    absolute, rel = clean(cgroups_path if cgroups_path else container_id)
    if not rel:
        raise Failure(f"linux.cgroupsPath: {cgroups_path!r} names the top of the hierarchy; "
                      "a container needs a cgroup of its own")
    return "/" + rel if absolute else posixpath.join(own, rel)


def resolve(host: Host, cgroups_path: str | None, container_id: str) -> dict[str, str]:
    """{hierarchy key: directory} for every hierarchy the container gets a cgroup in."""
    dirs = {}
    for h in host.hierarchies:
        cg = cgroup_path(h.own, cgroups_path, container_id)
        try:
            dirs[h.key] = h.dir_of(cg)
        except ValueError as e:
            raise Failure(f"linux.cgroupsPath: {e}") from None
    return dirs
