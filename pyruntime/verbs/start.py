"""`start`: let a created container's init go on to execve the user's process."""

from __future__ import annotations

from pyruntime.cli.main import Globals
from pyruntime.container import start
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    store = Store(g.root)
    start(store, store.load(values["container_id"]), warn=g.log.warning)
    return 0
