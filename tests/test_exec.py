"""exec: both argv forms (process.json as containerd and podman send it, flags for people),
the namespaces and cgroups it joins, what it inherits, exit status, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support import Runtime

pytestmark = pytest.mark.root

DEFAULT_CAPS = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE


@pytest.fixture
def running(runtime: Runtime, bundle) -> str:
    """A created and started container `c1` running `sleep 1000`."""
    runtime.create(bundle(["sleep", "1000"], env=["FROM_CONFIG=yes"]), "c1")
    runtime.start("c1")
    return "c1"


def write_process(tmp_path: Path, process: dict, name: str = "process.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(process))
    return path


def test_output_and_exit_status(runtime: Runtime, running: str) -> None:
    r = runtime.run("exec", running, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    assert runtime.run("exec", running, "true").returncode == 0


def test_killed_by_signal_is_128_plus_n(runtime: Runtime, running: str) -> None:
    assert runtime.run("exec", running, "sh", "-c", "kill -9 $$").returncode == 128 + 9


def test_joins_every_namespace_of_the_init(runtime: Runtime, running: str) -> None:
    script = ("for n in mnt pid net ipc uts cgroup; do "
              "[ $(readlink /proc/1/ns/$n) = $(readlink /proc/self/ns/$n) ] || echo $n; done;"
              "echo pid=$$; hostname")
    out = runtime.run("exec", running, "sh", "-c", script, check=True).stdout.splitlines()
    assert out[0].startswith("pid="), out  # no namespace differs
    assert 1 < int(out[0][4:]) < 100, "a pid in the container's pid namespace"


def test_joins_the_containers_cgroups(runtime: Runtime, running: str, tmp_path: Path) -> None:
    init = runtime.state(running)["pid"]
    runtime.run("exec", "--detach", "--pid-file", tmp_path / "e.pid", running, "sleep", "100",
                check=True)
    pid = int((tmp_path / "e.pid").read_text())
    assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{init}/cgroup").read_text()


def test_flags_inherit_the_containers_process(runtime: Runtime, running: str) -> None:
    r = runtime.run("exec", "--env", "ADDED=1", running, "sh", "-c",
                    'echo "$FROM_CONFIG $ADDED"; pwd; grep -E "^(CapEff|NoNewPrivs)" '
                    "/proc/self/status", check=True)
    lines = r.stdout.splitlines()
    assert lines[:2] == ["yes 1", "/"]
    status = dict(line.split(":\t") for line in lines[2:])
    assert int(status["CapEff"], 16) == DEFAULT_CAPS
    assert status["NoNewPrivs"] == "1"  # the container's config sets it


def test_flags_cwd_user_cap(runtime: Runtime, running: str) -> None:
    r = runtime.run("exec", "--cwd", "/tmp", "--user", "1000:1001", "-g", "10",
                    "--cap", "CAP_CHOWN", running, "sh", "-c",
                    "pwd; id -u; id -g; id -G; grep ^CapBnd /proc/self/status", check=True)
    cwd, uid, gid, groups, bnd = r.stdout.splitlines()
    assert (cwd, uid, gid) == ("/tmp", "1000", "1001")
    assert set(groups.split()) == {"1001", "10"}
    assert int(bnd.split()[1], 16) == DEFAULT_CAPS | 1  # CAP_CHOWN is 0


def test_process_json_detached_with_pid_file(runtime: Runtime, running: str,
                                             tmp_path: Path) -> None:
    proc = write_process(tmp_path, {
        "args": ["sh", "-c", "echo $FOO > /tmp/exec-out; exec sleep 100"], "cwd": "/",
        "env": ["FOO=json", "PATH=/bin"], "user": {"uid": 0, "gid": 0}})
    pid_file = tmp_path / "e1.pid"
    # detached: returns at once, not after the sleep (runtime.run's timeout is 30 s)
    r = runtime.run("exec", "--process", proc, "--detach", "--pid-file", pid_file, running,
                    check=True)
    assert (r.stdout, r.stderr) == ("", "")
    text = pid_file.read_text()
    assert text.isdigit(), repr(text)  # digits only, no newline
    pid = int(text)
    status = Path(f"/proc/{pid}/status").read_text()
    assert "sleep" in Path(f"/proc/{pid}/cmdline").read_text()
    # no capabilities in process.json: the container's are used (runc)
    cap_eff = next(line for line in status.splitlines() if line.startswith("CapEff"))
    assert int(cap_eff.split()[1], 16) == DEFAULT_CAPS
    out = runtime.run("exec", running, "cat", "/tmp/exec-out", check=True).stdout
    assert out == "json\n"


def test_process_json_rlimits_and_nnp_are_its_own(runtime: Runtime, running: str,
                                                  tmp_path: Path) -> None:
    proc = write_process(tmp_path, {
        "args": ["sh", "-c", "ulimit -n; grep ^NoNewPrivs /proc/self/status"], "cwd": "/",
        "env": ["PATH=/bin"], "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 99, "hard": 99}]})
    r = runtime.run("exec", "--process", proc, running, check=True)
    assert r.stdout.split() == ["99", "NoNewPrivs:", "0"]


@pytest.mark.pyruntime_only
@pytest.mark.parametrize(("process", "message"), [
    ({"args": [], "cwd": "/"}, "process.json: args: must name the program to run"),
    ({"args": "sh", "cwd": "/"}, "process.json: args: expected a list"),
    ({"args": ["sh"]}, "process.json: cwd: required field is missing"),
    ({"args": ["sh"], "cwd": "tmp"}, "process.json: cwd: must be an absolute path"),
    ({"args": ["sh"], "cwd": "/", "env": ["NOEQUALS"]}, "process.json: env[0]: expected"),
    ({"args": ["sh"], "cwd": "/", "capabilities": {"bounding": ["CAP_NOPE"]}},
     "process.json: capabilities.bounding: unknown capability"),
])
def test_bad_process_json(runtime: Runtime, running: str, tmp_path: Path, process: dict,
                          message: str) -> None:
    r = runtime.run("exec", "--process", write_process(tmp_path, process), running)
    assert r.returncode != 0
    assert r.stderr.startswith("pyruntime: " + message), r.stderr
    assert len(r.stderr.splitlines()) == 1


@pytest.mark.pyruntime_only
def test_errors_reach_the_json_log(runtime: Runtime, running: str, tmp_path: Path) -> None:
    log = tmp_path / "log.json"
    r = runtime.run("--log", log, "--log-format", "json", "exec", running, "no-such-binary")
    assert r.returncode != 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    errors = [rec for rec in records if rec["level"] == "error"]
    assert len(errors) == 1 and set(errors[0]) == {"level", "msg", "time"}
    assert "no-such-binary" in errors[0]["msg"] and "not found" in errors[0]["msg"]


def test_missing_binary_leaves_no_process(runtime: Runtime, running: str) -> None:
    init = runtime.state(running)["pid"]
    children_before = _pidns_members(init)
    r = runtime.run("exec", running, "/bin/no-such")
    assert r.returncode != 0 and "no-such" in r.stderr
    assert _pidns_members(init) == children_before


def test_stopped_container(runtime: Runtime, bundle) -> None:
    runtime.run_bundle(bundle(["true"]), "c1", "--keep")
    assert runtime.status("c1") == "stopped"
    r = runtime.run("exec", "c1", "true")
    assert r.returncode != 0
    assert len(r.stderr.splitlines()) == 1
    if not os.environ.get("PYRUNTIME_TEST_RUNTIME"):
        assert "stopped" in r.stderr and "container not running" in r.stderr


def test_unknown_container(runtime: Runtime) -> None:
    r = runtime.run("exec", "nope", "true")
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_paused_container(runtime: Runtime, running: str) -> None:
    runtime.run("pause", running, check=True)
    try:
        r = runtime.run("exec", running, "true", timeout=10)
        assert r.returncode != 0 and "paused" in r.stderr
    finally:
        runtime.run("resume", running, check=True)


def _pidns_members(init: int) -> set[int]:
    ns = os.readlink(f"/proc/{init}/ns/pid")
    members = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == ns:
                    members.add(int(name))
            except OSError:
                continue
    return members


def test_terminal_through_the_console_socket(runtime: Runtime, running: str,
                                             tmp_path: Path) -> None:
    from test_console import ConsoleServer, read_until

    server = ConsoleServer(tmp_path / "pty.sock")
    try:
        proc = write_process(tmp_path, {"args": ["sh", "-c", "tty; echo done; sleep 5"],
                                        "cwd": "/", "env": ["PATH=/bin"], "terminal": True})
        runtime.run("exec", "--process", proc, "--detach", "--console-socket", server.path,
                    running, check=True)
        out = read_until(server.receive(), b"done")
        assert b"/dev/pts/" in out, out
    finally:
        server.close()


@pytest.mark.pyruntime_only
def test_terminal_detached_needs_a_console_socket(runtime: Runtime, running: str) -> None:
    r = runtime.run("exec", "-t", "--detach", running, "true")
    assert r.returncode != 0 and "--console-socket" in r.stderr
