"""`checkpoint [OPTIONS] ID`: dump a running container with CRIU (pyruntime/criu/)."""

from __future__ import annotations

from pyruntime.cli.main import Globals
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    from pyruntime.criu.dump import checkpoint

    store = Store(g.root)
    state = store.load(values["container_id"])
    checkpoint(store, state, values, g.criu, warn=g.log.warning)
    return 0
