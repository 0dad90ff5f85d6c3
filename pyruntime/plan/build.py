"""Build the flat plan (native/api.h's struct pyrt_plan) from a validated spec.

Every decision is made here, in Python, where it can be unit-tested without root: which
namespaces to create or join, what each mount's flags are, which devices to create, which
capabilities to keep. The native code only carries the plan out.
"""

from __future__ import annotations

import os
import stat

from pyruntime.errors import Failure
from pyruntime.plan import linux_consts as k
from pyruntime.plan import mount_extras
from pyruntime.plan.devices import DeviceNode, plan_devices
from pyruntime.plan.mount_options import PROPAGATION_OPTIONS, parse_options
from pyruntime.spec.model import Spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.cgroups.driver import Driver

DEFAULT_UMASK = 0o022


class MountStep:
    """One mount(2) (plus its remount and propagation change) for the native code."""

    __slots__ = ("source", "destination", "fstype", "flags", "propagation", "data", "is_file",
                 "rec_attr_set", "rec_attr_clr", "idmap", "idmap_recursive", "tmpcopyup",
                 "idmap_tree_fd", "keep_dir_mode")
    # not in struct pyrt_mount (is_file becomes dest_kind: pyruntime/cplan.py)
    PYTHON_ONLY = ("idmap", "idmap_recursive")

    def __init__(self, source: str | None, destination: str, fstype: str | None, flags: int,
                 propagation: int, data: str | None, is_file: bool) -> None:
        self.source = source
        self.destination = destination
        self.fstype = fstype
        self.flags = flags
        self.propagation = propagation
        self.data = data
        self.is_file = is_file
        self.rec_attr_set = 0  # MOUNT_ATTR_* via mount_setattr(AT_RECURSIVE): rro, ...
        self.rec_attr_clr = 0
        self.idmap: tuple[str, str] | None = None  # (uid_map, gid_map) text of an idmapped bind
        self.idmap_recursive = False
        self.tmpcopyup = False
        self.idmap_tree_fd = -1  # spawn.py: the detached idmapped tree, while spawning
        self.keep_dir_mode = False  # the mount's root takes the covered directory's mode


class Plan:
    """Mirror of struct pyrt_plan: an attribute fills the api.h field of its name
    (pyruntime/cplan.py, which also lists the few that are converted)."""

    # what only Python uses: no field of struct pyrt_plan comes from these
    PYTHON_ONLY = ("terminal", "root_uid_gid", "cgroup_dir", "seccomp_profile",
                   "cgroup_settings")

    def __init__(self) -> None:
        self.clone_flags = 0
        self.joins: list[tuple[int, str]] = []
        self.uid_map: str | None = None
        self.gid_map: str | None = None
        self.deny_setgroups = False
        self.newuidmap: str | None = None  # rootless ranges: written by these helpers
        self.newgidmap: str | None = None
        self.rootfs = ""
        self.root_propagation_pre = 0
        self.root_propagation_post = 0
        self.no_pivot = False
        self.readonly_root = False
        self.mounts: list[MountStep] = []
        self.devices: list[DeviceNode] = []
        self.symlinks: list[tuple[str, str]] = []
        self.masked_paths: list[str] = []
        self.readonly_paths: list[str] = []
        self.hostname: str | None = None
        self.domainname: str | None = None
        self.loopback_up = False
        self.argv: list[str] = []
        self.envp: list[str] = []
        self.path_search: str | None = None
        self.cwd = "/"
        self.mkdir_cwd = False  # create and run make a missing cwd, as runc does; exec does not
        self.uid = 0
        self.gid = 0
        self.set_groups = True
        self.groups: list[int] = []
        self.umask = DEFAULT_UMASK
        self.set_caps = False
        self.caps = {"bounding": 0, "effective": 0, "permitted": 0, "inheritable": 0,
                     "ambient": 0}
        self.last_cap = len(k.CAPABILITIES) - 1
        self.no_new_privs = False
        self.rlimits: list[tuple[int, str, int, int]] = []
        self.oom_score_adj: int | None = None
        self.terminal = False  # process.terminal: init makes a pty (native/console.c)
        self.console_size = (0, 0)  # rows, cols
        self.console_fd = -1  # set by container.create: the connected console socket
        self.personality: int | None = None  # plan/sched.py -> native/sched.c
        self.ioprio: int | None = None
        self.scheduler: tuple[int, ...] | None = None  # policy nice prio flags rt dl period
        self.mempolicy: tuple[int, list[int]] | None = None  # mode|flags, nodes
        self.timens_offsets: str | None = None  # native/timens.c
        self.exec_fifo = ""
        self.root_uid_gid: tuple[int, int] | None = None  # host ids of the container's root
        self.preserve_fds = 0
        # the init dies with its caller until start (a foreground run) or until READY
        self.lifeline_until_start = False
        self.cgroup_procs: list[str] = []  # pyruntime/cgroups/joins.py, from the driver
        self.cgroup_dir: str | None = None  # cgroup2: init is cloned into it
        self.cgroup_dir_procs: str | None = None  # its cgroup.procs, if clone3 refuses
        # linux.resources as entries for pyruntime/cgroups/apply.py (never C's business)
        self.cgroup_settings = None  # pyruntime/cgroups/settings.CgroupSettings
        self.hooks_pause = False  # create-time hooks: init pauses before pivot_root
        self.start_hooks: list[tuple[str, list[str], list[str], int]] = []  # startContainer
        self.sysctls: list[tuple[str, str]] = []  # (path below /proc/sys, value)
        self.seccomp_profile = None  # linux.seccomp translated (pyruntime/seccomp/profile.py)
        self.seccomp_bpf: bytes | None = None  # compiled (pyruntime/seccomp), set by the verb
        self.seccomp_flags = 0
        self.seccomp_listener: str | None = None
        self.seccomp_state: list[str] = []  # container process state JSON around the pid


def build_plan(spec: Spec, bundle: str, exec_fifo: str, *, no_pivot: bool = False,
               preserve_fds: int = 0, cgroup_dirs: dict[str, str] | None = None,
               cgroup: Driver | None = None) -> Plan:
    """Turn `spec` (validated) into a Plan; raise Failure naming the field that cannot be met.

    `cgroup`: the container's cgroup driver (nothing made yet): linux.resources become
    plan.cgroup_settings, the init's joins plan.cgroup_*, and the cgroup mount binds its
    directories (`cgroup_dirs` otherwise)."""
    assert spec.process is not None and spec.root is not None
    if cgroup is not None and cgroup_dirs is None:
        from pyruntime.cgroups import mount_dirs

        cgroup_dirs = mount_dirs(cgroup)
    plan = Plan()
    plan.exec_fifo = exec_fifo
    plan.preserve_fds = preserve_fds
    plan.no_pivot = no_pivot
    plan.mkdir_cwd = True
    rootfs = os.path.join(bundle, spec.root.path)
    if not os.path.isdir(rootfs):
        raise Failure(f"config.json: root.path: {rootfs}: no such directory")
    plan.rootfs = os.path.realpath(rootfs)
    plan.readonly_root = spec.root.readonly
    in_userns = _namespaces(spec, plan)
    if cgroup is not None:
        _cgroup(spec, plan, cgroup)
    _propagation(spec, plan)
    plan.mounts = [step for i in range(len(spec.mounts))
                   for step in _mount(spec, i, bundle, cgroup_dirs)]
    plan.devices, plan.symlinks = plan_devices(spec, in_userns)
    if spec.linux is not None:
        plan.masked_paths = list(spec.linux.masked_paths)
        plan.readonly_paths = list(spec.linux.readonly_paths)
    plan.hostname = spec.hostname or None
    plan.domainname = spec.domainname or None
    _process(spec, plan)
    from pyruntime.plan.home import passwd_at_create, with_home

    passwd_root, passwd = passwd_at_create(spec.mounts, plan.rootfs, bundle)
    plan.envp = with_home(plan.envp, passwd_root, plan.uid, passwd)
    from pyruntime.plan.sched import plan_sched

    plan_sched(spec, plan)
    from pyruntime.plan.timens import plan_time_offsets

    plan_time_offsets(spec, plan)
    from pyruntime.plan.intel_rdt import refuse_intel_rdt

    refuse_intel_rdt(spec)
    from pyruntime.plan.sysctl import plan_sysctls

    plan.sysctls = plan_sysctls(spec)
    if spec.hooks is not None:
        from pyruntime.hooks import plan_hooks

        plan.hooks_pause, plan.start_hooks = plan_hooks(spec.hooks, plan.envp)
    if spec.linux is not None and spec.linux.seccomp is not None:
        from pyruntime.seccomp.profile import build_profile

        plan.seccomp_profile = build_profile(spec.linux.seccomp)
    return plan


def add_listen_fds(plan: Plan, environ: dict[str, str], pid: int) -> None:
    """Socket activation, as runc does it: only when the runtime itself was activated
    (LISTEN_FDS set and LISTEN_PID its own pid), its listen fds (3 ..) go first, the
    --preserve-fds ones after them, and the process gets LISTEN_FDS=N and LISTEN_PID=1.
    --preserve-fds alone sets neither."""
    try:
        if int(environ.get("LISTEN_PID", "")) != pid:
            return
        n = int(environ.get("LISTEN_FDS", ""))
    except ValueError:
        return
    if n <= 0:
        return
    plan.envp += [f"LISTEN_FDS={n}", "LISTEN_PID=1"]
    plan.preserve_fds += n


def _namespaces(spec: Spec, plan: Plan) -> bool:
    """Set clone flags and joins; return whether the container is in a user namespace."""
    linux = spec.linux
    if linux is None:
        return False
    joins = []
    for i, ns in enumerate(linux.namespaces):
        flag = k.NAMESPACE_FLAGS[ns.type]
        if ns.path:
            if not os.path.exists(ns.path):
                raise Failure(f"config.json: linux.namespaces[{i}].path: {ns.path}: "
                              "no such namespace file")
            # the user namespace first: joining it grants the rights to join the others
            joins.append((0 if ns.type == "user" else 1, flag, ns.path))
        else:
            plan.clone_flags |= flag
    plan.joins = [(flag, path) for _, flag, path in sorted(joins, key=lambda j: j[0])]
    new_userns = bool(plan.clone_flags & k.CLONE_NEWUSER)
    if new_userns:
        plan.uid_map = "".join(f"{m.container_id} {m.host_id} {m.size}\n"
                               for m in linux.uid_mappings)
        plan.gid_map = "".join(f"{m.container_id} {m.host_id} {m.size}\n"
                               for m in linux.gid_mappings)
        plan.root_uid_gid = (_host_id(linux.uid_mappings, 0, "linux.uidMappings"),
                             _host_id(linux.gid_mappings, 0, "linux.gidMappings"))
    plan.loopback_up = bool(plan.clone_flags & k.CLONE_NEWNET)
    # mknod is refused in any user namespace but the host's, new or joined, or the one
    # this runtime runs in (rootless podman's, as runc checks)
    if new_userns or any(flag == k.CLONE_NEWUSER for flag, _ in plan.joins):
        return True
    from pyruntime.rootless import in_user_namespace

    return in_user_namespace()


def _host_id(maps: list, container_id: int, field: str) -> int:
    for m in maps:
        if m.container_id <= container_id < m.container_id + m.size:
            return m.host_id + container_id - m.container_id
    raise Failure(f"config.json: {field}: the container's root (id {container_id}) is not mapped")


def _cgroup(spec: Spec, plan: Plan, driver: Driver) -> None:
    """linux.resources converted (and refused) now, applied by pyruntime/cgroups/apply.py
    once the cgroups are made; where stage1 and init join them."""
    from pyruntime.cgroups.joins import plan_joins
    from pyruntime.cgroups.settings import plan_resources

    plan.cgroup_settings = plan_resources(driver, spec.linux.resources if spec.linux else None)
    plan_joins(plan, driver)


def _propagation(spec: Spec, plan: Plan) -> None:
    """runc's rule: / becomes rslave unless rootfsPropagation says otherwise.

    A shared root cannot be pivoted out of, so a shared request is applied after pivot_root.
    """
    name = (spec.linux.rootfs_propagation if spec.linux else None) or ""
    flags = PROPAGATION_OPTIONS.get(name, 0)
    if flags & k.MS_SHARED:
        plan.root_propagation_pre = k.MS_SLAVE | k.MS_REC
        plan.root_propagation_post = flags
    else:
        plan.root_propagation_pre = flags or (k.MS_SLAVE | k.MS_REC)


def _mount(spec: Spec, i: int, bundle: str,
           cgroup_dirs: dict[str, str] | None = None) -> list[MountStep]:
    m = spec.mounts[i]
    where = f"config.json: mounts[{i}]"
    opts = parse_options(m.options)
    is_bind = m.type == "bind" or bool(opts.flags & k.MS_BIND)
    if is_bind:
        if not m.source:
            raise Failure(f"{where}.source: a bind mount needs a source")
        source = m.source if m.source.startswith("/") else os.path.join(bundle, m.source)
        try:
            st = os.stat(source)
        except OSError as e:
            raise Failure(f"{where}.source: {source}: {e.strerror}") from None
        step = MountStep(source, m.destination, None, opts.flags | k.MS_BIND,
                         opts.propagation, opts.data, not stat.S_ISDIR(st.st_mode))
        mount_extras.finish(step, spec, i, opts, True)
        return [step]
    if not m.type:
        raise Failure(f"{where}.type: required unless the mount is a bind mount")
    if m.type == "cgroup":
        from pyruntime.plan.cgroup_mount import expand

        cgroupns = any(ns.type == "cgroup" for ns in (spec.linux.namespaces if spec.linux
                                                        else []))
        return [MountStep(src, dst, fstype, flags, 0, data, False)
                for src, dst, fstype, flags, data in expand(m.destination, opts.flags,
                                                                 cgroup_dirs, cgroupns)]
    data = mount_extras.overlay_data(opts.data, bundle) if m.type == "overlay" else opts.data
    step = MountStep(m.source or m.type, m.destination, m.type, opts.flags, opts.propagation,
                     data, False)
    mount_extras.finish(step, spec, i, opts, False)
    return [step]


def _caps(names: list[str] | None) -> int:
    mask = 0
    for name in names or []:
        mask |= 1 << k.CAPABILITIES.index(name)
    return mask


def _process(spec: Spec, plan: Plan) -> None:
    """The process's part of the plan; spec/process_rules.py has checked it (create and
    exec alike), and the model its integers' ranges."""
    p = spec.process
    assert p is not None and p.args is not None
    plan.argv = list(p.args)
    plan.envp = list(p.env)
    for e in p.env:
        if e.startswith("PATH="):
            plan.path_search = e[5:]
    plan.cwd = p.cwd
    if p.user is not None:
        plan.uid = p.user.uid
        plan.gid = p.user.gid
        plan.groups = list(p.user.additional_gids)
        if p.user.umask is not None:
            plan.umask = p.user.umask
    # no process.capabilities is no capability at all, as in runc: never the runtime's own
    plan.set_caps = True
    if p.capabilities is not None:
        for field in plan.caps:
            plan.caps[field] = _caps(getattr(p.capabilities, field))
        # the kernel raises an ambient capability only if it is permitted and inheritable;
        # runc's own default spec asks for ambient without inheritable, and runc then
        # leaves those out rather than failing, so do the same
        plan.caps["ambient"] &= plan.caps["permitted"] & plan.caps["inheritable"]
    plan.no_new_privs = p.no_new_privileges
    plan.rlimits = [(k.RLIMITS[r.type], r.type, r.soft, r.hard) for r in p.rlimits]
    plan.oom_score_adj = p.oom_score_adj
    plan.terminal = p.terminal
    if p.console_size is not None:
        plan.console_size = (p.console_size.height, p.console_size.width)
