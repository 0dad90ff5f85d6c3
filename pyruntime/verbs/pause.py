"""`pause ID` / `resume ID`: freeze or thaw every process of the container (the cgroup
freezer: v1 freezer.state, v2 cgroup.freeze). `state` then says paused / running."""

from __future__ import annotations

from pyruntime.cgroups import of_container
from pyruntime.cli.main import Globals
from pyruntime.errors import Failure, NotRunning
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    store = Store(g.root)
    state = store.load(values["container_id"])
    status = store.status(state)
    if status not in ("running", "created"):  # runc: a paused one is "not running" too
        raise NotRunning(state.id)
    of_container(state).freeze()
    return 0


def resume(g: Globals, values: dict) -> int:
    store = Store(g.root)
    state = store.load(values["container_id"])
    if store.status(state) != "paused":
        raise Failure(f"container not paused: {state.id}")
    of_container(state).thaw()
    return 0
