"""Bad inputs: each fails with exit 1 and exactly one stderr line naming the field or the
step, and leaves nothing behind (no <root>/<id>, no mount, no process)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import Runtime, assert_clean_failure

pytestmark = pytest.mark.root

Mentions = tuple[str | re.Pattern[str], ...]
ID_WORD = re.compile(r"\bid\b|container id", re.IGNORECASE)


@dataclass
class Case:
    name: str
    mentions: Mentions
    edit: Callable[[dict[str, Any]], Any] | None = None  # mutate the config in place
    raw: str | None = None  # config.json text instead of the config
    cid: str = "bad"
    argv: Callable[[Path, str], list[str]] | None = None  # default: create --bundle B ID
    exit_code: int | None = 1
    extra: dict[str, Any] = field(default_factory=dict)
    replace_config: Callable[[Path], None] | None = None  # make <bundle>/config.json itself


def set_in(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def edit(config: dict[str, Any]) -> None:
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value

    return edit


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    keys = path.split(".")

    def edit(config: dict[str, Any]) -> None:
        node = config
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return edit


def add_mount(**mount: Any) -> Callable[[dict[str, Any]], None]:
    return lambda config: config["mounts"].append(mount)


def add_namespace(**ns: Any) -> Callable[[dict[str, Any]], None]:
    return lambda config: config["linux"]["namespaces"].append(ns)


def remove_uts(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"] = [
        ns for ns in config["linux"]["namespaces"] if ns["type"] != "uts"
    ]


def config_symlink_to(target: str) -> Callable[[Path], None]:
    return lambda path: path.symlink_to(target)


def config_fifo(path: Path) -> None:
    os.mkfifo(path)


def config_oversized(path: Path) -> None:
    with open(path, "wb") as f:  # refused for its size, before a byte is parsed
        f.write(b'{"ociVersion": "1.0.2"}')
        f.truncate(16 * 1024 * 1024 + 1)


def host_net_as_ipc(config: dict[str, Any]) -> None:
    config["linux"]["namespaces"] = [
        ns for ns in config["linux"]["namespaces"] if ns["type"] != "ipc"
    ] + [{"type": "ipc", "path": f"/proc/{os.getpid()}/ns/net"}]


CASES = [
    Case("malformed-json", ("config.json",), raw='{"ociVersion": "1.0.2", "process": '),
    Case("config-not-an-object", ("config.json",), raw="[1, 2, 3]\n"),
    Case("args-wrong-type", ("process.args",), edit=set_in("process.args", "sh -c true")),
    Case("args-empty", ("process.args",), edit=set_in("process.args", [])),
    Case("args-item-wrong-type", ("process.args",), edit=set_in("process.args", ["sh", 1])),
    Case("missing-process", ("process",), edit=drop("process")),
    Case("missing-root", ("root",), edit=drop("root")),
    Case("root-path-missing-dir", ("root.path",), edit=set_in("root.path", "no-such-rootfs")),
    Case("root-path-is-a-file", ("root.path",), edit=set_in("root.path", "config.json")),
    Case("id-dotdot", (ID_WORD, "../x"), cid="../x"),
    Case("id-slash", (ID_WORD, "a/b"), cid="a/b"),
    Case("id-empty", (ID_WORD,), cid=""),
    Case("missing-binary", ("/nonexistent",), edit=set_in("process.args", ["/nonexistent"])),
    Case("binary-not-on-path", ("nosuchcmd",), edit=set_in("process.args", ["nosuchcmd"])),
    Case("relative-cwd", ("process.cwd",), edit=set_in("process.cwd", "tmp")),
    Case("env-without-equals", ("process.env",), edit=set_in("process.env", ["NOEQUALS"])),
    Case("uid-negative", ("process.user.uid",), edit=set_in("process.user.uid", -1)),
    Case("unknown-rlimit", ("process.rlimits", "RLIMIT_BOGUS"),
         edit=set_in("process.rlimits", [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}])),
    Case("unknown-capability", ("CAP_BOGUS",),
         edit=set_in("process.capabilities.bounding", ["CAP_BOGUS"])),
    Case("mount-destination-empty", ("destination",),
         edit=add_mount(destination="", type="tmpfs", source="tmpfs")),
    Case("mount-without-destination", ("destination",),
         edit=add_mount(type="tmpfs", source="tmpfs")),
    Case("mount-under-a-regular-file", ("/etc/passwd/sub",),
         edit=add_mount(destination="/etc/passwd/sub", type="tmpfs", source="tmpfs")),
    Case("mount-unknown-type", ("nosuchfs", "/weird"),
         edit=add_mount(destination="/weird", type="nosuchfs", source="none")),
    Case("bind-source-missing", ("/nonexistent-source",),
         edit=add_mount(destination="/x", type="bind", source="/nonexistent-source",
                        options=["bind"])),
    Case("namespace-unknown-type", ("namespaces",), edit=add_namespace(type="bogus")),
    Case("namespace-duplicate-type", ("namespaces",), edit=add_namespace(type="network")),
    Case("namespace-path-missing", ("/nonexistent/netns",),
         edit=lambda c: c["linux"]["namespaces"].__setitem__(
             1, {"type": "network", "path": "/nonexistent/netns"})),
    Case("namespace-path-wrong-kind", ("namespaces", "/ns/net"), edit=host_net_as_ipc),
    Case("oci-version-2", ("ociVersion",), edit=set_in("ociVersion", "2.0.0")),
    Case("hostname-without-uts", ("hostname",), edit=remove_uts),
    Case("uid-mappings-without-userns", ("uidMappings",),
         edit=set_in("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}])),
    Case("bundle-dir-missing", ("nope",),
         argv=lambda b, cid: ["create", "--bundle", str(b.parent / "nope"), cid]),
    Case("config-json-missing", ("config.json",), edit=lambda c: None,
         extra={"remove_config": True}),
    Case("log-format-yaml", ("yaml", "log-format"),
         argv=lambda b, cid: ["--log-format", "yaml", "create", "--bundle", str(b), cid]),
    # hostile files and values: each refused before anything is made
    Case("config-symlink-to-dev-zero", ("config.json",),
         replace_config=config_symlink_to("/dev/zero")),
    Case("config-symlink-to-a-good-file", ("config.json",),
         replace_config=config_symlink_to("config.real")),
    Case("config-is-a-fifo", ("config.json",), replace_config=config_fifo),
    Case("config-over-16-mib", ("config.json",), replace_config=config_oversized),
    Case("json-missing-colon", ("config.json",), raw='{"ociVersion" "1.0.2"}'),
    Case("json-truncated-in-a-string", ("config.json",), raw='{"ociVersion": "1.0'),
    Case("json-100000-deep", ("config.json", "nested"),
         raw="[" * 100_000 + "]" * 100_000),
    Case("additional-gid-negative", ("process.user.additionalGids[0]",),
         edit=set_in("process.user.additionalGids", [-5])),
    Case("uid-over-uint32", ("process.user.uid",), edit=set_in("process.user.uid", 2**32)),
    Case("rlimit-over-uint64", ("process.rlimits[0].hard",),
         edit=set_in("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 1,
                                           "hard": 2**70}])),
    Case("device-major-over-uint32", ("linux.devices[0].major",),
         edit=set_in("linux.devices", [{"path": "/dev/x", "type": "c", "major": 2**32,
                                         "minor": 1}])),
    Case("uid-mapping-size-negative", ("linux.uidMappings[0].size",),
         edit=set_in("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": -1}])),
    Case("pids-limit-over-int64", ("linux.resources.pids.limit",),
         edit=set_in("linux.resources.pids", {"limit": 2**63})),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(runtime: Runtime, bundle, tmp_path: Path, case: Case) -> None:
    b = bundle(["true"])
    if case.edit is not None:
        case.edit(b.config)
        b.write()
    if case.raw is not None:
        b.config_path.write_text(case.raw)
    if case.extra.get("remove_config"):
        b.config_path.unlink()
    if case.replace_config is not None:
        b.config_path.rename(b.path / "config.real")
        case.replace_config(b.config_path)
    argv = case.argv(b.path, case.cid) if case.argv else ["create", "--bundle", str(b), case.cid]
    result = runtime.run(*argv)
    assert_clean_failure(result, runtime, case.cid, case.mentions, exit_code=case.exit_code)
    if case.name == "id-dotdot":
        assert not (runtime.root.parent / "x").exists()
    assert runtime.state_dirs() == []


OUT_OF_RANGE = [c for c in CASES if c.name in ("additional-gid-negative", "rlimit-over-uint64",
                                                "device-major-over-uint32")]


@pytest.mark.parametrize("case", OUT_OF_RANGE, ids=[c.name for c in OUT_OF_RANGE])
def test_run_refuses_out_of_range_before_making_anything(runtime: Runtime, bundle,
                                                         case: Case) -> None:
    """run as create (above): the model's range refuses the value with its JSON path before
    the state directory or the container's cgroup exists."""
    from support.cgroups import find_cgroups

    b = bundle(["true"])
    assert case.edit is not None
    case.edit(b.config)
    b.write()
    result = runtime.run("run", "--bundle", str(b), "c1")
    line = assert_clean_failure(result, runtime, "c1", case.mentions)
    assert "out of range" in line, line
    assert runtime.state_dirs() == []
    assert find_cgroups(runtime.token) == []


def test_duplicate_id(runtime: Runtime, bundle) -> None:
    runtime.create(bundle(["sleep", "1000"], name="first"), "dup")
    first_pid = runtime.state("dup")["pid"]
    result = runtime.run("create", "--bundle", bundle(["true"], name="second"), "dup")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "dup" in lines[0], result.stderr
    state = runtime.state("dup")  # the first container is untouched
    assert state["status"] == "created" and state["pid"] == first_pid
    assert Path(state["bundle"]).name == "first"


@pytest.mark.parametrize("sig", ["NOSUCHSIG", "SIGNOPE", "999"])
def test_kill_invalid_signal(runtime: Runtime, bundle, sig: str) -> None:
    runtime.create(bundle(["sleep", "1000"]), "c1")
    result = runtime.run("kill", "c1", sig)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and sig in lines[0], result.stderr
    assert runtime.status("c1") == "created"


def test_failed_create_is_logged_as_json(runtime: Runtime, bundle, tmp_path: Path) -> None:
    """Errors from the container's setup (the native child) reach the log too."""
    log = tmp_path / "log.json"
    b = bundle()
    b.config["mounts"].append({"destination": "/weird", "type": "nosuchfs", "source": "none"})
    b.write()
    result = runtime.run("--log", log, "--log-format", "json", "create", "--bundle", b, "c1")
    assert_clean_failure(result, runtime, "c1", ("nosuchfs", "/weird"))
    errors = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    errors = [e for e in errors if e.get("level") == "error"]
    assert errors and "/weird" in errors[-1]["msg"], errors


def _process_json(path: Path, kind: str) -> None:
    good = {"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0}}
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "truncated":
        path.write_text(json.dumps(good)[:-3])
    elif kind == "gid-out-of-range":
        path.write_text(json.dumps({**good, "user": {"uid": 0, "gid": 2**32}}))
    elif kind == "over-16-mib":  # refused for its size, before a byte is parsed
        path.write_text(json.dumps(good))
        os.truncate(path, 16 * 1024 * 1024 + 1)


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "deep", "truncated", "gid-out-of-range",
                                  "over-16-mib"])
def test_bad_process_json(runtime: Runtime, bundle, tmp_path: Path, kind: str) -> None:
    """exec --process: a regular file of bounded size and depth, integers in range; refused
    with one line and no process started in the container."""
    runtime.create(bundle(["sleep", "1000"]), "c1")
    runtime.start("c1")
    path = tmp_path / "process.json"
    _process_json(path, kind)
    result = runtime.run("exec", "--process", path, "c1", timeout=30)
    assert result.returncode == 1, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "process.json" in lines[0] or str(path) in lines[0], lines
    if kind == "gid-out-of-range":
        assert "user.gid" in lines[0], lines
    if kind == "over-16-mib":
        assert "over the limit" in lines[0], lines
    assert runtime.status("c1") == "running"
    pids = runtime.run("ps", "--format", "json", "c1", check=True).stdout
    assert len(json.loads(pids)) == 1, pids  # the init alone
