"""Test cgroups: the name each bundle's cgroup gets, and finding those left behind.

They live in the package (pyruntime/api/leftovers.py), shared with the pytest plugin;
the suite's cgroups_path also knows the systemd driver's form (SYSTEMD_ENV).
"""

import os

from pyruntime.api.leftovers import CGROUP_PREFIX as PREFIX
from pyruntime.api.leftovers import CGROUP_ROOT, find_cgroups, remove_cgroups
from pyruntime.api.leftovers import cgroups_path as cgroupfs_path

__all__ = ["CGROUP_ROOT", "PREFIX", "SYSTEMD_ENV", "cgroups_path", "find_cgroups",
           "remove_cgroups", "systemd_driver"]

SYSTEMD_ENV = "PYRUNTIME_TEST_SYSTEMD_CGROUP"  # "1": the suite runs with --systemd-cgroup


def systemd_driver() -> bool:
    """The tests drive the systemd cgroup driver (tests/test_cgroups_systemd.py sets it)."""
    return os.environ.get(SYSTEMD_ENV) == "1"


def cgroups_path(token: str, name: str) -> str:
    """With the systemd driver, the same name as a unit: system.slice:pyrt:NAME is the
    scope pyrt-NAME.scope (it still has the token in it for the leftover checks)."""
    if systemd_driver():
        return f"system.slice:pyrt:{cgroupfs_path(token, name)}"
    return cgroupfs_path(token, name)
