"""The hooks' working directory, as runc 1.1.5 gives it: each kind of hook prints its
cwd, and the same bundle runs under pyruntime and under runc, through create/start/delete
and through a foreground run, from a directory that is not the bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Runtime
from support.runc import AGAINST_RUNC, open_tmp_path_for_userns, runc_runtime

pytestmark = AGAINST_RUNC

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
         "poststop")
# argv[1]: the file to write ("-KIND" appended: a file per hook, made by its own user);
# argv[2]: the hook's kind
HOOK = '#!/bin/sh\necho "$2 $(pwd -P)" > "$1-$2"\n'
ID_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def hooks_bundle(bundle, tmp_path: Path, userns: bool):
    """A bundle whose hooks write "KIND CWD" to tmp_path/logs/log-KIND (startContainer,
    whose path resolves in the container, to its /tmp/log-startContainer)."""
    script = tmp_path / "cwd-hook.sh"
    script.write_text(HOOK)
    script.chmod(0o755)
    (tmp_path / "logs").mkdir(exist_ok=True)
    (tmp_path / "logs").chmod(0o777)  # a hook in a user namespace writes there too
    b = bundle(["true"], {"process": {"cwd": "/tmp"}})
    if userns:  # createContainer hooks then join a user namespace too
        b.config["linux"]["namespaces"].append({"type": "user"})
        b.config["linux"]["uidMappings"] = b.config["linux"]["gidMappings"] = ID_MAP
        open_tmp_path_for_userns(b.path)
    (b.rootfs / "cwd-hook.sh").write_text(HOOK)
    (b.rootfs / "cwd-hook.sh").chmod(0o755)
    b.config["hooks"] = {
        kind: [{"path": "/cwd-hook.sh", "args": ["cwd-hook", "/tmp/log", kind]}]
        if kind == "startContainer" else
        [{"path": str(script), "args": ["cwd-hook", str(tmp_path / "logs" / "log"), kind]}]
        for kind in KINDS}
    b.write()
    return b


def collect(rt: Runtime, tmp_path: Path, b) -> list[str]:
    """The log lines with the rootfs, the bundle and the verbs' cwd named; empties the
    logs."""
    lines = []
    for log in [*(tmp_path / "logs").glob("log-*"), *(b.rootfs / "tmp").glob("log-*")]:
        lines += log.read_text().splitlines()
        log.unlink()
    named = []
    for line in lines:
        kind, _, cwd = line.partition(" ")
        where = {str(b.rootfs): "<rootfs>", str(b.path): "<bundle>",
                 str(rt.workdir): "<caller>"}.get(cwd, cwd)
        named.append(f"{kind} {where}")
    return sorted(named)


def lifecycle(rt: Runtime, cid: str, b, tmp_path: Path) -> list[list[str]]:
    """The hooks' cwds through create, start, delete; then through a foreground run."""
    assert rt.workdir != b.path  # the verbs run elsewhere
    rt.create(b, cid)
    rt.start(cid)
    rt.wait_status(cid, "stopped")
    rt.delete(cid)
    separate = collect(rt, tmp_path, b)
    rt.run_bundle(b, cid + "-run")
    return [separate, collect(rt, tmp_path, b)]


@pytest.mark.parametrize("userns", [False, True], ids=["", "userns"])
def test_hooks_run_where_runcs_do(runtime: Runtime, bundle, tmp_path: Path,
                                  test_token: str, userns: bool) -> None:
    b = hooks_bundle(bundle, tmp_path, userns)
    ours = lifecycle(runtime, "ours", b, tmp_path)
    with runc_runtime(tmp_path, test_token) as runc:
        theirs = lifecycle(runc, "theirs", b, tmp_path)
    assert ours == theirs
    # runc's, spelled out: the bundle where the verb took --bundle (and for poststart,
    # which runc runs in `create`), the rootfs before pivot_root, then process.cwd
    assert ours == [
        ["createContainer <rootfs>", "createRuntime <bundle>", "poststart <bundle>",
         "poststop <caller>", "prestart <bundle>", "startContainer /tmp"],
        ["createContainer <rootfs>", "createRuntime <bundle>", "poststart <bundle>",
         "poststop <bundle>", "prestart <bundle>", "startContainer /tmp"]]


RUNS = 25


def test_start_hooks_that_do_not_read_their_stdin(runtime: Runtime, bundle, tmp_path: Path,
                                                  test_token: str) -> None:
    """startContainer hooks that exit without reading the state on their stdin, in an
    init that is not a pid namespace's pid 1 (here: no pid namespace).  The init's write of
    the state then meets a pipe without a reader; SIGPIPE used to end the init (exit 141 in
    about a third of the runs).  runc ignores it; the container runs every time."""
    b = bundle(["true"])
    b.config["linux"]["namespaces"] = [
        ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "pid"]
    b.config["hooks"] = {"startContainer": [{"path": "/bin/true"}, {"path": "/bin/true"}]}
    b.write()
    ours = [runtime.run_bundle(b, f"ours-{i}", check=False).returncode for i in range(RUNS)]
    with runc_runtime(tmp_path, test_token) as runc:
        theirs = [runc.run_bundle(b, f"theirs-{i}", check=False).returncode
                  for i in range(5)]
    assert theirs == [0] * 5
    assert ours == [0] * RUNS
