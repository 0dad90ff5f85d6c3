"""The lifecycle verbs against real containers: create, start, run, state, kill, delete,
list, pid files, signal forwarding, exit codes, pid reuse, concurrent creates."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from test_cli_unit import rfc3339

from support import Runtime, stderr_lines

pytestmark = pytest.mark.root

SLEEP = ["sleep", "1000"]
NO_PIDNS = [{"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]


def wait_gone(pid: int, timeout: float = 10) -> None:
    """Wait until *pid* has exited (gone, or a zombie awaiting its reaper)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
        except OSError:
            return
        if stat[stat.rfind(")") + 2] in "ZX":
            return
        assert time.monotonic() < deadline, f"pid {pid} still alive"
        time.sleep(0.05)


def read_pid_file(path: Path) -> int:
    text = path.read_text()
    assert re.fullmatch(r"[0-9]+", text), f"pid file {path}: {text!r} (digits only, no newline)"
    return int(text)


def test_state_machine(runtime: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(SLEEP, {"annotations": {"org.pyruntime.test": "yes"}})
    pid_file = tmp_path / "init.pid"
    created = runtime.create(b, "c1", "--pid-file", str(pid_file))
    assert created.stdout == "" and created.stderr == "", created

    state = runtime.state("c1")
    assert state["status"] == "created"
    assert state["id"] == "c1"
    assert re.fullmatch(r"1\.\d+\.\d+.*", state["ociVersion"])
    assert state["pid"] > 0 and state["pid"] == read_pid_file(pid_file)
    assert os.path.isabs(state["bundle"]) and Path(state["bundle"]) == b.path
    assert Path(state["rootfs"]) == b.rootfs
    rfc3339(state["created"])
    assert "owner" in state
    assert state["annotations"]["org.pyruntime.test"] == "yes"
    assert (runtime.root / "c1" / "exec.fifo").exists()
    assert os.path.exists(f"/proc/{state['pid']}")

    runtime.start("c1")
    state = runtime.state("c1")
    assert state["status"] == "running"
    assert not (runtime.root / "c1" / "exec.fifo").exists()
    pid = state["pid"]
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"

    runtime.kill("c1", "KILL")
    state = runtime.wait_status("c1", "stopped")
    assert state["pid"] == 0
    wait_gone(pid)

    runtime.delete("c1")
    assert not (runtime.root / "c1").exists()
    result = runtime.run("state", "c1")
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_state_prints_only_json(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(SLEEP), "c1")
    result = runtime.run("state", "c1", check=True)
    assert result.stderr == ""
    assert isinstance(json.loads(result.stdout), dict)


def test_container_exiting_by_itself_is_stopped(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(["sh", "-c", "echo hello from the container"]), "c1")
    runtime.start("c1")
    assert runtime.wait_status("c1", "stopped")["pid"] == 0
    assert runtime.output("c1") == "hello from the container\n"
    runtime.delete("c1")


def test_start_twice_fails(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(SLEEP), "c1")
    runtime.start("c1")
    result = runtime.start("c1", check=False)
    assert result.returncode == 1 and len(stderr_lines(result)) == 1, result
    assert runtime.status("c1") == "running"


def test_delete_created_container(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(SLEEP), "c1")
    pid = runtime.state("c1")["pid"]
    runtime.delete("c1")
    assert not (runtime.root / "c1").exists()
    wait_gone(pid)


def test_delete_running_needs_force(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(SLEEP), "c1")
    runtime.start("c1")
    pid = runtime.state("c1")["pid"]
    result = runtime.delete("c1", check=False)
    assert result.returncode == 1
    lines = stderr_lines(result)
    assert len(lines) == 1 and "c1" in lines[0], result.stderr
    assert runtime.status("c1") == "running"
    runtime.delete("c1", force=True)
    assert not (runtime.root / "c1").exists()
    wait_gone(pid)


@pytest.mark.parametrize("sig", ["9", "KILL", "SIGKILL"])
def test_kill_signal_forms(runtime: Runtime, bundle, sig: str) -> None:
    runtime.create(bundle(SLEEP), "c1")
    runtime.start("c1")
    runtime.kill("c1", sig)
    runtime.wait_status("c1", "stopped")


def test_kill_defaults_to_sigterm(runtime: Runtime, bundle) -> None:
    script = "trap 'exit 0' TERM; while :; do sleep 0.1; done"
    runtime.create(bundle(["sh", "-c", script]), "c1")
    runtime.start("c1")
    runtime.kill("c1")
    runtime.wait_status("c1", "stopped")


def test_kill_all(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(["sh", "-c", "sleep 1000 & sleep 1000 & wait"]), "c1")
    runtime.start("c1")
    runtime.kill("c1", "KILL", "--all")
    runtime.wait_status("c1", "stopped")


def test_kill_stopped_container(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(["true"]), "c1")
    runtime.start("c1")
    runtime.wait_status("c1", "stopped")
    result = runtime.kill("c1", "KILL", check=False)
    assert result.returncode == 1
    lines = stderr_lines(result)
    assert len(lines) == 1 and "container not running" in lines[0], result.stderr


def test_kill_created_container(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(SLEEP), "c1")
    runtime.kill("c1", "KILL")
    runtime.wait_status("c1", "stopped")


@pytest.mark.parametrize(
    "script, namespaces, expected",
    [
        ("exit 3", None, 3),
        ("exit 0", None, 0),
        # pid 1 of a pid namespace cannot SIGKILL itself, so no pid namespace here.
        ("kill -9 $$", NO_PIDNS, 128 + 9),
        ("kill -TERM $$", NO_PIDNS, 128 + 15),
    ],
)
def test_run_exit_code(runtime: Runtime, bundle, script, namespaces, expected) -> None:
    overrides = {"linux": {"namespaces": namespaces}} if namespaces else None
    result = runtime.run_bundle(bundle(["sh", "-c", script], overrides), "c1", check=False)
    assert result.returncode == expected, result
    assert stderr_lines(result) == [], result.stderr


def test_run_container_killed_from_host(runtime: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", "echo ready; exec sleep 1000"])
    proc = runtime.popen("run", "--bundle", b, "c1")
    try:
        assert proc.stdout.readline() == "ready\n"
        runtime.kill("c1", "9")
        assert proc.wait(timeout=20) == 137
    finally:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("signame", ["TERM", "INT", "HUP", "USR1"])
def test_run_forwards_signals(runtime: Runtime, bundle, signame: str) -> None:
    script = f"trap 'echo got {signame}; exit 7' {signame}; echo ready; while :; do sleep 0.1; done"
    proc = runtime.popen("run", "--bundle", bundle(["sh", "-c", script]), "c1")
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(getattr(signal, f"SIG{signame}"))
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 7, (out, err)
        assert out == f"got {signame}\n"
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.communicate()


def test_run_passes_stdin(runtime: Runtime, bundle) -> None:
    result = runtime.run("run", "--bundle", bundle(["cat"]), "c1", input="through stdin\n")
    assert result.returncode == 0, result
    assert result.stdout == "through stdin\n"


def test_run_removes_the_container(runtime: Runtime, bundle) -> None:
    runtime.run_bundle(bundle(["true"]), "c1")
    assert not (runtime.root / "c1").exists()
    assert runtime.ids() == []


def test_run_detach_and_pid_file(runtime: Runtime, bundle, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    result = runtime.run(
        "run", "--detach", "--pid-file", pid_file, "--bundle", bundle(SLEEP), "c1",
        stdout=tmp_path / "detached.out", stderr=tmp_path / "detached.err",
    )
    assert result.returncode == 0, result
    state = runtime.state("c1")
    assert state["status"] == "running"
    assert read_pid_file(pid_file) == state["pid"]


def test_pid_file_relative_to_cwd(runtime: Runtime, bundle, tmp_path: Path) -> None:
    runtime.create(bundle(SLEEP), "c1", "--pid-file", "rel.pid")
    assert read_pid_file(tmp_path / "rel.pid") == runtime.state("c1")["pid"]


def test_list(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(SLEEP, name="b1"), "one")
    runtime.create(bundle(SLEEP, name="b2"), "two")
    runtime.start("two")
    assert sorted(runtime.ids()) == ["one", "two"]
    listed = json.loads(runtime.run("list", "--format", "json", check=True).stdout)
    by_id = {item["id"]: item for item in listed}
    assert by_id["one"]["status"] == "created" and by_id["two"]["status"] == "running"
    table = runtime.run("list", check=True).stdout.splitlines()
    assert table[0].split()[0] == "ID"
    assert sorted(line.split()[0] for line in table[1:]) == ["one", "two"]


@pytest.mark.pyruntime_only
def test_pid_reuse_is_detected(runtime: Runtime, bundle) -> None:
    """A recorded pid whose start time differs from the recorded one is another process."""
    runtime.create(bundle(SLEEP), "c1")
    runtime.start("c1")
    pid = runtime.state("c1")["pid"]
    state_file = runtime.root / "c1" / "state.json"
    recorded = json.loads(state_file.read_text())
    assert recorded["pid"] == pid and "start_time" in recorded
    start = recorded["start_time"]
    recorded["start_time"] = start + 1000 if isinstance(start, int) else "1"
    state_file.write_text(json.dumps(recorded))
    try:
        state = runtime.state("c1")
        assert state["status"] == "stopped" and state["pid"] == 0
        # The runtime believes pid is someone else's: it must not signal it.
        assert runtime.kill("c1", "KILL", check=False).returncode == 1
        time.sleep(0.2)
        assert os.path.exists(f"/proc/{pid}")
    finally:
        os.kill(pid, signal.SIGKILL)  # the container's init, started by this test
        wait_gone(pid)
    runtime.delete("c1")
    assert not (runtime.root / "c1").exists()


def test_stopped_when_process_gone(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(SLEEP), "c1")
    runtime.start("c1")
    pid = runtime.state("c1")["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    assert runtime.wait_status("c1", "stopped")["pid"] == 0


def test_concurrent_create_of_one_id(runtime: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(SLEEP)
    for round_ in range(5):
        outs = [tmp_path / f"race{round_}-{i}.{s}" for i in (0, 1) for s in ("out", "err")]
        files = [open(p, "w") for p in outs]  # closed below
        try:
            procs = [
                runtime.popen("create", "--bundle", b, "race",
                              stdout=files[2 * i], stderr=files[2 * i + 1])
                for i in (0, 1)
            ]
            codes = [p.wait(timeout=30) for p in procs]
        finally:
            for f in files:
                f.close()
        assert sorted(codes) == [0, 1], f"round {round_}: exit codes {codes}"
        loser = codes.index(1)
        err = [ln for ln in outs[2 * loser + 1].read_text().splitlines() if ln.strip()]
        assert len(err) == 1, f"round {round_}: loser's stderr {err}"
        assert runtime.status("race") == "created"
        assert runtime.ids() == ["race"]
        runtime.delete("race", force=True)
        assert not (runtime.root / "race").exists()


def test_delete_force_of_stopped_and_created(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(["true"], name="b1"), "done")
    runtime.start("done")
    runtime.wait_status("done", "stopped")
    runtime.create(bundle(SLEEP, name="b2"), "waiting")
    for cid in ("done", "waiting"):
        runtime.delete(cid, force=True)
        assert not (runtime.root / cid).exists()


def test_env_marker_reaches_container(runtime: Runtime, bundle) -> None:
    """The leftover checker relies on the token being in the container's environment."""
    result = runtime.run_bundle(bundle(["sh", "-c", "echo $PYRUNTIME_TEST_TOKEN"]), "c1")
    assert result.stdout.strip() == runtime.token


def test_default_config_without_cgroup_mount(runtime: Runtime, bundle) -> None:
    """The smallest container: no cgroup mount, no device rules."""
    b = bundle(["true"])
    b.config["mounts"] = [m for m in b.config["mounts"] if m["type"] != "cgroup"]
    b.config["linux"].pop("resources")
    b.write()
    runtime.run_bundle(b, "c1")


def test_runtime_does_not_outlive_create(runtime: Runtime, bundle, tmp_path: Path) -> None:
    """create returns, and no runtime process stays behind the waiting init."""
    runtime.create(bundle(SLEEP), "c1")
    init = runtime.state("c1")["pid"]
    me = os.getpid()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        if pid in (me, init):
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert str(runtime.root).encode() not in cmd, f"pid {pid} still runs: {cmd!r}"
