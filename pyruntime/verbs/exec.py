"""`exec`: run a process in a running container.

`exec --process FILE.json [--detach] [--pid-file P] [--console-socket S] ID` (containerd,
podman) or `exec [-t] [--cwd D] [--env K=V] [--user U[:G]] [--cap CAP] ID CMD...`. In the
foreground it forwards signals and exits with the process's status (128+N when killed by
signal N); with --detach it returns once the process runs.
"""

from __future__ import annotations

import os
import signal

from pyruntime.cli.main import Globals
from pyruntime.errors import Failure
from pyruntime.state import Store


def main(g: Globals, values: dict) -> int:
    from pyruntime import exec_process as ex

    store = Store(g.root)
    state = store.load(values["container_id"])
    ex.check_status(store, state, values["ignore_paused"])
    spec = ex.load_container_spec(state)
    if values["process"]:
        if values["command"]:
            raise Failure("exec: give either --process or a command, not both")
        process = ex.inherit(ex.load_process_file(values["process"]), spec.process)
    else:  # the container's own process, changed by the flags
        if spec.process is None:
            raise Failure("config.json: process: required to exec with flags")
        process = ex.process_from_flags(spec.process, values)
    if process.terminal or values["console_socket"]:
        raise Failure("exec: terminals (-t, --console-socket, process.terminal) are not "
                      "supported yet")
    plan = ex.exec_plan(spec, process, values["preserve_fds"])

    detach = values["detach"]
    forward = None
    if not detach:
        from pyruntime.verbs.run import FORWARDED, _Forwarder

        forward = _Forwarder()
        for sig in FORWARDED:
            signal.signal(sig, forward)
    pid = ex.spawn_process(state, plan)
    if values["pid_file"]:
        from pyruntime.container import write_pid_file

        try:
            write_pid_file(values["pid_file"], pid)
        except BaseException:
            _kill(pid)
            raise
    if forward is None:
        return 0
    forward.pid = pid
    for sig in forward.pending:
        os.kill(pid, sig)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
