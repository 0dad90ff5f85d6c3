"""`pyruntime serve` when things go wrong: dead workers, a server that does not answer,
another build, a caller with fewer privileges, a --socket that is not a socket.

The observable for "served or cold": `create --pid-file` leaves init forked by the
process that ran the verb: the `pyruntime` client when served (it forks stage1 and init
from the worker's plan), the Python interpreter when the client ran the CLI cold.
"""

from __future__ import annotations

import os
import shutil
import signal
import site
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pyruntime
from support import Runtime
from support.runtime import client_binary
from support.served import SOCKET_ENV, TIMEOUT_ENV, Server, stale_client

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]

CLIENT = client_binary()
SPARES = 2  # pyruntime/served/server.py


def _wait_until(cond, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.05)


def _require_fresh_client() -> None:
    stale = stale_client(CLIENT)
    if stale:
        pytest.fail(stale)


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this test's own: these tests kill its workers."""
    _require_fresh_client()
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


def _through(runtime: Runtime, socket: Path, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    monkeypatch.setenv(SOCKET_ENV, str(socket))
    # a loaded machine must not turn a served call cold (the tests check which it was);
    # tests of the timeout itself set a short one
    monkeypatch.setenv(TIMEOUT_ENV, "60000")
    root = str(runtime.root)
    runtime.cmd = lambda *args: [str(CLIENT), "--root", root, *map(os.fspath, args)]
    return runtime


@pytest.fixture
def served(runtime: Runtime, server: Server, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    return _through(runtime, server.socket, monkeypatch)


def _create_forked_by(rt: Runtime, bundle, tmp_path: Path, cid: str,
                      wrapper: list[str] = ()) -> str:
    """`create` (under `wrapper`); the realpath of the executable that forked init."""
    pid_file = tmp_path / f"{cid}.pid"
    err = tmp_path / f"{cid}.err"  # a file: the created container keeps the runtime's stdio
    with open(err, "w") as f:
        r = subprocess.run([*wrapper, *rt.cmd("create", "--bundle", str(bundle), "--pid-file",
                                              str(pid_file), cid)],
                           stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=60)
    assert r.returncode == 0, err.read_text()
    exe = os.path.realpath(f"/proc/{int(pid_file.read_text())}/exe")
    rt.delete(cid, force=True)
    return exe


SERVED = os.path.realpath(CLIENT)
COLD = os.path.realpath(sys.executable)


# -- dead workers ----------------------------------------------------------------------


def test_killed_spares_are_replaced(served: Runtime, server: Server, bundle,
                                    tmp_path: Path) -> None:
    """SIGKILL every spare worker, three times over: each time the server forks new ones
    and the next call is served (before, the server never noticed, and every call waited
    in the listen backlog for ever)."""
    b = bundle(("true",))
    for round_ in range(3):
        _wait_until(lambda: len(server.children()) == SPARES, "the spares are forked")
        spares = server.children()
        for pid in spares:
            os.kill(pid, signal.SIGKILL)
        _wait_until(lambda spares=spares: not set(spares) & set(server.children()),
                    "the killed spares are reaped")
        assert _create_forked_by(served, b, tmp_path, f"k{round_}") == SERVED
    assert server.proc.poll() is None


@pytest.mark.parametrize("verb", ["run", "events"])
def test_worker_killed_mid_call_says_so(served: Runtime, server: Server, bundle,
                                        tmp_path: Path, verb: str) -> None:
    """A worker killed while the call is under way - the client waiting for its container
    (run) or for the worker's next record (events) - : the client says so on one line and
    exits 1, at once (not when the container exits), and runs nothing again."""
    b = bundle(("sh", "-c", "echo started; exec sleep 1000"))
    if verb == "run":
        argv = ["run", "--bundle", str(b), "w1"]
    else:
        served.run("run", "--detach", "--bundle", str(b), "w1", check=True)
        argv = ["events", "--interval", "100ms", "w1"]
    cwd = tmp_path / "caller"  # the worker takes the caller's cwd: how it is found
    cwd.mkdir()
    err = tmp_path / "call.err"
    with open(err, "w") as f:
        proc = served.popen(*argv, stdout=subprocess.PIPE, stderr=f, cwd=cwd)
    try:
        assert proc.stdout.readline() != ""  # under way: the container's or the stats line
        workers = [pid for pid in server.children()
                   if os.path.realpath(f"/proc/{pid}/cwd") == str(cwd.resolve())]
        assert len(workers) == 1, workers
        os.kill(workers[0], signal.SIGKILL)
        assert proc.wait(timeout=60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        served.delete("w1", force=True)
        proc.stdout.close()
    lines = err.read_text().splitlines()
    assert len(lines) == 1 and "the server's worker died" in lines[0], lines
    _wait_until(lambda: len(server.children()) == SPARES, "the spares are back")


# -- a server that does not answer -------------------------------------------------------

FAKE_SERVER = textwrap.dedent("""
    import array, os, socket, sys, time
    mode, path, log = sys.argv[1:4]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.listen(0 if mode == "full" else 8)
    held = []
    if mode == "full":  # a connection of its own fills the backlog: connect() blocks
        filler = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        filler.connect(path)
        held.append(filler)
    print("ready", flush=True)
    while True:
        if mode in ("backlog", "full"):  # listens, never accepts
            time.sleep(3600)
        conn, _ = s.accept()
        data, anc, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(4 * 250))
        fds = array.array("i")
        for _level, _kind, payload in anc:
            fds.frombytes(payload[:len(payload) - len(payload) % 4])
        kind = data.split(bytes(1))[0].decode()
        with open(log, "a") as f:
            f.write(f"{kind} fds={len(fds)}\\n")
        if mode == "close":  # takes the call, then goes away without a word
            conn.close()
            for fd in fds:
                os.close(fd)
        else:  # "silent": keeps the call (and any fd it was given) for ever
            held.append((conn, fds))
""")


@pytest.mark.parametrize("mode", ["full", "backlog", "silent", "close"])
def test_a_server_that_does_not_answer_is_run_cold(runtime: Runtime, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   mode: str) -> None:
    """A server whose backlog is full, that never accepts, accepts and never answers, or
    accepts and closes: the call runs cold after the client's timeout, and nothing holds
    the caller's fds (its stdout pipe reaches EOF when the client exits; before, the
    unanswered HELLO carried them)."""
    sock, log = tmp_path / "fake.sock", tmp_path / "fake.log"
    fake = subprocess.Popen([sys.executable, "-I", "-c", FAKE_SERVER, mode, str(sock),
                             str(log)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert fake.stdout.readline() == "ready\n"
        served = _through(runtime, sock, monkeypatch)
        monkeypatch.setenv(TIMEOUT_ENV, "1000")
        r = served.popen("list", "--quiet")  # stdout and stderr are pipes
        out, err = r.communicate(timeout=120)  # EOF: nobody else holds them
        assert (r.returncode, out, err) == (0, "", "")
        if mode in ("silent", "close"):
            assert log.read_text() == "HELLO fds=0\n"  # no fd before a worker answers
        assert fake.poll() is None
    finally:
        fake.kill()
        fake.wait()
        fake.stdout.close()


# -- another build ---------------------------------------------------------------------


def _package_copy(dest: Path, edit: bool) -> list[str]:
    """pyruntime copied to dest (one file edited if `edit`: another version of the
    package); the command that runs its CLI."""
    src = Path(pyruntime.__file__).parent
    shutil.copytree(src, dest / "pyruntime", ignore=shutil.ignore_patterns("__pycache__"))
    if edit:
        with open(dest / "pyruntime" / "__init__.py", "a") as f:
            f.write("# another version\n")
    path = [str(dest), *(d for d in site.getsitepackages() if os.path.isdir(d))]
    boot = (f"import sys; sys.path[:0] = {path!r}; "
            "from pyruntime.cli.main import main; sys.exit(main())")
    return [sys.executable, "-I", "-S", "-c", boot]


@pytest.mark.parametrize("edit", [False, True], ids=["same-build", "other-build"])
def test_a_server_of_another_build_runs_the_call_cold(runtime: Runtime, bundle, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      edit: bool) -> None:
    """The client's build id (the package's files and sizeof(struct pyrt_plan)) must be
    the server's: a server started from another version of the package (an upgrade
    after it started) does not serve; one from an identical copy does."""
    _require_fresh_client()
    python = _package_copy(tmp_path / "pkg", edit)
    (tmp_path / "srv").mkdir()
    server = Server(tmp_path / "srv", python=python)
    try:
        served = _through(runtime, server.socket, monkeypatch)
        exe = _create_forked_by(served, bundle(("true",)), tmp_path, "b1")
        assert exe == (COLD if edit else SERVED)
    finally:
        server.stop()


# -- callers with other privileges -----------------------------------------------------

SECCOMP_ALLOW_ALL = textwrap.dedent("""
    import ctypes, os, struct, sys
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    insn = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, 0x7fff0000))  # ALLOW
    prog = Prog(1, ctypes.cast(insn, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0):  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        sys.exit(f"seccomp: {os.strerror(ctypes.get_errno())}")
    os.execvp(sys.argv[1], sys.argv[1:])
""")

# (wrapper, the /proc/<pid>/status line or namespace it changes)
OTHER_PRIVILEGES = {
    "no-new-privs": (["setpriv", "--no-new-privs", "--"], "NoNewPrivs"),
    "bounding-set": (["setpriv", "--bounding-set", "-wake_alarm", "--"], "CapBnd"),
    "inheritable": (["setpriv", "--inh-caps", "+wake_alarm", "--"], "CapInh"),
    "ambient": (["setpriv", "--inh-caps", "+wake_alarm", "--ambient-caps", "+wake_alarm",
                 "--"], "CapInh"),
    "seccomp": ([sys.executable, "-I", "-c", SECCOMP_ALLOW_ALL], "Seccomp"),
    "gid": (["setpriv", "--regid", "1", "--keep-groups", "--"], "Gid"),
    "cgroup-namespace": (["unshare", "--cgroup", "--"], "ns/cgroup"),
}


@pytest.mark.parametrize("case", list(OTHER_PRIVILEGES))
def test_a_caller_with_other_privileges_runs_cold(served: Runtime, bundle, tmp_path: Path,
                                                  case: str) -> None:
    """A caller under setpriv (fewer capabilities, no_new_privs, another gid), a seccomp
    filter or another cgroup namespace is not served (the worker would run its verb and
    hooks with the server's privileges): the call works, cold."""
    wrapper, _ = OTHER_PRIVILEGES[case]
    b = bundle(("true",))
    assert _create_forked_by(served, b, tmp_path, "p0") == SERVED  # the same caller, bare
    assert _create_forked_by(served, b, tmp_path, "p1", wrapper) == COLD


@pytest.mark.parametrize("case", list(OTHER_PRIVILEGES))
def test_admission_names_what_differs(case: str) -> None:
    """What the worker compares (pyruntime/served/admission.py), per wrapper."""
    from pyruntime.served import admission

    wrapper, field = OTHER_PRIVILEGES[case]
    own = admission.profile("/proc/self")
    proc = subprocess.Popen([*wrapper, "sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        def execed() -> bool:
            return os.path.realpath(f"/proc/{proc.pid}/exe").endswith("/sleep")

        _wait_until(execed, "the wrapper execs sleep")
        pidfd = os.pidfd_open(proc.pid)
        try:
            theirs = admission.profile(f"/proc/{proc.pid}")
            assert theirs[field] != own[field]
            assert admission.difference(proc.pid, pidfd, own) is not None
        finally:
            os.close(pidfd)
    finally:
        proc.kill()
        proc.wait()


def test_admission_serves_an_equal() -> None:
    from pyruntime.served import admission

    proc = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        pidfd = os.pidfd_open(proc.pid)
        try:
            assert admission.difference(proc.pid, pidfd, admission.profile("/proc/self")) is None
        finally:
            os.close(pidfd)
    finally:
        proc.kill()
        proc.wait()


# -- --socket --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "directory", "symlink"])
def test_serve_refuses_a_socket_path_that_is_not_a_socket(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "not-a-socket"
    target = tmp_path / "target"
    target.write_text("keep me\n")
    if kind == "file":
        path.write_text("keep me\n")
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(target)
    r = subprocess.run([sys.executable, "-m", "pyruntime", "--root", str(tmp_path / "root"),
                        "serve", "--socket", str(path)], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr == f"pyruntime: serve: {path}: exists and is not a socket\n"
    assert r.stdout == ""
    if kind == "file":
        assert path.read_text() == "keep me\n"
    elif kind == "directory":
        assert path.is_dir()
    else:
        assert path.is_symlink() and target.read_text() == "keep me\n"
