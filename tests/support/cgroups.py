"""Test cgroups: the name each bundle's cgroup gets, and finding those left behind.

They live in the package (pyruntime/api/leftovers.py), shared with the pytest plugin.
"""

from pyruntime.api.leftovers import CGROUP_PREFIX as PREFIX
from pyruntime.api.leftovers import CGROUP_ROOT, cgroups_path, find_cgroups, remove_cgroups

__all__ = ["CGROUP_ROOT", "PREFIX", "cgroups_path", "find_cgroups", "remove_cgroups"]
