"""The process pyruntime.api starts for a verb that needs one (run, create, exec).

It is the CLI in a child: the same parser (cli/lean.py) and the same verb handler, so the
container's processes have a parent of their own, as under a shell; but the outcome goes
back to the API over a pipe, as records, instead of only an exit status and a stderr line:

    {"error": LINE, "code": N}   the verb failed (LINE as the CLI prints it, after
                                 "pyruntime: "); nothing is left of it
    {"created": PID}             create: the init waits on the exec fifo
    {"exit": STATUS}             run, exec: the process exited; create: the init exited
                                 (the keeper is its parent and reaps it); 128+N for signal N

    python -m pyruntime.api.keeper CTL_FD MODE --root ROOT VERB ...   (MODE: run|create|exec)

Its stdin, stdout and stderr are the container's.
"""

from __future__ import annotations

import os
import sys


def _send(ctl: int, record: dict) -> None:
    from pyruntime.jsonio import dumps

    try:
        os.write(ctl, (dumps(record) + "\n").encode())
    except BrokenPipeError:  # the API let go of this container (Runtime.close)
        pass


def _status(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def serve(ctl: int, mode: str, argv: list[str]) -> int:
    """Run the verb of *argv*; report on *ctl*; returns the keeper's exit status."""
    from pyruntime.cli import lean
    from pyruntime.cli.main import Globals, failure_line

    parsed = lean.parse(argv)
    if parsed is None:
        _send(ctl, {"error": f"pyruntime.api: cannot parse {argv!r}", "code": 2})
        return 2
    g = Globals(parsed.globals)
    verb = parsed.verb.name
    module_name, func = parsed.verb.handler.split(":")
    try:
        module = __import__(module_name, fromlist=[func])
        code = getattr(module, func)(g, parsed.values) or 0
    except Exception as e:
        message, code = failure_line(verb, e) or (
            f"{verb}: internal error: {type(e).__name__}: {e}", 1)
        g.log.error(message)
        _send(ctl, {"error": message, "code": code})
        return code
    if mode == "create":
        from pyruntime.state import Store

        pid = Store(g.root).load(parsed.values["container_id"]).pid
        _send(ctl, {"created": pid})
        _, status = os.waitpid(pid, 0)
        code = _status(status)
    _send(ctl, {"exit": code})
    return 0


def main() -> None:
    ctl = int(sys.argv[1])
    os.set_inheritable(ctl, False)  # never into the container
    try:
        code = serve(ctl, sys.argv[2], sys.argv[3:])
    except KeyboardInterrupt:
        code = 130
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
    os._exit(code)


if __name__ == "__main__":
    main()
