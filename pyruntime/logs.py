"""The --log file: text (logrus-like) or JSON lines that containerd and conmon parse.

containerd shows the last `level == "error"` msg of a failed verb to its user, so
every failure goes here as well as to stderr.
"""

from __future__ import annotations

import os
import sys
import time

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class Log:
    """Writes records to the --log file (or stderr for debug without one)."""

    def __init__(self, path: str | None, fmt: str = "text", debug: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_enabled = debug
        self._fd: int | None = None

    def open(self) -> None:
        """Open the file now, as runc does at start-up: a path that cannot be written is
        the verb's error before anything else happens (Failure, naming the path)."""
        if self.path is None or self._fd is not None:
            return
        try:
            self._fd = os.open(self.path, _FLAGS, 0o644)
        except OSError as e:
            from pyruntime.errors import Failure

            text = os.strerror(e.errno) if e.errno else str(e)
            raise Failure(f"--log: open {self.path}: {text[:1].lower()}{text[1:]}") from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

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
        if self._fd is not None:
            os.write(self._fd, (line + "\n").encode())
            return
        fd = os.open(self.path, _FLAGS, 0o644)
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
