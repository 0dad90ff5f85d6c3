"""The --log file: text (logrus-like) or JSON lines that containerd and conmon parse.

containerd shows the last `level == "error"` msg of a failed verb to its user, so
every failure goes here as well as to stderr.
"""

from __future__ import annotations

import os
import sys
import time


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class Log:
    """Writes records to the --log file (or stderr for debug without one)."""

    def __init__(self, path: str | None, fmt: str = "text", debug: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug

    def _write(self, level: str, msg: str) -> None:
        if self.fmt == "json":
            from pyruntime.jsonio import dumps

            line = dumps({"level": level, "msg": msg, "time": _now()})
        else:
            line = f'time="{_now()}" level={level} msg={_quote(msg)}'
        if self.path is None:
            if level == "debug":
                sys.stderr.write(line + "\n")
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def debug(self, msg: str) -> None:
        if self.debug_enabled:
            self._write("debug", msg)

    def warning(self, msg: str) -> None:
        if self.path is not None:
            self._write("warning", msg)
        else:
            sys.stderr.write(f"pyruntime: warning: {msg}\n")

    def error(self, msg: str) -> None:
        """Log an error to the file; the caller also prints it to stderr once."""
        if self.path is not None:
            self._write("error", msg)


def _quote(msg: str) -> str:
    if msg and all(c.isalnum() or c in "-_./:" for c in msg):
        return msg
    return '"' + msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
