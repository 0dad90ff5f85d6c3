"""`checkpoint`: dump a running container with CRIU, as runc does.

Without --leave-running (and --pre-dump) CRIU kills the dumped processes and the
container is deleted, its cgroups and state with it.
"""

from __future__ import annotations

import os

from pyruntime.criu import options
from pyruntime.criu.rpc import Swrk, check_features, failed, load_rpc
from pyruntime.errors import Failure
from pyruntime.state import ContainerState, Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def checkpoint(store: Store, state: ContainerState, values: dict, criu: str,
               warn: Callable[[str], None] | None = None) -> None:
    status = store.status(state)
    if status not in ("running", "paused"):
        raise Failure(f"cannot checkpoint container {state.id}: it is {status}, not running")
    from pyruntime.spec.load import load_bundle_config

    spec = load_bundle_config(state.data["bundle"])
    rpc = load_rpc()
    options.check(values)
    image, work = options.image_dirs(values, create=True)
    pre_dump = bool(values.get("pre_dump"))
    image_fd, work_fd = options.open_dir(image), options.open_dir(work)
    try:
        opts = rpc.criu_opts(images_dir_fd=image_fd, work_dir_fd=work_fd, pid=state.pid,
                             log_level=4, log_file="dump.log", root=state.data["rootfs"],
                             manage_cgroups=True, notify_scripts=True)
        options.common(rpc, values, opts)
        opts.leave_running = bool(values.get("leave_running"))
        if spec.process.terminal:
            opts.orphan_pts_master = True
        if values.get("parent_path"):
            opts.parent_img = values["parent_path"]
            opts.track_mem = True
        if pre_dump:
            opts.track_mem = True
        cgroup = _cgroup(state)
        if cgroup is not None:
            opts.freeze_cgroup = _freezer_dir(cgroup)
        if not pre_dump:  # as runc: a pre-dump only copies memory
            for key, val in options.external_mounts(spec, restoring=False,
                                                    init_pid=state.pid):
                opts.ext_mnt.add(key=key, val=val)
            _save_descriptors(state.pid, image)
        check_features(rpc, criu, "checkpoint",
                       [name for name, on in (("mem_track", pre_dump),
                                              ("lazy_pages", opts.lazy_pages)) if on])
        req = rpc.criu_req(type=rpc.PRE_DUMP if pre_dump else rpc.DUMP, opts=opts)
        with Swrk(criu, pass_fds=(image_fd, work_fd)) as swrk:
            resp = swrk.call(rpc, req)
    finally:
        os.close(image_fd)
        os.close(work_fd)
    if not resp.success:
        raise failed(f"checkpoint: criu {'pre-dump' if pre_dump else 'dump'}",
                     os.path.join(work, "dump.log"), resp)
    if not pre_dump and not opts.leave_running:
        from pyruntime.container import destroy

        destroy(store, state, warn=warn)


def _cgroup(state: ContainerState):  # cgroups.driver.Driver | None
    from pyruntime.cgroups import from_record

    return from_record(state.data.get("cgroup"))


def _freezer_dir(cgroup) -> str:
    """CRIU freezes the tree through this cgroup (v1 freezer or the v2 dir)."""
    return cgroup.paths.get("freezer") or cgroup.main_dir()


def _save_descriptors(pid: int, image: str) -> None:
    """What the init's fds 0-2 were ("pipe:[123]", "/dev/null"...): restore re-attaches
    pipes to its own caller's stdio by these names."""
    from pyruntime import jsonio

    names = []
    for fd in range(3):
        try:
            names.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            names.append("")
    with open(os.path.join(image, options.DESCRIPTORS), "w") as f:
        f.write(jsonio.dumps(names))
