"""`image load|pull|push|ls|inspect|bundle|unbundle|rm|prune`, and the bundle that
`run --image` makes.

The image store is the --image-root (pyruntime/image/store.py), never under --root. A
container run from an image gets its bundle (its upper layer) with the state, in
`<root>/images/containers/<id>`: outside its state dir (which `delete` removes flat),
ignored by the state store's ids(); the image store's prune keeps the layers of every
live bundle. Only these verbs and `run --image` import pyruntime.image (tarfile, gzip,
ctypes for the overlay mount); only pull and push import the HTTP client.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pyruntime.cli.main import Globals
from pyruntime.errors import Failure

if TYPE_CHECKING:
    from pyruntime.image.progress import Progress
    from pyruntime.image.registry import Registry
    from pyruntime.image.store import Store

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

    store = Store(g.image_root)
    with all_or_nothing(store):
        name = commands.load(g.image_root, values["reference"], values["name"])
    sys.stdout.write(name + "\n")
    return 0


@contextlib.contextmanager
def all_or_nothing(store: Store) -> Iterator[None]:
    """On failure, remove the layers and blobs that this verb added and no image uses."""
    before_layers, before_blobs = set(store.layer_ids()), set(store.blob_digests())
    try:
        yield
    except BaseException:
        if not store.root.is_dir():  # it failed before making the store: nothing to undo
            raise
        with store.lock():  # a load or pull holds it from its first layer to its record
            used_layers, used_blobs = store.used()
            for lid in set(store.layer_ids()) - before_layers - used_layers:
                shutil.rmtree(store.layer_path(lid), ignore_errors=True)
            for digest in set(store.blob_digests()) - before_blobs - used_blobs:
                with contextlib.suppress(FileNotFoundError):
                    store.blob_path(digest).unlink()
        raise


def _registry(values: dict, host: str, repository: str) -> Registry:
    """The client for one registry, with the credentials the options or auth file give."""
    from pyruntime.image.registry import (
        Registry,
        creds_from_authfile,
        default_authfile,
        parse_creds,
    )

    if values["creds"] and values["authfile"]:
        raise Failure("--creds and --authfile exclude each other")
    if values["creds"]:
        creds = parse_creds(values["creds"])
    else:
        path = values["authfile"] or default_authfile()
        creds = creds_from_authfile(path, host, repository, bool(values["authfile"])) \
            if path else None
    return Registry(host, tls_verify=values["tls_verify"] == "true", creds=creds)


def _progress(verb: str) -> Progress | None:
    if not sys.stdout.isatty():
        return None
    from pyruntime.image.progress import Progress

    return Progress(sys.stdout, verb)


def pull(g: Globals, values: dict) -> int:
    """`image pull docker://HOST[:PORT]/NAME[:TAG|@DIGEST]`: prints the image's name."""
    from pyruntime.image.pull import pull as pull_image
    from pyruntime.image.reference import parse_docker
    from pyruntime.image.store import Store

    ref = parse_docker(values["reference"])
    registry = _registry(values, ref.host, ref.repository)
    progress = _progress("pulling")
    with all_or_nothing(Store(g.image_root)):
        try:
            result = pull_image(g.image_root, ref, registry, progress=progress)
        finally:
            if progress:
                progress.finish()
    sys.stdout.write(result.name + "\n")
    return 0


def push(g: Globals, values: dict) -> int:
    """`image push NAME [docker://DEST]`: the stored blobs, then the manifest."""
    from pyruntime.image.push import push as push_image
    from pyruntime.image.reference import parse_docker

    dest = values["destination"] or "docker://" + values["name"]
    ref = parse_docker(dest)
    registry = _registry(values, ref.host, ref.repository)
    progress = _progress("pushing")
    try:
        digest = push_image(g.image_root, values["name"], ref, registry, progress=progress)
    finally:
        if progress:
            progress.finish()
    sys.stdout.write(digest + "\n")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def ls(g: Globals, values: dict) -> int:
    from pyruntime.image import commands

    rows = commands.ls(g.image_root)
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

    report = commands.inspect(g.image_root, values["name"])
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
        commands.bundle(g.image_root, values["name"], directory, args=args, mount=values["mount"])
    except BaseException:
        _discard(directory, remove_dir=not existed)
        raise
    sys.stdout.write(directory + "\n")
    return 0


def unbundle(g: Globals, values: dict) -> int:
    from pyruntime.image import commands
    from pyruntime.state import Store

    directory = os.path.abspath(values["dir"])
    run_bundle = os.path.dirname(directory) == os.path.dirname(
        container_bundle_dir(g.root, "x"))  # made by `run --image`, maybe in part
    if not os.path.isfile(os.path.join(directory, "bundle.json")) and not (
            run_bundle and os.path.isdir(directory)):
        raise Failure(f"{directory}: not a bundle made by `image bundle` (no bundle.json)")
    store = Store(g.root)
    for cid in store.ids():  # the overlay must not go from under a live container
        try:
            state = store.load(cid)
        except Failure:
            continue
        if state.data.get("bundle") == directory and store.status(state) != "stopped":
            raise Failure(f"{directory}: container {cid} uses it; delete the container first")
    if run_bundle:
        discard_run_bundle(directory)
    else:
        commands.delete_bundle(directory, remove_dir=True)
    return 0


def rm(g: Globals, values: dict) -> int:
    from pyruntime.image import commands

    commands.remove(g.image_root, values["name"])
    return 0


def prune(g: Globals, values: dict) -> int:
    from pyruntime.image import commands

    sys.stdout.write("".join(f"{lid}\n" for lid in commands.prune(g.image_root)))
    return 0


# -- run --image ---------------------------------------------------------------------------

def container_bundle_dir(root: str, container_id: str) -> str:
    from pyruntime.state import IMAGES_DIR

    return os.path.join(os.path.abspath(root), IMAGES_DIR, CONTAINERS_DIR, container_id)


def make_run_bundle(root: str, container_id: str, image: str, args: list[str] | None,
                    image_root: str | None = None) -> str:
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
        commands.bundle(image_root or root, image, directory, args=args, mount=True)
    except BaseException:
        _discard(directory, remove_dir=True)
        raise
    return directory


def discard_run_bundle(directory: str) -> None:
    """Remove a `run --image` bundle, whole or in part (a killed run leaves any prefix of
    make_run_bundle's steps): unmount, then the directory and all in it."""
    from pyruntime.image.bundle import is_mounted

    _discard(directory, remove_dir=True)
    if os.path.isdir(directory) and not is_mounted(os.path.join(directory, "rootfs")):
        shutil.rmtree(directory)
