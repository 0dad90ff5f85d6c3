"""`pyruntime serve` and the `pyruntime` client (native/client/, pyruntime/served/).

A served call must look, from outside, exactly like a cold one: the container's processes
are the client's descendants (so a subreaper such as containerd's shim inherits init),
the client's stdio, fds, exit status and signals are the container's, errors are one
line, and nothing is left behind.  These tests run the client against a server of their
own; `make test-served` runs the whole suite that way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Runtime
from support.checks import wait_for
from support.runtime import client_binary
from support.served import SOCKET_ENV, TIMEOUT_ENV, Server, stale_client

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]

CLIENT = client_binary()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    stale = stale_client(CLIENT)
    if stale:
        pytest.fail(stale)
    s = Server(tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture
def served(runtime: Runtime, server: Server, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """The test's runtime, driven through the client and the server."""
    monkeypatch.setenv(SOCKET_ENV, str(server.socket))
    monkeypatch.setenv(TIMEOUT_ENV, "60000")  # served even on a loaded machine
    root = str(runtime.root)
    runtime.cmd = lambda *args: [str(CLIENT), "--root", root, *map(os.fspath, args)]
    return runtime


def _exe(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/exe")


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


SUBREAPER = textwrap.dedent("""
    import ctypes, os, subprocess, sys
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER, as containerd's shim
    with open(sys.argv[2], "w") as out:  # the container keeps it: not our stdout pipe
        rc = subprocess.run(sys.argv[3:], stdin=subprocess.DEVNULL, stdout=out,
                            stderr=out).returncode
    pid = int(open(sys.argv[1]).read())
    ppid = [l for l in open(f"/proc/{pid}/status") if l.startswith("PPid:")][0].split()[1]
    print(rc, os.getpid(), ppid, os.readlink(f"/proc/{pid}/exe"))
""")


def test_init_is_the_callers_child_as_with_runc(served: Runtime, bundle, tmp_path: Path) -> None:
    """Under a subreaper (containerd's shim), `create` leaves init to the subreaper, not
    to the server: stage1 and init are forked by the client from the worker's plan."""
    b = bundle(("echo", "served"))
    pid_file = tmp_path / "init.pid"
    argv = served.cmd("create", "--bundle", str(b), "--pid-file", str(pid_file), "c1")
    out = served.workdir / "c1.out"
    helper = subprocess.run([sys.executable, "-c", SUBREAPER, str(pid_file), str(out), *argv],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=30)
    assert helper.returncode == 0, helper.stderr
    rc, helper_pid, ppid, exe = helper.stdout.split()
    assert rc == "0", out.read_text()
    assert ppid == helper_pid, "init was not reparented to the caller's subreaper"
    assert exe == str(CLIENT), f"init forked from {exe}: the call was not served"
    assert served.state("c1")["status"] == "created"
    served.start("c1")
    served.wait_status("c1", "stopped")
    assert out.read_text() == "served\n"
    served.delete("c1")
    assert served.ids() == []


def test_run_passes_stdio_and_exit_status(served: Runtime, bundle) -> None:
    b = bundle(("sh", "-c", "read line; echo got $line; echo oops >&2; exit 7"))
    r = served.run("run", "--bundle", str(b), "r1", input="hello\n")
    assert r.returncode == 7, r.stderr
    assert r.stdout == "got hello\n"
    assert r.stderr == "oops\n"
    assert served.ids() == []


def test_run_forwards_signals_to_the_container(served: Runtime, bundle) -> None:
    b = bundle(("sh", "-c", "trap 'exit 9' TERM; echo trapped; while :; do sleep 0.1; done"))
    proc = served.popen("run", "--bundle", str(b), "r2", stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "trapped\n"  # the container's, through the client
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 9, err


def test_exec_status_and_output(served: Runtime, bundle) -> None:
    b = bundle(("sleep", "100"))
    served.run("run", "--detach", "--bundle", str(b), "e1", check=True)
    r = served.run("exec", "e1", "sh", "-c", "echo $((6 * 7)); exit 3")
    assert (r.returncode, r.stdout) == (3, "42\n"), r.stderr
    served.delete("e1", force=True)


def test_preserved_fds_are_the_callers(served: Runtime, bundle, tmp_path: Path) -> None:
    data = tmp_path / "fd3"
    data.write_text("from the caller\n")
    b = bundle(("cat", "/proc/self/fd/3"))
    r = subprocess.run(["sh", "-c", 'exec 3<"$0"; exec "$@"', str(data),
                        *served.cmd("run", "--preserve-fds", "1", "--bundle", str(b), "p1")],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from the caller\n"


def test_errors_are_one_line_and_leave_nothing(served: Runtime, bundle) -> None:
    b = bundle(("true",))
    (Path(b) / "config.json").write_text('{"ociVersion": "1.2.0", "process": 5}')
    r = served.run("create", "--bundle", str(b), "bad")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("pyruntime: "), r.stderr
    assert "process" in r.stderr
    assert served.state_dirs() == []


UNSHARE = {"mount": ["--mount", "--propagation", "unchanged"], "network": ["--net"],
           "ipc": ["--ipc"], "uts": ["--uts"],
           "time": ["--time", "--fork"]}  # --fork: unshare's child is in the new one


@pytest.mark.parametrize("kind", sorted(UNSHARE))
def test_another_namespace_of_any_kind_runs_cold(served: Runtime, bundle, tmp_path: Path,
                                                 kind: str) -> None:
    """The server compares every namespace kind (pyruntime/plan/linux_consts.py), time too:
    a caller in another one (say, one that does not see the server's mounts) is not
    served: it runs the Python CLI itself, in its own world."""
    b = bundle(("true",))
    pid_file = tmp_path / "cold.pid"
    err = tmp_path / "cold.err"  # a file: the container keeps the runtime's stderr
    with open(err, "w") as f:
        r = subprocess.run(["unshare", *UNSHARE[kind], "--",
                            *served.cmd("create", "--bundle", str(b), "--pid-file",
                                        str(pid_file), "u1")],
                           stdin=subprocess.DEVNULL, stdout=f, stderr=f, timeout=30)
    assert r.returncode == 0, err.read_text()
    pid = int(pid_file.read_text())
    assert os.path.realpath(_exe(pid)) == os.path.realpath(sys.executable)
    served.delete("u1", force=True)


# execve moves a process into its time_for_children namespace: sleep is in it already
@pytest.mark.parametrize("flag,link", [("--pid", "ns/pid_for_children"), ("--time", "ns/time")])
def test_a_caller_whose_children_get_other_namespaces_is_not_served(flag: str,
                                                                    link: str) -> None:
    """`unshare --pid` without --fork: the caller is in the server's pid namespace, but
    whatever it forks (a cold runtime's init) is not; the server must not act for it."""
    from pyruntime.served.admission import difference, profile

    proc = subprocess.Popen(["unshare", flag, "--", "sleep", "60"])
    try:
        pidfd = os.pidfd_open(proc.pid)
        try:
            wait_for(lambda: os.readlink(f"/proc/{proc.pid}/exe").endswith("/sleep"),
                     what="unshare to exec sleep")
            assert difference(proc.pid, pidfd, profile("/proc/self")) == link
        finally:
            os.close(pidfd)
    finally:
        proc.kill()
        proc.wait()


def test_second_server_on_a_socket_is_refused(server: Server) -> None:
    r = subprocess.run([sys.executable, "-m", "pyruntime", "serve", "--socket",
                        str(server.socket)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "another pyruntime serve is listening there" in r.stderr
    assert server.proc.poll() is None


FAKE_SERVER = textwrap.dedent("""
    import os, socket, sys
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(sys.argv[1])
    s.listen(8)
    print("ready", flush=True)
    while True:
        conn, _ = s.accept()
        if conn.recv(1 << 20):  # a HELLO it will never answer
            open(sys.argv[2], "a").write("hello\\n")
""")


def test_a_server_of_another_user_is_not_trusted(served: Runtime, bundle, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The server decides what the client forks, with the client's privileges: a socket
    that another user listens on is ignored, and the call runs cold."""
    import shutil
    import tempfile

    sockdir = Path(tempfile.mkdtemp(prefix="pyrt-other-user-"))  # pytest's tmp is 0700
    request_cleanup = sockdir
    sockdir.chmod(0o777)
    sock, seen = sockdir / "fake.sock", sockdir / "seen"
    # Debian's python3: the venv's interpreter lives under /root, out of nobody's reach
    fake = subprocess.Popen(["/usr/bin/python3", "-I", "-c", FAKE_SERVER, str(sock), str(seen)],
                            user=65534, group=65534, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout.readline() == "ready\n"
        monkeypatch.setenv(SOCKET_ENV, str(sock))
        pid_file = tmp_path / "init.pid"
        b = bundle(("true",))
        served.run("create", "--bundle", str(b), "--pid-file", str(pid_file), "u1",
                   check=True, timeout=20)
        assert os.path.realpath(_exe(int(pid_file.read_text()))) == \
            os.path.realpath(sys.executable)  # cold: the Python CLI forked init
        assert not seen.exists()
        served.delete("u1", force=True)
    finally:
        fake.kill()
        fake.wait()
        fake.stdout.close()
        shutil.rmtree(request_cleanup, ignore_errors=True)
