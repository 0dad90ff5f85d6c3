"""An OCI bundle on disk: ``config.json`` (kept as a dict in ``.config``) and ``rootfs/``."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()
"""Use as a value in deep_merge changes (and Bundle config changes) to remove that key."""


def deep_merge(base: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of *base* with *changes* merged in: dicts merge key by key, recursively; any
    other value (lists included) replaces the old one; the value DELETE removes the key."""
    result = copy.deepcopy(base)
    for key, value in (changes or {}).items():
        if value is DELETE:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def busybox_config(args: list[str] | tuple[str, ...] = ("sh",)) -> dict[str, Any]:
    """`pyruntime spec`'s config (runc's defaults) for a test: process.terminal false (the
    output is captured), root.readonly false, process.args *args*."""
    from pyruntime.spec.default import default_spec

    config = default_spec()
    config["process"]["terminal"] = False
    config["process"]["args"] = list(args)
    config["root"]["readonly"] = False
    return config


class Bundle(os.PathLike):
    """A bundle directory.  Path-like; ``.config`` is the dict: change it, then ``.write()``."""

    def __init__(self, path: str | os.PathLike[str], config: dict[str, Any] | None = None
                 ) -> None:
        self.path = Path(path).absolute()
        if config is None:
            config = json.loads(self.config_path.read_text())
        self.config = config

    @classmethod
    def busybox(
        cls,
        path: str | os.PathLike[str],
        args: list[str] | tuple[str, ...] | None = None,
        *,
        template: str | os.PathLike[str] | None = None,
        config: dict[str, Any] | None = None,
        **changes: Any,
    ) -> Bundle:
        """Make *path* (new) a bundle with a busybox-static rootfs, and write its config.

        *config*: the base (default: busybox_config()); *args* set process.args;
        *changes* are deep-merged into the config (``hostname="x"``,
        ``process={"cwd": "/tmp"}``).  *template*: a rootfs made by build_busybox_rootfs to
        clone with hard links (fast; the clone must not modify files in place) instead of
        building one.
        """
        from pyruntime.api.rootfs import build_busybox_rootfs, clone_rootfs

        path = Path(path)
        path.mkdir()
        if template is not None:
            clone_rootfs(Path(template), path / "rootfs")
        else:
            build_busybox_rootfs(path / "rootfs")
        config = busybox_config() if config is None else copy.deepcopy(config)
        if args is not None:
            config["process"]["args"] = list(args)
        return cls(path, deep_merge(config, changes)).write()

    @classmethod
    def from_image(
        cls,
        name: str,
        path: str | os.PathLike[str],
        *,
        image_root: str | os.PathLike[str] | None = None,
        args: list[str] | None = None,
    ) -> Bundle:
        """A bundle of the image *name* loaded into the image store at *image_root*
        (default as the CLI's: $PYRUNTIME_IMAGE_ROOT, else /var/lib/pyruntime), as
        `image bundle --mount NAME PATH` makes it: config.json from the image, rootfs an
        overlay mount.  remove() unmounts and removes it."""
        from pyruntime.api.errors import ContainerError
        from pyruntime.cli.main import DEFAULT_IMAGE_ROOT, failure_line
        from pyruntime.image import commands

        directory = Path(path).absolute()
        existed = directory.exists()
        store = image_root or os.environ.get("PYRUNTIME_IMAGE_ROOT") or DEFAULT_IMAGE_ROOT
        try:
            commands.bundle(store, name, directory, args=args, mount=True)
        except Exception as e:
            commands.delete_bundle(directory, remove_dir=not existed)
            line = failure_line("image bundle", e)
            if line is None:
                raise
            raise ContainerError(*line) from None
        return cls(directory)

    def remove(self) -> None:
        """Remove a bundle made by from_image (unmount, drop its upper layer)."""
        from pyruntime.image import commands

        commands.delete_bundle(self.path, remove_dir=True)

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def update(self, **changes: Any) -> Bundle:
        """Deep-merge *changes* into the config and write it."""
        return self.write(deep_merge(self.config, changes))

    def write(self, config: dict[str, Any] | None = None) -> Bundle:
        """Write ``.config`` (or *config*, which becomes ``.config``) to config.json."""
        if config is not None:
            self.config = config
        self.config_path.write_text(json.dumps(self.config, indent=2) + "\n")
        return self

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r})"
