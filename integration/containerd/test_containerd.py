"""containerd 1.6 driving pyruntime through its runc shim (io.containerd.runc.v2).

A private containerd (its own root, state, sockets under a temp dir; CRI plugin off) is
started for the module and killed by pid at the end; the busybox image is imported with
`ctr images import`; every container runs with `ctr run --runc-binary WRAPPER
--runc-root DIR`, so pyruntime's state lives in the temp dir too.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from clients import (
    BUILD,
    IMAGE,
    cgroup_dirs_named,
    check_exec_with_terminal,
    check_run_with_terminal,
    check_shim_argv,
    describe,
    make_wrapper,
    parent_name,
    pids_mentioning,
    remove_cgroups,
    remove_tree,
    run,
    sigkill,
    stop_daemon,
)

NAMESPACE = "pyrt-it"
ARGV_LOG = BUILD / "containerd-argv.log"

CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""
"""


class Containerd:
    def __init__(self, directory: Path, wrapper: Path) -> None:
        self.dir = directory
        self.wrapper = wrapper
        self.runc_root = directory / "runc-root"
        self.address = str(directory / "containerd.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    def ctr(self, *args: str, timeout: float = 90,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        __tracebackhide__ = True
        return run(["ctr", "--address", self.address, "--namespace", NAMESPACE, *args],
                   timeout=timeout, check=check)

    def ctr_argv(self, *args: str) -> list[str]:
        return ["ctr", "--address", self.address, "--namespace", NAMESPACE, *args]

    def run_args(self, *flags: str) -> list[str]:
        """`ctr run` flags that select pyruntime (through the argv-logging wrapper)."""
        return ["run", "--runc-binary", str(self.wrapper), "--runc-root", str(self.runc_root),
                *flags]

    def state_dir(self, cid: str) -> Path:
        """pyruntime's state dir for a container (--root is runc-root/<namespace>)."""
        return self.runc_root / NAMESPACE / cid

    def task_status(self, cid: str) -> str:
        for line in self.ctr("task", "ls", check=True).stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return fields[2]
        return ""

    def task_pid(self, cid: str) -> int:
        for line in self.ctr("task", "ls", check=True).stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return int(fields[1])
        raise AssertionError(f"no task {cid}")

    def wait_status(self, cid: str, status: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.task_status(cid) != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"task {cid}: {self.task_status(cid)!r}, not {status!r}")
            time.sleep(0.1)

    def remove(self, cid: str) -> None:
        """Kill, delete and remove a container, whatever state it is in."""
        self.ctr("task", "kill", "--signal", "KILL", cid, timeout=30)
        deadline = time.monotonic() + 15
        while self.task_status(cid) not in ("", "STOPPED") and time.monotonic() < deadline:
            time.sleep(0.1)
        self.ctr("task", "delete", "--force", cid, timeout=30)
        self.ctr("container", "rm", cid, timeout=30)


@pytest.fixture(scope="module")
def containerd(busybox_archive: Path):
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.fail("containerd is not installed (integration/run.sh installs it)")
    cgroups_before = cgroup_dirs_named(NAMESPACE)  # ctr's cgroupsPath is /<namespace>/<id>
    directory = Path(tempfile.mkdtemp(prefix="pyrt-ctd-", dir="/tmp"))
    (directory / "config.toml").write_text(CONFIG.format(d=directory))
    ARGV_LOG.unlink(missing_ok=True)
    c = Containerd(directory, make_wrapper(directory / "bin", ARGV_LOG))
    log = open(directory / "containerd.log", "wb")
    c.proc = subprocess.Popen(["containerd", "--config", str(directory / "config.toml")],
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while c.ctr("version", timeout=10).returncode != 0:
            if c.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("containerd did not start:\n"
                                     + (directory / "containerd.log").read_text()[-3000:])
            time.sleep(0.2)
        c.ctr("images", "import", str(busybox_archive), check=True, timeout=120)
        yield c
    finally:
        _stop(c)
        log.close()
        shutil.copy(directory / "containerd.log", BUILD / "containerd.log")
        remove_tree(directory)
        remove_cgroups(cgroup_dirs_named(NAMESPACE) - cgroups_before)


def _stop(c: Containerd) -> None:
    if c.proc is not None and c.proc.poll() is None:
        ids = c.ctr("container", "ls", "--quiet", timeout=30).stdout.split()
        for cid in ids:
            c.remove(cid)
        stop_daemon(c.proc, 15)
    # shims of this containerd (their command line names our socket) and anything else
    # still running from our temp dir
    sigkill(pids_mentioning(str(c.dir)))


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sleeper(containerd: Containerd):
    """A detached container running `sleep 1000`, removed afterwards."""
    cid = new_id("sleeper")
    containerd.ctr(*containerd.run_args("-d"), IMAGE, cid, "sleep", "1000", check=True)
    yield cid
    containerd.remove(cid)


# -- ctr run ---------------------------------------------------------------------------------

def test_run_output_and_exit_code(containerd: Containerd) -> None:
    cid = new_id("run")
    r = containerd.ctr(*containerd.run_args("--rm"), IMAGE, cid,
                       "sh", "-c", "echo hello from $(hostname); echo to-stderr >&2; exit 3")
    assert r.returncode == 3, describe(r)
    assert r.stdout.startswith("hello from "), describe(r)
    assert "to-stderr" in r.stderr
    assert not containerd.state_dir(cid).exists(), "pyruntime state left after --rm"


def test_run_with_terminal(containerd: Containerd) -> None:
    cid = new_id("tty")
    check_run_with_terminal(containerd.ctr_argv(*containerd.run_args("--rm", "-t"), IMAGE, cid))


def test_init_outlives_create_under_the_shim(containerd: Containerd, sleeper: str) -> None:
    pid = containerd.task_pid(sleeper)
    assert parent_name(pid).startswith("containerd-shim"), parent_name(pid)
    assert containerd.task_status(sleeper) == "RUNNING"


def test_failed_create_shows_the_runtimes_message(containerd: Containerd) -> None:
    cid = new_id("fail")
    r = containerd.ctr(*containerd.run_args("--rm"), IMAGE, cid, "/bin/no-such-binary")
    assert r.returncode != 0
    assert "OCI runtime create failed" in r.stderr, describe(r)
    assert "/bin/no-such-binary" in r.stderr, describe(r)
    assert "no such file" in r.stderr.lower(), describe(r)
    assert not containerd.state_dir(cid).exists()
    assert cid not in containerd.ctr("container", "ls", "--quiet").stdout.split()


# -- ctr task ----------------------------------------------------------------------------------

def test_task_exec(containerd: Containerd, sleeper: str) -> None:
    r = containerd.ctr("task", "exec", "--exec-id", "e1", sleeper, "sh", "-c",
                       "echo exec-out; [ $(readlink /proc/1/ns/pid) = $(readlink "
                       "/proc/self/ns/pid) ] && echo same-pidns; exit 5")
    assert r.returncode == 5, describe(r)
    assert r.stdout.split() == ["exec-out", "same-pidns"], describe(r)


def test_task_exec_with_terminal(containerd: Containerd, sleeper: str) -> None:
    check_exec_with_terminal(containerd.ctr_argv("task", "exec", "-t", "--exec-id", "e2",
                                                 sleeper))


def test_task_exec_missing_binary(containerd: Containerd, sleeper: str) -> None:
    r = containerd.ctr("task", "exec", "--exec-id", "e3", sleeper, "no-such-binary")
    assert r.returncode != 0
    assert "no-such-binary" in r.stderr and "not found" in r.stderr, describe(r)
    assert containerd.task_status(sleeper) == "RUNNING"


def test_task_ps(containerd: Containerd, sleeper: str) -> None:
    pid = containerd.task_pid(sleeper)
    r = containerd.ctr("task", "ps", sleeper, check=True)
    assert str(pid) in r.stdout.split(), describe(r)


def test_task_pause_resume(containerd: Containerd, sleeper: str) -> None:
    containerd.ctr("task", "pause", sleeper, check=True)
    containerd.wait_status(sleeper, "PAUSED")
    r = containerd.ctr("task", "exec", "--exec-id", "ep", sleeper, "true", timeout=30)
    assert r.returncode != 0, "exec into a paused container must fail"
    containerd.ctr("task", "resume", sleeper, check=True)
    containerd.wait_status(sleeper, "RUNNING")
    r = containerd.ctr("task", "exec", "--exec-id", "er", sleeper, "true")
    assert r.returncode == 0, describe(r)


def test_task_kill_and_delete(containerd: Containerd) -> None:
    cid = new_id("kill")
    containerd.ctr(*containerd.run_args("-d"), IMAGE, cid, "sh", "-c",
                   "trap 'exit 42' TERM; while :; do sleep 0.1; done", check=True)
    try:
        assert containerd.state_dir(cid).is_dir()
        containerd.ctr("task", "kill", "--signal", "TERM", cid, check=True)
        containerd.wait_status(cid, "STOPPED")
        r = containerd.ctr("task", "delete", cid)
        assert r.returncode == 0, describe(r)
        assert "42" in r.stdout + r.stderr or r.stdout == "", describe(r)
        assert not containerd.state_dir(cid).exists(), "delete left pyruntime's state"
        r = containerd.ctr("container", "rm", cid)
        assert r.returncode == 0, describe(r)
    finally:
        containerd.remove(cid)


# -- what the shim sent ------------------------------------------------------------------------

def test_argv_shapes(containerd: Containerd, sleeper: str) -> None:
    containerd.ctr("task", "exec", "--exec-id", "argv", sleeper, "true", check=True)
    lines = [line.split() for line in ARGV_LOG.read_text().splitlines()
             if line.split() and line.split()[-1] == sleeper]
    for argv in lines:
        assert argv[:2] == ["--root", str(containerd.runc_root / NAMESPACE)], argv
        assert argv[3].endswith(f"/{sleeper}/log.json"), argv
    check_shim_argv(lines)


@pytest.mark.criu
def test_checkpoint_and_restore(containerd: Containerd) -> None:
    """`ctr c checkpoint --task` (the shim calls pyruntime checkpoint) then `ctr c restore
    --live` into a new container (the shim calls pyruntime restore): the restored task is
    the dumped one, still running its loop from where it was dumped: the loop starts at
    a random multiple of 1000 (a fresh start would pick another one) and goes on from
    the count it had (written by rename: a read never sees it half written)."""
    cid, restored = new_id("ckpt"), new_id("rest")
    ref = f"checkpoint/{cid}:1"
    containerd.ctr(*containerd.run_args("-d"), IMAGE, cid, "sh", "-c",
                   "i=$(( $(od -An -N2 -tu2 /dev/urandom) * 1000 )); "
                   "while :; do i=$((i+1)); echo $i > /tmp/c; mv /tmp/c /tmp/count; "
                   "sleep 0.2; done",
                   check=True)

    def count(container: str, exec_id: str) -> int:
        r = containerd.ctr("task", "exec", "--exec-id", exec_id, container, "cat",
                           "/tmp/count", timeout=120)
        assert r.returncode == 0, describe(r)
        return int(r.stdout)

    try:
        containerd.wait_status(cid, "RUNNING")
        time.sleep(1)
        r = containerd.ctr("container", "checkpoint", "--task", "--rw", cid, ref, timeout=600)
        assert r.returncode == 0, describe(r)
        at_dump = count(cid, "e0")  # --task leaves it running; it counts on
        containerd.remove(cid)
        r = containerd.ctr("container", "restore", "--live", "--rw", restored, ref,
                           timeout=600)
        assert r.returncode == 0, describe(r)
        containerd.wait_status(restored, "RUNNING", timeout=120)
        first = count(restored, "e1")
        time.sleep(1)
        assert count(restored, "e2") > first  # it counts on
        # the dumped loop's i: at most a few hundred steps from the count read after
        # the dump (the dumped task counted on until it was removed)
        assert abs(first - at_dump) < 1000, (at_dump, first)
        verbs = [line.split() for line in ARGV_LOG.read_text().splitlines()]
        assert any("checkpoint" in v for v in verbs) and any("restore" in v for v in verbs)
    finally:
        containerd.remove(cid)
        containerd.remove(restored)
        containerd.ctr("images", "rm", ref, timeout=60)


# -- SystemdCgroup = true (systemd as PID 1: make test-systemd) --------------------------------

@pytest.mark.systemd
def test_systemd_cgroup(containerd: Containerd) -> None:
    """ctr's --runc-systemd-cgroup is the runc shim's SystemdCgroup = true: the shim passes
    --systemd-cgroup, and the container lives in the scope its cgroupsPath names."""
    cid = new_id("sd")
    scope = f"pyrt-ctd-{cid}.scope"
    containerd.ctr(*containerd.run_args("-d", "--runc-systemd-cgroup", "--cgroup",
                                        f"system.slice:pyrt-ctd:{cid}", "--memory-limit",
                                        str(64 << 20)),
                   IMAGE, cid, "sleep", "1000", check=True)
    try:
        pid = containerd.task_pid(cid)
        with open(f"/proc/{pid}/cgroup") as f:
            assert f.read().strip() == f"0::/system.slice/{scope}"
        show = run(["systemctl", "show", "-p", "ActiveState,MemoryMax,Delegate", scope],
                   check=True).stdout.split()
        assert sorted(show) == ["ActiveState=active", "Delegate=yes",
                                f"MemoryMax={64 << 20}"], show
        containerd.ctr("task", "pause", cid, check=True)
        containerd.wait_status(cid, "PAUSED")
        containerd.ctr("task", "resume", cid, check=True)
        containerd.wait_status(cid, "RUNNING")
        assert any("--systemd-cgroup" in line and " create " in line
                   for line in ARGV_LOG.read_text().splitlines())
    finally:
        containerd.remove(cid)
    show = run(["systemctl", "show", "-p", "LoadState", scope], check=True).stdout.split()
    assert show == ["LoadState=not-found"], show
