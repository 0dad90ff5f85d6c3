"""Which callers a worker may act for: only the server's equals.

A worker runs the verb with the server's credentials, and the verb's hooks
(createRuntime, prestart...) run with them too.  A caller with fewer privileges than the
server (a smaller capability set, no_new_privs, a seccomp filter, another uid or gid),
or one that sees another world (namespaces, root directory, LSM label), must get what a
cold runtime would get in its own place: so it is not served, and runs cold.

The caller is the process that connected (SO_PEERCRED).  Its /proc entries are read
through a pidfd taken from the connection (SO_PEERPIDFD), checked alive afterwards, so
a pid reused by another process in between cannot pass for it.
"""

from __future__ import annotations

import os
import select
import socket

from pyruntime.plan.linux_consts import NAMESPACE_FILES

# /proc/<pid>/status lines that must be equal (credentials, capabilities, NNP, seccomp)
STATUS = (b"Uid", b"Gid", b"Groups", b"CapInh", b"CapPrm", b"CapEff", b"CapBnd", b"CapAmb",
          b"NoNewPrivs", b"Seccomp", b"Seccomp_filters")
SO_PEERPIDFD = 77  # Linux 6.5; not in Python 3.11's socket module


def profile(proc: str) -> dict[str, object]:
    """What must match, for the process whose /proc directory is `proc`."""
    out: dict[str, object] = {}
    with open(f"{proc}/status", "rb") as f:
        for line in f:
            key, _, value = line.partition(b":")
            if key in STATUS:
                out[key.decode()] = value.split()
    # the *_for_children links too: a caller after `unshare --pid` (no fork) would have
    # its container's namespaces made under the new one
    for ns in (*NAMESPACE_FILES.values(), "pid_for_children", "time_for_children"):
        try:
            st = os.stat(f"{proc}/ns/{ns}")
            out[f"ns/{ns}"] = (st.st_dev, st.st_ino)
        except FileNotFoundError:  # a kernel without this namespace type
            out[f"ns/{ns}"] = None
    st = os.stat(f"{proc}/root")
    out["root"] = (st.st_dev, st.st_ino)
    try:
        with open(f"{proc}/attr/current", "rb") as f:
            out["lsm"] = f.read()
    except OSError:  # no LSM: EINVAL
        out["lsm"] = None
    return out


def peer_pidfd(conn: socket.socket, pid: int) -> int:
    """A pidfd for the process that connected (-1 if there is none)."""
    try:
        return conn.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD)
    except OSError:
        pass
    try:
        return os.pidfd_open(pid)
    except OSError:
        return -1


def _alive(pidfd: int) -> bool:
    p = select.poll()
    p.register(pidfd, select.POLLIN)
    return not p.poll(0)  # a pidfd polls readable once its process has exited


def difference(pid: int, pidfd: int, own: dict[str, object]) -> str | None:
    """The first thing in which the caller differs from `own` (the server's profile),
    or None when it may be served."""
    if pidfd < 0:
        return "no pidfd"
    try:
        theirs = profile(f"/proc/{pid}")
    except OSError as e:
        return f"/proc/{pid}: {e.strerror}"
    if not _alive(pidfd):
        return "gone"
    for key, value in own.items():
        if theirs.get(key) != value:
            return key
    return None
