"""The process that invoked this verb: this one, or the `pyruntime` client a served
worker acts for (pyruntime/served/).

Some answers depend on who the caller is, not on which process computes them: a relative
cgroupsPath nests under the caller's own cgroup, and LISTEN_PID names the caller.  They
are read through here, so a worker of `pyruntime serve` gives the client's answers.
"""

from __future__ import annotations

import os

pid: int = 0  # 0: this process


def proc() -> str:
    """The caller's /proc directory."""
    return f"/proc/{pid}" if pid else "/proc/self"


def caller_pid() -> int:
    return pid or os.getpid()


def act_for(client_pid: int) -> None:
    """From now on, answer as `client_pid` (a served worker, right after fork)."""
    global pid
    pid = client_pid
