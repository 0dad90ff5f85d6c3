"""Who parents the container's processes: this process, or the `pyruntime` client a
served worker acts for (pyruntime/served/worker.py).

stage1 and init must be forked from the process the caller ran, so that init is
reparented to the caller's subreaper (containerd's shim, conmon) when `create` exits, and
so that `run` and `exec` can reap what they started.  Everything that forks them or waits
for them goes through here.
"""

from __future__ import annotations

import os

# None: this process.  Else an object with spawn(build) -> int and
# waitpid(pid, options) -> (pid, status), as below (no typing import: it is hot-path cost).
_parent = None


def delegate_to(parent: object) -> None:
    global _parent
    _parent = parent


def spawn(build) -> int:  # build(new) -> struct pyrt_plan *
    """pyrt_spawn() of the plan `build(new)` lays out, `new` being how to allocate it."""
    if _parent is not None:
        return _parent.spawn(build)
    from pyruntime._native import ffi, lib

    return lib.pyrt_spawn(build(ffi.new))


def kill_and_reap(pid: int) -> None:
    """SIGKILL a container process this side started, and reap it (failure paths)."""
    try:
        os.kill(pid, 9)
        waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def waitpid(pid: int, options: int = 0) -> tuple[int, int]:
    """os.waitpid, done by whichever process is the parent."""
    if _parent is not None:
        return _parent.waitpid(pid, options)
    return os.waitpid(pid, options)
