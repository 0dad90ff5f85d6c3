"""Runtime and Container: the CLI's verbs as Python calls on one state root.

state, list, start, kill and delete run the verbs' own code in this process.  run, create
and exec need a process of their own, which becomes the parent of what it starts (the
container's init, the exec'd process) and can reap it: pyruntime/api/keeper.py, the CLI's
parser and verb handler in a child, which reports the outcome over a pipe.  Output is
captured in unlinked temporary files, never pipes: a container's daemons may keep its
stdio open long after its main process exited.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from pyruntime.api.errors import ContainerError, Result
from pyruntime.cli.table import GLOBAL_OPTIONS

DEFAULT_ROOT = next(o.default for o in GLOBAL_OPTIONS if o.dest == "root")  # the CLI's
_KEEPER_GRACE = 30.0  # seconds for a keeper to exit once its process is gone


def _keeper_command() -> list[str]:
    """`python -I -S` with exactly the import path this process found pyruntime on (as
    pyruntime/cli/launcher.py writes it for the CLI): no site, no .pth finders."""
    import site

    import pyruntime

    parent = os.path.dirname(os.path.dirname(os.path.abspath(pyruntime.__file__)))
    site_dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    boot = (f"import sys; sys.path[:0] = {[parent]!r}; sys.path += {site_dirs!r}; "
            "from pyruntime.api.keeper import main; main()")
    return [sys.executable, "-I", "-S", "-c", boot]


def _read_all(f: IO[bytes]) -> bytes:
    """The file's content, read with pread: the container shares its file offset."""
    chunks, offset = [], 0
    while True:
        chunk = os.pread(f.fileno(), 1 << 16, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)


class _Keeper:
    """A running keeper: its process and the read end of its report pipe."""

    def __init__(self, mode: str, argv: list[str], stdin: IO[bytes] | int,
                 stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.stdout, self.stderr = stdout, stderr
        read, write = os.pipe2(os.O_CLOEXEC)
        try:
            self.proc = subprocess.Popen(
                [*_keeper_command(), str(write), mode, *argv], stdin=stdin, stdout=stdout,
                stderr=stderr, pass_fds=(write,), start_new_session=True)
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
            if not isinstance(stdin, int):
                stdin.close()  # the keeper has its own copy
        self.ctl = os.fdopen(read, "rb", buffering=0)
        self.pending = b""  # read from the pipe, not yet a whole record
        self.exit_code: int | None = None

    def next(self, timeout: float | None = None) -> dict[str, Any]:
        """The next record; TimeoutError after *timeout* s; {} once the keeper is gone."""
        import json

        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.pending:
            if self.ctl.closed:
                return {}
            if deadline is not None:
                left = max(deadline - time.monotonic(), 0)
                if not select.select([self.ctl], [], [], left)[0]:
                    raise TimeoutError(f"still running after {timeout:.3g} s")
            chunk = self.ctl.read(4096)
            if not chunk:
                self.reap()
                return {}
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        record = json.loads(line)
        if "exit" in record:
            self.exit_code = record["exit"]
        return record

    def wait_exit(self, timeout: float | None = None) -> int:
        while self.exit_code is None:
            record = self.next(timeout)
            if not record:
                raise ContainerError(self.died())
        self.reap()
        return self.exit_code

    def died(self) -> str:
        """The line for a keeper that ended without a report (a bug, or it was killed)."""
        self.reap()
        tail = _read_all(self.stderr).decode(errors="replace").strip().splitlines()[-1:]
        return (f"pyruntime.api: the runtime process exited with status "
                f"{self.proc.returncode} without a result" + "".join(f": {t}" for t in tail))

    def reap(self, timeout: float = _KEEPER_GRACE) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self.ctl.closed:
            self.ctl.close()

    def outcome(self) -> dict[str, Any]:
        """The first record: an error raises ContainerError (after reaping the keeper)."""
        record = self.next()
        if not record:
            raise ContainerError(self.died())
        if "error" in record:
            self.reap()
            raise ContainerError(record["error"], record.get("code", 1))
        return record


def _stdin(input: bytes | None) -> IO[bytes] | int:
    if input is None:
        return subprocess.DEVNULL
    f = tempfile.TemporaryFile()
    f.write(input)
    f.seek(0)
    return f


class Runtime:
    """pyruntime on one state root (the CLI's --root; default: the CLI's default, which is
    $XDG_RUNTIME_DIR/pyruntime for a rootless caller).

    Containers made by create() are remembered here, so that their exit status (which
    only their parent can know) is known to wait(); close() reaps what is left of them.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        from pyruntime.rootless import state_root

        # the root the CLI's verbs would use: a rootless caller's default is under
        # $XDG_RUNTIME_DIR, as the CLI's (in-process verbs read self.root directly)
        given = os.fspath(root) if root is not None else DEFAULT_ROOT
        self.root = Path(state_root(given)).absolute()
        self._keepers: dict[str, _Keeper] = {}

    def __repr__(self) -> str:
        return f"Runtime({str(self.root)!r})"

    def _root_args(self) -> list[str]:
        return ["--root", str(self.root)]

    # -- in this process ------------------------------------------------------------------
    def _call(self, *args: str) -> int:
        """Run a verb's handler here, as the CLI would (its parser, its messages)."""
        from pyruntime.cli import lean
        from pyruntime.cli.main import Globals, failure_line

        argv = [*self._root_args(), *args]
        parsed = lean.parse(argv)
        if parsed is None:
            raise ContainerError(f"pyruntime.api: cannot parse {argv!r}", 2)
        module_name, func = parsed.verb.handler.split(":")
        module = __import__(module_name, fromlist=[func])
        try:
            return getattr(module, func)(Globals(parsed.globals), parsed.values) or 0
        except Exception as e:
            line = failure_line(parsed.verb.name, e)
            if line is None:
                raise
            raise ContainerError(*line) from None

    def _store(self):  # pyruntime.state.Store
        from pyruntime.state import Store

        return Store(str(self.root))

    def list(self) -> list[dict[str, Any]]:
        """The `list --format json` records: one state object per container."""
        from pyruntime.verbs.list import records

        return records(self._store())

    def get(self, container_id: str) -> Container:
        """The container *container_id*; ContainerError if it does not exist."""
        from pyruntime.errors import Failure

        try:
            self._store().load(container_id)
        except Failure as e:
            raise ContainerError(e.message, e.exit_code) from None
        return Container(self, container_id)

    # -- in a process of their own ------------------------------------------------------------
    def run(
        self,
        bundle: str | os.PathLike[str],
        id: str,
        args: Iterable[str] | None = None,
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> Result:
        """`run --bundle BUNDLE ID` in the foreground, output captured; the container is
        deleted when it exits.  *args* replace process.args for this run (config.json is
        rewritten, and restored afterwards).  A container that ran is a Result, whatever
        its status; ContainerError if the runtime failed.  *timeout*: seconds, then the
        container is killed and TimeoutError raised."""
        with _args_override(bundle, args):
            stdin = _stdin(input)
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                argv = [*self._root_args(), "run", "--bundle", os.fspath(bundle), id]
                keeper = _Keeper("run", argv, stdin, out, err)
                code = self._finish(keeper, timeout,
                                    lambda: self._call("kill", "--all", id, "KILL"))
                return Result(code, _read_all(out), _read_all(err))

    def _finish(self, keeper: _Keeper, timeout: float | None,
                stop: Callable[[], None]) -> int:
        """Wait for a run or exec keeper's exit record.  On a timeout (or an interrupt),
        *stop* kills what it started, and the keeper is reaped before the error goes up."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while keeper.exit_code is None:
                left = None if deadline is None else deadline - time.monotonic()
                record = keeper.next(left)
                if not record:
                    raise ContainerError(keeper.died())
                if "error" in record:
                    keeper.reap()
                    raise ContainerError(record["error"], record.get("code", 1))
            keeper.reap()
            return keeper.exit_code
        except BaseException:
            if keeper.proc.poll() is None:
                try:
                    stop()
                except (ContainerError, OSError):
                    pass
                keeper.reap()
            raise

    def create(
        self,
        bundle: str | os.PathLike[str],
        id: str,
        *,
        input: bytes | None = None,
    ) -> Container:
        """`create --bundle BUNDLE ID`: the container's init waits for start().  Its stdout
        and stderr go to files: Container.output()."""
        stdin = _stdin(input)
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        try:
            argv = [*self._root_args(), "create", "--bundle", os.fspath(bundle), id]
            keeper = _Keeper("create", argv, stdin, out, err)
            keeper.outcome()
        except BaseException:
            out.close()
            err.close()
            raise
        self._keepers[id] = keeper
        return Container(self, id)

    def close(self, timeout: float = _KEEPER_GRACE) -> None:
        """Reap the keepers of containers that are gone or stopped (waiting up to *timeout*
        for each to exit).  A container still alive keeps its keeper, its parent, which
        exits when it does; its exit status is then lost to this Runtime."""
        from pyruntime.errors import Failure

        store = self._store()
        for cid, keeper in list(self._keepers.items()):
            try:
                alive = store.status(store.load(cid)) != "stopped"
            except Failure:
                alive = False
            if not alive:
                keeper.reap(timeout)
            self._forget(cid)

    def _forget(self, container_id: str) -> None:
        keeper = self._keepers.pop(container_id, None)
        if keeper is not None:
            for f in (keeper.stdout, keeper.stderr, keeper.ctl):
                f.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Container:
    """One container under a Runtime's root.  As a context manager, its exit deletes the
    container (force), whatever happened."""

    def __init__(self, runtime: Runtime, id: str) -> None:
        self.runtime = runtime
        self.id = id

    def __repr__(self) -> str:
        return f"Container({self.id!r})"

    def state(self) -> dict[str, Any]:
        """The `state` verb's JSON object: id, pid, status, bundle..."""
        from pyruntime.container import state_json
        from pyruntime.errors import Failure

        store = self.runtime._store()
        try:
            return state_json(store, store.load(self.id))
        except Failure as e:
            raise ContainerError(e.message, e.exit_code) from None

    @property
    def status(self) -> str:
        return self.state()["status"]

    @property
    def pid(self) -> int:
        return self.state()["pid"]

    def start(self) -> None:
        """Let the init exec the container's process; ContainerError if that fails."""
        self.runtime._call("start", self.id)

    def kill(self, sig: str | int = "TERM", *, all: bool = False) -> None:
        """Signal the init (or, with *all*, every process of the container)."""
        self.runtime._call("kill", *(["--all"] if all else []), self.id, str(sig))

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the container's process to exit; its status as a shell reports it
        (128+N for signal N).  Known for containers this Runtime created (it is their
        parent's to know); for others, ContainerError once the process is gone.
        TimeoutError after *timeout* seconds."""
        keeper = self.runtime._keepers.get(self.id)
        if keeper is not None:
            return keeper.wait_exit(timeout)
        state = self.state()
        if state["pid"]:
            _wait_gone(state["pid"], timeout)
        raise ContainerError(f"container {self.id}: exit status unknown: its process was "
                             "not started by this Runtime")

    def output(self, stream: str = "stdout") -> bytes:
        """What the container (made by this Runtime's create) wrote so far to its stdout,
        or "stderr"."""
        keeper = self.runtime._keepers.get(self.id)
        if keeper is None:
            raise ContainerError(f"container {self.id}: output not captured: it was not "
                                 "created by this Runtime")
        return _read_all(keeper.stdout if stream == "stdout" else keeper.stderr)

    def exec(
        self,
        args: Iterable[str],
        env: Mapping[str, str] | Iterable[str] | None = None,
        cwd: str | None = None,
        user: str | int | None = None,
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> Result:
        """`exec` in the foreground, output captured: a Result whatever the process's
        status; ContainerError if it could not be exec'd (a missing binary...)."""
        flags: list[str] = []
        if cwd is not None:
            flags += ["--cwd", cwd]
        if env is not None:
            items = env.items() if isinstance(env, Mapping) else (e.partition("=")[::2]
                                                                  for e in env)
            for key, value in items:
                flags += ["--env", f"{key}={value}"]
        if user is not None:
            flags += ["--user", str(user)]
        stdin = _stdin(input)
        piddir = tempfile.mkdtemp(prefix="pyruntime-exec-")  # 0700: no one else's names
        pid_file = os.path.join(piddir, "pid")  # exec writes it once the process runs

        def stop() -> None:  # the exec'd process only, not the container
            with open(pid_file) as f:
                os.kill(int(f.read()), 9)

        try:
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
                argv = [*self.runtime._root_args(), "exec", *flags, "--pid-file", pid_file,
                        "--", self.id, *args]
                keeper = _Keeper("exec", argv, stdin, out, err)
                code = self.runtime._finish(keeper, timeout, stop)
                return Result(code, _read_all(out), _read_all(err))
        finally:
            import shutil

            shutil.rmtree(piddir, ignore_errors=True)

    def delete(self, force: bool = False) -> None:
        """`delete [--force]`; then reaps what this Runtime kept of it."""
        self.runtime._call("delete", *(["--force"] if force else []), self.id)
        keeper = self.runtime._keepers.get(self.id)
        if keeper is not None:
            try:
                keeper.wait_exit(_KEEPER_GRACE)
            except (TimeoutError, ContainerError):
                pass
            keeper.reap()
            self.runtime._forget(self.id)

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *_exc: object) -> None:
        from pyruntime.state import STATE_FILE

        try:
            self.delete(force=True)
        except ContainerError:
            if os.path.exists(os.path.join(self.runtime.root, self.id, STATE_FILE)):
                raise


def _wait_gone(pid: int, timeout: float | None) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise TimeoutError(f"pid {pid} still runs after {timeout} s")
    finally:
        os.close(fd)


class _args_override:
    """Replace process.args in BUNDLE/config.json for one run; restore the file after."""

    def __init__(self, bundle: str | os.PathLike[str], args: Iterable[str] | None) -> None:
        self.path = Path(bundle, "config.json")
        self.args = None if args is None else list(args)
        self.saved: bytes | None = None

    def __enter__(self) -> None:
        if self.args is None:
            return
        import json

        self.saved = self.path.read_bytes()
        config = json.loads(self.saved)
        config.setdefault("process", {})["args"] = self.args
        self.path.write_text(json.dumps(config, indent=2) + "\n")

    def __exit__(self, *_exc: object) -> None:
        if self.saved is not None:
            self.path.write_bytes(self.saved)

