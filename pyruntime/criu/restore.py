"""`restore`: a new container from a checkpoint, with CRIU, as runc does.

The container's state directory, its provisional record and its cgroups are made first,
as steps with an undo each (pyruntime/steps.py); `criu swrk` is put into the
cgroups (CRIU restores the tasks there: cg_root points at them) and restores the tree
as a sibling, so the restored init is this process's child (--restore-sibling), like the
init of `run`. CRIU needs the root to be a mount point whose parent is not overmounted:
the rootfs is bound onto <state dir>/criu-root in a mount namespace this process makes
for itself (restore always runs cold), so the host's mount table never sees it.
"""

from __future__ import annotations

import os
import time

from pyruntime import SPEC_VERSION, steps
from pyruntime.container import provisional_record, rfc3339_nano
from pyruntime.criu import options
from pyruntime.criu.rpc import Swrk, failed, load_rpc
from pyruntime.errors import Failure, crash_point
from pyruntime.state import ContainerState, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from pyruntime.cgroups.driver import Driver
    from pyruntime.spec.model import Spec

CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
MNT_DETACH = 2


def restore(store: Store, container_id: str, bundle: str, values: dict, criu: str,
            warn: Callable[[str], None] | None = None) -> ContainerState:
    """Restore and record the container; return its state (the init is our child).

    A failure undoes what was made, in reverse; a kill leaves a provisional record
    naming the cgroups (the restored tree is in them) for `delete --force`."""
    from pyruntime import cgroups, jsonio
    from pyruntime.spec.load import load_bundle_config

    store.dir(container_id)
    options.check(values)
    image, work = options.image_dirs(values, create=False)
    bundle = os.path.abspath(bundle)
    spec = load_bundle_config(bundle)
    linux = spec.linux
    rpc = load_rpc()
    try:
        with open(os.path.join(image, options.DESCRIPTORS), "rb") as f:
            descriptors = jsonio.loads(f.read())
    except (OSError, ValueError) as e:
        raise Failure(f"restore: {image}/{options.DESCRIPTORS}: cannot read it ({e}); "
                      "is this a checkpoint made by pyruntime or runc?") from None
    rootfs = os.path.realpath(os.path.join(bundle, spec.root.path if spec.root else "rootfs"))
    records: dict = {}
    if spec.hooks is not None:
        from pyruntime import hooks

        records = hooks.to_record(spec.hooks)
    cgroup = cgroups.for_container(linux.cgroups_path if linux else None, container_id)
    from pyruntime.cgroups.settings import plan_resources

    settings = plan_resources(cgroup, linux.resources if linux else None)  # before reserve
    criu_root = os.path.join(store.dir(container_id), "criu-root")
    unbind: list[Callable[[], None]] = []
    restored: dict = {}

    def reserve() -> None:
        store.reserve(container_id)
        crash_point("restore:reserved")

    def provisional() -> None:  # before the cgroups: pyruntime/leftover.py clears them
        store.save_provisional(container_id, provisional_record(container_id, bundle, cgroup))
        crash_point("restore:provisional")

    def make_cgroups() -> None:
        from pyruntime.cgroups.apply import make

        make(cgroup, settings, warn)
        crash_point("restore:cgroups")

    def destroy_cgroups() -> None:  # CRIU restores the tree into them: all of it goes
        try:
            cgroup.kill_all(9)
        except OSError:
            pass
        cgroup.destroy()

    def bind_root() -> None:
        os.mkdir(criu_root, 0o755)
        unbind.append(_bind_root_privately(rootfs, criu_root))

    def unbind_root() -> None:  # before the state dir's removal recurses into it
        while unbind:
            unbind.pop()()

    def save(pid: int) -> None:
        """At CRIU's post-restore notification (the tree is restored, not yet resumed),
        as runc updates its state there: the restored init is recorded before it runs."""
        from pyruntime.procfs import stat_fields

        fields = stat_fields(pid)
        if fields is None:
            raise Failure("restore: the restored init exited at once")
        state = ContainerState({
            "id": container_id,
            "pid": pid,
            "start_time": fields[1],
            "bundle": bundle,
            "rootfs": rootfs,
            "created": rfc3339_nano(time.time()),
            "owner": "",
            "annotations": spec.annotations,
            "oci_version": spec.oci_version or SPEC_VERSION,
            "cgroup": cgroup.to_record(),
            "hooks": records,
        })
        restored["pid"] = pid
        store.save(state)
        restored["state"] = state
        if values.get("pid_file"):
            from pyruntime.container import write_pid_file

            write_pid_file(values["pid_file"], pid)

    def criu_restore() -> None:
        pid = _criu_restore(rpc, criu, criu_root, image, work, values, spec, descriptors,
                            cgroup, records, container_id, bundle, save)
        restored["pid"] = pid
        if "state" not in restored:  # a CRIU that sent no post-restore
            save(pid)

    def kill() -> None:
        from pyruntime import children

        if restored.get("pid"):
            children.kill_and_reap(restored["pid"])

    def record() -> None:
        unbind_root()
        os.rmdir(criu_root)

    steps.run([
        steps.Step("reserve", reserve, lambda: store.remove(container_id)),
        steps.Step("provisional", provisional),
        steps.Step("cgroups", make_cgroups, destroy_cgroups),
        steps.Step("criu-root", bind_root, unbind_root),
        steps.Step("criu restore", criu_restore, kill),
        steps.Step("record", record),
    ])
    return restored["state"]


def _criu_restore(rpc: object, criu: str, criu_root: str, image: str, work: str,
                  values: dict, spec: Spec, descriptors: list, cgroup: Driver, records: dict,
                  container_id: str, bundle: str, on_restored: Callable[[int], None]) -> int:
    """Have `criu swrk`, put into the container's cgroups, restore the tree on criu_root;
    return its init's pid."""
    restored: dict = {}
    image_fd, work_fd = options.open_dir(image), options.open_dir(work)
    try:
        opts = rpc.criu_opts(images_dir_fd=image_fd, work_dir_fd=work_fd, log_level=4,
                             log_file="restore.log", root=criu_root, rst_sibling=True,
                             manage_cgroups=True, notify_scripts=True,
                             evasive_devices=True, orphan_pts_master=True)
        options.common(rpc, values, opts)
        for key, val in options.external_mounts(spec, restoring=True):
            opts.ext_mnt.add(key=key, val=val)
        for fd, name in enumerate(descriptors):
            if isinstance(name, str) and name.startswith("pipe:"):
                opts.inherit_fd.add(key=name, fd=fd)
        with Swrk(criu, pass_fds=(image_fd, work_fd), stdio=(0, 1, 2)) as swrk:
            cgroup.add_pid(swrk.pid)
            for ctrl, path in _cgroups_of(swrk.pid):
                opts.cg_root.add(ctrl=ctrl, path=path)
            req = rpc.criu_req(type=rpc.RESTORE, opts=opts)
            on_notify = _notifications(records, container_id, bundle, spec.annotations,
                                       values.get("console_socket"), restored, on_restored)
            resp = swrk.call(rpc, req, on_notify)
    finally:
        os.close(image_fd)
        os.close(work_fd)
    if not resp.success:
        raise failed("restore: criu restore", os.path.join(work, "restore.log"), resp)
    pid = resp.restore.pid or restored.get("pid", 0)
    if not pid:
        raise Failure("restore: the restored init exited at once")
    return pid


def _cgroups_of(pid: int) -> list[tuple[str, str]]:
    """(controllers, path) of each hierarchy the process is in: CRIU's cg_root."""
    out = []
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _id, ctrls, path = line.rstrip("\n").split(":", 2)
            out.append((ctrls, path))
    return out


def _bind_root_privately(rootfs: str, criu_root: str) -> Callable[[], None]:
    """Bind the rootfs on criu_root in a mount namespace of this process's own, so the
    host never sees the mount (and it dies with this process); return its undo.

    Unsharing here rather than in criu's child matters: CRIU opens the image and work
    dirs as /proc/<its peer>/fd/N, i.e. through this process, and mounts its cgroup yard
    in the work dir, which the kernel refuses (EINVAL) on a mount of another namespace."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def check(ret: int, what: str) -> None:
        if ret != 0:
            e = ctypes.get_errno()
            raise Failure(f"restore: {what}: {os.strerror(e)}")

    check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    check(libc.mount(rootfs.encode(), criu_root.encode(), None, MS_BIND | MS_REC, None),
          f"bind {rootfs} on {criu_root}")

    def undo() -> None:
        libc.umount2(criu_root.encode(), MNT_DETACH)

    return undo


def _notifications(records: dict, container_id: str, bundle: str, annotations: dict,
                   console_socket: str | None, restored: dict,
                   on_restored: Callable[[int], None]):
    """What runc does at CRIU's notify points: the prestart and createRuntime hooks once
    the namespaces exist, the pty master to the console socket, the state with the new
    pid once the tree is restored."""

    def on_notify(script: str, pid: int, fds: list[int]) -> None:
        if script == "setup-namespaces" and records:
            from pyruntime import hooks

            creating = hooks.state_for_hooks(container_id, "creating", pid, bundle,
                                             annotations)
            hooks.run(records, "prestart", creating, cwd=bundle)  # as runc: it chdirs there
            hooks.run(records, "createRuntime", creating, cwd=bundle)
        elif script == "orphan-pts-master" and fds:
            if console_socket is None:
                raise Failure("restore: the container has a terminal: give --console-socket")
            import socket

            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(console_socket)
                socket.send_fds(s, [b"/dev/ptmx"], [fds[0]])
        elif script == "post-restore":
            restored["pid"] = pid
            on_restored(pid)

    return on_notify
