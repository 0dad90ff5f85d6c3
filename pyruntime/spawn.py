"""Hand the plan to the native code and follow the init through setup over the sync socket.

Messages (native/api.h, struct pyrt_msg): PID from stage1, then READY or ERROR from the
init; with create-time hooks, HOOKS from the init first, answered with CONTINUE once
`on_hooks` has run them. An ERROR becomes one Failure line naming the step, the object
and the errno.
"""

from __future__ import annotations

import _socket
import os
import struct

from pyruntime import children
from pyruntime.errors import Failure, crash_point, errno_text
from pyruntime.plan.build import Plan

MSG_SIZE = 512
_MSG = struct.Struct("=iii64s436s")
MSG_PID, MSG_READY, MSG_ERROR, MSG_HOOKS, MSG_CONTINUE, MSG_HANDOVER = 1, 2, 3, 4, 5, 6
HOOK_STATE_MAX = 65536
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


def _to_c(ffi, new, plan: Plan, sync_fd: int, keep: list,  # cffi objects
          cgroup_fd: int = -1):
    """Build a struct pyrt_plan; everything it points to is allocated with `new` (ffi.new,
    or a served worker's arena) and appended to `keep`."""

    def s(value: str | None):
        if value is None:
            return ffi.NULL
        buf = new("char[]", value.encode())
        keep.append(buf)
        return buf

    def strv(values: list[str]):
        arr = new("const char *[]", [s(v) for v in values] + [ffi.NULL])
        keep.append(arr)
        return arr

    def array(ctype: str, items: list, fill):
        if not items:
            return ffi.NULL, 0
        arr = new(f"{ctype}[]", len(items))
        keep.append(arr)
        for i, item in enumerate(items):
            fill(arr[i], item)
        return arr, len(items)

    def fill_join(c, item):
        c.type, c.path = item[0], s(item[1])

    def fill_mount(c, m):
        c.source, c.destination, c.fstype = s(m.source), s(m.destination), s(m.fstype)
        c.flags, c.propagation, c.data = m.flags, m.propagation, s(m.data)
        c.dest_kind = 1 if m.is_file else 0
        c.rec_attr_set, c.rec_attr_clr = m.rec_attr_set, m.rec_attr_clr
        c.idmap_tree_fd = m.idmap_fd  # made by _open_idmaps, -1 if none
        c.tmpcopyup = int(m.tmpcopyup)
        c.keep_dir_mode = int(m.keep_dir_mode)

    def fill_hook(c, h):
        c.path, c.argv, c.envp, c.timeout = s(h[0]), strv(h[1]), strv(h[2]), h[3]

    def fill_sysctl(c, item):
        c.path, c.value = s(item[0]), s(item[1])

    def fill_device(c, d):
        c.path, c.mode, c.major, c.minor = s(d.path), d.mode, d.major, d.minor
        c.uid, c.gid, c.bind_from_host = d.uid, d.gid, int(d.bind_from_host)

    def fill_link(c, link):
        c.target, c.linkpath = s(link[0]), s(link[1])

    def fill_rlimit(c, r):
        c.resource, c.name, c.soft, c.hard = r[0], s(r[1]), r[2], r[3]

    p = new("struct pyrt_plan *")
    keep.append(p)
    p.clone_flags = plan.clone_flags
    p.joins, p.n_joins = array("struct pyrt_ns_join", plan.joins, fill_join)
    p.uid_map, p.gid_map = s(plan.uid_map), s(plan.gid_map)
    p.deny_setgroups = int(plan.deny_setgroups)
    p.newuidmap, p.newgidmap = s(plan.newuidmap), s(plan.newgidmap)
    p.rootfs = s(plan.rootfs)
    p.root_propagation_pre = plan.root_propagation_pre
    p.root_propagation_post = plan.root_propagation_post
    p.no_pivot, p.readonly_root = int(plan.no_pivot), int(plan.readonly_root)
    p.mounts, p.n_mounts = array("struct pyrt_mount", plan.mounts, fill_mount)
    p.devices, p.n_devices = array("struct pyrt_device", plan.devices, fill_device)
    p.symlinks, p.n_symlinks = array("struct pyrt_symlink", plan.symlinks, fill_link)
    p.masked_paths, p.n_masked = strv(plan.masked_paths), len(plan.masked_paths)
    p.readonly_paths, p.n_readonly = strv(plan.readonly_paths), len(plan.readonly_paths)
    p.hostname, p.domainname = s(plan.hostname), s(plan.domainname)
    p.loopback_up = int(plan.loopback_up)
    p.argv, p.envp = strv(plan.argv), strv(plan.envp)
    p.path_search, p.cwd = s(plan.path_search), s(plan.cwd)
    p.mkdir_cwd = int(plan.mkdir_cwd)
    p.uid, p.gid = plan.uid, plan.gid
    p.set_groups = int(plan.set_groups)
    if plan.groups:
        groups = new("uint32_t[]", plan.groups)
        keep.append(groups)
        p.groups, p.n_groups = groups, len(plan.groups)
    p.umask = plan.umask
    p.set_caps = int(plan.set_caps)
    p.cap_bounding = plan.caps["bounding"]
    p.cap_effective = plan.caps["effective"]
    p.cap_permitted = plan.caps["permitted"]
    p.cap_inheritable = plan.caps["inheritable"]
    p.cap_ambient = plan.caps["ambient"]
    p.last_cap = plan.last_cap
    p.no_new_privs = int(plan.no_new_privs)
    p.rlimits, p.n_rlimits = array("struct pyrt_rlimit", plan.rlimits, fill_rlimit)
    p.set_oom_score_adj = int(plan.oom_score_adj is not None)
    p.oom_score_adj = plan.oom_score_adj or 0
    p.console_fd = plan.console_fd
    p.console_rows, p.console_cols = plan.console_size
    p.set_personality, p.personality = plan.personality is not None, plan.personality or 0
    p.set_ioprio, p.ioprio = plan.ioprio is not None, plan.ioprio or 0
    if plan.scheduler is not None:
        p.set_scheduler = 1
        (p.sched_policy, p.sched_nice, p.sched_priority, p.sched_flags, p.sched_runtime,
         p.sched_deadline, p.sched_period) = plan.scheduler
    if plan.mempolicy is not None:
        p.set_mempolicy, (p.mempolicy_mode, nodes) = 1, plan.mempolicy
        for n in nodes:
            p.mempolicy_nodes[n // 64] |= 1 << (n % 64)
        p.mempolicy_maxnode = 1025 if nodes else 0  # bits + 1, as numactl passes it
    p.timens_offsets = s(plan.timens_offsets)
    p.exec_fifo = s(plan.exec_fifo)
    p.preserve_fds = plan.preserve_fds
    p.lifeline_until_start = int(plan.lifeline_until_start)
    p.sync_fd = sync_fd
    p.cgroup_fd = cgroup_fd
    p.cgroup_procs, p.n_cgroup_procs = strv(plan.cgroup_procs), len(plan.cgroup_procs)
    p.cgroup_fd_procs = s(plan.cgroup_dir_procs)
    p.hooks_pause = int(plan.hooks_pause)
    p.start_hooks, p.n_start_hooks = array("struct pyrt_hook", plan.start_hooks, fill_hook)
    p.sysctls, p.n_sysctls = array("struct pyrt_sysctl", plan.sysctls, fill_sysctl)
    if plan.seccomp_bpf:
        bpf = new("uint8_t[]", plan.seccomp_bpf)
        keep.append(bpf)
        p.seccomp_bpf, p.seccomp_bpf_len = bpf, len(plan.seccomp_bpf)
        p.seccomp_flags = plan.seccomp_flags
        p.seccomp_listener = s(plan.seccomp_listener)
        p.seccomp_state, p.n_seccomp_state = strv(plan.seccomp_state), len(plan.seccomp_state)
    return p


def _unpack(data: bytes) -> tuple[int, int, int, str, str]:
    kind, pid, err, step, text = _MSG.unpack(data[:MSG_SIZE].ljust(MSG_SIZE, b"\0"))
    return (kind, pid, err, step.split(b"\0", 1)[0].decode(errors="replace"),
            text.split(b"\0", 1)[0].decode(errors="replace"))


def _recv(fd: int) -> tuple[int, int, int, str, str] | None:
    data = os.read(fd, MSG_SIZE)
    return _unpack(data) if data else None


def parse_error(data: bytes) -> Failure:
    """The Failure for an ERROR message the init wrote to the exec fifo after start."""
    kind, _pid, err, step, text = _unpack(data)
    if kind != MSG_ERROR:
        return Failure("container init: unexpected message on the exec fifo")
    return SetupError(step, err, text)


def _open_idmaps(plan: Plan, lib) -> None:  # the cffi lib
    """The detached, idmapped tree of each idmapped bind (MountStep.idmap_fd), made here:
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
        m.idmap_fd = tree


def _close_idmaps(plan: Plan) -> None:
    for m in plan.mounts:
        if m.idmap_fd >= 0:
            os.close(m.idmap_fd)
            m.idmap_fd = -1


def _continue(fd: int, init_pid: int, on_hooks) -> None:
    """HOOKS from the init: run the create-time hooks, then let it go on (CONTINUE carries
    its pid and the state JSON for startContainer hooks)."""
    state = on_hooks(init_pid) if on_hooks is not None else b""
    if len(state) > HOOK_STATE_MAX:
        raise Failure(f"hooks: the state JSON is over {HOOK_STATE_MAX} bytes")
    os.write(fd, _MSG.pack(MSG_CONTINUE, init_pid, 0, b"", b"") + state)


def handed_over(plan: Plan) -> bool:
    """Whether the init waits for HANDOVER after READY: pyrt_lifeline_handed_over() in
    native/lifeline.c, which says why a filter loaded before READY rules it out."""
    return (bool(plan.exec_fifo) and not plan.lifeline_until_start
            and not (plan.seccomp_bpf and not plan.no_new_privs))


def _handover(fd: int) -> None:
    """Tell the init its state is saved; once it answers, it no longer dies with us."""
    os.write(fd, _MSG.pack(MSG_HANDOVER, 0, 0, b"", b""))
    msg = _recv(fd)
    if msg is None or msg[0] != MSG_HANDOVER:
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
    ready = False
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
            msg = _recv(parent_fd)
            if msg is None:
                if ready:  # execve closed the socket: the process runs
                    return init_pid
                if rc < 0:
                    raise Failure(f"spawn: {errno_text(-rc)}")
                raise Failure("container init exited during setup" + _describe_exit(init_pid))
            kind, pid, err, step, text = msg
            if kind == MSG_PID:
                init_pid = pid
                crash_point("spawn:pid")
            elif kind == MSG_HOOKS:
                _continue(parent_fd, init_pid, on_hooks)
            elif kind == MSG_READY:
                if not until_exec:
                    if on_ready is not None:
                        on_ready(init_pid)
                    if handed_over(plan):
                        _handover(parent_fd)
                    return init_pid
                ready = True
            elif kind == MSG_ERROR:
                init_pid = init_pid or pid  # stage1 names an init it cloned, to be reaped
                raise SetupError(step, err, text)
    except BaseException:
        if init_pid:
            children.kill_and_reap(init_pid)
        raise
    finally:
        os.close(parent_fd)


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
