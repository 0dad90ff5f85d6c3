"""Mounts as the container sees them in /proc/self/mountinfo; pivot_root; root.readonly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import MountEntry, Runtime, find_mount, parse_mountinfo

pytestmark = pytest.mark.root

MARK = "----mountinfo----"


def mounts_inside(runtime: Runtime, b, *flags: str, before: str = "true") -> tuple[str, list]:
    """Run *before* in the container, then print its mountinfo.  Returns (output of
    *before*, parsed mountinfo)."""
    b.config["process"]["args"] = ["sh", "-c", f"{before}; echo {MARK}; cat /proc/self/mountinfo"]
    b.write()
    out = runtime.run_bundle(b, "c1", *flags).stdout
    head, _, info = out.partition(MARK + "\n")
    return head, parse_mountinfo(info)


def must_find(entries: list[MountEntry], mountpoint: str) -> MountEntry:
    entry = find_mount(entries, mountpoint)
    assert entry is not None, f"no mount at {mountpoint}: {[e.mountpoint for e in entries]}"
    return entry


def test_default_mounts(runtime: Runtime, bundle) -> None:
    _, entries = mounts_inside(runtime, bundle())
    proc = must_find(entries, "/proc")
    assert proc.fstype == "proc"
    dev = must_find(entries, "/dev")
    assert dev.fstype == "tmpfs" and dev.has("nosuid") and dev.has("size=65536k")
    assert dev.has("mode=755")
    pts = must_find(entries, "/dev/pts")
    assert pts.fstype == "devpts"
    for opt in ("nosuid", "noexec", "gid=5", "mode=620", "ptmxmode=666"):
        assert pts.has(opt), (opt, pts)
    shm = must_find(entries, "/dev/shm")
    assert shm.fstype == "tmpfs" and all(shm.has(o) for o in ("nosuid", "noexec", "nodev"))
    mq = must_find(entries, "/dev/mqueue")
    assert mq.fstype == "mqueue" and all(mq.has(o) for o in ("nosuid", "noexec", "nodev"))
    sys_ = must_find(entries, "/sys")
    assert sys_.fstype == "sysfs" and sys_.readonly and sys_.has("nosuid")


def test_new_proc_shows_container_pids(runtime: Runtime, bundle) -> None:
    out = runtime.run_bundle(bundle(["sh", "-c", "ls -d /proc/[0-9]*"]), "c1").stdout.split()
    assert out[0] == "/proc/1" and len(out) <= 3, out  # sh, ls (and maybe a glob child)


def test_bind_mount_readonly(runtime: Runtime, bundle, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello").write_text("from the host\n")
    b = bundle()
    b.config["mounts"].append(
        {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "ro"]}
    )
    head, entries = mounts_inside(
        runtime, b, before="cat /data/hello; touch /data/new 2>/dev/null && echo RW || echo RO"
    )
    assert head == "from the host\nRO\n"
    assert must_find(entries, "/data").readonly
    assert not (data / "new").exists()


def test_bind_mount_file(runtime: Runtime, bundle, tmp_path: Path) -> None:
    src = tmp_path / "file.txt"
    src.write_text("a single file\n")
    b = bundle()
    b.config["mounts"].append(
        {"destination": "/etc/bound.txt", "type": "bind", "source": str(src), "options": ["bind"]}
    )
    head, entries = mounts_inside(runtime, b, before="cat /etc/bound.txt")
    assert head == "a single file\n"
    must_find(entries, "/etc/bound.txt")


def test_tmpfs_with_mode_and_size(runtime: Runtime, bundle) -> None:
    b = bundle()
    b.config["mounts"].append({
        "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "mode=0700", "size=1m"],
    })
    head, entries = mounts_inside(runtime, b, before="stat -c %a /scratch")
    assert head == "700\n"
    scratch = must_find(entries, "/scratch")
    assert scratch.fstype == "tmpfs"
    for opt in ("nosuid", "nodev", "noexec", "size=1024k", "mode=700"):
        assert scratch.has(opt), (opt, scratch)
    assert not scratch.readonly


def test_mount_destination_is_created(runtime: Runtime, bundle) -> None:
    b = bundle()
    b.config["mounts"].append({"destination": "/a/b/c", "type": "tmpfs", "source": "tmpfs"})
    _, entries = mounts_inside(runtime, b)
    assert must_find(entries, "/a/b/c").fstype == "tmpfs"


def test_mounts_happen_in_order(runtime: Runtime, bundle) -> None:
    b = bundle()
    b.config["mounts"] += [
        {"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["size=2m"]},
        {"destination": "/m/inner", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]
    _, entries = mounts_inside(runtime, b)
    outer, inner = must_find(entries, "/m"), must_find(entries, "/m/inner")
    assert inner.parent_id == outer.mount_id


def test_masked_and_readonly_paths(runtime: Runtime, bundle) -> None:
    b = bundle()
    head, entries = mounts_inside(
        runtime, b, before="cat /proc/keys | wc -c; ls /sys/firmware | wc -l"
    )
    assert head.split() == ["0", "0"]
    # Paths this kernel does not have (e.g. /proc/kcore, /proc/sysrq-trigger) are skipped.
    for path in b.config["linux"]["maskedPaths"] + b.config["linux"]["readonlyPaths"]:
        if os.path.exists(path):
            assert must_find(entries, path).readonly or path in b.config["linux"]["maskedPaths"]
    assert must_find(entries, "/proc/sys").readonly


@pytest.mark.parametrize("flags", [(), ("--no-pivot",)], ids=["pivot_root", "no-pivot"])
def test_root_is_the_bundle_rootfs(runtime: Runtime, bundle, flags: tuple[str, ...]) -> None:
    b = bundle()
    (b.rootfs / "marker").write_text("rootfs\n")
    head, entries = mounts_inside(runtime, b, *flags, before="cat /marker; ls /")
    assert head.splitlines()[0] == "rootfs"
    assert "marker" in head.splitlines()[1:]
    root = must_find(entries, "/")
    assert root.root.endswith("/bundle/rootfs"), root  # a bind of the bundle's rootfs
    # Nothing of the host is reachable: every mount is one the config asked for.
    wanted = {m["destination"] for m in b.config["mounts"]} | {"/"}
    wanted |= set(b.config["linux"]["maskedPaths"]) | set(b.config["linux"]["readonlyPaths"])
    extra = [e.mountpoint for e in entries if not any(
        e.mountpoint == w or e.mountpoint.startswith(w.rstrip("/") + "/") for w in wanted)]
    assert extra == [], extra


def test_readonly_root(runtime: Runtime, bundle) -> None:
    b = bundle(overrides={"root": {"readonly": True}})
    script = "touch /newfile 2>&1 && echo RW || echo RO; touch /dev/shm/ok && echo SHM"
    head, entries = mounts_inside(runtime, b, before=script)
    assert head.splitlines()[-2:] == ["RO", "SHM"], head
    assert "Read-only file system" in head
    assert must_find(entries, "/").readonly
    assert not (b.rootfs / "newfile").exists()


def test_writable_root(runtime: Runtime, bundle) -> None:
    b = bundle(["sh", "-c", "echo written > /newfile"])
    runtime.run_bundle(b, "c1")
    assert (b.rootfs / "newfile").read_text() == "written\n"
