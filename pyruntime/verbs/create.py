"""`create`: set a container up and leave its init waiting for `start`. Prints nothing."""

from __future__ import annotations

from pyruntime import rootless
from pyruntime.cli.main import Globals
from pyruntime.container import create
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    create(Store(g.root), values["container_id"], values["bundle"],
           pid_file=values["pid_file"], no_pivot=values["no_pivot"],
           preserve_fds=values["preserve_fds"], warn=g.log.warning, debug=g.log.debug,
           console_socket=values["console_socket"], rootless=rootless.enabled(g.rootless),
           systemd_cgroup=g.systemd_cgroup)
    return 0
