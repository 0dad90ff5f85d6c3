"""`create`: set a container up and leave its init waiting for `start`. Prints nothing."""

from __future__ import annotations

from pyruntime.cli.main import Globals
from pyruntime.container import create
from pyruntime.errors import Failure
from pyruntime.state import Store


def check_supported(values: dict) -> None:
    """Refuse options that this runtime cannot honour yet, instead of ignoring them."""
    if values.get("console_socket"):
        raise Failure("--console-socket: terminals are not supported yet")


def main(g: Globals, values: dict) -> int:
    check_supported(values)
    create(Store(g.root), values["container_id"], values["bundle"],
           pid_file=values["pid_file"], no_pivot=values["no_pivot"],
           preserve_fds=values["preserve_fds"])
    return 0
