"""Hand the plan to the native code and follow the init through setup over the sync socket.

Messages (native/api.h, struct pyrt_msg, read and written through cffi so that its layout
and the PYRT_MSG_* types are defined there only): PID from stage1, then READY or ERROR
from the init; with create-time hooks, HOOKS from the init first, answered with CONTINUE
once `on_hooks` has run them. An ERROR becomes one Failure line naming the step, the
object and the errno.
"""

from __future__ import annotations

import _socket
import os

from pyruntime import children
from pyruntime.errors import Failure, crash_point, errno_text
from pyruntime.plan.build import Plan

MS_REC = 16384


class SetupError(Failure):
    """The init (or stage1) reported a failed step."""

    def __init__(self, step: str, err: int, text: str) -> None:
        # the native text already ends with the errno's description where one applies
        if text:
            detail = f"{step}: {text}"
        else:
            detail = f"{step}: {errno_text(err)}" if err else step
        super().__init__(detail)
        self.step = step
        self.errno = err


def _to_c(ffi, new, plan: Plan, sync_fd: int, keep: list, cgroup_fd: int = -1):
    """Build a struct pyrt_plan (pyruntime/cplan.py); everything it points to is allocated
    with `new` (ffi.new, or a served worker's arena) and appended to `keep`."""
    from pyruntime.cplan import to_c

    p = to_c(ffi, new, plan, keep)
    p.sync_fd = sync_fd
    p.cgroup_fd = cgroup_fd
    return p


def _unpack(ffi, data: bytes) -> tuple[int, int, int, str, str]:
    m = ffi.new("struct pyrt_msg *")
    ffi.memmove(m, data, min(len(data), ffi.sizeof(m[0])))
    return (m.type, m.pid, m.err, ffi.string(m.step).decode(errors="replace"),
            ffi.string(m.text).decode(errors="replace"))


def _pack(ffi, kind: int, pid: int = 0) -> bytes:
    return ffi.buffer(ffi.new("struct pyrt_msg *", {"type": kind, "pid": pid}))[:]


def _recv(ffi, fd: int) -> tuple[int, int, int, str, str] | None:
    data = os.read(fd, ffi.sizeof("struct pyrt_msg"))
    return _unpack(ffi, data) if data else None


def parse_error(data: bytes) -> Failure:
    """The Failure for an ERROR message the init wrote to the exec fifo after start."""
    from pyruntime._native import ffi, lib

    kind, _pid, err, step, text = _unpack(ffi, data)
    if kind != lib.PYRT_MSG_ERROR:
        return Failure("container init: unexpected message on the exec fifo")
    return SetupError(step, err, text)


def _open_idmaps(plan: Plan, lib) -> None:  # the cffi lib
    """The detached, idmapped tree of each idmapped bind (MountStep.idmap_tree_fd), made here:
    idmapping needs rights over the filesystem's user namespace that a container's root
    lacks. The init attaches and closes its copies; _close_idmaps closes ours."""
    for m in plan.mounts:
        if m.idmap is None:
            continue
        userns = lib.pyrt_userns_fd(m.idmap[0].encode(), m.idmap[1].encode())
        if userns < 0:
            _close_idmaps(plan)
            raise Failure(f"mount {m.destination}: user namespace for the idmapped mount: "
                          f"{os.strerror(-userns)}")
        try:
            tree = lib.pyrt_idmapped_tree(m.source.encode(), int(bool(m.flags & MS_REC)),
                                          int(m.idmap_recursive), userns)
        finally:
            os.close(userns)
        if tree < 0:
            _close_idmaps(plan)
            raise Failure(f"mount: idmapped bind {m.source} on {m.destination}: "
                          f"{os.strerror(-tree)}")
        m.idmap_tree_fd = tree


def _close_idmaps(plan: Plan) -> None:
    for m in plan.mounts:
        if m.idmap_tree_fd >= 0:
            os.close(m.idmap_tree_fd)
            m.idmap_tree_fd = -1


def _continue(ffi, lib, fd: int, init_pid: int, on_hooks) -> None:
    """HOOKS from the init: run the create-time hooks, then let it go on (CONTINUE carries
    its pid and the state JSON for startContainer hooks)."""
    state = on_hooks(init_pid) if on_hooks is not None else b""
    if len(state) > lib.PYRT_HOOK_STATE_MAX:
        raise Failure(f"hooks: the state JSON is over {lib.PYRT_HOOK_STATE_MAX} bytes")
    os.write(fd, _pack(ffi, lib.PYRT_MSG_CONTINUE, init_pid) + state)


def handed_over(plan: Plan) -> bool:
    """Whether the init waits for HANDOVER after READY: pyrt_lifeline_handed_over() in
    native/lifeline.c, which says why a filter loaded before READY rules it out."""
    return (bool(plan.exec_fifo) and not plan.lifeline_until_start
            and not (plan.seccomp_bpf and not plan.no_new_privs))


def _handover(ffi, lib, fd: int) -> None:
    """Tell the init its state is saved; once it answers, it no longer dies with us."""
    os.write(fd, _pack(ffi, lib.PYRT_MSG_HANDOVER))
    msg = _recv(ffi, fd)
    if msg is None or msg[0] != lib.PYRT_MSG_HANDOVER:
        raise Failure("container init exited during setup (at the hand-over)")


def spawn(plan: Plan, until_exec: bool = False, on_hooks=None,
          on_ready=None) -> int:
    """Start the init; return its pid once it reports READY (it then waits on the fifo).

    on_ready(init_pid) runs at READY (create saves the state there); for a plan with an
    exec fifo and no lifeline_until_start, the init, which dies with this process until
    then, is handed over after it (native/lifeline.c).

    until_exec (a plan without an exec fifo, e.g. `exec`): go on reading until the init's
    execve closes the sync socket (EOF), so failures after READY are reported too.
    On any failure the init (if it exists) is killed and reaped before Failure is raised,
    so nothing is left running.
    """
    from pyruntime._native import ffi, lib

    parent, child = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    parent_fd, child_fd = parent.detach(), child.detach()
    keep: list = []
    init_pid = 0
    ready = in_hooks = False
    try:
        cgroup_fd = -1
        try:
            _open_idmaps(plan, lib)
            if plan.cgroup_dir:  # cgroup2: init is cloned into it (CLONE_INTO_CGROUP)
                cgroup_fd = os.open(plan.cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            rc = children.spawn(lambda new: _to_c(ffi, new, plan, child_fd, keep, cgroup_fd))
        finally:
            os.close(child_fd)
            _close_idmaps(plan)
            if cgroup_fd >= 0:
                os.close(cgroup_fd)
        while True:
            msg = _recv(ffi, parent_fd)
            if msg is None:
                if ready:  # execve closed the socket: the process runs
                    return init_pid
                if rc < 0:
                    raise Failure(f"spawn: {errno_text(-rc)}")
                raise Failure("container init exited during setup" + _describe_exit(init_pid))
            kind, pid, err, step, text = msg
            if kind == lib.PYRT_MSG_PID:
                init_pid = pid
                crash_point("spawn:pid")
            elif kind == lib.PYRT_MSG_HOOKS:
                in_hooks = True
                _continue(ffi, lib, parent_fd, init_pid, on_hooks)
                in_hooks = False
            elif kind == lib.PYRT_MSG_READY:
                if not until_exec:
                    if on_ready is not None:
                        on_ready(init_pid)
                    if handed_over(plan):
                        _handover(ffi, lib, parent_fd)
                    return init_pid
                ready = True
            elif kind == lib.PYRT_MSG_ERROR:
                init_pid = init_pid or pid  # stage1 names an init it cloned, to be reaped
                raise SetupError(step, err, text)
    except BaseException:
        if init_pid:
            if in_hooks:
                _let_init_undo(parent_fd, init_pid)
            children.kill_and_reap(init_pid)
        raise
    finally:
        os.close(parent_fd)


def _let_init_undo(fd: int, init_pid: int, timeout: float = 5.0) -> None:
    """A create-time hook failed while the init waits for CONTINUE: shut the socket so it
    sees EOF, and give it `timeout` s to exit by itself.  Without a mount namespace of its
    own, its mounts are in this process's namespace, and it detaches them before it exits
    (native/init.c); a SIGKILL at once would leave them."""
    import select

    try:
        s = _socket.socket(fileno=os.dup(fd))
        try:
            s.shutdown(_socket.SHUT_RDWR)
        finally:
            s.close()
        pidfd = os.pidfd_open(init_pid)
    except OSError:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(int(timeout * 1000))  # readable once the init has exited
    finally:
        os.close(pidfd)


def _describe_exit(pid: int) -> str:
    if not pid:
        return ""
    try:
        _, status = children.waitpid(pid, 0)  # EOF without READY: the init is gone or going
    except ChildProcessError:
        return ""
    if os.WIFSIGNALED(status):
        return f" (killed by signal {os.WTERMSIG(status)})"
    if os.WIFEXITED(status):
        return f" (exit status {os.WEXITSTATUS(status)})"
    return ""
