"""`restore [OPTIONS] ID`: a container from a checkpoint (pyruntime/criu/); in the
foreground it waits for the restored init and exits with its status, as `run` does."""

from __future__ import annotations

import os

from pyruntime.cli.main import Globals
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    from pyruntime.container import destroy
    from pyruntime.criu.restore import restore

    if g.systemd_cgroup:  # never the cgroupfs driver behind the flag's back
        from pyruntime.errors import Failure

        raise Failure("restore: --systemd-cgroup is not supported by restore yet "
                      "(drop it: the container gets cgroupfs directories)")
    if not values["no_subreaper"] and not values["detach"]:
        _become_subreaper()  # the restored init's orphans come back to us, as in runc
    store = Store(g.root)
    state = restore(store, values["container_id"], values["bundle"], values, g.criu,
                    warn=g.log.warning)
    if values["detach"]:
        return 0
    _, status = os.waitpid(state.pid, 0)
    destroy(store, state, warn=g.log.warning, from_bundle=True)
    from pyruntime.foreground import exit_code

    return exit_code(status)


def _become_subreaper() -> None:
    import ctypes

    pr_set_child_subreaper = 36
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)
