"""Turn a stored image into an OCI bundle whose rootfs is an overlay2 mount.

Why: containers of one image share its unpacked layers read-only (overlay lowerdirs)
and each gets only its own upperdir/workdir, so a second container unpacks nothing
and deleting a container removes just its upper layer.

Bundle layout::

    DIR/config.json   from a runc-spec-like base + the image config
                      (Entrypoint+Cmd -> args, Env, WorkingDir -> cwd, User)
    DIR/bundle.json   which image, which layers, the lowerdirs (top-most first)
    DIR/rootfs/       the overlay mount point (mount_rootfs / unmount_rootfs)
    DIR/upper/ DIR/work/   this container's writable layer

The overlay is mounted on the host with mount(2) through ctypes (option (a) of the
design); the lead may move it into the native plan later.  Long lowerdir lists: the
mount data is limited to one page; when absolute paths do not fit, the mount is made
after chdir into the layer store with short relative lowerdirs (``<hex>/diff``,
~69 bytes a layer: about 55 layers on 4 KiB pages); beyond that ImageError.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from pyruntime.errors import crash_point
from pyruntime.image import ImageError

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MNT_DETACH = 2
_MAX_ETC_FILE = 4 << 20


def default_spec() -> dict[str, Any]:
    """`pyruntime spec`'s default (runc's), with terminal false and a writable root: an
    image's container runs its program, not a shell on a terminal, and writes go to its
    upper layer."""
    from pyruntime.spec.default import default_spec as runtime_default

    spec = runtime_default()
    spec["process"]["terminal"] = False
    spec["root"]["readonly"] = False
    return spec


# -- reading files of the image without mounting it ------------------------------------


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(fd: int) -> bool:
    try:
        return os.getxattr(fd, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False


def read_image_file(lowerdirs_top_first: list[Path], relpath: str) -> bytes | None:
    """The content of ``relpath`` in the merged image, read from the layers (no mount).

    Never follows a symlink (a hostile image could point /etc/passwd at a host file):
    a symlink on the way counts as not found.  Honours whiteouts and opaque dirs.
    """
    parts = [p for p in relpath.split("/") if p]
    for layer in lowerdirs_top_first:
        fd = os.open(layer, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        stop = False
        try:
            for i, comp in enumerate(parts):
                try:
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    break
                if _is_whiteout(st) or stat.S_ISLNK(st.st_mode):
                    return None
                last = i == len(parts) - 1
                if last:
                    if not stat.S_ISREG(st.st_mode):
                        return None
                    ffd = os.open(comp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                    with os.fdopen(ffd, "rb") as f:
                        return f.read(_MAX_ETC_FILE)
                if not stat.S_ISDIR(st.st_mode):
                    return None
                nfd = os.open(
                    comp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
                os.close(fd)
                fd = nfd
                if _is_opaque(fd):
                    stop = True  # lower layers do not show below this dir
        finally:
            os.close(fd)
        if stop:
            return None
    return None


def _parse_colon_file(data: bytes | None) -> list[list[str]]:
    if not data:
        return []
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def resolve_user(user: str, lowerdirs_top_first: list[Path]) -> dict[str, Any]:
    """OCI process.user from an image's ``User`` ("name|uid[:group|gid]"), docker-style.

    Names are looked up in the image's /etc/passwd and /etc/group; a numeric uid takes
    its primary gid from /etc/passwd if listed there (else 0).  Supplementary groups:
    the /etc/group entries that list the user.
    """
    if not user:
        return {"uid": 0, "gid": 0}
    uspec, _, gspec = user.partition(":")
    passwd = _parse_colon_file(read_image_file(lowerdirs_top_first, "etc/passwd"))
    groups = _parse_colon_file(read_image_file(lowerdirs_top_first, "etc/group"))
    entry = None
    for row in passwd:
        if len(row) >= 4 and (row[0] == uspec or (uspec.isdigit() and row[2] == uspec)):
            entry = row
            break
    if uspec.isdigit():
        uid = int(uspec)
    elif entry is not None:
        uid = int(entry[2])
    else:
        raise ImageError(f"image user {uspec!r} not found in the image's /etc/passwd")
    gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
    if gspec:
        if gspec.isdigit():
            gid = int(gspec)
        else:
            for row in groups:
                if len(row) >= 3 and row[0] == gspec:
                    gid = int(row[2])
                    break
            else:
                raise ImageError(f"image group {gspec!r} not found in the image's /etc/group")
    out: dict[str, Any] = {"uid": uid, "gid": gid}
    if entry is not None and not gspec:
        extra = sorted(
            {
                int(r[2])
                for r in groups
                if len(r) >= 4 and r[2].isdigit() and entry[0] in r[3].split(",")
            }
            - {gid}
        )
        if extra:
            out["additionalGids"] = extra
    out["_home"] = entry[5] if entry is not None and len(entry) >= 6 and entry[5] else "/"
    return out


def image_config_to_spec(
    image_config: dict[str, Any], lowerdirs_top_first: list[Path], args: list[str] | None = None
) -> dict[str, Any]:
    """config.json for an image: the base spec with the image's process settings.

    ``args`` replaces the image's Cmd (the Entrypoint stays), as ``docker run IMAGE ARGS``.
    """
    cfg = image_config.get("config") or {}
    spec = default_spec()
    proc = spec["process"]
    entrypoint = list(cfg.get("Entrypoint") or [])
    cmd = list(args) if args else list(cfg.get("Cmd") or [])
    proc["args"] = entrypoint + cmd
    if not proc["args"]:
        raise ImageError("the image has no Entrypoint or Cmd: give the command to run")
    env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    user = resolve_user(str(cfg.get("User") or ""), lowerdirs_top_first)
    home = user.pop("_home", "/")
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    proc["env"] = env
    proc["cwd"] = cfg.get("WorkingDir") or "/"
    if not proc["cwd"].startswith("/"):
        proc["cwd"] = "/" + proc["cwd"]
    proc["user"] = user
    if cfg.get("Labels"):
        spec["annotations"] = {str(k): str(v) for k, v in cfg["Labels"].items()}
    return spec


# -- bundles -------------------------------------------------------------------------


def top_first_unique(layers: list[str]) -> list[str]:
    """The image's layers top-most first, each once: overlayfs refuses a lowerdir list
    naming one directory twice (ELOOP), and images do repeat a layer (the same empty
    layer after each ENV or WORKDIR of some builders).  Keeping only the top-most copy
    gives the same tree: that copy re-applies every path the lower ones hold."""
    seen: set[str] = set()
    out = []
    for lid in reversed(layers):
        if lid not in seen:
            seen.add(lid)
            out.append(lid)
    return out


def create_bundle(
    store: Any, name: str, bundle_dir: str | os.PathLike[str], args: list[str] | None = None
) -> dict[str, Any]:
    """Write DIR/config.json, DIR/bundle.json, and empty rootfs/ upper/ work/ for image ``name``.

    Unpacks nothing: the image must be loaded.  Returns the bundle.json content.
    """
    bdir = Path(bundle_dir).absolute()
    if (bdir / "bundle.json").exists() or (bdir / "config.json").exists():
        raise ImageError(f"{bdir}: already holds a bundle")
    # Under the store's lock from the layer check to the registration: a concurrent
    # prune either ran before (and the check sees what it removed) or sees the bundle.
    with store.lock():
        rec = store.get(name)
        for lid in rec["layers"]:
            if not store.has_layer(lid):
                raise ImageError(
                    f"image {name!r}: layer {lid} is missing from the store; load the image again"
                )
        lowers = [store.layer_diff(lid) for lid in top_first_unique(rec["layers"])]
        spec = image_config_to_spec(rec["config"], lowers, args)
        bdir.mkdir(parents=True, exist_ok=True)
        for sub in ("rootfs", "upper", "work"):
            (bdir / sub).mkdir(mode=0o755, exist_ok=True)
        crash_point("bundle:dirs")
        info = {
            "image": rec["name"],
            "manifest_digest": rec["manifest_digest"],
            "store": str(store.root),
            "layers": rec["layers"],
            "lowerdirs": [str(p) for p in lowers],
            "upperdir": "upper",
            "workdir": "work",
        }
        # bundle.json first: a kill from here on leaves a bundle `image unbundle` (or
        # `delete --force`) removes; before it, no file `image bundle` would refuse.  And
        # before the registration: prune drops registrations without one.
        _write_json(bdir / "bundle.json", info)
        crash_point("bundle:bundle.json")
        _write_json(bdir / "config.json", spec)
        crash_point("bundle:config.json")
        store.register_bundle(bdir, rec["name"], rec["layers"])
    crash_point("bundle:registered")
    return info


def _write_json(path: Path, doc: Any) -> None:
    """Whole or absent (temp file + rename): a kill leaves no half bundle.json."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.rename(tmp, path)


def _unescape_mountinfo(s: str) -> str:
    return s.encode().decode("unicode_escape") if "\\" in s else s


def is_mounted(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a mount point in our mount namespace."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4 and _unescape_mountinfo(fields[4]) == target:
                return True
    return False


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


def _check_option_path(p: str) -> None:
    if any(c in p for c in ",:\\\n"):
        raise ImageError(f"overlay paths may not contain ',', ':' or '\\': {p!r}")


def overlay_options(info: dict[str, Any], bundle_dir: Path) -> tuple[str, str | None]:
    """(mount data, directory to chdir into first or None), fitting into one page."""
    upper = str(bundle_dir / info["upperdir"])
    work = str(bundle_dir / info["workdir"])
    for p in [upper, work, *info["lowerdirs"]]:
        _check_option_path(p)
    tail = f",upperdir={upper},workdir={work},index=off"
    data = "lowerdir=" + ":".join(info["lowerdirs"]) + tail
    limit = os.sysconf("SC_PAGESIZE") - 1
    if len(data) <= limit:
        return data, None
    base = os.path.commonpath(info["lowerdirs"])
    rel = [os.path.relpath(p, base) for p in info["lowerdirs"]]
    data = "lowerdir=" + ":".join(rel) + tail
    if len(data) > limit:
        raise ImageError(
            f"{len(rel)} layers do not fit into one overlay mount "
            f"({len(data)} > {limit} bytes of options)"
        )
    return data, base


def mount_rootfs(bundle_dir: str | os.PathLike[str]) -> None:
    """Mount the bundle's overlay on DIR/rootfs (idempotent).  Needs root."""
    bdir = Path(bundle_dir).absolute()
    with open(bdir / "bundle.json") as f:
        info = json.load(f)
    target = bdir / "rootfs"
    if is_mounted(target):
        return
    for lower in info["lowerdirs"]:
        if not os.path.isdir(lower):
            raise ImageError(
                f"bundle {bdir}: layer {lower} is missing (pruned?); load the image again"
            )
    data, chdir_to = overlay_options(info, bdir)
    libc = _libc()
    old_cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if chdir_to else -1
    try:
        if chdir_to:
            os.chdir(chdir_to)
        rc = libc.mount(b"overlay", str(target).encode(), b"overlay", 0, data.encode())
        err = ctypes.get_errno()
    finally:
        if old_cwd >= 0:
            os.fchdir(old_cwd)
            os.close(old_cwd)
    if rc != 0:
        raise ImageError(f"mount overlay on {target}: {os.strerror(err)} (options: {data})")


def unmount_rootfs(bundle_dir: str | os.PathLike[str]) -> None:
    """Unmount the overlay from DIR/rootfs if mounted (lazily if busy)."""
    target = Path(bundle_dir).absolute() / "rootfs"
    libc = _libc()
    for _ in range(8):
        if not target.exists() or not is_mounted(target):
            return
        if libc.umount2(str(target).encode(), 0) != 0:
            err = ctypes.get_errno()
            if err == errno.EBUSY:
                if libc.umount2(str(target).encode(), MNT_DETACH) == 0:
                    continue
                err = ctypes.get_errno()
            raise ImageError(f"unmount {target}: {os.strerror(err)}")
    raise ImageError(f"unmount {target}: still mounted")


def delete_bundle(
    bundle_dir: str | os.PathLike[str], store: Any | None = None, remove_dir: bool = False
) -> None:
    """Unmount and remove the container's upper layer; shared image layers stay.

    Removes rootfs/ upper/ work/ bundle.json (and, with ``remove_dir``, config.json and
    the directory itself if then empty), and drops the store's registration.
    """
    bdir = Path(bundle_dir).absolute()
    if store is None and (bdir / "bundle.json").is_file():
        from pyruntime.image.store import Store

        with open(bdir / "bundle.json") as f:
            store = Store(json.load(f)["store"])
    unmount_rootfs(bdir)
    if is_mounted(bdir / "rootfs"):
        raise ImageError(f"{bdir}/rootfs is still mounted; not removing anything")
    for sub in ("upper", "work"):
        if (bdir / sub).exists():
            shutil.rmtree(bdir / sub)
    with contextlib.suppress(FileNotFoundError):
        (bdir / "rootfs").rmdir()
    with contextlib.suppress(FileNotFoundError):
        (bdir / "bundle.json").unlink()
    if store is not None:
        store.unregister_bundle(bdir)
    if remove_dir:
        with contextlib.suppress(FileNotFoundError):
            (bdir / "config.json").unlink()
        with contextlib.suppress(OSError):
            bdir.rmdir()
