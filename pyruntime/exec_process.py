"""`exec`: one more process in a running container.

The process comes from a process.json (what containerd and podman send) or from the flags
(for people; like runc, the flags start from the container's own config.json process and
change what they name). runc's rules for what an exec'd process inherits from the
container: capabilities when the process has none, rlimits when it has none; its env,
cwd, user and no_new_privs are its own.

The plan has no rootfs (no filesystem setup: the container's is in place) and no exec
fifo (the init execs right after READY). It joins every namespace of the container's
init that differs from ours, by fds opened here and checked against the init's start
time (pid reuse), and the container's cgroups (v2: clone3 CLONE_INTO_CGROUP).
"""

from __future__ import annotations

import os

from pyruntime.errors import Failure, errno_text
from pyruntime.state import ContainerState, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.plan.build import Plan
    from pyruntime.spec.model import Process, Spec

PROCESS_FILE = "process.json"
_STOPPED = "cannot exec in a stopped container: container not running: "


def check_status(store: Store, state: ContainerState, ignore_paused: bool = False) -> None:
    status = store.status(state)
    if status == "stopped":
        raise Failure(_STOPPED + state.id)
    if status == "paused" and not ignore_paused:
        raise Failure(f"cannot exec in a paused container {state.id} "
                      "(resume it, or use --ignore-paused)")


def load_container_spec(state: ContainerState) -> Spec:
    from pyruntime.spec.load import load_bundle_config

    bundle = state.data.get("bundle") or ""
    return load_bundle_config(bundle)


def load_process_file(path: str) -> Process:
    """Decode a runtime-spec process object; errors name the JSON path in it."""
    from pyruntime.spec.load import decode_json, read_bounded
    from pyruntime.spec.model import Process

    try:
        raw = read_bounded(path, f"--process {path}", nofollow=False)
    except OSError as e:
        raise Failure(f"--process {path}: {errno_text(e.errno)}") from None
    from pyruntime.spec.process_rules import check_process

    process = decode_json(raw, Process, PROCESS_FILE)
    check_process(process, PROCESS_FILE + ": ")
    return process


def inherit(process: Process, container: Process | None) -> Process:
    """What runc's exec takes from the container's process when the exec'd one is silent."""
    if container is not None:
        if process.capabilities is None:
            process.capabilities = container.capabilities
        if not process.rlimits:
            process.rlimits = list(container.rlimits)
        if not process.apparmor_profile:
            process.apparmor_profile = container.apparmor_profile
    return process


def process_from_flags(container: Process, values: dict) -> Process:
    """runc's flag form: the container's process, with args, cwd, env, user, caps changed."""
    from pyruntime.plan.linux_consts import CAPABILITIES
    from pyruntime.spec.model import User
    from pyruntime.spec.record import check_field

    p = container
    p.args = list(values["command"])
    if not p.args:
        raise Failure("exec: no command given: exec [options] ID COMMAND [ARG...]")
    if values["cwd"]:
        p.cwd = values["cwd"]
    p.env = [*p.env, *values["env"]]
    p.terminal = values["tty"]
    if values["no_new_privs"]:
        p.no_new_privileges = True
    if values["apparmor"]:
        p.apparmor_profile = values["apparmor"]
    if values["user"]:
        uid, _, gid = values["user"].partition(":")
        if p.user is None:
            p.user = User()
        try:
            ids = {"uid": int(uid), **({"gid": int(gid)} if gid else {})}
        except ValueError:
            raise Failure(f"--user {values['user']}: expected UID[:GID] (numbers)") from None
        for name, value in ids.items():
            setattr(p.user, name, check_field(User, name, value, f"--user {values['user']}"))
    for gid in values["additional_gids"]:
        if not gid.isdigit():
            raise Failure(f"--additional-gids {gid}: expected a non-negative number")
    if values["additional_gids"]:
        if p.user is None:
            p.user = User()
        gids = [int(gid) for gid in values["additional_gids"]]
        p.user.additional_gids += check_field(User, "additional_gids", gids, "--additional-gids")
    for cap in values["cap"]:
        name = cap.upper()
        name = name if name.startswith("CAP_") else "CAP_" + name
        if name not in CAPABILITIES:
            raise Failure(f"--cap {cap}: unknown capability")
        c = p.capabilities
        if c is None:  # no capability sets (none at all): the flags' are the only ones
            from pyruntime.spec.model import Capabilities

            c = p.capabilities = Capabilities()
        for field in ("bounding", "effective", "permitted"):
            setattr(c, field, [*(getattr(c, field) or []), name])
        if c.inheritable is not None:  # ambient needs inheritable (runc does the same)
            c.ambient = [*(c.ambient or []), name]
    from pyruntime.spec.process_rules import check_process

    check_process(p, "exec: process.")
    return p


def exec_plan(spec: Spec, process: Process, root: str, preserve_fds: int = 0) -> Plan:
    """The flat plan for an exec: the process's attributes, no filesystem, no fifo.
    root: the container's root as we see it (/proc/PID/root), for HOME."""
    from pyruntime.plan.build import Plan, _process
    from pyruntime.plan.home import with_home

    plan = Plan()
    plan.rootfs = None  # type: ignore[assignment]  # NULL: no filesystem setup
    plan.exec_fifo = None  # type: ignore[assignment]  # NULL: exec right after READY
    plan.preserve_fds = preserve_fds
    spec.process = process
    _process(spec, plan)
    plan.envp = with_home(plan.envp, root, plan.uid)
    from pyruntime.rootless import fit_process

    fit_process(plan, proc=os.path.dirname(root))
    return plan


class Joins:
    """Open fds of the init's namespaces, named to stage1 as /proc/self/fd/N paths
    (stage1 is a fork of this process, so it has the same fds)."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self.joins: list[tuple[int, str]] = []

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def open_namespaces(state: ContainerState) -> Joins:
    """Every namespace of the init that is not ours, in linux_consts.NAMESPACES' order
    (the user namespace first)."""
    from pyruntime.plan.linux_consts import NAMESPACES
    from pyruntime.procfs import is_alive

    joins = Joins()
    try:
        for _, name, flag in NAMESPACES:
            theirs = f"/proc/{state.pid}/ns/{name}"
            try:
                if os.readlink(theirs) == os.readlink(f"/proc/self/ns/{name}"):
                    continue
                fd = os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if not os.path.exists(f"/proc/{state.pid}"):
                    raise
                continue  # a namespace type this kernel does not have
            joins.fds.append(fd)
            joins.joins.append((flag, f"/proc/self/fd/{fd}"))
        # opened, then checked: if the pid was reused before the opens, this says so
        if not is_alive(state.pid, state.start_time):
            raise FileNotFoundError
    except (FileNotFoundError, ProcessLookupError):
        joins.close()
        raise Failure(_STOPPED + state.id) from None
    except BaseException:
        joins.close()
        raise
    return joins


def join_cgroups(state: ContainerState, plan: Plan) -> None:
    """Into the container's cgroups: cgroup2 at clone (CLONE_INTO_CGROUP), v1 by stage1."""
    record = state.data.get("cgroup")
    if not record:
        return  # a container made without cgroups of its own
    from pyruntime.cgroups import from_record

    driver = from_record(record)
    if driver is None:
        return
    from pyruntime.cgroups.joins import plan_joins

    plan_joins(plan, driver)


def spawn_process(state: ContainerState, plan: Plan) -> int:
    """Start the process in the container; return its pid once it has exec'd."""
    from pyruntime.spawn import spawn

    joins = open_namespaces(state)
    try:
        plan.joins = joins.joins
        join_cgroups(state, plan)
        try:
            return spawn(plan, until_exec=True)
        except Failure:
            from pyruntime.procfs import is_alive

            if not is_alive(state.pid, state.start_time):  # e.g. ENOMEM from clone: the
                raise Failure(_STOPPED + state.id) from None  # pid namespace's init died
            raise
    finally:
        joins.close()
