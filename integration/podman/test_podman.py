"""podman 4.3 (through conmon) driving pyruntime: `podman --runtime WRAPPER ...`.

Everything podman keeps is private to a temp dir (--root, --runroot, --tmpdir), with the
cgroupfs manager and file events (no systemd here). On this host a container also needs
`--network none` and explicit --ulimit values (RUN_FLAGS): without CAP_SYS_RESOURCE the
rlimits podman sets by default cannot be raised here. podman never passes --root to the
runtime, so the wrapper adds a private one (never /run/pyruntime).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from clients import (
    BUILD,
    IMAGE,
    cgroup_dirs_named,
    check_exec_with_terminal,
    check_run_with_terminal,
    describe,
    make_wrapper,
    new_name,
    pids_mentioning,
    remove_cgroups,
    remove_tree,
    run,
    sigkill,
)

from support.mountinfo import cgroup_mount

ARGV_LOG = BUILD / "podman-argv.log"
RUN_FLAGS = ["--network", "none", "--ulimit", "nofile=1024:1024",
             "--ulimit", "nproc=32768:32768"]


class Podman:
    def __init__(self, directory: Path, wrapper: Path, runtime_root: Path) -> None:
        self.dir = directory
        self.wrapper = wrapper
        self.runtime_root = runtime_root

    def argv(self, *args: str) -> list[str]:
        d = self.dir
        return ["podman", "--root", str(d / "root"), "--runroot", str(d / "runroot"),
                "--tmpdir", str(d / "tmp"), "--cgroup-manager", "cgroupfs",
                "--events-backend", "file", "--storage-driver", "overlay",
                "--runtime", str(self.wrapper), *args]

    def __call__(self, *args: str, timeout: float = 120,
                 check: bool = False) -> subprocess.CompletedProcess[str]:
        __tracebackhide__ = True
        return run(self.argv(*args), timeout=timeout, check=check)

    def container_id(self, name: str) -> str:
        return self("inspect", "--format", "{{.Id}}", name, check=True).stdout.strip()


@pytest.fixture(scope="module")
def podman(busybox_archive: Path):
    if shutil.which("podman") is None or shutil.which("conmon") is None:
        pytest.fail("podman is not installed (integration/run.sh installs it)")
    cgroups_before = cgroup_dirs_named("libpod_parent")  # podman's cgroupfs parent
    directory = Path(tempfile.mkdtemp(prefix="pyrt-podman-", dir="/tmp"))
    for sub in ("root", "runroot", "tmp"):
        (directory / sub).mkdir()
    ARGV_LOG.unlink(missing_ok=True)
    runtime_root = directory / "runtime-root"
    p = Podman(directory, make_wrapper(directory / "bin", ARGV_LOG, root=runtime_root),
               runtime_root)
    try:
        p("load", "--input", str(busybox_archive), check=True)
        yield p
    finally:
        p("rm", "--all", "--force", "--time", "0", timeout=120)
        p("rmi", "--all", "--force", timeout=120)
        sigkill(pids_mentioning(str(directory)))  # conmon and whatever it left
        remove_tree(directory)
        remove_cgroups(cgroup_dirs_named("libpod_parent") - cgroups_before)


@pytest.fixture
def sleeper(podman: Podman):
    name = new_name("sleeper")
    podman("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sleep", "1000", check=True)
    yield name
    podman("rm", "--force", "--time", "0", name)


def test_run_rm_echo(podman: Podman) -> None:
    r = podman("run", "--rm", *RUN_FLAGS, IMAGE, "echo", "hi")
    assert (r.returncode, r.stdout) == (0, "hi\n"), describe(r)


def test_run_exit_code(podman: Podman) -> None:
    r = podman("run", "--rm", *RUN_FLAGS, IMAGE, "sh", "-c", "echo out; exit 3")
    assert (r.returncode, r.stdout) == (3, "out\n"), describe(r)


def test_run_with_terminal(podman: Podman) -> None:
    check_run_with_terminal(podman.argv("run", "--rm", "-t", *RUN_FLAGS, IMAGE))


def test_exec(podman: Podman, sleeper: str) -> None:
    r = podman("exec", sleeper, "sh", "-c",
               "echo exec-out; [ $(readlink /proc/1/ns/mnt) = $(readlink /proc/self/ns/mnt) ]"
               " && echo same-mntns; exit 5")
    assert r.returncode == 5, describe(r)
    assert r.stdout.split() == ["exec-out", "same-mntns"], describe(r)


def test_exec_with_terminal(podman: Podman, sleeper: str) -> None:
    check_exec_with_terminal(podman.argv("exec", "-t", sleeper))


def test_stop(podman: Podman) -> None:
    name = new_name("stop")
    podman("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sh", "-c",
           "trap 'exit 42' TERM; while :; do sleep 0.1; done", check=True)
    try:
        cid = podman.container_id(name)
        assert (podman.runtime_root / cid).is_dir()
        podman("stop", "--time", "20", name, check=True)
        # 42: the TERM trap ended it (podman's SIGKILL after --time would give 137)
        r = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name,
                   check=True)
        assert r.stdout.split() == ["exited", "42"], describe(r)
    finally:
        podman("rm", "--force", "--time", "0", name)
    assert not (podman.runtime_root / cid).exists(), "podman rm left pyruntime's state"


def test_failed_create_shows_the_runtimes_message(podman: Podman) -> None:
    r = podman("run", "--rm", *RUN_FLAGS, IMAGE, "/bin/no-such-binary")
    assert r.returncode == 127, describe(r)  # podman: "command not found"
    assert "/bin/no-such-binary" in r.stderr, describe(r)
    assert "no such file" in r.stderr.lower(), describe(r)


def test_argv_shapes(podman: Podman, sleeper: str) -> None:
    podman("exec", sleeper, "true", check=True)
    cid = podman.container_id(sleeper)
    lines = [line.split() for line in ARGV_LOG.read_text().splitlines()
             if line.split() and line.split()[-1] == cid]
    verbs = {argv[0]: argv[1:] for argv in reversed(lines)}
    # podman passes --log/--log-format only to runtimes named runc or crun, never --root
    assert all(not argv[0].startswith("-") for argv in lines), lines
    assert verbs["create"][0] == "--bundle" and "--pid-file" in verbs["create"]
    assert "start" in verbs
    assert "--process" in verbs["exec"] and "--detach" in verbs["exec"]
    assert "--pid-file" in verbs["exec"]


@pytest.mark.criu
def test_checkpoint_and_restore(podman: Podman) -> None:
    """podman container checkpoint/restore through pyruntime's checkpoint and restore
    (conmon gives the container pipes): the counter goes on after the restore, in the
    container's cgroup, seeing the same cgroup mount (podman gives it a cgroup
    namespace on cgroup v2)."""
    name = new_name("ckpt")
    podman("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sh", "-c",
           "i=0; while :; do echo $i; i=$((i+1)); sleep 0.2; done", check=True)

    def pid() -> int:
        return int(podman("inspect", "--format", "{{.State.Pid}}", name, check=True).stdout)

    try:
        time.sleep(2)
        before = pid()
        with open(f"/proc/{before}/cgroup") as f:
            cgroup = f.read()
        mount = cgroup_mount(before)
        r = podman("container", "checkpoint", name, timeout=600)
        assert r.returncode == 0, describe(r)
        state = podman("inspect", "--format", "{{.State.Status}}", name, check=True)
        assert state.stdout.strip() == "exited", describe(state)
        r = podman("container", "restore", name, timeout=600)
        assert r.returncode == 0, describe(r)
        time.sleep(2)
        state = podman("inspect", "--format", "{{.State.Status}}", name, check=True)
        assert state.stdout.strip() == "running", describe(state)
        numbers = [int(x) for x in podman("logs", name, check=True).stdout.split()]
        assert numbers.count(0) == 1, numbers  # not started again: restored
        assert numbers == list(range(len(numbers))), numbers
        assert len(numbers) > 12, numbers  # it counted on after the restore
        after = pid()
        with open(f"/proc/{after}/cgroup") as f:
            assert f.read() == cgroup
        assert cgroup_mount(after) == mount
        verbs = [line.split() for line in ARGV_LOG.read_text().splitlines()]
        assert any("checkpoint" in v for v in verbs) and any("restore" in v for v in verbs)
    finally:
        podman("rm", "--force", "--time", "0", name)


# -- --cgroup-manager systemd (systemd as PID 1: make test-systemd) ----------------------------

@pytest.mark.systemd
def test_systemd_cgroup_manager(podman: Podman) -> None:
    """podman --cgroup-manager systemd (its default on systemd hosts) passes
    --systemd-cgroup and cgroupsPath machine.slice:libpod:ID: the container lives in the
    scope libpod-ID.scope."""
    def argv(*args: str) -> list[str]:
        return ["systemd" if a == "cgroupfs" else a for a in podman.argv(*args)]

    name = new_name("sd")
    r = run(argv("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sleep", "1000"),
            timeout=180)
    assert r.returncode == 0, describe(r)
    try:
        cid = podman.container_id(name)
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", name, check=True).stdout)
        scope = f"libpod-{cid}.scope"
        with open(f"/proc/{pid}/cgroup") as f:
            assert f.read().strip() == f"0::/machine.slice/{scope}"
        show = run(["systemctl", "show", "-p", "ActiveState,Delegate", scope],
                   check=True).stdout.split()
        assert sorted(show) == ["ActiveState=active", "Delegate=yes"], show
        assert any("--systemd-cgroup" in line and " create " in line
                   for line in ARGV_LOG.read_text().splitlines())
    finally:
        run(argv("rm", "--force", "--time", "0", name), timeout=180)
    show = run(["systemctl", "show", "-p", "LoadState", scope], check=True).stdout.split()
    assert show == ["LoadState=not-found"], show
