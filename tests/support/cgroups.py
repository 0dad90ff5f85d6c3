"""Test cgroups: the name each bundle's cgroup gets, and finding those left behind.

The house rule: test cgroups have "pyrt" in their names and nest under the test
process's own cgroups. The bundle fixture sets linux.cgroupsPath to a relative
``pyrt-test-<token>-<bundle name>``, unique per test and bundle, so concurrent test
runs on one host never share a cgroup, and anything left is found by the token.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"
PREFIX = "pyrt-test-"


def cgroups_path(token: str, name: str) -> str:
    return f"{PREFIX}{token}-{name}"


def find_cgroups(token: str, root: str = CGROUP_ROOT, max_depth: int = 6) -> list[str]:
    """Every cgroup directory under `root` whose path mentions `token`."""
    found = []
    base = root.rstrip("/").count("/")
    for top, dirs, _files in os.walk(root):
        if top.count("/") - base >= max_depth:
            dirs[:] = []
        if token in top[len(root):]:  # the cgroup named with it, and those below it
            found.append(top)
    return found


def remove_cgroups(paths: list[str]) -> None:
    """rmdir what can be removed, deepest first (a cgroup with processes stays)."""
    for path in sorted(paths, key=lambda p: p.count("/"), reverse=True):
        try:
            os.rmdir(path)
        except OSError:
            pass
