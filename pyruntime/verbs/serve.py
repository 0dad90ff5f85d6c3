"""`serve`: run verbs for the `pyruntime` command in forks of one warm interpreter.

Not a runc verb: runc is a Go binary and starts in ~6 ms; a CPython start costs ~15 ms
before pyruntime's own imports, on every call a client makes.  With a server listening,
the `pyruntime` command (native/client/) hands each call to a worker forked from here;
without one it runs the Python CLI itself.  Both run the same code: see
pyruntime/served/.  Prints "ready <socket>" on stdout once it accepts calls.
"""

from __future__ import annotations

import os

from pyruntime.cli.main import Globals

SOCKET_NAME = "serve.sock"


def main(g: Globals, values: dict) -> int:
    from pyruntime.served.server import serve

    path = os.path.abspath(values["socket"] or os.path.join(g.root, SOCKET_NAME))

    def ready() -> None:
        print(f"ready {path}", flush=True)

    return serve(path, ready)
