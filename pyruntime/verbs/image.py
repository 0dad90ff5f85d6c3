"""`image load|ls|inspect|bundle|unbundle|rm|prune`, and the bundle that `run --image` makes.

The image store is `<root>/images` (pyruntime/image/store.py). A container run from an
image gets its bundle in `<root>/images/containers/<id>`: outside its state dir (which
`delete` removes flat), ignored by the state store's ids() and by the image store's
prune (which keeps the layers of every live bundle). Only these verbs and `run --image`
import pyruntime.image (tarfile, gzip, ctypes for the overlay mount).
"""

from __future__ import annotations

import json
import os
import sys

from pyruntime.cli.main import Globals
from pyruntime.errors import Failure

CONTAINERS_DIR = "containers"  # under <root>/images


def strip_dashdash(args: list[str]) -> list[str]:
    """Trailing ARGS as both parsers give them: a "--" after the positionals stays in;
    one leading "--" only separates them from the options."""
    return args[1:] if args[:1] == ["--"] else args


def load(g: Globals, values: dict) -> int:
    """All or nothing: the store keeps the verified layers of a failed load (a cache for
    the next try); the verb removes those that this load added and no image uses."""
    from pyruntime.image import commands
    from pyruntime.image.store import Store

    store = Store(g.root)
    before = set(store.layer_ids())
    try:
        name = commands.load(g.root, values["reference"], values["name"])
    except BaseException:
        with store.lock():  # a load holds it from its first layer to its record
            used = {lid for rec in store.list() for lid in rec["layers"]}
            used |= store._bundle_layers()
            for lid in set(store.layer_ids()) - before - used:
                import shutil

                shutil.rmtree(store.layer_path(lid), ignore_errors=True)
        raise
    sys.stdout.write(name + "\n")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def ls(g: Globals, values: dict) -> int:
    from pyruntime.image import commands

    rows = commands.ls(g.root)
    out = sys.stdout
    if values["quiet"]:
        out.write("".join(f"{r['name']}\n" for r in rows))
    elif values["format"] == "json":
        out.write(json.dumps(rows) + "\n")
    else:
        table = [("NAME", "LAYERS", "SIZE", "MANIFEST", "LOADED")]
        table += [(r["name"], str(r["layers"]), _size(r["size"]),
                   r["manifest_digest"].partition(":")[2][:12], r.get("loaded_at") or "")
                  for r in rows]
        widths = [max(len(row[i]) for row in table) + 2 for i in range(4)]
        for row in table:
            out.write("".join(c.ljust(w) for c, w in zip(row, widths, strict=False))
                      + row[4] + "\n")
    return 0


def inspect(g: Globals, values: dict) -> int:
    from pyruntime.image import commands

    report = commands.inspect(g.root, values["name"])
    if values["format"] == "json":
        sys.stdout.write(json.dumps(report, indent=1) + "\n")
    else:
        sys.stdout.write(commands.format_inspect(report) + "\n")
    return 0


def _discard(directory: str, remove_dir: bool) -> None:
    """Undo a bundle made (maybe in part) by commands.bundle: unmount, upper, work,
    rootfs, bundle.json, config.json, the store's registration; the dir if asked."""
    from pyruntime.image import commands

    commands.delete_bundle(directory, remove_dir=remove_dir)
    if not remove_dir:
        try:
            os.unlink(os.path.join(directory, "config.json"))
        except FileNotFoundError:
            pass


def bundle(g: Globals, values: dict) -> int:
    from pyruntime.image import commands

    directory = os.path.abspath(values["dir"])
    if any(os.path.lexists(os.path.join(directory, n)) for n in ("config.json", "bundle.json")):
        raise Failure(f"{directory}: already holds a bundle")
    existed = os.path.lexists(directory)
    args = strip_dashdash(values["args"]) or None
    try:
        commands.bundle(g.root, values["name"], directory, args=args, mount=values["mount"])
    except BaseException:
        _discard(directory, remove_dir=not existed)
        raise
    sys.stdout.write(directory + "\n")
    return 0


def unbundle(g: Globals, values: dict) -> int:
    from pyruntime.image import commands
    from pyruntime.state import Store

    directory = os.path.abspath(values["dir"])
    if not os.path.isfile(os.path.join(directory, "bundle.json")):
        raise Failure(f"{directory}: not a bundle made by `image bundle` (no bundle.json)")
    store = Store(g.root)
    for cid in store.ids():  # the overlay must not go from under a live container
        try:
            state = store.load(cid)
        except Failure:
            continue
        if state.data.get("bundle") == directory and store.status(state) != "stopped":
            raise Failure(f"{directory}: container {cid} uses it; delete the container first")
    commands.delete_bundle(directory, remove_dir=True)
    return 0


def rm(g: Globals, values: dict) -> int:
    from pyruntime.image import commands

    commands.remove(g.root, values["name"])
    return 0


def prune(g: Globals, values: dict) -> int:
    from pyruntime.image import commands

    sys.stdout.write("".join(f"{lid}\n" for lid in commands.prune(g.root)))
    return 0


# -- run --image ---------------------------------------------------------------------------

def container_bundle_dir(root: str, container_id: str) -> str:
    from pyruntime.state import IMAGES_DIR

    return os.path.join(os.path.abspath(root), IMAGES_DIR, CONTAINERS_DIR, container_id)


def make_run_bundle(root: str, container_id: str, image: str, args: list[str] | None) -> str:
    """The bundle of `run --image`: config.json from the image, the overlay mounted.

    The directory is made with mkdir, so two runs of one id cannot share it; any failure
    removes all of it (mount, upper, work, config) before the error goes up.
    """
    from pyruntime.image import commands

    directory = container_bundle_dir(root, container_id)
    os.makedirs(os.path.dirname(directory), mode=0o700, exist_ok=True)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise Failure(f"container with id exists: {container_id} "
                      f"(its image bundle {directory} is there)") from None
    try:
        commands.bundle(root, image, directory, args=args, mount=True)
    except BaseException:
        _discard(directory, remove_dir=True)
        raise
    return directory


def discard_run_bundle(directory: str) -> None:
    _discard(directory, remove_dir=True)
