"""The one error type that reaches the user: a single line, and an exit code."""

from __future__ import annotations

import os

FAULT_ENV = "PYRUNTIME_FAULT"

class Failure(Exception):
    """A failure to report as one line on stderr (and in the --log file), then exit."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


def errno_text(err: int) -> str:
    """strerror as Go (so runc) prints it, lower-case: engines match "no such file or
    directory", "permission denied" in create/start errors to pick an exit code."""
    import os

    text = os.strerror(err)
    return text[:1].lower() + text[1:]


class NotFound(Failure):
    """The container id has no state. containerd matches the words 'does not exist'."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id} does not exist")


class NotRunning(Failure):
    """containerd matches the words 'container not running'."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"container not running: {container_id}")


def crash_point(step: str) -> None:
    """Die here, by SIGKILL, when PYRUNTIME_FAULT names `step`.

    The fault-injection tests (tests/test_crash.py) kill the runtime at each named step
    of each verb and check that `delete --force` still clears the id; one dict lookup
    when unset.
    """
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), 9)
