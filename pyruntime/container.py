"""Operations on one container that several verbs share: create, start, signal, destroy."""

from __future__ import annotations

import os
import time

from pyruntime import SPEC_VERSION, caller, children
from pyruntime.errors import Failure, NotRunning, crash_point
from pyruntime.state import FIFO_NAME, ContainerState, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def _rfc3339_nano(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def write_pid_file(path: str, pid: int) -> None:
    """Digits only, no newline, written to a temp file and renamed into place."""
    path = os.path.abspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def provisional_record(container_id: str, bundle: str, cgroup: object = None,
                       extra: dict | None = None) -> dict:
    """What create writes before its first side effect: who creates (pid and start time,
    to tell a create in progress from a dead one) and what it is about to make."""
    from pyruntime.procfs import stat_fields

    me = os.getpid()
    fields = stat_fields(me)
    record = {"id": container_id, "creator": [me, fields[1] if fields else 0],
              "bundle": bundle, **(extra or {})}
    if cgroup is not None:
        record["cgroup"] = cgroup.planned_record()  # type: ignore[attr-defined]
    return record


def create(store: Store, container_id: str, bundle: str, *, pid_file: str | None = None,
           no_pivot: bool = False, preserve_fds: int = 0,
           warn: Callable[[str], None] | None = None, console_socket: str | None = None,
           foreground: bool = False, extra: dict | None = None,
           debug: Callable[[str], None] | None = None,
           rootless: bool = False, reserved: bool = False,
           systemd_cgroup: bool = False) -> ContainerState:
    """Set the container up; return once its init waits on the exec fifo.

    With process.terminal, the pty master goes to `console_socket`, or, in the
    `foreground` (run without a socket), to `state.console_master` for the caller to relay.

    Validation happens before anything touches disk; after that, any failure removes
    what was made (the state dir, the fifo, the cgroups) and kills the init, so nothing
    is left.  Against a kill, which runs no cleanup: the provisional record names what
    is made before it is made (pyruntime/leftover.py clears it), and the init dies with
    this process until state.json is saved.  `reserved`: the caller (run --image)
    already made the state dir and its provisional record.  `rootless` (--rootless,
    pyruntime/rootless.py): go without the cgroups this caller may not make.
    """
    from pyruntime import cgroups
    from pyruntime import rootless as rootless_mode
    from pyruntime.plan.build import add_listen_fds, build_plan
    from pyruntime.spec.load import load_bundle_config

    store.dir(container_id)  # checks the id before anything else
    bundle = os.path.abspath(bundle)
    spec = load_bundle_config(bundle)
    directory = os.path.join(store.root, container_id)
    fifo = os.path.join(directory, FIFO_NAME)
    linux = spec.linux
    cgroup = cgroups.for_container(linux.cgroups_path if linux else None, container_id,
                                   rootless, systemd=systemd_cgroup)
    plan = build_plan(spec, bundle, fifo, no_pivot=no_pivot, preserve_fds=preserve_fds,
                      cgroup_dirs=cgroups.mount_dirs(cgroup))
    rootless_mode.check_caller(plan)
    add_listen_fds(plan, os.environ, caller.caller_pid())
    plan.lifeline_until_start = foreground
    net_moves: list[tuple[str, str]] = []
    if linux is not None and linux.net_devices:
        from pyruntime import netdev

        net_moves = netdev.check(spec, plan.clone_flags)
    from pyruntime import console

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
        on_hooks = hooks.create_time_runner(hook_records, container_id, bundle,
                                            spec.annotations, list(spec.process.env))
    if not reserved:
        store.reserve(container_id)
    init_pid = 0
    tty, master = console.Console(), -1
    made_cgroups = spawning = False
    state = None

    def ready(pid: int) -> None:
        """At READY, while the init still dies with us: record the container."""
        nonlocal master, state
        crash_point("create:ready")
        cgroup.started(pid)  # systemd: the scope holds the init now, not a placeholder
        master = tty.receive_master()
        if net_moves:  # the init waits on the fifo: the interfaces are there before start
            netdev.move(pid, net_moves)
        from pyruntime.procfs import stat_fields

        fields = stat_fields(pid)
        if fields is None:
            raise Failure("container init exited during setup")
        state = ContainerState({
            "id": container_id,
            "pid": pid,
            "start_time": fields[1],
            "bundle": bundle,
            "rootfs": plan.rootfs,
            "created": _rfc3339_nano(time.time()),
            "owner": "",
            "annotations": spec.annotations,
            "oci_version": spec.oci_version,
            "cgroup": cgroup.to_record(),
            **(extra or {}),  # e.g. "image_bundle" (run --image): destroy removes it
            "hooks": hook_records,
        })
        store.save(state)
        crash_point("create:saved")

    try:
        crash_point("create:reserved")
        store.save_provisional(container_id, provisional_record(container_id, bundle, cgroup,
                                                                extra))
        crash_point("create:provisional")
        cgroups.setup(cgroup, linux.resources if linux else None, warn)
        made_cgroups = True
        crash_point("create:cgroups")
        cgroup.to_plan(plan)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # mkfifo honours the umask; the init must be able to open it
        if plan.root_uid_gid is not None:  # the init reopens it as the container's root
            os.chown(fifo, *plan.root_uid_gid)
        crash_point("create:fifo")
        from pyruntime.spawn import spawn

        tty = console.open_console(plan.terminal, console_socket)
        plan.console_fd = tty.send_fd
        spawning = True
        init_pid = spawn(plan, on_hooks=on_hooks, on_ready=ready)
        crash_point("create:handed-over")
        assert state is not None
        if pid_file:
            write_pid_file(pid_file, init_pid)
        state.console_master = master
        return state
    except BaseException:
        if master >= 0:
            os.close(master)
        if init_pid:
            children.kill_and_reap(init_pid)
        if made_cgroups:
            cgroup.destroy()
        store.remove(container_id)
        if spawning and hook_records.get("poststop"):  # as runc: a failed create is deleted
            _poststop(hook_records, container_id, bundle, spec.annotations, warn)
        raise
    finally:
        tty.close()


def _poststop(records: dict, container_id: str, bundle: str, annotations: dict,
              warn: Callable[[str], None] | None) -> None:
    from pyruntime import hooks

    hooks.run_logged(records, "poststop",
                     hooks.state_for_hooks(container_id, "stopped", 0, bundle, annotations),
                     warn)


def start(store: Store, state: ContainerState,
          warn: Callable[[str], None] | None = None) -> None:
    """Release the init waiting on the exec fifo; return once it has exec'd the process.

    The init keeps the fifo's write end open until execve closes it: EOF with no data
    means the user's program runs; a struct pyrt_msg means a step after start failed.
    """
    status = store.status(state)
    if status != "created":
        raise Failure(f"cannot start container {state.id}: it is {status}, not created")
    fifo = os.path.join(store.dir(state.id), FIFO_NAME)
    import select

    # the pidfd first: opening the fifo releases the init, and a short program can be
    # done and reaped by its parent (conmon, the shim) before a later pidfd_open (ESRCH)
    try:
        pidfd = os.pidfd_open(state.pid)
    except ProcessLookupError:
        raise Failure(f"cannot start container {state.id}: its init exited") from None
    try:
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            crash_point("start:opened")
            data = _read_until_eof(fd, pidfd, select)
        finally:
            os.close(fd)
    finally:
        os.close(pidfd)
    crash_point("start:released")
    os.unlink(fifo)
    if data is None:
        raise Failure(f"cannot start container {state.id}: its init exited")
    if data:
        from pyruntime.spawn import parse_error

        raise parse_error(data)
    records = state.data.get("hooks") or {}
    if records.get("poststart"):  # failures are only logged (runtime-spec)
        from pyruntime import hooks

        hooks.run_logged(records, "poststart", hooks.state_for_hooks(
            state.id, "running", state.pid, state.data.get("bundle", ""),
            state.data.get("annotations")), warn)


def _read_until_eof(fd: int, pidfd: int, select) -> bytes | None:
    """Read the fifo until the writer closes it; None if the init died before opening it."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    data = b""
    opened = False
    while True:
        events = dict(poller.poll())
        if fd in events:
            opened = True
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                return data
            data += chunk
        elif pidfd in events:
            # exited: whatever it wrote is in the pipe; if it never opened it, say so
            poller.unregister(pidfd)
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                chunk = b""
            if not chunk and not opened and not data:
                return None
            data += chunk


def signal_init(store: Store, state: ContainerState, sig: int) -> None:
    """Signal the init through a pidfd opened while its start time still matches."""
    from pyruntime.procfs import is_alive

    if state.pid <= 0 or not is_alive(state.pid, state.start_time):
        raise NotRunning(state.id)
    try:
        pidfd = os.pidfd_open(state.pid)
    except ProcessLookupError:
        raise NotRunning(state.id) from None
    try:
        if not is_alive(state.pid, state.start_time):  # the pid was reused before the open
            raise NotRunning(state.id)
        import _signal  # not signal, which imports enum

        _signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:
        raise NotRunning(state.id) from None
    finally:
        os.close(pidfd)


def kill_and_wait(state: ContainerState) -> None:
    """SIGKILL the init and wait for it to exit (not to be reaped: its parent does that)."""
    from pyruntime.procfs import is_alive

    if state.pid <= 0 or not is_alive(state.pid, state.start_time):
        return
    try:
        pidfd = os.pidfd_open(state.pid)
    except ProcessLookupError:
        return
    try:
        if not is_alive(state.pid, state.start_time):
            return
        import _signal
        import select

        _signal.pidfd_send_signal(pidfd, 9)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(10_000)
    except ProcessLookupError:
        pass
    finally:
        os.close(pidfd)


def destroy(store: Store, state: ContainerState,
            warn: Callable[[str], None] | None = None) -> None:
    """Kill whatever is left of the container, remove its cgroups, then its state.

    If a cgroup cannot be removed (or an image bundle unmounted), the state stays, so
    that a later delete can retry.
    """
    from pyruntime.cgroups import from_record

    cgroup = from_record(state.data.get("cgroup"))
    if cgroup is not None and cgroup.created:
        try:
            cgroup.kill_all(9)  # thaws a paused container, reaches processes outside its
        except OSError:  # pid namespace
            pass
    kill_and_wait(state)
    crash_point("delete:killed")
    if cgroup is not None:
        cgroup.destroy()
    crash_point("delete:cgroups")
    if state.data.get("image_bundle"):  # run --image: unmount, drop the upper layer
        from pyruntime.image.commands import delete_bundle

        delete_bundle(state.data["image_bundle"], remove_dir=True)
        crash_point("delete:bundle")
    store.remove(state.id)
    records = state.data.get("hooks") or {}
    if records.get("poststop"):  # after the container is gone; failures are only logged
        _poststop(records, state.id, state.data.get("bundle", ""),
                  state.data.get("annotations") or {}, warn)


def state_json(store: Store, state: ContainerState) -> dict:
    """The `state` verb's object: the runtime-spec's fields plus runc's extras."""
    status = store.status(state)
    return {
        "ociVersion": SPEC_VERSION,
        "id": state.id,
        "pid": state.pid if status != "stopped" else 0,
        "status": status,
        "bundle": state.data.get("bundle", ""),
        "rootfs": state.data.get("rootfs", ""),
        "created": state.data.get("created", ""),
        "owner": state.data.get("owner", ""),
        "annotations": state.data.get("annotations") or {},
    }
