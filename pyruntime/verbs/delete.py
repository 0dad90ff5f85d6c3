"""`delete [--force] ID`: remove a stopped (or created) container; --force kills it first.

An id whose state.json is missing or corrupt, the leftover of a runtime killed in the
middle of a verb, is cleared by pyruntime/leftover.py (with --force).
"""

from __future__ import annotations

from pyruntime.cli.main import Globals
from pyruntime.container import destroy
from pyruntime.errors import Failure, NotFound
from pyruntime.state import IMAGES_DIR, CorruptState, Store


def main(g: Globals, values: dict) -> int:
    store = Store(g.root)
    cid = values["container_id"]
    try:
        state = store.load(cid)
    except (NotFound, CorruptState) as e:
        from pyruntime import leftover

        cleared = leftover.clear(store, cid, force=values["force"],
                                 corrupt=isinstance(e, CorruptState), warn=g.log.warning)
        if values["force"]:  # engines clean up ids a foreground run already removed
            _orphan_image_bundle(g.root, cid)  # and a `run --image` bundle left without one
            return 0
        if cleared:
            return 0
        raise
    status = store.status(state)
    if status in ("running", "paused") and not values["force"]:
        raise Failure(f"cannot delete container {state.id} that is not stopped: {status}")
    destroy(store, state, warn=g.log.warning)
    return 0


def _orphan_image_bundle(root: str, container_id: str) -> bool:
    """A `run --image` killed before its state was saved leaves its bundle (maybe with
    the overlay mounted) and no state: `delete --force ID` removes it."""
    import os

    if container_id == IMAGES_DIR or not os.path.isdir(os.path.join(root, IMAGES_DIR)):
        return False
    from pyruntime.verbs.image import container_bundle_dir, discard_run_bundle

    directory = container_bundle_dir(root, container_id)
    if not os.path.isdir(directory):
        return False
    discard_run_bundle(directory)
    return True
