"""checkpoint and restore with CRIU (pyruntime/criu/).

The tests marked `criu` need a kernel CRIU works on: this host's is not one (its vDSO
layout defeats CRIU 3.17), so they run in the cgroup v2 lane (make test-cgroupv2), which
loads the modules CRIU needs. A busybox counter prints a number every 0.2 s on a pipe;
after a checkpoint and a restore it must go on from where it stopped. On a kernel where
CRIU does not work, the verbs still exist and fail with CRIU's own reason.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from support import Runtime, assert_clean_failure, stderr_lines
from support.cgroups import cgroups_path
from support.mountinfo import cgroup_mount

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]

COUNTER = "i=0; while :; do echo $i; i=$((i+1)); sleep 0.2; done"


class Pipes:
    """The stdio of a detached container: three pipes whose other ends the test holds."""

    def __init__(self) -> None:
        self.stdin_r, self.stdin_w = os.pipe()
        self.stdout_r, self.stdout_w = os.pipe()
        self.stderr_r, self.stderr_w = os.pipe()
        self.buffer = b""

    def run(self, runtime: Runtime, *args: str | Path, timeout: float = 120) -> None:
        """A detached verb whose container keeps these pipes as its stdio."""
        proc = subprocess.run(runtime.cmd(*args), stdin=self.stdin_r, stdout=self.stdout_w,
                              stderr=self.stderr_w, timeout=timeout, cwd=runtime.workdir)
        if proc.returncode != 0:
            raise AssertionError(f"{args[0]} failed: {self.drain_stderr()}")

    def drain_stderr(self) -> str:
        out = b""
        while select.select([self.stderr_r], [], [], 0.2)[0]:
            chunk = os.read(self.stderr_r, 65536)
            if not chunk:
                break
            out += chunk
        return out.decode(errors="replace")

    def numbers(self, at_least: int, timeout: float = 60) -> list[int]:
        """Read the counter's output until `at_least` more numbers came."""
        deadline = time.monotonic() + timeout
        got: list[int] = []
        while len(got) < at_least:
            left = deadline - time.monotonic()
            assert left > 0, f"the counter stopped: {got}"
            if not select.select([self.stdout_r], [], [], left)[0]:
                continue
            chunk = os.read(self.stdout_r, 65536)
            assert chunk, f"the counter's stdout closed: {got}"
            self.buffer += chunk
            *lines, self.buffer = self.buffer.split(b"\n")
            got += [int(x) for x in lines if x.strip()]
        return got

    def rest(self, quiet: float = 1.0) -> list[int]:
        """What a dumped counter printed that was not read yet (the pipe holds it)."""
        got: list[int] = []
        while select.select([self.stdout_r], [], [], quiet)[0]:
            chunk = os.read(self.stdout_r, 65536)
            if not chunk:
                break
            self.buffer += chunk
            *lines, self.buffer = self.buffer.split(b"\n")
            got += [int(x) for x in lines if x.strip()]
        return got

    def close_writers(self) -> None:
        """Drop the test's copies of the container's ends, so its exit is seen as EOF."""
        for fd in (self.stdin_r, self.stdout_w, self.stderr_w):
            os.close(fd)

    def close(self) -> None:
        for fd in (self.stdin_w, self.stdout_r, self.stderr_r):
            os.close(fd)


@pytest.fixture
def pipes():
    p = Pipes()
    yield p
    for fd in (p.stdin_r, p.stdin_w, p.stdout_r, p.stdout_w, p.stderr_r, p.stderr_w):
        try:
            os.close(fd)
        except OSError:
            pass


def cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return f.read()


@pytest.mark.criu
@pytest.mark.parametrize("cgroupns", [False, True], ids=["host-cgroupns", "cgroupns"])
def test_counter_keeps_counting_after_restore(runtime: Runtime, bundle, pipes,
                                              tmp_path: Path, cgroupns: bool) -> None:
    # the commands: `checkpoint --image-path DIR ID`, then a foreground
    # `restore --image-path DIR --bundle B ID`
    b = bundle(["sh", "-c", COUNTER])
    if cgroupns:  # as podman has it on cgroup v2
        b.config["linux"]["namespaces"].append({"type": "cgroup"})
        b.write()
    pipes.run(runtime, "run", "-d", "--bundle", b, "c1")
    before = pipes.numbers(3)
    pid = runtime.state("c1")["pid"]
    cgroup, mount = cgroup_of(pid), cgroup_mount(pid)
    image = tmp_path / "image"
    pipes.run(runtime, "checkpoint", "--image-path", image, "c1")
    assert "c1" not in runtime.ids()  # dumped and deleted, as runc does
    before += pipes.rest()  # up to the dump
    restore = subprocess.Popen(runtime.cmd("restore", "--image-path", image, "--bundle", b,
                                           "c1"),
                               stdin=pipes.stdin_r, stdout=pipes.stdout_w,
                               stderr=pipes.stderr_w, cwd=runtime.workdir)
    after = pipes.numbers(3, timeout=120)
    # it goes on from where it was dumped: nothing lost, nothing started again
    assert after == list(range(before[-1] + 1, before[-1] + 1 + len(after))), (before, after)
    # state.json was written at CRIU's post-restore, before the tree was resumed
    state = runtime.state("c1")
    assert state["status"] == "running"
    # state.json names the restored init: the counter's sh, in the container's cgroup,
    # which sees its cgroup mount as before
    new = state["pid"]
    with open(f"/proc/{new}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sh", b"-c"]
    assert cgroup_of(new) == cgroup
    assert cgroup_mount(new) == mount
    assert restore.poll() is None  # the foreground restore waits for it
    runtime.kill("c1", "KILL")
    assert restore.wait(timeout=120) == 128 + 9
    assert "c1" not in runtime.ids()  # deleted, as a foreground run does


@pytest.mark.criu
def test_leave_running_then_restore_into_a_new_id(runtime: Runtime, bundle, pipes,
                                                  tmp_path: Path) -> None:
    b = bundle(["sh", "-c", COUNTER])
    pipes.run(runtime, "run", "-d", "--bundle", b, "c1")
    pipes.numbers(2)
    c1 = runtime.state("c1")["pid"]
    image, work = tmp_path / "image", tmp_path / "work"
    pipes.run(runtime, "checkpoint", "--leave-running", "--image-path", image,
              "--work-path", work, "c1")
    assert runtime.status("c1") == "running" and runtime.state("c1")["pid"] == c1
    pipes.numbers(2)  # still counting
    assert (work / "dump.log").exists() and not (image / "dump.log").exists()
    b2 = bundle(["sh", "-c", COUNTER], name="b2")  # a cgroup of its own: c1 still runs
    pid_file = tmp_path / "c2.pid"
    pipes.run(runtime, "restore", "-d", "--image-path", image, "--work-path", work,
              "--pid-file", pid_file, "--bundle", b2, "c2")
    state = runtime.state("c2")
    assert state["status"] == "running"
    c2 = state["pid"]
    assert c2 != c1 and int(pid_file.read_text()) == c2
    assert (work / "restore.log").exists()
    # restored into c2's cgroup (b2's cgroupsPath), not c1's
    assert cgroup_of(c2) != cgroup_of(c1)
    assert cgroups_path(runtime.token, "b2").split(":")[-1] in cgroup_of(c2)
    runtime.delete("c1", force=True)
    pipes.numbers(3)  # c2 counts on the same pipe
    runtime.delete("c2", force=True)


@pytest.mark.criu
def test_pre_dump_then_final_dump(runtime: Runtime, bundle, pipes, tmp_path: Path) -> None:
    b = bundle(["sh", "-c", COUNTER])
    pipes.run(runtime, "run", "-d", "--bundle", b, "c1")
    pipes.numbers(2)
    parent, final = tmp_path / "parent", tmp_path / "final"
    pipes.run(runtime, "checkpoint", "--pre-dump", "--image-path", parent, "c1")
    assert runtime.status("c1") == "running"
    before = pipes.numbers(2)
    pipes.run(runtime, "checkpoint", "--parent-path", "../parent", "--image-path", final, "c1")
    before += pipes.rest()
    assert any(p.name.startswith("pages-") for p in parent.iterdir())
    pipes.run(runtime, "restore", "-d", "--image-path", final, "--bundle", b, "c1")
    after = pipes.numbers(2)
    assert after == list(range(before[-1] + 1, before[-1] + 1 + len(after))), (before, after)
    runtime.delete("c1", force=True)


@pytest.mark.criu
def test_foreground_restore_passes_the_exit_status(runtime: Runtime, bundle, pipes,
                                                   tmp_path: Path) -> None:
    # the restored init is restore's child: it waits and exits with the container's status
    b = bundle(["sh", "-c", "read x; exit $x"])
    pipes.run(runtime, "run", "-d", "--bundle", b, "c1")
    image = tmp_path / "image"
    time.sleep(0.5)  # let sh reach its read
    pipes.run(runtime, "checkpoint", "--image-path", image, "c1")
    proc = subprocess.Popen(runtime.cmd("restore", "--image-path", image, "--bundle", b, "c1"),
                            stdin=pipes.stdin_r, stdout=pipes.stdout_w, stderr=pipes.stderr_w,
                            cwd=runtime.workdir)
    deadline = time.monotonic() + 120
    while "c1" not in runtime.ids() or runtime.status("c1") != "running":
        assert proc.poll() is None, pipes.drain_stderr()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.write(pipes.stdin_w, b"7\n")
    assert proc.wait(timeout=60) == 7
    assert "c1" not in runtime.ids()  # a foreground restore deletes it, as run does


def test_without_a_working_criu_the_verbs_fail_cleanly(runtime: Runtime, bundle, pipes,
                                                       tmp_path: Path) -> None:
    from pyruntime.criu.probe import criu_does_not_work

    if not criu_does_not_work():
        pytest.skip("CRIU works on this kernel: the tests marked criu cover it")
    b = bundle(["sh", "-c", COUNTER])
    pipes.run(runtime, "run", "-d", "--bundle", b, "c1")
    image = tmp_path / "image"
    result = runtime.run("checkpoint", "--image-path", image, "c1")
    assert result.returncode == 1
    [line] = stderr_lines(result)
    assert "criu dump failed" in line
    assert "CRIU does not work on this kernel" in line and str(image / "dump.log") in line
    # the complaint `criu check` makes here, as criu check words it
    assert criu_does_not_work().removeprefix("criu check: ") in line
    assert runtime.status("c1") == "running"  # nothing happened to it
    runtime.delete("c1", force=True)
    result = runtime.run("restore", "--image-path", image, "--bundle", b, "c2")
    line = assert_clean_failure(result, runtime, "c2", "criu restore failed")
    assert str(image / "restore.log") in line


def test_verbs_and_features(runtime: Runtime) -> None:
    import json

    result = runtime.run("features")
    annotations = json.loads(result.stdout)["annotations"]
    assert annotations["org.opencontainers.runc.checkpoint.enabled"] == "true"
    for verb in ("checkpoint", "restore"):
        assert runtime.run(verb, "--help").returncode == 0  # podman probes this
    result = runtime.run("checkpoint", "nosuch")
    assert_clean_failure(result, runtime, "nosuch", "does not exist")
    result = runtime.run("restore", "--image-path", "/nonexistent", "c9")
    assert_clean_failure(result, runtime, "c9", "/nonexistent")


class Console:
    """A console socket like containerd's: receives one pty master."""

    def __init__(self, path: Path) -> None:
        import socket

        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.path = path

    def master(self, timeout: float = 120) -> int:
        import socket

        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 256, 1)
        assert len(fds) == 1
        return fds[0]


def terminal_numbers(fd: int, at_least: int, timeout: float = 60) -> list[int]:
    """The counter's numbers from a pty master: complete lines only, after a newline."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        lines = data.replace(b"\r", b"").split(b"\n")[1:-1]
        got = [int(x) for x in lines if x.strip().isdigit()]
        if len(got) >= at_least:
            return got
        left = deadline - time.monotonic()
        assert left > 0, f"the counter stopped: {data!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, data
            data += chunk


@pytest.mark.criu
def test_terminal_container(runtime: Runtime, bundle, tmp_path: Path) -> None:
    # the pty's master is outside the container: CRIU restores the slave as an orphan
    # and hands the new master over, which goes to restore's --console-socket
    b = bundle(["sh", "-c", COUNTER], {"process": {"terminal": True}})
    first, second = Console(tmp_path / "c1.sock"), Console(tmp_path / "c2.sock")
    runtime.create(b, "c1", "--console-socket", str(first.path))
    m1 = first.master()
    runtime.start("c1")
    before = terminal_numbers(m1, 3)
    image = tmp_path / "image"
    r = runtime.run("checkpoint", "--image-path", image, "c1", timeout=120)
    assert r.returncode == 0, r.stderr
    # what it printed until the dump: read what is left on the old master
    while select.select([m1], [], [], 0.5)[0]:
        try:
            chunk = os.read(m1, 4096)
        except OSError:  # EIO: the slave is gone
            break
        if not chunk:
            break
        before += [int(x) for x in chunk.replace(b"\r", b"").split(b"\n")
                   if x.strip().isdigit()]
    os.close(m1)
    r = runtime.run("restore", "-d", "--console-socket", second.path,
                    "--image-path", image, "--bundle", b, "c1", timeout=120)
    assert r.returncode == 0, r.stderr
    m2 = second.master()
    after = terminal_numbers(m2, 3)
    assert after[0] > before[-1] and after[0] <= before[-1] + 3, (before, after)
    os.close(m2)
    runtime.delete("c1", force=True)


HOOK = """#!/bin/sh
printf '{"kind":"%s","state":%s}\\n' "$1" "$(cat)" >> "$2"
"""


@pytest.mark.criu
def test_hooks_on_restore(runtime: Runtime, bundle, pipes, tmp_path: Path) -> None:
    # as runc: prestart and createRuntime run when CRIU has made the namespaces, with
    # the restored init's pid; the container's own create/start hooks and poststart do
    # not run again; poststop runs when the restored container is deleted
    log, hook = tmp_path / "hooks.log", tmp_path / "hook.sh"
    hook.write_text(HOOK)
    hook.chmod(0o755)
    b = bundle(["sh", "-c", COUNTER])
    b.config["hooks"] = {kind: [{"path": str(hook), "args": [str(hook), kind, str(log)]}]
                         for kind in ("prestart", "createRuntime", "poststart", "poststop")}
    b.write()
    pipes.run(runtime, "run", "-d", "--bundle", b, "c1")
    pipes.numbers(2)
    image = tmp_path / "image"
    pipes.run(runtime, "checkpoint", "--image-path", image, "c1")
    log.unlink()  # the run's hooks, and the poststop of the dumped container's deletion
    pipes.run(runtime, "restore", "-d", "--image-path", image, "--bundle", b, "c1")
    pid = runtime.state("c1")["pid"]
    ran = [json.loads(line) for line in log.read_text().splitlines()]
    assert [h["kind"] for h in ran] == ["prestart", "createRuntime"]
    for h in ran:
        assert (h["state"]["id"], h["state"]["pid"], h["state"]["bundle"]) == (
            "c1", pid, str(b.path))
    runtime.delete("c1", force=True)
    ran = [json.loads(line) for line in log.read_text().splitlines()]
    assert [h["kind"] for h in ran] == ["prestart", "createRuntime", "poststop"]


@pytest.mark.criu
def test_tcp_established(runtime: Runtime, bundle, pipes, tmp_path: Path) -> None:
    # CRIU refuses an established connection unless told: its reason reaches the user
    # as one line with its log; --tcp-established reaches CRIU and the dump succeeds
    b = bundle(["sh", "-c", "sleep 1000 | nc -l -p 5000 >/dev/null & sleep 1; echo up; "
                "sleep 1000 | nc 127.0.0.1 5000"])
    pipes.run(runtime, "run", "-d", "--bundle", b, "c1")
    deadline = time.monotonic() + 60
    while b"up" not in pipes.buffer:
        assert time.monotonic() < deadline, pipes.buffer
        if select.select([pipes.stdout_r], [], [], 1)[0]:
            pipes.buffer += os.read(pipes.stdout_r, 4096)
    pid = runtime.state("c1")["pid"]
    while True:  # the client's connection is established (state 01) in its netns
        with open(f"/proc/{pid}/net/tcp") as f:
            if any(line.split()[3] == "01" for line in f.readlines()[1:]):
                break
        assert time.monotonic() < deadline, "no established connection"
        time.sleep(0.5)
    image = tmp_path / "image"
    r = runtime.run("checkpoint", "--image-path", image, "c1", timeout=120)
    assert r.returncode == 1
    [line] = stderr_lines(r)
    assert "checkpoint: criu dump failed: " in line and "tcp" in line.lower(), line
    assert line.endswith(f"(log: {image}/dump.log)"), line
    assert runtime.status("c1") == "running"
    r = runtime.run("checkpoint", "--tcp-established", "--leave-running", "--image-path",
                    tmp_path / "image2", "c1", timeout=120)
    assert r.returncode == 0, r.stderr
    assert runtime.status("c1") == "running"
    runtime.delete("c1", force=True)


@pytest.mark.criu
def test_user_namespace_container(runtime: Runtime, bundle, pipes, tmp_path: Path) -> None:
    # in a user namespace the device nodes are bound from the host: mounts CRIU must be
    # told are external (runc declares every device), else it cannot dump them
    from support.runc import open_tmp_path_for_userns

    open_tmp_path_for_userns(tmp_path)
    id_map = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b = bundle(["sh", "-c", COUNTER])
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.config["linux"]["uidMappings"] = id_map
    b.config["linux"]["gidMappings"] = id_map
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    b.write()
    pipes.run(runtime, "run", "-d", "--bundle", b, "c1")
    before = pipes.numbers(3)
    image = tmp_path / "image"
    pipes.run(runtime, "checkpoint", "--image-path", image, "c1")
    before += pipes.rest()
    # CRIU reads the images from inside the user namespace, as its mapped root
    for p in (image, *image.iterdir()):
        p.chmod(0o755 if p.is_dir() else 0o644)
    pipes.run(runtime, "restore", "-d", "--image-path", image, "--bundle", b, "c1")
    after = pipes.numbers(3)
    assert after == list(range(before[-1] + 1, before[-1] + 1 + len(after))), (before, after)
    runtime.delete("c1", force=True)
