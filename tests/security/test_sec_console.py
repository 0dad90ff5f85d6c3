"""CVE-2025-52565: the /dev/console bind mount's source or target is swapped, so that the
runtime bind-mounts something else than the container's pty (a host file, a procfs file)
onto /dev/console, or mounts the pty over a file the attacker chose.

The attacks, with process.terminal true and a console socket (as containerd and podman
run it), each against one half of the mount:
- target: the image's /dev/console is a symlink (to a file of the image, or to a path
  that names a file on the host), with no /dev tmpfs hiding the image's /dev;
- target: config.json bind-mounts a host file at /dev/console;
- source: config.json puts an attacker's directory at /dev/pts, whose ptmx is a real
  ptmx device node (5:2) on a filesystem that is not devpts, next to a bind of the
  host's /dev/pts as its "pts": the kernel opens such a node in the devpts it finds
  there, so it would give a pty of the host's devpts, and /dev/pts/N could be anything.

Defence (native/console.c): ptmx is opened in the container root without following
links and checked by fd to be devpts's 5:2; the peer comes from TIOCGPTPEER, never from
a path; /dev/console is created or opened in the root with no symlink followed and the
peer is bound onto it by fd. So /dev/console in the container is the pty whose master
the console socket received (`stat` shows 136:N, N from TIOCGPTN of that master), or
the runtime refuses; a planted file is never mounted over, a host file never touched.
"""

from __future__ import annotations

import fcntl
import os
import stat
import struct
import subprocess
from pathlib import Path

import pytest
from test_console import ConsoleServer, read_until

from support import Runtime

pytestmark = pytest.mark.root

TIOCGPTN = 0x80045430  # _IOR('T', 0x30, unsigned int)
PTY_MAJOR = 136  # UNIX98_PTY_SLAVE_MAJOR
SCRIPT = ("stat -c %t:%T /dev/console; stat -L -c %t:%T /proc/self/fd/0; "
          "grep -c -w /dev/console /proc/self/mountinfo; grep -c attacker /proc/self/mountinfo; "
          "cat /etc/attacker; echo END-$((6*7))")


@pytest.fixture
def server(tmp_path: Path):
    s = ConsoleServer(tmp_path / "console.sock")
    yield s
    s.close()


def pty_index(master: int) -> int:
    return struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]


def terminal_bundle(bundle, overrides: dict | None = None):
    b = bundle(["sh", "-c", SCRIPT], {"process": {"terminal": True}, **(overrides or {})})
    (Path(b.rootfs) / "etc" / "attacker").write_text("attacker's file\n")
    return b


def without_dev_tmpfs(b):
    """The image's own /dev is what the container sees (no tmpfs, no device nodes)."""
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/dev"]
    b.config["linux"]["devices"] = []
    b.write()
    return b


def run_on_terminal(runtime: Runtime, b, server: ConsoleServer) -> tuple[int, list[str]]:
    """create with the console socket, start, read the script's output from the master.
    Returns (the pty's index, output lines); raises AssertionError if create fails."""
    res = runtime.run("create", "--bundle", b, "--console-socket", str(server.path), "t1")
    assert res.returncode == 0, res.stderr
    master = server.receive()
    index = pty_index(master)
    runtime.start("t1")
    out = read_until(master, b"END-42").decode(errors="replace")
    runtime.wait_status("t1", "stopped")
    runtime.delete("t1")
    return index, [line.strip() for line in out.replace("\r", "").splitlines()]


def assert_console_is_the_pty(index: int, lines: list[str]) -> None:
    expected = f"{PTY_MAJOR:x}:{index:x}"  # stat's %t:%T are hex
    assert lines[0] == expected, lines  # /dev/console is the pty the socket received
    assert lines[1] == expected, lines  # and it is the container's stdin
    assert lines[2] == "1", lines  # bound once, onto /dev/console itself
    assert lines[3] == "0", lines  # nothing mounted onto the planted file
    assert lines[4] == "attacker's file", lines


@pytest.mark.parametrize("link", ["/etc/attacker", "../etc/attacker", "HOST"])
def test_dev_console_symlink_in_the_image_is_not_followed(runtime: Runtime, bundle, server,
                                                         tmp_path: Path, link: str) -> None:
    host_file = tmp_path / "host-console"
    host_file.write_text("host data\n")
    b = without_dev_tmpfs(terminal_bundle(bundle))
    root = Path(b.rootfs)
    target = str(host_file) if link == "HOST" else link
    (root / "dev" / "console").symlink_to(target)
    res = runtime.run("create", "--bundle", b, "--console-socket", str(server.path), "t1")
    # refused: the runtime does not follow the link, and replaces nothing of the image
    assert res.returncode != 0, res.stdout
    assert "console" in res.stderr and "/dev/console" in res.stderr, res.stderr
    assert "symbolic links" in res.stderr, res.stderr  # ELOOP from RESOLVE_NO_SYMLINKS
    assert runtime.state_dirs() == []
    assert os.readlink(root / "dev" / "console") == target  # the image is as it was
    assert (root / "etc" / "attacker").read_text() == "attacker's file\n"
    assert host_file.read_text() == "host data\n"
    assert not (root / str(host_file).lstrip("/")).exists()  # not created in the rootfs


def test_dev_console_file_in_the_image_gets_the_pty(runtime: Runtime, bundle,
                                                    server) -> None:
    """The control: the image's own /dev (no tmpfs) with a plain file at /dev/console."""
    b = without_dev_tmpfs(terminal_bundle(bundle))
    (Path(b.rootfs) / "dev" / "console").write_text("")
    index, lines = run_on_terminal(runtime, b, server)
    assert_console_is_the_pty(index, lines)
    assert (Path(b.rootfs) / "dev" / "console").read_text() == ""


def test_host_file_bound_at_dev_console_is_covered_not_written(runtime: Runtime, bundle,
                                                               server, tmp_path: Path) -> None:
    host_file = tmp_path / "host-console"
    host_file.write_text("host data\n")
    before = host_file.stat()
    b = terminal_bundle(bundle)
    b.config["mounts"].append({"destination": "/dev/console", "type": "bind",
                               "source": str(host_file), "options": ["bind"]})
    b.write()
    index, lines = run_on_terminal(runtime, b, server)
    assert lines[0] == f"{PTY_MAJOR:x}:{index:x}", lines  # the pty, on top of the host file
    assert lines[1] == lines[0], lines
    assert lines[2] == "2", lines  # the config's bind, and the pty over it
    assert host_file.read_text() == "host data\n"
    after = host_file.stat()
    assert (after.st_mtime_ns, after.st_size, after.st_ino) == \
        (before.st_mtime_ns, before.st_size, before.st_ino)


def test_ptmx_not_on_devpts_is_refused(runtime: Runtime, bundle, server,
                                       tmp_path: Path) -> None:
    """The source half: /dev/pts is the attacker's directory. Its ptmx is a real ptmx
    node that opens a pty of the host's devpts (bound at /dev/pts/pts); its 0 names a
    host file."""
    fake = tmp_path / "fake-pts"
    (fake / "pts").mkdir(parents=True)
    os.mknod(fake / "ptmx", 0o666 | stat.S_IFCHR, os.makedev(5, 2))
    host_file = tmp_path / "host-secret"
    host_file.write_text("host data\n")
    (fake / "0").symlink_to(host_file)
    b = terminal_bundle(bundle)
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/dev/pts"]
    b.config["mounts"].append({"destination": "/dev/pts", "type": "bind",
                               "source": str(fake), "options": ["rbind"]})
    b.config["mounts"].append({"destination": "/dev/pts/pts", "type": "bind",
                               "source": "/dev/pts", "options": ["bind"]})
    b.write()
    res = runtime.run("create", "--bundle", b, "--console-socket", str(server.path), "t1")
    assert res.returncode != 0, res.stdout
    assert "console: /dev/pts/ptmx is not the ptmx of a devpts mount" in res.stderr, \
        res.stderr
    assert runtime.state_dirs() == []
    assert host_file.read_text() == "host data\n"
    assert sorted(p.name for p in fake.iterdir()) == ["0", "ptmx", "pts"]


def test_the_fake_ptmx_does_open_a_host_pty(tmp_path: Path) -> None:
    """The attack's instrument works: such a node, outside devpts, opens a pty of the
    devpts found next to it (here the host's)."""
    fake = tmp_path / "fake-pts"
    (fake / "pts").mkdir(parents=True)
    os.mknod(fake / "ptmx", 0o666 | stat.S_IFCHR, os.makedev(5, 2))
    with pytest.raises(OSError):  # no devpts next to it: ENODEV (ENOENT without "pts")
        os.close(os.open(fake / "ptmx", os.O_RDWR | os.O_NOCTTY))
    subprocess.run(["mount", "--bind", "/dev/pts", str(fake / "pts")], check=True)
    try:
        fd = os.open(fake / "ptmx", os.O_RDWR | os.O_NOCTTY)
        try:
            assert os.path.exists(f"/dev/pts/{pty_index(fd)}")  # a pty of the host's devpts
            assert os.fstat(fd).st_rdev == os.makedev(5, 2)  # what a device check sees
        finally:
            os.close(fd)
    finally:
        subprocess.run(["umount", str(fake / "pts")], check=True)
