"""The leftover checks live in the package (pyruntime/api/leftovers.py), shared with the
pytest plugin; the tests import them from here as before."""

from pyruntime.api.leftovers import (
    TOKEN_VAR,
    Leftovers,
    ProcInfo,
    detach_mounts,
    find_leftovers,
    find_mounts,
    find_new_pidns_processes,
    find_processes,
    kill_processes,
    pid_namespaces,
    snapshot_pid_namespaces,
    wait_for_no_leftovers,
)

__all__ = [
    "TOKEN_VAR",
    "Leftovers",
    "ProcInfo",
    "detach_mounts",
    "find_leftovers",
    "find_mounts",
    "find_new_pidns_processes",
    "find_processes",
    "kill_processes",
    "pid_namespaces",
    "snapshot_pid_namespaces",
    "wait_for_no_leftovers",
]
