"""The foreground of `run` and `exec`: signals the runtime gets go to the container's
process, its terminal is relayed here when nobody else holds it, and the verb exits with
the process's status (128+N when a signal N killed it), as runc does."""

from __future__ import annotations

import _signal  # not signal: it imports enum (~8 ms); the C half has all we use
import os

from pyruntime import children

FORWARDED = (
    _signal.SIGHUP, _signal.SIGINT, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2,
    _signal.SIGALRM, _signal.SIGTERM, _signal.SIGCONT, _signal.SIGTSTP, _signal.SIGTTIN,
    _signal.SIGTTOU, _signal.SIGWINCH, _signal.SIGPIPE,
)


class Foreground:
    """Forwards FORWARDED from construction on.  Signals that arrive before the process
    exists (while it is made) are held, then delivered by follow()."""

    def __init__(self) -> None:
        self.pid = 0
        self.pending: list[int] = []
        for sig in FORWARDED:
            _signal.signal(sig, self._forward)

    def _forward(self, signum: int, _frame: object) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass
        else:
            self.pending.append(signum)

    def follow(self, pid: int, master: int = -1) -> int:
        """Forward to `pid` (the held signals first), relay its terminal if `master` >= 0
        (closed here), wait for it; its wait status."""
        self.pid = pid
        for sig in self.pending:
            os.kill(pid, sig)
        if master >= 0:
            from pyruntime.console import relay

            try:
                relay(master, pid)
            finally:
                os.close(master)
        _, status = children.waitpid(pid, 0)
        return status


def exit_code(status: int) -> int:
    """The verb's exit code for the process's wait status: its own, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
