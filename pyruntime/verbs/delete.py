"""`delete [--force] ID`: remove a stopped (or created) container; --force kills it first."""

from __future__ import annotations

from pyruntime.cli.main import Globals
from pyruntime.container import destroy
from pyruntime.errors import Failure, NotFound
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    store = Store(g.root)
    try:
        state = store.load(values["container_id"])
    except NotFound:
        if values["force"]:  # engines clean up ids a foreground run already removed
            return 0
        raise
    status = store.status(state)
    if status in ("running", "paused") and not values["force"]:
        raise Failure(f"cannot delete container {state.id} that is not stopped: {status}")
    destroy(store, state, warn=g.log.warning)
    return 0
