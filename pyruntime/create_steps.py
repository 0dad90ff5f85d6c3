"""`container.create` as an ordered list of steps (pyruntime/steps.py), each with its undo.

    check/plan (no side effects, before the list: `plan_create`)
    poststop     - undo: the poststop hooks, if the init was being spawned (runs last)
    reserve      - the state dir (reserved already by run --image); undo: remove it
    provisional  - the record of what is about to be made (pyruntime/leftover.py)
    cgroups      - undo: destroy them
    fifo         - the exec fifo (removed with the state dir)
    console      - the console socket's end for the init; undo: close it
    spawn        - the init, which saves state.json at READY; undo: kill and reap it
    hand-over    - the pid file

Every side effect goes through an `Executor`: tests/test_create_steps.py swaps in one that
records calls and fails where told, so that the order of the undos is tested without root.
Each `crash_point("create:...")` follows the side effect it is named after
(tests/test_crash.py kills the runtime there).
"""

from __future__ import annotations

import os
import time

from pyruntime import SPEC_VERSION, caller
from pyruntime.container import provisional_record, rfc3339_nano, run_poststop, write_pid_file
from pyruntime.errors import Failure, crash_point
from pyruntime.state import FIFO_NAME, ContainerState, Store
from pyruntime.steps import Step, run

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyruntime.cgroups.driver import Driver
    from pyruntime.console import Console
    from pyruntime.plan.build import Plan
    from pyruntime.spec.model import Spec


class Executor:
    """The side effects of create's steps, done for real."""

    def reserve(self, store: Store, container_id: str) -> None:
        store.reserve(container_id)

    def remove(self, store: Store, container_id: str) -> None:
        store.remove(container_id)

    def save_provisional(self, store: Store, container_id: str, record: dict) -> None:
        store.save_provisional(container_id, record)

    def make_cgroups(self, cgroup: Driver, plan: Plan,
                     warn: Callable[[str], None] | None) -> None:
        """Make the cgroups and apply the plan's cgroup entries (pyruntime/cgroups/apply.py)."""
        from pyruntime.cgroups.apply import setup

        setup(cgroup, plan, warn)

    def destroy_cgroups(self, cgroup: Driver) -> None:
        cgroup.destroy()

    def make_fifo(self, path: str, owner: tuple[int, int] | None) -> None:
        os.mkfifo(path, 0o622)
        os.chmod(path, 0o622)  # mkfifo honours the umask; the init must be able to open it
        if owner is not None:  # the init reopens it as the container's root
            os.chown(path, *owner)

    def open_console(self, terminal: bool, console_socket: str | None) -> Console:
        from pyruntime import console

        return console.open_console(terminal, console_socket)

    def close_console(self, tty: Console) -> None:
        tty.close()

    def receive_master(self, tty: Console) -> int:
        return tty.receive_master()

    def spawn(self, plan: Plan, on_hooks: Callable | None,
              on_ready: Callable[[int], None]) -> int:
        from pyruntime.spawn import spawn

        return spawn(plan, on_hooks=on_hooks, on_ready=on_ready)

    def cgroup_started(self, cgroup: Driver, pid: int) -> None:
        cgroup.started(pid)  # systemd: the scope holds the init now, not a placeholder

    def move_net_devices(self, pid: int, moves: list[tuple[str, str]]) -> None:
        from pyruntime import netdev

        netdev.move(pid, moves)

    def start_time(self, pid: int) -> int | None:
        from pyruntime.procfs import stat_fields

        fields = stat_fields(pid)
        return None if fields is None else fields[1]

    def save_state(self, store: Store, state: ContainerState) -> None:
        store.save(state)

    def close(self, fd: int) -> None:
        os.close(fd)

    def kill_and_reap(self, pid: int) -> None:
        from pyruntime import children

        children.kill_and_reap(pid)

    def write_pid_file(self, path: str, pid: int) -> None:
        write_pid_file(path, pid)

    def poststop(self, records: dict, container_id: str, bundle: str, annotations: dict,
                 warn: Callable[[str], None] | None) -> None:
        # a failed create: in the bundle, where runc's `create` runs its hooks
        run_poststop(records, container_id, bundle, annotations, warn, cwd=bundle)


class Creation:
    """One create: what the check/plan phase decided, and the steps that make it."""

    def __init__(self, store: Store, container_id: str, bundle: str, spec: Spec, plan: Plan,
                 cgroup: Driver, *, hook_records: dict | None = None,
                 on_hooks: Callable | None = None,
                 net_moves: list[tuple[str, str]] | None = None,
                 pid_file: str | None = None, console_socket: str | None = None,
                 extra: dict | None = None, reserved: bool = False,
                 warn: Callable[[str], None] | None = None) -> None:
        self.store, self.id, self.bundle = store, container_id, bundle
        self.spec, self.plan, self.cgroup = spec, plan, cgroup
        self.hook_records = hook_records or {}
        self.on_hooks = on_hooks
        self.net_moves = net_moves or []
        self.pid_file, self.console_socket = pid_file, console_socket
        self.extra, self.reserved, self.warn = extra, reserved, warn
        self.fifo = os.path.join(store.root, container_id, FIFO_NAME)
        self.ex: Executor = Executor()
        self.tty: Console | None = None
        self.master = -1
        self.init_pid = 0
        self.spawning = False
        self.undo_failed = False
        self.state: ContainerState | None = None

    def steps(self) -> list[Step]:
        return [
            Step("poststop", _nothing, self._poststop),
            Step("reserve", self._reserve, self._remove),
            Step("provisional", self._provisional),
            Step("cgroups", self._cgroups, self._destroy_cgroups),
            Step("fifo", self._make_fifo),
            Step("console", self._open_console, self._close_console),
            Step("spawn", self._spawn, self._kill),
            Step("hand-over", self._hand_over),
        ]

    def run(self, executor: Executor | None = None) -> ContainerState:
        """Do the steps; return the state, whose console_master is ours to relay (or -1)."""
        if executor is not None:
            self.ex = executor
        run(self.steps(), self._report)
        self._close_console()  # the init has its copy, or the socket's peer the master
        assert self.state is not None
        self.state.console_master = self.master
        return self.state

    def _report(self, step: str, error: BaseException) -> None:
        if step in ("cgroups", "spawn"):  # what the records name may still be there
            self.undo_failed = True
        if self.warn is not None:
            self.warn(f"create {self.id}: undoing {step}: {error}")

    # -- the steps, in order ----------------------------------------------------------

    def _poststop(self) -> None:
        """As runc: a create that failed once its init was being started is deleted, and
        deleting runs poststop, after the state dir is gone (so this undo comes last)."""
        if self.spawning and self.hook_records.get("poststop"):
            self.ex.poststop(self.hook_records, self.id, self.bundle, self.spec.annotations,
                             self.warn)

    def _reserve(self) -> None:
        if not self.reserved:  # run --image reserved it, with its own provisional record
            self.ex.reserve(self.store, self.id)
        crash_point("create:reserved")

    def _remove(self) -> None:
        """The state dir goes, unless the cgroups or the init could not be undone (a cgroup
        that stayed busy): then its records, which name them, stay for `delete --force`
        (pyruntime/leftover.py) to retry."""
        if not self.undo_failed:
            self.ex.remove(self.store, self.id)

    def _provisional(self) -> None:
        self.ex.save_provisional(self.store, self.id, provisional_record(
            self.id, self.bundle, self.cgroup, self.extra))
        crash_point("create:provisional")

    def _cgroups(self) -> None:
        self.ex.make_cgroups(self.cgroup, self.plan, self.warn)
        crash_point("create:cgroups")

    def _destroy_cgroups(self) -> None:
        self.ex.destroy_cgroups(self.cgroup)

    def _make_fifo(self) -> None:
        self.ex.make_fifo(self.fifo, self.plan.root_uid_gid)
        crash_point("create:fifo")

    def _open_console(self) -> None:
        self.tty = self.ex.open_console(self.plan.terminal, self.console_socket)
        self.plan.console_fd = self.tty.send_fd

    def _close_console(self) -> None:
        if self.tty is not None:
            self.ex.close_console(self.tty)

    def _spawn(self) -> None:
        """The init; if spawning fails it is killed and reaped already (spawn.py), and
        only the master it may have sent is left to close."""
        self.spawning = True
        try:
            self.init_pid = self.ex.spawn(self.plan, self.on_hooks, self._ready)
        except BaseException:
            self._close_master()
            raise
        crash_point("create:handed-over")

    def _ready(self, pid: int) -> None:
        """At READY, while the init still dies with us: record the container."""
        crash_point("create:ready")
        self.ex.cgroup_started(self.cgroup, pid)
        assert self.tty is not None
        self.master = self.ex.receive_master(self.tty)
        if self.net_moves:  # the init waits on the fifo: the interfaces are there before start
            self.ex.move_net_devices(pid, self.net_moves)
        start_time = self.ex.start_time(pid)
        if start_time is None:
            raise Failure("container init exited during setup")
        self.state = ContainerState({
            "id": self.id,
            "pid": pid,
            "start_time": start_time,
            "bundle": self.bundle,
            "rootfs": self.plan.rootfs,
            "created": rfc3339_nano(time.time()),
            "owner": "",
            "annotations": self.spec.annotations,
            "oci_version": self.spec.oci_version,
            "cgroup": self.cgroup.to_record(),
            **(self.extra or {}),  # e.g. "image_bundle" (run --image): destroy removes it
            "hooks": self.hook_records,
        })
        self.ex.save_state(self.store, self.state)
        crash_point("create:saved")

    def _kill(self) -> None:
        try:
            self._close_master()
        finally:
            if self.init_pid:
                self.ex.kill_and_reap(self.init_pid)

    def _close_master(self) -> None:
        if self.master >= 0:
            master, self.master = self.master, -1
            self.ex.close(master)

    def _hand_over(self) -> None:
        if self.pid_file:
            self.ex.write_pid_file(self.pid_file, self.init_pid)


def _nothing() -> None:
    pass


def plan_create(store: Store, container_id: str, bundle: str, *, pid_file: str | None,
                no_pivot: bool, preserve_fds: int, warn: Callable[[str], None] | None,
                console_socket: str | None, foreground: bool, extra: dict | None,
                debug: Callable[[str], None] | None, rootless: bool, reserved: bool,
                systemd_cgroup: bool) -> Creation:
    """The check/plan phase: load and check the bundle, build the plan; nothing is made
    (a bad config fails here with nothing to undo)."""
    from pyruntime import cgroups, console
    from pyruntime import rootless as rootless_mode
    from pyruntime.plan.build import add_listen_fds, build_plan
    from pyruntime.spec.load import load_bundle_config

    store.dir(container_id)  # checks the id before anything else
    bundle = os.path.abspath(bundle)
    spec = load_bundle_config(bundle)
    for note in spec.load_warnings:
        if warn is not None:
            warn(note)
    fifo = os.path.join(store.root, container_id, FIFO_NAME)
    linux = spec.linux
    cgroup = cgroups.for_container(linux.cgroups_path if linux else None, container_id,
                                   rootless, systemd=systemd_cgroup)
    plan = build_plan(spec, bundle, fifo, no_pivot=no_pivot, preserve_fds=preserve_fds,
                      cgroup=cgroup)
    rootless_mode.check_caller(plan)
    add_listen_fds(plan, os.environ, caller.caller_pid())
    plan.lifeline_until_start = foreground
    net_moves: list[tuple[str, str]] = []
    if linux is not None and linux.net_devices:
        from pyruntime import netdev

        net_moves = netdev.check(spec, plan.clone_flags)
    console.check(spec.process.terminal, console_socket, foreground)
    if plan.seccomp_profile is not None:  # compiled (or cached) before anything is made
        from pyruntime import seccomp

        seccomp.attach(plan, plan.seccomp_profile, container_id=container_id, bundle=bundle,
                       oci_version=SPEC_VERSION, annotations=spec.annotations,
                       debug=debug, warn=warn)
    on_hooks, hook_records = None, {}
    if spec.hooks is not None:
        from pyruntime import hooks

        hook_records = hooks.to_record(spec.hooks)
        on_hooks = hooks.create_time_runner(hook_records, container_id, bundle, plan.rootfs,
                                            spec.annotations, list(spec.process.env))
    return Creation(store, container_id, bundle, spec, plan, cgroup,
                    hook_records=hook_records, on_hooks=on_hooks, net_moves=net_moves,
                    pid_file=pid_file, console_socket=console_socket, extra=extra,
                    reserved=reserved, warn=warn)
