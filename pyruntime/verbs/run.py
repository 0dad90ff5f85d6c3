"""`run`: create + start in one process; in the foreground, forward signals and pass the
container's exit status through (128+N when it was killed by signal N; both in
pyruntime/foreground.py, which exec shares)."""

from __future__ import annotations

import os

from pyruntime import rootless
from pyruntime.cli.main import Globals
from pyruntime.container import create, destroy, start
from pyruntime.errors import Failure, crash_point
from pyruntime.foreground import Foreground, exit_code
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    store = Store(g.root)
    detach = values["detach"]
    foreground = None if detach else Foreground()  # signals held until the init exists
    bundle, extra = _image_bundle(g, store, values)
    try:
        state = create(store, values["container_id"], bundle,
                       pid_file=values["pid_file"], no_pivot=values["no_pivot"],
                       preserve_fds=values["preserve_fds"], warn=g.log.warning,
                       debug=g.log.debug, console_socket=values["console_socket"],
                       foreground=not detach, extra=extra, reserved=bool(extra),
                       rootless=rootless.enabled(g.rootless),
                       systemd_cgroup=g.systemd_cgroup)
    except BaseException:
        if extra:  # from here on, destroy() removes the image bundle
            from pyruntime.verbs.image import discard_run_bundle

            discard_run_bundle(bundle)
            store.remove(values["container_id"])
        raise
    master = getattr(state, "console_master", -1)
    try:
        start(store, state, warn=g.log.warning)
    except BaseException:
        if master >= 0:
            os.close(master)
        destroy(store, state, warn=g.log.warning, from_bundle=True)
        raise
    crash_point("run:started")
    if foreground is None:
        return 0
    # master >= 0: process.terminal without a console socket, relayed here
    status = foreground.follow(state.pid, master)
    crash_point("run:exited")
    if not values["keep"]:
        destroy(store, state, warn=g.log.warning, from_bundle=True)
    return exit_code(status)


def _image_bundle(g: Globals, store: Store, values: dict) -> tuple[str, dict | None]:
    """`run --image NAME [--rm] ID [-- ARGS...]`: the bundle dir to create from, and what
    state.json records so that delete (or this run, on exit) removes the bundle."""
    args = values["args"][1:] if values["args"][:1] == ["--"] else values["args"]
    if values["rm"] and values["keep"]:
        raise Failure("run: --rm and --keep exclude each other")
    if values["rm"] and values["detach"]:
        raise Failure("run: --rm needs the foreground; `delete` removes a detached container")
    if not values["image"]:
        if args:
            raise Failure("run: a command after the id needs --image "
                          "(a bundle's config.json names the process)")
        return values["bundle"], None
    if values["bundle"] != ".":
        raise Failure("run: --image and --bundle exclude each other")
    cid = values["container_id"]
    # the state dir and its provisional record first (pyruntime/leftover.py): a run
    # killed while making the bundle leaves an id that `delete --force` clears
    store.reserve(cid)
    from pyruntime.container import provisional_record
    from pyruntime.verbs.image import container_bundle_dir, make_run_bundle

    extra = {"image_bundle": container_bundle_dir(g.root, cid)}
    try:
        store.save_provisional(cid, provisional_record(cid, "", None, extra))
        crash_point("run-image:reserved")
        bundle = make_run_bundle(g.root, cid, values["image"], args or None, g.image_root)
    except BaseException:
        store.remove(cid)
        raise
    crash_point("run-image:bundle")
    return bundle, extra
