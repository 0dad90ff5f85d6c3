"""Operations on one container that several verbs share: create, start, signal, destroy."""

from __future__ import annotations

import os
import time

from pyruntime import SPEC_VERSION
from pyruntime.errors import Failure, NotRunning, crash_point
from pyruntime.state import FIFO_NAME, ContainerState, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def rfc3339_nano(t: float) -> str:
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
    to tell a create in progress from a dead one) and what it is about to make.  Served,
    also the client the creating worker acts for: a worker dies with its client
    (pyruntime/served/worker.py), so a creator whose client is gone is a dying one."""
    from pyruntime import caller
    from pyruntime.procfs import stat_fields

    me = os.getpid()
    fields = stat_fields(me)
    record = {"id": container_id, "creator": [me, fields[1] if fields else 0],
              "bundle": bundle, **(extra or {})}
    client = caller.caller_pid()
    if client != me:
        fields = stat_fields(client)
        record["client"] = [client, fields[1] if fields else 0]
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

    Validation happens before anything touches disk; after that, create is a list of
    steps with an undo each (pyruntime/create_steps.py): any failure undoes what was made
    (the state dir, the fifo, the cgroups, the init), so nothing is left.  Against a kill,
    which runs no undo: the provisional record names what is made before it is made
    (pyruntime/leftover.py clears it), and the init dies with this process until
    state.json is saved.  `reserved`: the caller (run --image) already made the state dir
    and its provisional record.  `rootless` (--rootless, pyruntime/rootless.py): go
    without the cgroups this caller may not make.
    """
    from pyruntime.create_steps import plan_create

    creation = plan_create(store, container_id, bundle, pid_file=pid_file, no_pivot=no_pivot,
                           preserve_fds=preserve_fds, warn=warn,
                           console_socket=console_socket, foreground=foreground, extra=extra,
                           debug=debug, rootless=rootless, reserved=reserved,
                           systemd_cgroup=systemd_cgroup)
    return creation.run()


def run_poststop(records: dict, container_id: str, bundle: str, annotations: dict,
                 warn: Callable[[str], None] | None, *, cwd: str | None) -> None:
    """The poststop hooks of a container that is gone; failures are only logged.
    cwd: theirs (None: the caller's; pyruntime/hooks.py says which, as runc)."""
    from pyruntime import hooks

    hooks.run_logged(records, "poststop",
                     hooks.state_for_hooks(container_id, "stopped", 0, bundle, annotations),
                     warn, cwd=cwd)


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

        bundle = state.data.get("bundle", "")
        hooks.run_logged(records, "poststart", hooks.state_for_hooks(
            state.id, "running", state.pid, bundle, state.data.get("annotations")), warn,
            cwd=bundle or None)  # runc runs them in `create`, from the bundle


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
            warn: Callable[[str], None] | None = None, *, from_bundle: bool = False) -> None:
    """Kill whatever is left of the container, remove its cgroups, then its state.

    If a cgroup cannot be removed (or an image bundle unmounted), the state stays, so
    that a later delete can retry.  from_bundle: the verb took --bundle (run, restore),
    so poststop hooks run in the bundle as runc's do; else in the caller's directory.
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
        bundle = state.data.get("bundle", "")
        in_bundle = from_bundle and bundle and not state.data.get("image_bundle")  # gone
        run_poststop(records, state.id, bundle, state.data.get("annotations") or {}, warn,
                     cwd=bundle if in_bundle else None)


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
