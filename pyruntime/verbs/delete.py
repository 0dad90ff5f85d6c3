"""`delete [--force] ID`: remove a stopped (or created) container; --force kills it first.

An id whose state.json is missing or corrupt, the leftover of a runtime killed in the
middle of a verb, is cleared by pyruntime/leftover.py (with --force).
"""

from __future__ import annotations

from pyruntime.cli.main import Globals
from pyruntime.container import destroy
from pyruntime.errors import Failure, NotFound
from pyruntime.state import CorruptState, Store


def main(g: Globals, values: dict) -> int:
    store = Store(g.root)
    cid = values["container_id"]
    try:
        state = store.load(cid)
    except (NotFound, CorruptState) as e:
        from pyruntime import leftover

        if leftover.clear(store, cid, force=values["force"],
                          corrupt=isinstance(e, CorruptState), warn=g.log.warning):
            return 0
        if values["force"]:  # engines clean up ids a foreground run already removed
            return 0
        raise
    status = store.status(state)
    if status in ("running", "paused") and not values["force"]:
        raise Failure(f"cannot delete container {state.id} that is not stopped: {status}")
    destroy(store, state, warn=g.log.warning)
    return 0
