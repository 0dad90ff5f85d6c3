"""The image verbs as plain functions: what the CLI (``pyruntime image ...`` and
``pyruntime run --image``) calls.  ``root`` is the image root (--image-root, e.g.
/var/lib/pyruntime), where the store lives.  Errors are raised as ImageError with a
message fit for the user.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pyruntime.errors import crash_point
from pyruntime.image import ImageError
from pyruntime.image.store import Store

__all__ = [
    "ImageError",
    "load",
    "ls",
    "inspect",
    "format_inspect",
    "bundle",
    "mount",
    "unmount",
    "delete_bundle",
    "remove",
    "prune",
]


def load(
    root: str | os.PathLike[str], ref: str, name: str | None = None, allow_devices: bool = False
) -> str:
    """``image load oci:DIR[:TAG]`` / ``oci-archive:FILE[:TAG]`` /
    ``docker-archive:FILE[:NAME:TAG]``; returns the image name."""
    return Store(root).load(ref, name, allow_devices=allow_devices).name


def ls(root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``image ls``: one dict per image (name, manifest digest, layer count, size)."""
    store = Store(root)
    out = []
    for rec in store.list():
        size = 0
        for lid in rec["layers"]:
            if store.has_layer(lid):
                size += int(store.layer_meta(lid).get("size", 0))
        out.append(
            {
                "name": rec["name"],
                "manifest_digest": rec["manifest_digest"],
                "config_digest": rec["config_digest"],
                "layers": len(rec["layers"]),
                "size": size,
                "created": rec["config"].get("created"),
                "loaded_at": rec.get("loaded_at"),
            }
        )
    return out


def inspect(root: str | os.PathLike[str], name: str) -> dict[str, Any]:
    """``image inspect NAME``: per-layer sizes, added/changed/removed, waste (see inspect.py)."""
    from pyruntime.image.inspect import inspect_image

    return inspect_image(Store(root), name)


def format_inspect(report: dict[str, Any]) -> str:
    """Text rendering of ``inspect()``'s result (``--format json`` prints the dict instead)."""
    from pyruntime.image.inspect import format_report

    return format_report(report)


def bundle(
    root: str | os.PathLike[str],
    name: str,
    dir: str | os.PathLike[str],
    args: list[str] | None = None,
    mount: bool = False,
) -> dict[str, Any]:
    """``image bundle NAME DIR``: write the bundle; with ``mount`` also mount its rootfs."""
    from pyruntime.image.bundle import create_bundle, mount_rootfs

    info = create_bundle(Store(root), name, dir, args)
    if mount:
        mount_rootfs(dir)
        crash_point("bundle:mounted")
    return info


def mount(dir: str | os.PathLike[str]) -> None:
    """Mount a bundle's overlay rootfs (before ``create``/``run``)."""
    from pyruntime.image.bundle import mount_rootfs

    mount_rootfs(dir)


def unmount(dir: str | os.PathLike[str]) -> None:
    """Unmount a bundle's overlay rootfs."""
    from pyruntime.image.bundle import unmount_rootfs

    unmount_rootfs(dir)


def delete_bundle(dir: str | os.PathLike[str], remove_dir: bool = False) -> None:
    """On container delete: unmount, drop the upper layer; the image layers stay shared."""
    from pyruntime.image.bundle import delete_bundle as _delete

    _delete(Path(dir), None, remove_dir=remove_dir)


def remove(root: str | os.PathLike[str], name: str) -> None:
    """Forget an image name (its layers go at the next prune)."""
    Store(root).remove(name)


def prune(root: str | os.PathLike[str]) -> list[str]:
    """``image prune``: remove layers no image (and no live bundle) uses; their ids."""
    return Store(root).prune()
