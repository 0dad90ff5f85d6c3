"""runtime-spec hooks: when each kind runs, in which namespaces, with what on stdin, and
what a failing one does (create/start-time: the verb fails, nothing is left; poststart,
poststop: logged only)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support import Runtime, assert_clean_failure, stderr_lines

pytestmark = pytest.mark.root

# Appends one JSON line per run: the hook's kind (argv[1]), argv, an env var, its mount,
# net and pid namespaces, and the state it got on stdin.
HOOK = r"""#!/bin/sh
log="$1"; shift
state=$(cat)
printf '{"argv0":"%s","args":"%s","var":"%s","mnt":"%s","net":"%s","pid":"%s","state":%s}\n' \
  "$0" "$*" "$HOOKVAR" "$(readlink /proc/self/ns/mnt)" "$(readlink /proc/self/ns/net)" \
  "$(readlink /proc/self/ns/pid_for_children)" "$state" >> "$log"
"""


def write_hook(path: Path, body: str = HOOK) -> str:
    path.write_text(body)
    path.chmod(0o755)
    return str(path)


def hook(path: str, *args: str, timeout: int | None = None, env: tuple[str, ...] = ()) -> dict:
    h: dict = {"path": path, "args": [path, *args], "env": ["HOOKVAR=set", *env]}
    if timeout is not None:
        h["timeout"] = timeout
    return h


def read_log(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_every_kind_runs_in_order_where_the_spec_says(runtime: Runtime, bundle,
                                                       tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    script = write_hook(tmp_path / "hook.sh")
    b = bundle(["sh", "-c", "sleep 30"])
    # startContainer's path resolves in the container: a copy of the script in its rootfs
    write_hook(b.rootfs / "hook.sh")
    b.config["hooks"] = {
        kind: [hook(script if kind != "startContainer" else "/hook.sh",
                    str(log) if kind != "startContainer" else "/tmp/hooks.log", kind)]
        for kind in ("prestart", "createRuntime", "createContainer", "startContainer",
                     "poststart", "poststop")
    }
    b.write()

    runtime.create(b, "c1")
    pid = runtime.state("c1")["pid"]
    created = read_log(log)
    assert [h["args"].split()[0] for h in created] == [
        "prestart", "createRuntime", "createContainer"]
    for h in created:
        assert h["argv0"] == script and h["var"] == "set"
        assert h["state"]["id"] == "c1" and h["state"]["status"] == "creating"
        assert h["state"]["pid"] == pid and h["state"]["bundle"] == str(b.path)
    prestart, create_runtime, create_container = created
    for h in (prestart, create_runtime):  # the runtime's namespaces
        assert (h["mnt"], h["net"]) == (ns("self", "mnt"), ns("self", "net"))
    # the container's: its mount, network and pid namespaces
    assert create_container["mnt"] == ns(pid, "mnt") != ns("self", "mnt")
    assert create_container["net"] == ns(pid, "net")
    assert create_container["pid"] == ns(pid, "pid")
    assert not (b.rootfs / "tmp" / "hooks.log").exists()

    runtime.start("c1")
    started = read_log(b.rootfs / "tmp" / "hooks.log")
    assert len(started) == 1 and started[0]["args"] == "startContainer"
    assert started[0]["mnt"] == ns(pid, "mnt") and started[0]["state"]["status"] == "created"
    assert started[0]["state"]["pid"] == pid
    after_start = read_log(log)[3:]
    assert [h["args"] for h in after_start] == ["poststart"]
    assert after_start[0]["state"]["status"] == "running"

    runtime.delete("c1", force=True)
    stopped = read_log(log)[4:]
    assert [h["args"] for h in stopped] == ["poststop"]
    assert stopped[0]["state"]["status"] == "stopped" and "pid" not in stopped[0]["state"]
    assert stopped[0]["mnt"] == ns("self", "mnt")


def test_hooks_are_recorded_in_state(runtime: Runtime, bundle, tmp_path: Path) -> None:
    script = write_hook(tmp_path / "hook.sh")
    b = bundle(["sleep", "30"], {"hooks": {"poststop": [hook(script, str(tmp_path / "l"))]}})
    runtime.create(b, "c1")
    recorded = json.loads((runtime.root / "c1" / "state.json").read_text())["hooks"]
    assert recorded == {"poststop": [hook(script, str(tmp_path / "l"))]}
    runtime.delete("c1", force=True)
    assert len(read_log(tmp_path / "l")) == 1


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_time_hook_fails_create(runtime: Runtime, bundle, tmp_path: Path,
                                               kind: str) -> None:
    bad = write_hook(tmp_path / "bad.sh", "#!/bin/sh\necho nope >&2\nexit 3\n")
    post = write_hook(tmp_path / "hook.sh")
    b = bundle(overrides={"hooks": {kind: [hook(bad)],
                                    "poststop": [hook(post, str(tmp_path / "post.log"))]}})
    result = runtime.run("create", "--bundle", b, "c1")
    line = assert_clean_failure(result, runtime, "c1", f"{kind} hook 0")
    assert "exit status 3" in line and "nope" in line
    # as runc: the failed container is deleted, so its poststop hooks run
    assert [h["state"]["status"] for h in read_log(tmp_path / "post.log")] == ["stopped"]


def test_hook_timeout(runtime: Runtime, bundle, tmp_path: Path) -> None:
    slow = write_hook(tmp_path / "slow.sh", "#!/bin/sh\nexec sleep 20\n")
    b = bundle(overrides={"hooks": {"createContainer": [hook(slow, timeout=1)]}})
    result = runtime.run("create", "--bundle", b, "c1")
    assert_clean_failure(result, runtime, "c1", "ran past its timeout of 1s")


def test_missing_hook_binary(runtime: Runtime, bundle, tmp_path: Path) -> None:
    b = bundle(overrides={"hooks": {"createRuntime": [hook(str(tmp_path / "absent"))]}})
    result = runtime.run("create", "--bundle", b, "c1")
    assert_clean_failure(result, runtime, "c1", ("createRuntime hook 0", "No such file"))


def test_failing_start_container_hook_fails_start(runtime: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", "echo ran > /tmp/ran"])
    write_hook(b.rootfs / "bad.sh", "#!/bin/sh\necho broken\nexit 2\n")
    b.config["hooks"] = {"startContainer": [{"path": "/bad.sh"}]}
    b.write()
    runtime.create(b, "c1")
    result = runtime.start("c1", check=False)
    assert result.returncode == 1
    (line,) = stderr_lines(result)
    assert "startContainer hook" in line and "exit status 2" in line and "broken" in line
    assert runtime.wait_status("c1", "stopped")
    assert not (b.rootfs / "tmp" / "ran").exists()  # the user's program never ran
    runtime.delete("c1")


def test_start_container_hook_in_run(runtime: Runtime, bundle) -> None:
    b = bundle(["cat", "/tmp/from-hook"])
    write_hook(b.rootfs / "h.sh", "#!/bin/sh\ncat > /tmp/from-hook\n")
    b.config["hooks"] = {"startContainer": [{"path": "/h.sh"}]}
    b.write()
    state = json.loads(runtime.run_bundle(b, "c1").stdout)
    assert state["id"] == "c1" and state["status"] == "created"


def test_poststart_and_poststop_failures_are_logged(runtime: Runtime, bundle,
                                                    tmp_path: Path) -> None:
    bad = write_hook(tmp_path / "bad.sh", "#!/bin/sh\nexit 1\n")
    b = bundle(["sleep", "30"], {"hooks": {"poststart": [hook(bad)], "poststop": [hook(bad)]}})
    log = tmp_path / "log.json"
    runtime.run("--log", log, "--log-format", "json", "create", "--bundle", b, "c1", check=True)
    runtime.run("--log", log, "--log-format", "json", "start", "c1", check=True)
    assert runtime.status("c1") == "running"
    runtime.run("--log", log, "--log-format", "json", "delete", "--force", "c1", check=True)
    warnings = [json.loads(x) for x in log.read_text().splitlines()]
    msgs = [w["msg"] for w in warnings if w["level"] == "warning"]
    assert any(m.startswith("poststart hook 0") and "exit status 1" in m for m in msgs), msgs
    assert any(m.startswith("poststop hook 0") for m in msgs), msgs


@pytest.mark.pyruntime_only
@pytest.mark.parametrize("edit, mentions", [
    ({"path": "relative/hook"}, "hooks.createRuntime[0].path"),
    ({"path": "/bin/true", "timeout": 0}, "hooks.createRuntime[0].timeout"),
    ({"path": "/bin/true", "env": ["NOEQUALS"]}, "hooks.createRuntime[0].env[0]"),
])
def test_bad_hook_config(runtime: Runtime, bundle, edit: dict, mentions: str) -> None:
    b = bundle(overrides={"hooks": {"createRuntime": [edit]}})
    result = runtime.run("create", "--bundle", b, "c1")
    assert_clean_failure(result, runtime, "c1", mentions)
