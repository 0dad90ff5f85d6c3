"""Drive the runtime's CLI as clients (containerd, podman) do: one process per verb."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyruntime.api

ENV_OVERRIDE = "PYRUNTIME_TEST_RUNTIME"
SERVED_ENV = "PYRUNTIME_TEST_SERVED"  # `make test-served`: every verb through `serve`


def client_binary() -> Path:
    """The `pyruntime` command (native/client/), which `make setup` puts in the venv."""
    return Path(sys.executable).parent / "pyruntime"


def served_suite() -> bool:
    return os.environ.get(SERVED_ENV, "") not in ("", "0")


def runtime_command() -> list[str]:
    """The runtime's argv prefix: `python -m pyruntime`; the `pyruntime` client when
    $PYRUNTIME_TEST_SERVED is set (conftest starts the server); or $PYRUNTIME_TEST_RUNTIME
    (e.g. "runc") to point the same tests at another runtime for comparison."""
    other = os.environ.get(ENV_OVERRIDE)
    if other:
        return shlex.split(other)
    if served_suite():
        return [str(client_binary())]
    return [sys.executable, "-m", "pyruntime"]


def using_other_runtime() -> bool:
    return bool(os.environ.get(ENV_OVERRIDE))


class Runtime:
    """The runtime CLI bound to a private state root.

    stdout and stderr are captured through files, never pipes: after `create` or
    `run --detach` the container keeps the runtime's stdio, and a pipe would make the
    caller wait for the container to exit.
    """

    def __init__(self, root: Path, workdir: Path, token: str | None = None) -> None:
        self.root = Path(root)  # the private state root passed as --root
        # the private image store passed as --image-root (pyruntime only)
        self.image_root = Path(workdir) / "image-root"
        self.workdir = Path(workdir)  # the test's tmp dir: the verbs' cwd, captured io
        self.token = token  # PYRUNTIME_TEST_TOKEN value in this test's containers' env
        self.iodir = self.workdir / "io"
        self.iodir.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(1)
        self._container_io: dict[str, tuple[Path, Path]] = {}
        self.api = pyruntime.api.Runtime(self.root)  # the Python API on the same root

    # -- argv ----------------------------------------------------------------------------
    def cmd(self, *args: str | os.PathLike[str]) -> list[str]:
        from support.cgroups import systemd_driver

        flags = ["--systemd-cgroup"] if systemd_driver() and "--systemd-cgroup" not in args else []
        images = [] if using_other_runtime() else ["--image-root", str(self.image_root)]
        return [*runtime_command(), "--root", str(self.root), *flags, *images,
                *map(os.fspath, args)]

    # -- one verb --------------------------------------------------------------------------
    def run(
        self,
        *args: str | os.PathLike[str],
        input: str | None = None,
        check: bool = False,
        timeout: float = 30,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdout: Path | None = None,
        stderr: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `RUNTIME --root ROOT *args`; returns a CompletedProcess with text stdout and
        stderr.  stdout/stderr: files to use (and keep) instead of fresh ones."""
        __tracebackhide__ = True
        n = next(self._seq)
        out_path = stdout or self.iodir / f"{n:03d}.out"
        err_path = stderr or self.iodir / f"{n:03d}.err"
        argv = self.cmd(*args)
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.run(
                argv,
                input=input,
                stdin=subprocess.DEVNULL if input is None else None,
                stdout=out,
                stderr=err,
                text=True,
                timeout=timeout,
                env=env,
                cwd=cwd or self.workdir,
            )
        result = subprocess.CompletedProcess(
            argv, proc.returncode, _read(out_path), _read(err_path)
        )
        if check and result.returncode != 0:
            raise AssertionError(describe(result))
        return result

    def popen(self, *args: str | os.PathLike[str], **kwargs: Any) -> subprocess.Popen[str]:
        """Start `RUNTIME --root ROOT *args` without waiting (stdin /dev/null, stdout and
        stderr pipes, text mode unless overridden)."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        kwargs.setdefault("text", True)
        kwargs.setdefault("cwd", self.workdir)
        return subprocess.Popen(self.cmd(*args), **kwargs)

    # -- conveniences ----------------------------------------------------------------------
    def run_bundle(
        self, bundle: os.PathLike[str] | str, cid: str = "ctr", *flags: str,
        check: bool = True, timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """`run --bundle B [flags] ID` in the foreground; the container's output is in
        .stdout.  check: raise (with stderr) unless the exit code is 0."""
        return self.run("run", "--bundle", bundle, *flags, cid, check=check, timeout=timeout)

    def create(
        self, bundle: os.PathLike[str] | str, cid: str = "ctr", *flags: str,
        check: bool = True, timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        """`create --bundle B [flags] ID`.  The container's stdout/stderr go to files kept
        for .output(ID) once it has run."""
        n = next(self._seq)
        out_path = self.iodir / f"{n:03d}-{_safe(cid)}.container.out"
        err_path = self.iodir / f"{n:03d}-{_safe(cid)}.container.err"
        self._container_io[cid] = (out_path, err_path)
        return self.run(
            "create", "--bundle", bundle, *flags, cid,
            check=check, timeout=timeout, stdout=out_path, stderr=err_path,
        )

    def output(self, cid: str, stream: str = "stdout") -> str:
        """What a container made by .create() wrote so far to its stdout (or "stderr").
        Includes anything the `create` verb itself wrote to that stream."""
        out_path, err_path = self._container_io[cid]
        return _read(out_path if stream == "stdout" else err_path)

    def start(self, cid: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("start", cid, check=check)

    def kill(
        self, cid: str, signal: str | None = None, *flags: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("kill", *flags, cid, *([signal] if signal else []), check=check)

    def delete(
        self, cid: str, force: bool = False, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.run("delete", *(["--force"] if force else []), cid, check=check)

    def state(self, cid: str) -> dict[str, Any]:
        """`state ID`, parsed; raises if it fails or stdout is not one JSON object."""
        __tracebackhide__ = True
        result = self.run("state", cid, check=True)
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(
                f"state {cid}: stdout is not JSON ({e}):\n{describe(result)}"
            ) from e

    def status(self, cid: str) -> str:
        return self.state(cid)["status"]

    def wait_status(self, cid: str, status: str, timeout: float = 10) -> dict[str, Any]:
        """Poll `state ID` until its status is *status*; returns that state."""
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(cid)
            if state["status"] == status:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"{cid}: status {state['status']!r}, waited for {status!r}")
            time.sleep(0.05)

    def ids(self) -> list[str]:
        """Container ids from `list --quiet` ([] if the verb fails)."""
        result = self.run("list", "--quiet")
        if result.returncode != 0:
            return []
        return [line.strip() for line in result.stdout.splitlines() if line.strip()]

    def state_dirs(self) -> list[str]:
        """Names of the directories under the state root (one per container); not
        ``images`` (the image store, with the bundles of `run --image` containers)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name != "images")


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"$ {shlex.join(result.args)}\nexit {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}"
    )


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _safe(cid: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in cid) or "empty"
