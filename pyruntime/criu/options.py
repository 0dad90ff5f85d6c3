"""What CRIU must be told about a container, from its config and the verb's flags.

As runc does it: bind mounts (and, on cgroup v2, the cgroup mount) are external mounts
CRIU does not dump but expects to find again; a masked file is /dev/null bound over it;
the container's stdio pipes are re-attached to the restoring caller's fds by their
"pipe:[inode]" names (descriptors.json in the image directory).
"""

from __future__ import annotations

import os

from pyruntime.errors import Failure

DESCRIPTORS = "descriptors.json"
CG_MODES = {"soft": "SOFT", "full": "FULL", "strict": "STRICT", "ignore": "IGNORE"}
NS_FLAGS = {"network": 0x40000000}  # CLONE_NEWNET: runc's --empty-ns takes only network

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.spec.model import Spec


def is_bind(m) -> bool:  # spec.model.Mount
    return m.type == "bind" or any(o in ("bind", "rbind") for o in (m.options or []))


def external_mounts(spec: Spec, *, restoring: bool, init_pid: int = 0) -> list[tuple[str, str]]:
    """[(key, value)] of CRIU's ext_mnt, as runc declares them: keyed by the destination
    in the container; the value is the destination again when dumping, the host source
    when restoring.

    Bind mounts and the device nodes (the defaults and linux.devices: nodes bound from
    the host in a user namespace are mounts; CRIU ignores the keys of those that are
    not) are external. The cgroup mount is not: on cgroup v2 it is a real cgroup2 mount
    CRIU dumps and mounts again in the container's cgroup namespace, as runc leaves it.
    A masked directory is a tmpfs CRIU dumps like any other: only masked files (the
    init's view decides, through /proc/<init_pid>/root) are /dev/null binds."""
    from pyruntime.plan.devices import DEFAULT_DEVICES

    out = []
    for m in spec.mounts:
        if is_bind(m):
            out.append((m.destination, m.source if restoring else m.destination))
    masked = spec.linux.masked_paths if spec.linux else []
    if masked:
        if restoring:
            out.append(("/dev/null", "/dev/null"))
        else:
            out += [(p, "/dev/null") for p in masked
                    if not os.path.isdir(f"/proc/{init_pid}/root{p}")]
    devices = [d.path for d in (spec.linux.devices if spec.linux else [])]
    devices += [path for path, *_ in DEFAULT_DEVICES if path not in devices]
    out += [(path, path) for path in devices]
    return out


def check(values: dict) -> None:
    """Refuse bad --empty-ns and --manage-cgroups-mode values before anything is made."""
    for name in values.get("empty_ns") or []:
        if name not in NS_FLAGS:
            raise Failure(f"--empty-ns: {name!r}: only 'network' is supported (as runc)")
    mode = values.get("manage_cgroups_mode")
    if mode and mode not in CG_MODES:
        raise Failure(f"--manage-cgroups-mode: {mode!r}: must be one of " + ", ".join(CG_MODES))


def common(rpc, values: dict, opts) -> None:
    """The flags checkpoint and restore share (checked by check() first)."""
    check(values)
    opts.shell_job = bool(values.get("shell_job"))
    opts.tcp_established = bool(values.get("tcp_established"))
    opts.ext_unix_sk = bool(values.get("ext_unix_sk"))
    opts.file_locks = bool(values.get("file_locks"))
    opts.auto_dedup = bool(values.get("auto_dedup"))
    opts.lazy_pages = bool(values.get("lazy_pages"))
    empty = 0
    for name in values.get("empty_ns") or []:
        empty |= NS_FLAGS[name]
    if empty:
        opts.empty_ns = empty
    mode = values.get("manage_cgroups_mode")
    if mode == "ignore":
        opts.manage_cgroups = False
    elif mode:
        opts.manage_cgroups_mode = getattr(rpc, CG_MODES[mode])


def image_dirs(values: dict, *, create: bool) -> tuple[str, str]:
    """(--image-path, --work-path), absolute; runc's default image path is ./checkpoint,
    and the work path defaults to the image path."""
    image = os.path.abspath(values.get("image_path") or "checkpoint")
    work = os.path.abspath(values.get("work_path") or image)
    for path in (image, work):
        if create:
            os.makedirs(path, 0o700, exist_ok=True)
        elif not os.path.isdir(path):
            raise Failure(f"--image-path: {path}: no such directory")
    return image, work


def open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY)  # inheritable: CRIU gets it
