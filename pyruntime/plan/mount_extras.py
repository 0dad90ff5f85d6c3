"""What a mount needs beyond mount(2) flags: recursive attributes (rro, rnosuid, ...),
idmapped binds (idmap, ridmap, uidMappings/gidMappings), tmpcopyup, and overlay paths.

build.py makes the MountStep; `finish` adds these to it and refuses what cannot work,
naming the field.
"""

from __future__ import annotations

import os

from pyruntime.errors import Failure
from pyruntime.plan.mount_options import ParsedOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.plan.build import MountStep
    from pyruntime.spec.model import Spec

_OVERLAY_PATH_KEYS = ("upperdir", "workdir")


def finish(step: MountStep, spec: Spec, i: int, opts: ParsedOptions, is_bind: bool) -> None:
    """Fill the step's recursive attributes, idmap and tmpcopyup fields."""
    m = spec.mounts[i]
    where = f"config.json: mounts[{i}]"
    step.rec_attr_set, step.rec_attr_clr = opts.rec_set, opts.rec_clr
    if "tmpcopyup" in opts.extensions:
        if m.type != "tmpfs":
            raise Failure(f"{where}.options: tmpcopyup needs a tmpfs mount, not {m.type!r}")
        step.tmpcopyup = True
    # a tmpfs over an existing directory takes its mode, as runc does; an explicit mode=
    # wins (runc 1.1.5 chmods over it, which loses what the config asked for)
    if m.type == "tmpfs" and not any(o.startswith("mode=") for o in (step.data or "").split(",")):
        step.keep_dir_mode = True
    wants_idmap = bool({"idmap", "ridmap"} & opts.extensions)
    if not (wants_idmap or m.uid_mappings or m.gid_mappings):
        return
    if not is_bind:
        raise Failure(f"{where}: idmapped mounts are supported for bind mounts only")
    uid_maps, gid_maps = m.uid_mappings, m.gid_mappings
    if not (uid_maps or gid_maps):  # idmap with no mappings: the container's own
        linux = spec.linux
        uid_maps = linux.uid_mappings if linux else []
        gid_maps = linux.gid_mappings if linux else []
        if not (uid_maps and gid_maps):
            raise Failure(f"{where}.options: idmap needs mounts[{i}].uidMappings and "
                          "gidMappings, or a user namespace with mappings")
    elif not (uid_maps and gid_maps):
        missing = "gidMappings" if uid_maps else "uidMappings"
        raise Failure(f"{where}.{missing}: an idmapped mount needs both uidMappings and "
                      "gidMappings")
    step.idmap = (_map_text(uid_maps), _map_text(gid_maps))
    step.idmap_recursive = "ridmap" in opts.extensions


def _map_text(maps: list) -> str:
    # a mount's mapping is "containerID hostID size" in the mount's user namespace: the
    # kernel sees the file's owner (hostID) as containerID inside, like /proc/PID/uid_map
    return "".join(f"{mp.container_id} {mp.host_id} {mp.size}\n" for mp in maps)


def overlay_data(data: str | None, bundle: str) -> str | None:
    """lowerdir/upperdir/workdir given relative to the bundle become absolute."""
    if not data:
        return data
    out = []
    for item in data.split(","):
        key, sep, value = item.partition("=")
        if sep and key == "lowerdir":
            value = ":".join(_absolute(p, bundle) for p in value.split(":"))
        elif sep and key in _OVERLAY_PATH_KEYS:
            value = _absolute(value, bundle)
        out.append(f"{key}{sep}{value}")
    return ",".join(out)


def _absolute(path: str, bundle: str) -> str:
    return path if not path or path.startswith("/") else os.path.join(bundle, path)
