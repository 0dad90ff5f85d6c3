"""Helpers shared by the client suites (integration/containerd, podman, docker).

Run by `make integration` (integration/run.sh), never by `make test`. Root only.

- The runtime under test: $PYRUNTIME_INTEGRATION_RUNTIME (split like a shell line; e.g.
  "runc" to check the suite itself against runc), default <repo>/.venv/bin/pyruntime.
- Clients get a wrapper script, named `pyruntime`, that appends the argv it was given to a
  log (build/integration/<client>-argv.log, kept for reading) and execs the runtime,
  with `--root DIR` put first when a suite asks for it (podman never passes --root, and
  tests never use /run/pyruntime).
- $PYRUNTIME_INTEGRATION_SERVED=1 (`make integration-served`): a `pyruntime serve` for
  the session (integration/conftest.py), and the wrapper points the `pyruntime` client
  at it, so the clients' calls are served.
- The image: busybox-static from the host as an OCI archive, built offline
  (integration/common/busybox_image.py), once per session.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import busybox_image

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "integration"

IMAGE = busybox_image.DEFAULT_NAME


def runtime_command() -> list[str]:
    other = os.environ.get("PYRUNTIME_INTEGRATION_RUNTIME")
    if other:
        return shlex.split(other)
    return [str(REPO / ".venv" / "bin" / "pyruntime")]


SERVE_SOCKET = "PYRUNTIME_SERVE_SOCKET"  # set by integration/conftest.py when served


def make_wrapper(directory: Path, argv_log: Path, root: Path | None = None) -> Path:
    """A `pyruntime` script in `directory` that logs its argv and execs the runtime."""
    directory.mkdir(parents=True, exist_ok=True)
    argv_log.parent.mkdir(parents=True, exist_ok=True)
    target = shlex.join(runtime_command() + (["--root", str(root)] if root else []))
    socket = os.environ.get(SERVE_SOCKET)
    path = directory / "pyruntime"
    path.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> {shlex.quote(str(argv_log))}\n"
        + (f"export {SERVE_SOCKET}={shlex.quote(socket)}\n" if socket else "")
        + f'exec {target} "$@"\n'
    )
    path.chmod(0o755)
    return path


def run(argv: list[str], timeout: float = 90, check: bool = False,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a client command; stdout and stderr captured as text."""
    __tracebackhide__ = True
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                input=input,
                                stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"timed out after {timeout}s: {shlex.join(argv)}") from e
    if check and result.returncode != 0:
        raise AssertionError(describe(result))
    return result


def in_terminal(argv: list[str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run argv with a pseudo-terminal as its stdio (util-linux script), exit code kept."""
    return run(["script", "-qec", shlex.join(argv), "/dev/null"], timeout=timeout)


def check_run_with_terminal(argv: list[str]) -> None:
    """`argv`, a client's run with a terminal up to the command, runs `tty; exit 4` in a
    pseudo-terminal: the container's process has the container's first pts on its stdio,
    and its exit code comes back."""
    r = in_terminal([*argv, "sh", "-c", "tty; exit 4"])
    assert r.returncode == 4, describe(r)
    assert "/dev/pts/0" in r.stdout, describe(r)


def check_exec_with_terminal(argv: list[str]) -> None:
    """`argv`, a client's exec with a terminal up to the command, runs `tty; exit 6`: the
    process has a pts, and its exit code comes back. The sleep: containerd's shim takes the
    pty master only after `exec --detach` returns, so the output of a process that is
    already gone can be lost (seen once in ~60 runs here)."""
    r = in_terminal([*argv, "sh", "-c", "tty; sleep 0.5; exit 6"])
    assert r.returncode == 6, describe(r)
    assert "/dev/pts/" in r.stdout, describe(r)


def check_shim_argv(lines: list[list[str]]) -> None:
    """The argvs containerd's runc shim (docker's too) gave the runtime, for one container:
    `--root R --log BUNDLE/log.json --log-format json VERB ...`; create names the bundle
    (the log's directory) and a pid file; start; exec a --process, --detach, a pid file.
    The root and the log's path differ by client: the tests check those."""
    verbs: dict[str, list[str]] = {}
    for argv in lines:
        assert argv[2] == "--log" and argv[4:6] == ["--log-format", "json"], argv
        verbs.setdefault(argv[6], argv[7:])
    assert verbs["create"][:2] == ["--bundle", str(Path(lines[0][3]).parent)], verbs
    assert "--pid-file" in verbs["create"], verbs
    assert "start" in verbs, verbs
    assert verbs["exec"][0] == "--process" and "--detach" in verbs["exec"], verbs
    assert "--pid-file" in verbs["exec"], verbs


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return (f"$ {shlex.join(result.args)}\nexit {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}--- stderr ---\n{result.stderr}")


def parent_name(pid: int) -> str:
    """The comm of pid's parent."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    ppid = int(stat[stat.rindex(")") + 2:].split()[1])
    return Path(f"/proc/{ppid}/comm").read_text().strip()


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains `text` (a private temp path of ours)."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(name))
    return pids


def sigkill(pids: list[int]) -> None:
    """SIGKILL these processes (ours: see pids_mentioning); ones already gone are skipped."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_daemon(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM a client's daemon we started; SIGKILL it if it is still there after
    `grace` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def unmount_under(directory: Path) -> None:
    """Detach every mount below `directory` (ours: a private temp dir), deepest first."""
    prefix = str(directory).rstrip("/") + "/"
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    for point in sorted(set(points), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


CGROUP_MOUNT = Path("/sys/fs/cgroup")


def cgroup_dirs_named(name: str) -> set[Path]:
    """Directories called `name` in every cgroup hierarchy, down to four levels (the parent
    cgroups clients ask for: containerd's /<namespace>/<id>, podman's libpod_parent/...).
    Cgroups come and go while this walks (other tests): vanished ones are skipped."""
    found = set()
    base = str(CGROUP_MOUNT)
    for top, dirs, _files in os.walk(base):
        depth = top[len(base):].count("/")
        if os.path.basename(top) == name and depth >= 1:
            found.add(Path(top))
        if depth >= 5:
            dirs[:] = []
    return found


def remove_cgroups(dirs: set[Path]) -> None:
    """rmdir these cgroups and their (empty) children, deepest first; busy ones stay."""
    for top in dirs:
        below = [Path(t) for t, _d, _f in os.walk(top)]
        for d in sorted([*below, top], key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except OSError:
                pass


def remove_tree(directory: Path) -> None:
    unmount_under(directory)
    shutil.rmtree(directory, ignore_errors=True)




def new_name(prefix: str) -> str:
    """A container name no other test of the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
