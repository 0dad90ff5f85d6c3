"""Entry point: parse with the lean parser, fall back to click, run the verb, report errors.

Start-up cost matters here (clients run a verb per container operation), so this module
imports nothing heavy: click only for help and usage errors, each verb only its own needs.
"""

from __future__ import annotations

import os
import sys

from pyruntime.errors import Failure
from pyruntime.logs import Log

DEFAULT_IMAGE_ROOT = "/var/lib/pyruntime"


class Globals:
    """The global options every verb receives, and the log they write to."""

    def __init__(self, values: dict) -> None:
        from pyruntime.rootless import state_root

        self._root_option: str = values["root"]
        self._root: str = state_root(self._root_option)
        self._root_ready = False
        self.log_path: str | None = values["log"]
        self.log_format: str = values["log_format"]
        self.debug: bool = values["debug"]
        self.systemd_cgroup: bool = values["systemd_cgroup"]
        self.rootless: str = values["rootless"]
        self.criu: str = values.get("criu") or "criu"
        self.image_root_option: str | None = values.get("image_root")
        self.log = Log(self.log_path, self.log_format, self.debug)

    @property
    def root(self) -> str:
        """The state root (--root, or a rootless caller's default), made ready on first
        use by a verb that needs it (pyruntime/rootless.py prepare_root)."""
        if not self._root_ready:
            from pyruntime.rootless import prepare_root

            prepare_root(self._root_option, self._root)
            self._root_ready = True
        return self._root

    @property
    def image_root(self) -> str:
        """The image store: --image-root, else $PYRUNTIME_IMAGE_ROOT, else the default.

        Never under the state root: that is often a tmpfs (/run), and `delete` owns it."""
        path = os.path.abspath(self.image_root_option or os.environ.get("PYRUNTIME_IMAGE_ROOT")
                               or DEFAULT_IMAGE_ROOT)
        real, state = os.path.realpath(path), os.path.realpath(self._root)
        if real == state or real.startswith(state.rstrip("/") + "/"):
            raise Failure(f"--image-root {path}: must not be inside the state root {self._root}")
        return path


def main(argv: list[str] | None = None) -> int:
    """The console script and `python -m pyruntime`."""
    args = sys.argv[1:] if argv is None else argv
    from pyruntime.cli import lean

    parsed = lean.parse(args)
    if parsed is None:
        from pyruntime.cli.app import run_click

        return run_click(args)
    return dispatch(parsed.globals, parsed.verb.name, parsed.verb.handler, parsed.values)


def dispatch(global_values: dict, verb: str, handler: str, values: dict) -> int:
    """Run one verb's handler with errors turned into one line on stderr and in the log."""
    g = Globals(global_values)
    try:
        g.log.open()
    except Failure as e:  # nowhere to log it but stderr
        sys.stderr.write(f"pyruntime: {e.message}\n")
        return 1
    try:
        if g.systemd_cgroup:  # before any verb touches anything, as runc
            from pyruntime.cgroups import check_systemd

            check_systemd()
        module_name, func = handler.split(":")
        module = __import__(module_name, fromlist=[func])
        g.log.debug(f"{verb} {values}")
        return getattr(module, func)(g, values) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        line = failure_line(verb, e)
        if line is None:  # a bug: still one line, the traceback only with --debug
            if g.debug:
                import traceback

                traceback.print_exc()
            line = (f"{verb}: internal error: {type(e).__name__}: {e}", 1)
        return _report(g, *line)


def failure_line(verb: str, e: BaseException) -> tuple[str, int] | None:
    """The one line (without "pyruntime: ") and exit code that a verb's exception becomes;
    None for an exception that is a bug.  pyruntime.api raises the same lines."""
    if isinstance(e, Failure):
        return e.message, e.exit_code
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        return f"{verb}: {e.strerror or e}{where}", 1
    return None


def _report(g: Globals, message: str, code: int) -> int:
    try:
        g.log.error(message)
    except OSError:
        pass
    sys.stderr.write(f"pyruntime: {message}\n")
    return code
