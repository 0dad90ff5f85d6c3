"""Docker 20.10 (Debian's docker.io) driving pyruntime: `docker run --runtime pyruntime`.

A private dockerd is started for the module with everything in a temp dir (--data-root,
--exec-root, its socket, pid file, key file, daemon.json) and the runtime registered with
`--add-runtime pyruntime=WRAPPER` (and once more, as `pyruntime-json`, through daemon.json's
"runtimes"). dockerd starts its own containerd, whose runc shim calls the wrapper with
`--root <exec-root>/runtime-runc/moby`: pyruntime's state lives in the temp dir too.

The host's network is left alone: no bridge (--bridge=none), no iptables rules, no
ip_forward change, every container `--network none`; the cgroupfs driver puts containers
under a cgroup parent of the module's own, removed at the end. The teardown checks that
nothing stays behind: no mount under the temp dir, no docker0, no DOCKER chain, the same
net.ipv4.ip_forward.

The image is `docker import` of the busybox rootfs (offline). Not here: `--privileged`
(runc fails too on this host: it lacks CAP_SYS_RESOURCE), BuildKit (it calls runc
directly whatever the configured runtime).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import busybox_image
import pytest
from clients import (
    BUILD,
    cgroup_dirs_named,
    check_exec_with_terminal,
    check_run_with_terminal,
    check_shim_argv,
    describe,
    make_wrapper,
    new_name,
    pids_mentioning,
    remove_cgroups,
    remove_tree,
    run,
    sigkill,
    stop_daemon,
)

DOCKER = "/usr/bin/docker"  # docker.io's CLI (another docker may come first in PATH)
DOCKERD = "/usr/sbin/dockerd"
IMAGE = "pyrt-busybox:latest"
RUNTIME = "pyruntime"
ARGV_LOG = BUILD / "docker-argv.log"
RUN_FLAGS = ["--runtime", RUNTIME, "--network", "none"]
PLUGINS_DIR = Path("/run/docker")  # dockerd makes /run/docker/plugins whatever its exec-root


class Docker:
    def __init__(self, directory: Path, wrapper: Path, cgroup_parent: str) -> None:
        self.dir = directory
        self.wrapper = wrapper
        self.cgroup_parent = cgroup_parent
        self.exec_root = directory / "exec"
        self.socket = directory / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self, *args: str) -> list[str]:
        return [DOCKER, "--config", str(self.dir / "cli"), "-H", f"unix://{self.socket}",
                *args]

    def __call__(self, *args: str, timeout: float = 120,
                 check: bool = False) -> subprocess.CompletedProcess[str]:
        __tracebackhide__ = True
        return run(self.argv(*args), timeout=timeout, check=check)

    def inspect(self, name: str, template: str) -> str:
        return self("inspect", "--format", template, name, check=True).stdout.strip()

    def container_id(self, name: str) -> str:
        return self.inspect(name, "{{.Id}}")

    def runtime_calls(self, cid: str) -> list[list[str]]:
        """The argv of every runtime call for container `cid`, in order."""
        return [line.split() for line in ARGV_LOG.read_text().splitlines()
                if cid in line.split()]

    def state_dir(self, cid: str) -> Path:
        """pyruntime's state dir for `cid`, under the --root the shim passed."""
        calls = self.runtime_calls(cid)
        assert calls and calls[0][0] == "--root", f"no runtime call for {cid}: {calls}"
        root = Path(calls[0][1])
        assert root.is_relative_to(self.exec_root), root  # never /run/pyruntime
        return root / cid

    def wait_status(self, name: str, status: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while (now := self.inspect(name, "{{.State.Status}}")) != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: {now!r}, not {status!r}")
            time.sleep(0.1)


def _start(d: Docker) -> None:
    # the other way to register a runtime: daemon.json's "runtimes"; and a key file of ours
    # (dockerd 20.10 writes /etc/docker/key.json otherwise)
    config = {"runtimes": {f"{RUNTIME}-json": {"path": str(d.wrapper)}},
              "deprecated-key-path": str(d.dir / "key.json")}
    (d.dir / "daemon.json").write_text(json.dumps(config))
    log = open(d.dir / "dockerd.log", "wb")
    d.proc = subprocess.Popen(
        [DOCKERD, "--config-file", str(d.dir / "daemon.json"),
         "--data-root", str(d.dir / "data"), "--exec-root", str(d.exec_root),
         "-H", f"unix://{d.socket}", "--pidfile", str(d.dir / "docker.pid"),
         "--add-runtime", f"{RUNTIME}={d.wrapper}",
         "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
         "--ip-masq=false", "--userland-proxy=false",
         "--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", d.cgroup_parent,
         "--storage-driver", "overlay2"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    log.close()
    deadline = time.monotonic() + 60
    while d("version", timeout=20).returncode != 0:
        if d.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError("dockerd did not start:\n"
                                 + (d.dir / "dockerd.log").read_text()[-3000:])
        time.sleep(0.2)


def _stop(d: Docker) -> None:
    if d.proc is not None and d.proc.poll() is None:
        ids = d("ps", "--all", "--quiet", timeout=60).stdout.split()
        if ids:
            d("rm", "--force", *ids, timeout=120)
        stop_daemon(d.proc, 30)  # dockerd stops its containerd, unmounts data-root
    # its containerd and shims (their command lines name our temp dir), if any outlived it
    sigkill(pids_mentioning(str(d.dir)))


def _host_network() -> dict[str, object]:
    """What dockerd could change in the host's network (and must not, here)."""
    rules = ""
    if shutil.which("iptables-save"):
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {"ip_forward": Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
            "docker0": Path("/sys/class/net/docker0").exists(),
            "DOCKER chains": "DOCKER" in rules}


def _mounts_under(directory: Path) -> list[str]:
    prefix = str(directory) + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if (line.split()[4] + "/").startswith(prefix)]


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory):
    if os.geteuid() != 0:
        pytest.skip("the client suites need root")
    if not (os.access(DOCKER, os.X_OK) and os.access(DOCKERD, os.X_OK)):
        pytest.fail("docker.io is not installed (integration/run.sh installs it)")
    network_before = _host_network()
    plugins_dir_before = PLUGINS_DIR.exists()
    cgroup_parent = f"pyrt-docker-{uuid.uuid4().hex[:8]}"
    directory = Path(tempfile.mkdtemp(prefix="pyrt-docker-", dir="/tmp"))
    d = Docker(directory, make_wrapper(directory / "bin", ARGV_LOG), cgroup_parent)
    ARGV_LOG.write_text("")
    try:
        _start(d)
        rootfs = tmp_path_factory.mktemp("docker-image") / "rootfs.tar"
        busybox_image.write_rootfs_tar(rootfs)
        d("import", "--change", 'CMD ["sh"]', "--change", f"ENV PATH={busybox_image.PATH}",
          str(rootfs), IMAGE, check=True)
        yield d
    finally:
        _stop(d)
        if (d.dir / "dockerd.log").exists():
            shutil.copy(d.dir / "dockerd.log", BUILD / "dockerd.log")
        left_mounted = _mounts_under(directory)
        remove_tree(directory)
        remove_cgroups(cgroup_dirs_named(cgroup_parent))
        if not plugins_dir_before:
            for empty in (PLUGINS_DIR / "plugins", PLUGINS_DIR):
                try:
                    empty.rmdir()
                except OSError:
                    pass
    assert not left_mounted, f"dockerd left mounts behind: {left_mounted}"
    assert not cgroup_dirs_named(cgroup_parent), "cgroups left behind"
    assert _host_network() == network_before, "dockerd changed the host's network"


@pytest.fixture(autouse=True)
def _through_the_runtime(docker: Docker, request: pytest.FixtureRequest):
    """Every test's containers were created through the wrapper: dockerd did not fall
    back to its default runtime (runc). (The module's shared container was created
    before the test: the test's calls into it went through the wrapper.)"""
    before = ARGV_LOG.stat().st_size
    yield
    with open(ARGV_LOG) as f:
        f.seek(before)
        verbs = [argv[6] for argv in (line.split() for line in f) if len(argv) > 6]
    expected = "exec" if "shared" in request.fixturenames else "create"
    assert expected in verbs, f"the runtime was not called to {expected}: {verbs}"


@pytest.fixture
def sleeper(docker: Docker):
    """A detached container running `sleep 1000`, removed afterwards."""
    name = new_name("sleeper")
    docker("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sleep", "1000", check=True)
    yield name
    docker("rm", "--force", name)


@pytest.fixture(scope="module")
def shared(docker: Docker):
    """One detached `sleep 1000` for the tests that only exec into it."""
    name = new_name("shared")
    docker("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sleep", "1000", check=True)
    yield name
    docker("rm", "--force", name)


def cid_file(docker: Docker) -> Path:
    """A path for `docker run --cidfile` (the id of a --rm container, for the argv log)."""
    return docker.dir / f"cid-{uuid.uuid4().hex[:8]}"


def assert_ran_under_pyruntime(docker: Docker, cid: str) -> None:
    verbs = [argv[6] for argv in docker.runtime_calls(cid) if len(argv) > 6]
    assert "create" in verbs and "start" in verbs, f"the runtime saw {verbs} for {cid}"


# -- docker run ------------------------------------------------------------------------------

def test_run_output_and_exit_code(docker: Docker) -> None:
    cidfile = cid_file(docker)
    r = docker("run", "--rm", "--cidfile", str(cidfile), *RUN_FLAGS, IMAGE, "sh", "-c",
               "echo hello from $(hostname); echo to-stderr >&2; exit 3")
    assert r.returncode == 3, describe(r)
    cid = cidfile.read_text().strip()
    assert r.stdout == f"hello from {cid[:12]}\n", describe(r)
    assert r.stderr == "to-stderr\n", describe(r)
    assert_ran_under_pyruntime(docker, cid)
    assert not docker.state_dir(cid).exists(), "pyruntime state left after --rm"


def test_run_with_terminal(docker: Docker) -> None:
    check_run_with_terminal(docker.argv("run", "--rm", "-t", *RUN_FLAGS, IMAGE))


def test_run_with_stdin(docker: Docker) -> None:
    r = run(docker.argv("run", "--rm", "-i", *RUN_FLAGS, IMAGE, "sh", "-c",
                        "tr a-z A-Z; exit 2"), input="piped in\n")
    assert (r.returncode, r.stdout) == (2, "PIPED IN\n"), describe(r)


def test_runtime_from_daemon_json(docker: Docker) -> None:
    cidfile = cid_file(docker)
    r = docker("run", "--rm", "--cidfile", str(cidfile), "--runtime", f"{RUNTIME}-json",
               "--network", "none", IMAGE, "echo", "via daemon.json")
    assert (r.returncode, r.stdout) == (0, "via daemon.json\n"), describe(r)
    assert_ran_under_pyruntime(docker, cidfile.read_text().strip())


def test_run_missing_binary_is_127(docker: Docker) -> None:
    cidfile = cid_file(docker)
    r = docker("run", "--rm", "--cidfile", str(cidfile), *RUN_FLAGS, IMAGE,
               "/bin/no-such-binary")
    # dockerd maps the runtime's error text to the exit status: "no such file" -> 127
    assert r.returncode == 127, describe(r)
    assert "OCI runtime create failed" in r.stderr, describe(r)
    assert "/bin/no-such-binary" in r.stderr, describe(r)
    assert "no such file or directory" in r.stderr, describe(r)
    cid = cidfile.read_text().strip()
    assert [argv[6] for argv in docker.runtime_calls(cid)][0] == "create"
    assert not docker.state_dir(cid).exists(), "a failed create left pyruntime's state"


def test_run_not_executable_is_126(docker: Docker) -> None:
    r = docker("run", "--rm", *RUN_FLAGS, IMAGE, "/etc/passwd")
    assert r.returncode == 126, describe(r)  # "permission denied" -> 126
    assert "/etc/passwd" in r.stderr and "permission denied" in r.stderr, describe(r)


def test_run_command_not_in_path_is_127(docker: Docker) -> None:
    r = docker("run", "--rm", *RUN_FLAGS, IMAGE, "no-such-command")
    assert r.returncode == 127, describe(r)
    assert "no-such-command" in r.stderr, describe(r)
    assert "executable file not found" in r.stderr, describe(r)


def test_process_settings(docker: Docker) -> None:
    """--read-only, --user, --cap-drop, -e, -w, --hostname as the container sees them."""
    r = docker("run", "--rm", *RUN_FLAGS, "--read-only", "--user", "65534:65534",
               "--cap-drop", "ALL", "-e", "GREETING=hi there", "-w", "/tmp",
               "--hostname", "dockerbox", IMAGE, "sh", "-c",
               "id -u; id -g; pwd; echo \"$GREETING\"; hostname;"
               " grep CapEff /proc/self/status; touch /x 2>&1; echo touch=$?")
    assert r.returncode == 0, describe(r)
    lines = r.stdout.splitlines()
    assert lines[:5] == ["65534", "65534", "/tmp", "hi there", "dockerbox"], describe(r)
    assert lines[5].split() == ["CapEff:", "0000000000000000"], describe(r)
    assert "Read-only file system" in lines[6] and lines[7] == "touch=1", describe(r)


def test_default_capabilities_and_cap_add(docker: Docker) -> None:
    """Docker's default set (14 capabilities, no CAP_SYS_ADMIN), plus --cap-add."""
    script = "grep CapBnd /proc/self/status"
    plain = docker("run", "--rm", *RUN_FLAGS, IMAGE, "sh", "-c", script, check=True)
    added = docker("run", "--rm", *RUN_FLAGS, "--cap-add", "SYS_ADMIN", IMAGE, "sh", "-c",
                   script, check=True)
    bounding = int(plain.stdout.split()[1], 16)
    assert bounding == 0xa80425fb, plain.stdout  # docker's defaults (oci/caps/defaults.go)
    assert int(added.stdout.split()[1], 16) == bounding | (1 << 21), added.stdout


def test_volumes_and_security_options(docker: Docker) -> None:
    """-v (read-write and :ro), --tmpfs, --ulimit, --shm-size, --sysctl, --device and
    no-new-privileges, as the container sees them."""
    volume = docker.dir / f"vol-{uuid.uuid4().hex[:8]}"
    volume.mkdir()
    (volume / "from-host").write_text("host\n")
    r = docker("run", "--rm", *RUN_FLAGS, "-v", f"{volume}:/rw", "-v", f"{volume}:/ro:ro",
               "--tmpfs", "/scratch:size=1m", "--ulimit", "nofile=512:1024",
               "--shm-size", "8m", "--sysctl", "net.ipv4.ip_unprivileged_port_start=99",
               "--device", "/dev/null:/dev/other-null", "--security-opt",
               "no-new-privileges", IMAGE, "sh", "-c",
               "cat /ro/from-host; echo c > /rw/from-container; touch /ro/x 2>/dev/null;"
               " echo ro=$?; grep -E ' /scratch | /dev/shm ' /proc/mounts | cut -d' ' -f3,4;"
               " ulimit -n; ulimit -Hn; cat /proc/sys/net/ipv4/ip_unprivileged_port_start;"
               " [ -c /dev/other-null ] && echo > /dev/other-null && echo device;"
               " grep NoNewPrivs /proc/self/status")
    assert r.returncode == 0, describe(r)
    lines = r.stdout.splitlines()
    assert lines[:2] == ["host", "ro=1"], describe(r)
    # /dev/shm (--shm-size) and /scratch (--tmpfs), in either order
    assert sorted(lines[2:4]) == [f"tmpfs rw,nosuid,nodev,noexec,relatime,size={k}k"
                                  for k in (1024, 8192)], describe(r)
    assert lines[4:8] == ["512", "1024", "99", "device"], describe(r)
    assert lines[8].split() == ["NoNewPrivs:", "1"], describe(r)
    assert (volume / "from-container").read_text() == "c\n"


def test_limits_seen_inside(docker: Docker) -> None:
    r = docker("run", "--rm", *RUN_FLAGS, "--memory", "64m", "--cpus", "0.5",
               "--pids-limit", "50", "--cpu-shares", "512", IMAGE, "sh", "-c",
               "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes cpu/cpu.cfs_quota_us"
               " cpu/cpu.cfs_period_us cpu/cpu.shares pids/pids.max")
    assert r.returncode == 0, describe(r)
    assert r.stdout.split() == [str(64 << 20), "50000", "100000", "512", "50"], describe(r)


def cgroup_dir(pid: int, controller: str) -> Path:
    """The directory of pid's cgroup in the v1 hierarchy of `controller`."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup", controller, path.lstrip("/"))
    raise AssertionError(f"{pid} has no {controller} cgroup")


def test_container_cgroup_is_under_the_cgroup_parent(docker: Docker, sleeper: str) -> None:
    """dockerd's cgroupsPath is PARENT/ID, relative: under the runtime's own cgroup in
    each hierarchy, as runc places it."""
    pid = int(docker.inspect(sleeper, "{{.State.Pid}}"))
    cid = docker.container_id(sleeper)
    for controller in ("memory", "cpu", "pids", "freezer", "devices"):
        path = cgroup_dir(pid, controller)
        assert path.parts[-2:] == (docker.cgroup_parent, cid), path
        assert str(pid) in (path / "cgroup.procs").read_text().split()


def test_oom_kill(docker: Docker) -> None:
    name = new_name("oom")
    r = docker("run", "--name", name, *RUN_FLAGS, "--memory", "32m", "--memory-swap", "32m",
               IMAGE, "sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' x); echo no")
    try:
        assert r.returncode == 137, describe(r)
        assert docker.inspect(name, "{{.State.OOMKilled}}") == "true"
    finally:
        docker("rm", "--force", name)


# -- a detached container ------------------------------------------------------------------

def test_detached_logs_and_wait(docker: Docker) -> None:
    name = new_name("detached")
    docker("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sh", "-c",
           "echo out; echo err >&2; exit 7", check=True)
    try:
        r = docker("wait", name, check=True)
        assert r.stdout.strip() == "7", describe(r)
        r = docker("logs", name, check=True)
        assert (r.stdout, r.stderr) == ("out\n", "err\n"), describe(r)
        assert docker.inspect(name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 7"
    finally:
        docker("rm", "--force", name)


def test_exec(docker: Docker, shared: str) -> None:
    r = docker("exec", "-e", "WHO=exec", "-w", "/tmp", shared, "sh", "-c",
               "echo $WHO $(pwd); [ $(readlink /proc/1/ns/pid) = $(readlink /proc/self/ns/pid) ]"
               " && echo same-pidns; exit 5")
    assert r.returncode == 5, describe(r)
    assert r.stdout.splitlines() == ["exec /tmp", "same-pidns"], describe(r)


def test_exec_with_terminal(docker: Docker, shared: str) -> None:
    check_exec_with_terminal(docker.argv("exec", "-it", shared))


def test_exec_with_stdin_and_detached(docker: Docker, shared: str) -> None:
    r = run(docker.argv("exec", "-i", shared, "sh", "-c", "cat > /tmp/in; cat /tmp/in"),
            input="via exec\n")
    assert (r.returncode, r.stdout) == (0, "via exec\n"), describe(r)
    docker("exec", "--detach", shared, "sh", "-c", "echo detached > /tmp/d", check=True)
    deadline = time.monotonic() + 30
    while (r := docker("exec", shared, "cat", "/tmp/d")).stdout != "detached\n":
        assert time.monotonic() < deadline, describe(r)
        time.sleep(0.1)


def test_exec_as_user(docker: Docker, shared: str) -> None:
    r = docker("exec", "--user", "65534", shared, "id", "-u")
    assert (r.returncode, r.stdout) == (0, "65534\n"), describe(r)


def test_exec_missing_binary(docker: Docker, shared: str) -> None:
    r = docker("exec", shared, "no-such-binary")
    assert r.returncode == 126, describe(r)  # the docker CLI's code for a failed exec
    assert "OCI runtime exec failed" in r.stdout, describe(r)  # (on stdout, as with runc)
    assert "no-such-binary" in r.stdout, describe(r)
    assert "executable file not found" in r.stdout, describe(r)
    assert docker.inspect(shared, "{{.State.Status}}") == "running"


def test_top(docker: Docker, sleeper: str) -> None:
    pid = docker.inspect(sleeper, "{{.State.Pid}}")
    r = docker("top", sleeper, check=True)  # the runtime's `ps --format json`
    assert pid in r.stdout.split() and "1000" in r.stdout, describe(r)


def test_stop(docker: Docker) -> None:
    name = new_name("stop")
    docker("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sh", "-c",
           "trap 'exit 42' TERM; while :; do sleep 0.1; done", check=True)
    try:
        docker("stop", "--time", "30", name, check=True)
        # 42: the TERM trap ended it (docker's SIGKILL after --time would give 137)
        assert docker.inspect(name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 42"
    finally:
        docker("rm", "--force", name)


def test_kill_with_a_signal(docker: Docker) -> None:
    name = new_name("kill")
    docker("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sh", "-c",
           "trap 'exit 43' USR1; while :; do sleep 0.1; done", check=True)
    try:
        docker("kill", "--signal", "USR1", name, check=True)
        assert docker("wait", name, check=True).stdout.strip() == "43"
        cid = docker.container_id(name)
        kills = [argv[7:] for argv in docker.runtime_calls(cid) if argv[6:7] == ["kill"]]
        assert [cid, "10"] in kills, kills
    finally:
        docker("rm", "--force", name)


def test_kill_default_is_sigkill(docker: Docker, sleeper: str) -> None:
    docker("kill", sleeper, check=True)
    assert docker("wait", sleeper, check=True).stdout.strip() == "137"


def test_pause_unpause(docker: Docker, sleeper: str) -> None:
    cid = docker.container_id(sleeper)
    freezer = cgroup_dir(int(docker.inspect(sleeper, "{{.State.Pid}}")), "freezer") \
        / "freezer.state"
    docker("pause", sleeper, check=True)
    docker.wait_status(sleeper, "paused")
    assert freezer.read_text().strip() == "FROZEN"
    r = docker("exec", sleeper, "true", timeout=60)
    assert r.returncode != 0 and "paused" in r.stderr, describe(r)
    docker("unpause", sleeper, check=True)
    docker.wait_status(sleeper, "running")
    assert freezer.read_text().strip() == "THAWED"
    docker("exec", sleeper, "true", check=True)
    verbs = [argv[6] for argv in docker.runtime_calls(cid)]
    assert "pause" in verbs and "resume" in verbs, verbs


def test_stop_then_rm_force_of_paused_containers(docker: Docker) -> None:
    """A paused container stops (SIGKILL after the timeout: a frozen process takes no
    SIGTERM) and starts again; `rm -f` of a paused one leaves no state or cgroup."""
    stopped, removed = new_name("pstop"), new_name("prm")
    for name in (stopped, removed):
        docker("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sleep", "1000",
               check=True)
        docker("pause", name, check=True)
    try:
        docker("stop", "--time", "1", stopped, check=True)
        assert docker.inspect(stopped, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
        docker("start", stopped, check=True)
        docker("exec", stopped, "true", check=True)
        cid = docker.container_id(removed)
        state = docker.state_dir(cid)
        freezer = cgroup_dir(int(docker.inspect(removed, "{{.State.Pid}}")), "freezer")
        assert state.is_dir() and (freezer / "freezer.state").read_text().strip() == "FROZEN"
        docker("rm", "--force", removed, check=True)
        assert not state.exists(), "rm -f of a paused container left pyruntime's state"
        assert not freezer.exists(), "rm -f of a paused container left its cgroup"
    finally:
        docker("rm", "--force", stopped, removed)


def test_update(docker: Docker) -> None:
    name = new_name("update")
    docker("run", "--detach", "--name", name, *RUN_FLAGS, "--memory", "64m",
           "--memory-swap", "128m", IMAGE, "sleep", "1000", check=True)
    try:
        docker("update", "--memory", "96m", "--memory-swap", "192m", "--cpus", "0.25",
               "--cpu-shares", "256", "--pids-limit", "40", name, check=True)
        r = docker("exec", name, "sh", "-c",
                   "cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes"
                   " memory/memory.memsw.limit_in_bytes cpu/cpu.cfs_quota_us cpu/cpu.shares"
                   " pids/pids.max", check=True)
        assert r.stdout.split() == [str(96 << 20), str(192 << 20), "25000", "256", "40"], \
            describe(r)
        cid = docker.container_id(name)
        assert any(argv[6] == "update" for argv in docker.runtime_calls(cid))
        assert docker.inspect(name, "{{.HostConfig.Memory}}") == str(96 << 20)
    finally:
        docker("rm", "--force", name)


def test_start_a_stopped_container_again(docker: Docker) -> None:
    """`docker start` of an exited container: a new create and start on the same rw
    layer (the file written by the first run is there)."""
    name = new_name("again")
    script = "echo run >> /count; wc -l < /count"
    r = docker("run", "--name", name, *RUN_FLAGS, IMAGE, "sh", "-c", script)
    try:
        assert (r.returncode, r.stdout.strip()) == (0, "1"), describe(r)
        r = docker("start", "--attach", name)
        assert (r.returncode, r.stdout.strip()) == (0, "2"), describe(r)
        cid = docker.container_id(name)
        verbs = [argv[6] for argv in docker.runtime_calls(cid)]
        assert verbs.count("create") == 2 and verbs.count("start") == 2, verbs
    finally:
        docker("rm", "--force", name)


def test_restart(docker: Docker, sleeper: str) -> None:
    pid = docker.inspect(sleeper, "{{.State.Pid}}")
    docker("restart", "--time", "1", sleeper, check=True)
    docker.wait_status(sleeper, "running")
    assert docker.inspect(sleeper, "{{.State.Pid}}") not in ("0", pid)
    docker("exec", sleeper, "true", check=True)


def test_restart_policy(docker: Docker) -> None:
    """--restart on-failure:2: dockerd creates and starts it twice more after it fails."""
    name = new_name("policy")
    docker("run", "--detach", "--name", name, "--restart", "on-failure:2", *RUN_FLAGS,
           IMAGE, "sh", "-c", "exit 9", check=True)
    try:
        deadline = time.monotonic() + 60
        while docker.inspect(name, "{{.RestartCount}} {{.State.Status}}") != "2 exited":
            assert time.monotonic() < deadline, docker.inspect(name, "{{json .State}}")
            time.sleep(0.2)
        assert docker.inspect(name, "{{.State.ExitCode}}") == "9"
    finally:
        docker("rm", "--force", name)


def test_rm_force_leaves_no_state(docker: Docker) -> None:
    name = new_name("rmf")
    docker("run", "--detach", "--name", name, *RUN_FLAGS, IMAGE, "sleep", "1000", check=True)
    cid = docker.container_id(name)
    pid = int(docker.inspect(name, "{{.State.Pid}}"))
    state = docker.state_dir(cid)
    memory = cgroup_dir(pid, "memory")
    assert state.is_dir() and memory.is_dir()
    r = docker("rm", "--force", name)
    assert r.returncode == 0, describe(r)
    assert not state.exists(), "docker rm -f left pyruntime's state dir"
    assert not Path(f"/proc/{pid}").exists() or \
        "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert not memory.exists(), "docker rm -f left the container's cgroup"


def test_init_flag(docker: Docker) -> None:
    """--init: docker-init (tini) bind-mounted in as PID 1, the command its child."""
    r = docker("run", "--rm", "--init", *RUN_FLAGS, IMAGE, "sh", "-c",
               "cat /proc/1/comm; echo $PPID")
    assert r.returncode == 0, describe(r)
    assert r.stdout.split() == ["docker-init", "1"], describe(r)


# -- what the shim sent ------------------------------------------------------------------------

def test_argv_shapes(docker: Docker, shared: str) -> None:
    docker("exec", shared, "true", check=True)
    cid = docker.container_id(shared)
    lines = docker.runtime_calls(cid)
    for argv in lines:
        assert argv[0] == "--root" and Path(argv[1]).is_relative_to(docker.exec_root), argv
        assert argv[3].endswith(f"/moby/{cid}/log.json"), argv
    check_shim_argv(lines)
