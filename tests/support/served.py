"""A `pyruntime serve` for tests: started, waited for ("ready" on its stdout), stopped."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SOCKET_ENV = "PYRUNTIME_SERVE_SOCKET"
TIMEOUT_ENV = "PYRUNTIME_SERVE_TIMEOUT_MS"  # the client's wait for a worker's answer


def stale_client(client: Path) -> str | None:
    """Why `client` cannot be served by a server of this package (None: it can).  Its
    build id is the package's when it was built: after an edit, `make setup` rebuilds it."""
    from pyruntime.served.buildid import package_hash

    if not client.is_file() or client.read_bytes()[:4] != b"\x7fELF":
        return f"{client} is not the native client: run `make setup`"
    m = re.search(rb"pyruntime-build-id=([0-9a-z]+)", client.read_bytes())
    if m is None or m.group(1).decode() != package_hash():
        return (f"{client} was built from another version of the package (its build id "
                "differs): run `make setup`, or every call runs cold")
    return None


class Server:
    def __init__(self, workdir: Path, python: list[str] | None = None) -> None:
        """`python`: how to run pyruntime's CLI (default: this interpreter's -m pyruntime)."""
        self.socket = workdir / "serve.sock"
        self.log = workdir / "serve.err"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [*(python or [sys.executable, "-m", "pyruntime"]), "--root",
                 str(workdir / "root"), "serve", "--socket", str(self.socket)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()  # blocks until ready (or the server died)
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"pyruntime serve did not start: {self.log.read_text()}")

    def env(self) -> dict[str, str]:
        return {**os.environ, SOCKET_ENV: str(self.socket)}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()

    def children(self) -> list[int]:
        """The server's children: its spare workers, and workers with a call in flight."""
        pid = self.proc.pid
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []
