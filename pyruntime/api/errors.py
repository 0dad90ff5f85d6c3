"""What pyruntime.api calls return or raise: a Result for a process that ran, a
ContainerError when the runtime failed."""

from __future__ import annotations

from dataclasses import dataclass

CONFIG_PREFIX = "config.json: "


@dataclass(frozen=True)
class Result:
    """A process that ran and exited: its status as a shell reports it (128+N when signal N
    killed it), and what it wrote."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class ContainerError(Exception):
    """The runtime failed: the container could not be created, started, signalled, exec'd...

    ``message`` is the line the CLI prints after "pyruntime: ", ``exit_code`` the CLI's
    exit status for it, ``path`` the JSON path in config.json the message names
    ("process.args"), or None.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.path = json_path(message)

    def __str__(self) -> str:
        return self.message


def json_path(message: str) -> str | None:
    """The path in "config.json: PATH: problem" (the form every config error has), or None
    for other lines ("config.json: not found in bundle ...")."""
    if not message.startswith(CONFIG_PREFIX):
        return None
    head, sep, _ = message[len(CONFIG_PREFIX):].partition(": ")
    if not sep or not head or " " in head:
        return None
    return head
