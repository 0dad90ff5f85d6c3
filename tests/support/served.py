"""A `pyruntime serve` for tests: started, waited for ("ready" on its stdout), stopped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SOCKET_ENV = "PYRUNTIME_SERVE_SOCKET"


class Server:
    def __init__(self, workdir: Path) -> None:
        self.socket = workdir / "serve.sock"
        self.log = workdir / "serve.err"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pyruntime", "--root", str(workdir / "root"), "serve",
                 "--socket", str(self.socket)],
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
