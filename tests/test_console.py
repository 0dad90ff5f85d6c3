"""process.terminal: the pty made in the container's devpts, its master sent over the
--console-socket (as containerd and podman receive it), and `run` relaying it itself."""

from __future__ import annotations

import os
import select
import socket
import time
from pathlib import Path

import pytest

from support import Runtime, assert_clean_failure

pytestmark = pytest.mark.root


class ConsoleServer:
    """A unix socket like containerd's: accepts one connection, receives one fd."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.master = -1
        self.name = b""

    def receive(self, timeout: float = 10) -> int:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(timeout)
            self.name, fds, _, _ = socket.recv_fds(conn, 256, 1)
        assert len(fds) == 1, "expected exactly one fd"
        self.master = fds[0]
        return self.master

    def close(self) -> None:
        if self.master >= 0:
            os.close(self.master)
        self.sock.close()


def read_until(fd: int, marker: bytes, timeout: float = 10) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {marker!r}; got {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the container closed its side
            break
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def server(tmp_path: Path):
    s = ConsoleServer(tmp_path / "console.sock")
    yield s
    s.close()


def terminal_bundle(bundle, args, **extra):
    return bundle(args, {"process": {"terminal": True, **extra}})


def test_console_socket_gets_the_master(runtime: Runtime, bundle, server) -> None:
    b = terminal_bundle(bundle, ["sh"], consoleSize={"height": 33, "width": 101})
    runtime.create(b, "c1", "--console-socket", str(server.path))
    master = server.receive()
    assert server.name == b"/dev/ptmx"
    runtime.start("c1")
    os.write(master, b"tty; echo T=$TERM; readlink /proc/self/fd/0; stty size; "
                     b"test -c /dev/console && echo console-ok; "
                     b"grep -w /dev/console /proc/self/mountinfo | wc -l; echo END-$((6*7))\n")
    out = read_until(master, b"END-42").decode(errors="replace")
    lines = [line.strip() for line in out.replace("\r", "").splitlines()]
    assert "/dev/pts/0" in lines, out  # tty: the container's own devpts, first pty
    assert "T=xterm" in lines, out
    assert "33 101" in lines, out  # consoleSize
    assert "console-ok" in lines, out
    assert lines[lines.index("console-ok") + 1] == "1", out  # /dev/console is a bind mount
    os.write(master, b"exit 3\n")
    runtime.wait_status("c1", "stopped")
    runtime.delete("c1")


def test_controlling_terminal_and_session(runtime: Runtime, bundle, server) -> None:
    # sid == pid: init leads a new session; tty_nr (field 7) != 0: it has a controlling tty
    b = terminal_bundle(bundle, ["sh", "-c", "read x; cut -d' ' -f1,6,7 /proc/1/stat; "
                                             "sleep 1"])
    runtime.create(b, "c1", "--console-socket", str(server.path))
    master = server.receive()
    runtime.start("c1")
    os.write(master, b"go\n")
    out = read_until(master, b"\n", 10)
    out += read_until(master, b"\n", 10)
    fields = out.decode().replace("\r", "").split("\n")[1].split()
    pid, sid, tty_nr = fields
    assert pid == "1" and sid == "1" and int(tty_nr) != 0, out


def test_run_foreground_relays_the_terminal(runtime: Runtime, bundle) -> None:
    b = terminal_bundle(bundle, ["sh", "-c", "tty; echo out-$((1+1)); exit 5"])
    result = runtime.run_bundle(b, "c1", check=False)
    assert result.returncode == 5, result
    assert "/dev/pts/0" in result.stdout and "out-2" in result.stdout, result


def test_terminal_without_console_socket(runtime: Runtime, bundle) -> None:
    b = terminal_bundle(bundle, ["true"])
    result = runtime.run("create", "--bundle", b, "c1")
    assert_clean_failure(result, runtime, "c1", ("--console-socket", "terminal"))


def test_console_socket_missing(runtime: Runtime, bundle, tmp_path: Path) -> None:
    b = terminal_bundle(bundle, ["true"])
    result = runtime.run("create", "--bundle", b, "--console-socket",
                         str(tmp_path / "no.sock"), "c1")
    assert_clean_failure(result, runtime, "c1", ("no.sock",))


def test_console_socket_without_terminal(runtime: Runtime, bundle, server) -> None:
    result = runtime.run("create", "--bundle", bundle(["true"]), "--console-socket",
                         str(server.path), "c1")
    assert_clean_failure(result, runtime, "c1", ("terminal",))
