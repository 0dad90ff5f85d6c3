"""`state`: the container's state as JSON on stdout, nothing on stderr on success."""

from __future__ import annotations

import sys

from pyruntime.cli.main import Globals
from pyruntime.container import state_json
from pyruntime.jsonio import dumps
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    store = Store(g.root)
    state = store.load(values["container_id"])
    sys.stdout.write(dumps(state_json(store, state), indent=2) + "\n")
    return 0
