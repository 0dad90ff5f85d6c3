"""What checkpoint and restore ask of CRIU, on any kernel: a stand-in `criu` (given with
--criu) speaks CRIU's RPC (`criu swrk FD`, pycriu's messages), keeps each request it
gets, and refuses the dump or restore with an error line in CRIU's log format.

The lane (tests/test_criu.py, make test-cgroupv2) shows what a real CRIU does with the
requests; here every runc option is seen to reach CRIU's RPC as the field runc sets,
with the external mounts, the cgroups CRIU restores into, the stdio pipes to re-attach,
and the hooks run at CRIU's setup-namespaces notification.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support import Runtime, assert_clean_failure, stderr_lines

pytestmark = [pytest.mark.root, pytest.mark.pyruntime_only]

# Debian's python3 has pycriu (the criu package). It records the request (and its own
# cgroups: CRIU's cg_root must name them), answers FEATURE_CHECK with memory tracking
# but no lazy pages, sends setup-namespaces for a restore, then fails the request with
# a line in its log (the work dir, through the fd the request names).
FAKE_CRIU = r"""#!/usr/bin/python3
import os, socket, sys
sys.path.insert(0, "/usr/lib/python3/dist-packages")
from pycriu import rpc_pb2 as rpc
record = RECORD
sock = socket.socket(fileno=int(sys.argv[2]))
data = sock.recv(1 << 20)
req = rpc.criu_req()
req.ParseFromString(data)
n = len([f for f in os.listdir(record) if f.endswith(".req")])
with open(f"{record}/{n}.req", "wb") as f:
    f.write(data)
with open("/proc/self/cgroup") as src, open(f"{record}/{n}.cgroup", "w") as f:
    f.write(src.read())
with open(f"{record}/{n}.pid", "w") as f:
    f.write(str(os.getpid()))
resp = rpc.criu_resp(type=req.type, success=False, cr_errno=22, cr_errmsg="not this")
if req.type == rpc.FEATURE_CHECK:
    resp = rpc.criu_resp(type=req.type, success=True,
                         features=rpc.criu_features(mem_track=True, lazy_pages=False))
else:
    if req.type == rpc.RESTORE:
        sock.send(rpc.criu_resp(type=rpc.NOTIFY, success=True,
                                notify=rpc.criu_notify(script="setup-namespaces",
                                                       pid=os.getpid())).SerializeToString())
        ack = rpc.criu_req()
        ack.ParseFromString(sock.recv(1 << 20))
        with open(f"{record}/{n}.ack", "w") as f:
            f.write(str(ack.notify_success))
    log = f"/proc/self/fd/{req.opts.work_dir_fd}/{req.opts.log_file}"
    with open(log, "w") as f:
        f.write("(00.000100) mnt: something ordinary\n"
                "(00.000200) Error (criu/fake.c:10): fake: the first reason\n"
                "(00.000300) Error (criu/fake.c:20): fake: a consequence\n")
sock.send(resp.SerializeToString())
"""

CLONE_NEWNET = 0x40000000


class FakeCriu:
    def __init__(self, directory: Path) -> None:
        self.record = directory / "record"
        self.record.mkdir()
        self.path = directory / "criu"
        self.path.write_text(FAKE_CRIU.replace("RECORD", repr(str(self.record))))
        self.path.chmod(0o755)

    def requests(self) -> list:
        from pyruntime.criu.rpc import load_rpc

        rpc = load_rpc()
        out = []
        for n in range(len(list(self.record.glob("*.req")))):
            req = rpc.criu_req()
            req.ParseFromString((self.record / f"{n}.req").read_bytes())
            out.append(req)
        return out

    def cgroup(self, n: int) -> str:
        return (self.record / f"{n}.cgroup").read_text()


@pytest.fixture
def criu(tmp_path: Path) -> FakeCriu:
    return FakeCriu(tmp_path)


def ext_mnt(opts) -> dict[str, str]:
    return {m.key: m.val for m in opts.ext_mnt}


def bind_bundle(bundle, tmp_path: Path, *args: str):
    """A bundle with a bind mount and a device of its own, besides the defaults."""
    shared = tmp_path / "shared"
    shared.mkdir(exist_ok=True)
    b = bundle(list(args) or ["sleep", "1000"], {
        "linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10,
                               "minor": 229}],
                  "resources": {"devices": [{"allow": True, "access": "rwm"}]}}})
    b.config["mounts"].append({"destination": "/shared", "type": "bind",
                               "source": str(shared), "options": ["rbind", "rw"]})
    b.write()
    return b


def test_checkpoint_passes_every_option(runtime: Runtime, bundle, criu: FakeCriu,
                                        tmp_path: Path) -> None:
    from pyruntime.criu.rpc import load_rpc

    rpc = load_rpc()
    b = bind_bundle(bundle, tmp_path)
    runtime.run("run", "-d", "--bundle", b, "c1", check=True)
    pid = runtime.state("c1")["pid"]
    image, work = tmp_path / "image", tmp_path / "work"
    r = runtime.run("--criu", criu.path, "checkpoint", "--image-path", image,
                    "--work-path", work, "--parent-path", "../parent", "--leave-running",
                    "--tcp-established", "--ext-unix-sk", "--shell-job", "--file-locks",
                    "--manage-cgroups-mode", "strict", "--empty-ns", "network",
                    "--auto-dedup", "c1")
    assert r.returncode == 1
    # CRIU's first error, not its consequences; the log in --work-path
    assert stderr_lines(r) == [f"pyruntime: checkpoint: criu dump failed: fake: the first "
                               f"reason (log: {work}/dump.log)"]
    [req] = criu.requests()
    o = req.opts
    assert req.type == rpc.DUMP
    assert (o.pid, o.root, o.log_file, o.log_level) == (
        pid, str(b.rootfs.resolve()), "dump.log", 4)
    assert o.leave_running and o.tcp_established and o.ext_unix_sk and o.shell_job
    assert o.file_locks and o.auto_dedup and o.manage_cgroups and o.notify_scripts
    assert (o.parent_img, o.track_mem) == ("../parent", True)
    assert o.manage_cgroups_mode == rpc.STRICT and o.empty_ns == CLONE_NEWNET
    assert not o.lazy_pages
    # CRIU freezes the container's cgroup (the init is in it)
    with open(f"/proc/{pid}/cgroup") as f:
        assert any(o.freeze_cgroup.endswith(line.split(":", 2)[2].strip())
                   for line in f if line.strip()), o.freeze_cgroup
    ext = ext_mnt(o)
    assert ext["/shared"] == "/shared"  # bind: keyed and named by its destination
    for dev in ("/dev/fuse", "/dev/null", "/dev/zero", "/dev/tty", "/dev/urandom"):
        assert ext[dev] == dev  # devices, as runc declares them
    assert ext["/proc/kcore"] == "/dev/null"  # a masked file
    assert "/proc/acpi" not in ext  # a masked directory is a tmpfs CRIU dumps
    assert "/sys/fs/cgroup" not in ext  # a real mount, as runc leaves it
    # the init's stdio, by name, for restore to re-attach
    names = json.loads((image / "descriptors.json").read_text())
    assert names == [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in range(3)]
    assert not (image / "dump.log").exists()
    assert runtime.status("c1") == "running"  # a failed dump leaves it alone
    runtime.delete("c1", force=True)


def test_pre_dump_and_lazy_pages_ask_crius_features_first(runtime: Runtime, bundle,
                                                          criu: FakeCriu,
                                                          tmp_path: Path) -> None:
    from pyruntime.criu.rpc import load_rpc

    rpc = load_rpc()
    b = bundle(["sleep", "1000"])
    runtime.run("run", "-d", "--bundle", b, "c1", check=True)
    parent = tmp_path / "parent"
    r = runtime.run("--criu", criu.path, "checkpoint", "--pre-dump", "--image-path", parent,
                    "c1")
    assert r.returncode == 1 and "criu pre-dump failed: fake: the first reason" in r.stderr
    check, pre = criu.requests()
    assert check.type == rpc.FEATURE_CHECK and check.features.mem_track
    assert pre.type == rpc.PRE_DUMP and pre.opts.track_mem
    assert not pre.opts.ext_mnt and not (parent / "descriptors.json").exists()
    # this CRIU says it has no lazy pages: refused before any dump, as runc does
    r = runtime.run("--criu", criu.path, "checkpoint", "--lazy-pages", "--image-path",
                    tmp_path / "lazy", "c1")
    assert r.returncode == 1
    assert stderr_lines(r) == ["pyruntime: checkpoint: --lazy-pages needs CRIU's lazy pages "
                               "(userfaultfd), which CRIU does not have here"]
    assert len(criu.requests()) == 3 and criu.requests()[2].features.lazy_pages
    assert runtime.status("c1") == "running"
    runtime.delete("c1", force=True)


def test_restore_passes_every_option(runtime: Runtime, bundle, criu: FakeCriu,
                                     tmp_path: Path) -> None:
    from pyruntime.criu.rpc import load_rpc
    from support.cgroups import cgroups_path

    rpc = load_rpc()
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\nprintf \'{{"kind":"%s","state":%s}}\\n\' "$1" "$(cat)" >> {log}\n')
    hook.chmod(0o755)
    b = bind_bundle(bundle, tmp_path)
    b.config["hooks"] = {kind: [{"path": str(hook), "args": [str(hook), kind]}]
                         for kind in ("prestart", "createRuntime", "createContainer",
                                      "startContainer", "poststart", "poststop")}
    b.write()
    image, work = tmp_path / "image", tmp_path / "work"
    image.mkdir()
    work.mkdir()
    (image / "descriptors.json").write_text(
        json.dumps(["pipe:[1234]", "/dev/null", "pipe:[5678]"]))
    r = runtime.run("--criu", criu.path, "restore", "--image-path", image, "--work-path", work,
                    "--bundle", b, "--detach", "--pid-file", tmp_path / "pid",
                    "--console-socket", tmp_path / "console.sock", "--no-pivot",
                    "--no-subreaper", "--tcp-established", "--ext-unix-sk", "--shell-job",
                    "--file-locks", "--manage-cgroups-mode", "soft", "--empty-ns",
                    "network", "--auto-dedup", "--lazy-pages", "c2")
    line = assert_clean_failure(r, runtime, "c2", "criu restore failed: fake: the first reason")
    assert line.endswith(f"(log: {work}/restore.log)")
    [req] = criu.requests()
    o = req.opts
    assert req.type == rpc.RESTORE
    assert o.rst_sibling and o.evasive_devices and o.orphan_pts_master
    assert o.manage_cgroups and o.notify_scripts and o.log_file == "restore.log"
    assert o.root.endswith("/c2/criu-root")
    assert o.tcp_established and o.ext_unix_sk and o.shell_job and o.file_locks
    assert o.auto_dedup and o.lazy_pages
    assert o.manage_cgroups_mode == rpc.SOFT and o.empty_ns == CLONE_NEWNET
    # the caller's pipes are re-attached by name at the fds they had
    assert [(i.key, i.fd) for i in o.inherit_fd] == [("pipe:[1234]", 0), ("pipe:[5678]", 2)]
    ext = ext_mnt(o)
    assert ext["/shared"] == str(tmp_path / "shared")  # the bind's host source
    assert ext["/dev/null"] == "/dev/null" and ext["/dev/fuse"] == "/dev/fuse"
    assert "/sys/fs/cgroup" not in ext
    # criu ran in the new container's cgroups, and restores the tree there (cg_root)
    own = criu.cgroup(0)
    assert cgroups_path(runtime.token, "bundle").split(":")[-1] in own
    assert sorted((c.ctrl, c.path) for c in o.cg_root) == sorted(
        tuple(line.split(":", 2)[1:]) for line in own.splitlines())
    # prestart and createRuntime ran at setup-namespaces, with the restored pid, as runc
    # runs them; the others did not (the container's own were run when it was created)
    assert (criu.record / "0.ack").read_text() == "True"
    ran = [json.loads(line) for line in log.read_text().splitlines()]
    assert [h["kind"] for h in ran] == ["prestart", "createRuntime"]
    criu_pid = int((criu.record / "0.pid").read_text())
    for h in ran:
        assert (h["state"]["id"], h["state"]["pid"], h["state"]["bundle"]) == (
            "c2", criu_pid, str(b.path))


@pytest.mark.parametrize("flag,value,mentions", [
    ("--manage-cgroups-mode", "sometimes", "--manage-cgroups-mode: 'sometimes'"),
    ("--empty-ns", "pid", "--empty-ns: 'pid'"),
])
def test_bad_option_values(runtime: Runtime, bundle, criu: FakeCriu, tmp_path: Path,
                           flag: str, value: str, mentions: str) -> None:
    b = bundle(["sleep", "1000"])
    runtime.run("run", "-d", "--bundle", b, "c1", check=True)
    image = tmp_path / "image"
    r = runtime.run("--criu", criu.path, "checkpoint", flag, value, "--image-path", image,
                    "c1")
    assert r.returncode == 1
    [line] = stderr_lines(r)
    assert mentions in line
    assert not image.exists() and criu.requests() == []
    assert runtime.status("c1") == "running"
    runtime.delete("c1", force=True)
    image.mkdir()
    r = runtime.run("--criu", criu.path, "restore", flag, value, "--image-path", image,
                    "--bundle", b, "c2")
    assert_clean_failure(r, runtime, "c2", mentions)
    assert criu.requests() == []
