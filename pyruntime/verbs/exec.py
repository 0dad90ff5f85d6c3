"""`exec`: run a process in a running container.

`exec --process FILE.json [--detach] [--pid-file P] [--console-socket S] ID` (containerd,
podman) or `exec [-t] [--cwd D] [--env K=V] [--user U[:G]] [--cap CAP] ID CMD...`. In the
foreground it forwards signals and exits with the process's status (128+N when killed by
signal N); with --detach it returns once the process runs.
"""

from __future__ import annotations

import os

from pyruntime import children
from pyruntime.cli.main import Globals
from pyruntime.errors import Failure, crash_point
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
    detach = values["detach"]
    from pyruntime import console

    console.check(process.terminal, values["console_socket"], not detach)
    plan = ex.exec_plan(spec, process, f"/proc/{state.pid}/root", values["preserve_fds"])
    if spec.linux is not None and spec.linux.seccomp is not None:  # as runc: the container's
        from pyruntime import SPEC_VERSION, seccomp  # filter applies to exec'd processes too
        from pyruntime.seccomp.profile import build_profile

        seccomp.attach(plan, build_profile(spec.linux.seccomp), container_id=state.id,
                       bundle=state.data.get("bundle", ""), oci_version=SPEC_VERSION,
                       annotations=spec.annotations, debug=g.log.debug, warn=g.log.warning)

    foreground = None
    if not detach:  # signals held until the process exists
        from pyruntime.foreground import Foreground

        foreground = Foreground()
    tty = console.open_console(plan.terminal, values["console_socket"])
    pid, master = 0, -1
    try:
        plan.console_fd = tty.send_fd
        pid = ex.spawn_process(state, plan)
        crash_point("exec:started")
        master = tty.receive_master()  # sent before READY: -1 unless we relay it
        if values["pid_file"]:
            from pyruntime.container import write_pid_file

            write_pid_file(values["pid_file"], pid)
    except BaseException:
        if master >= 0:
            os.close(master)
        if pid:
            children.kill_and_reap(pid)
        raise
    finally:
        tty.close()
    if foreground is None:
        return 0
    from pyruntime.foreground import exit_code

    # master >= 0: -t without a console socket, relayed here as run does
    return exit_code(foreground.follow(pid, master))
