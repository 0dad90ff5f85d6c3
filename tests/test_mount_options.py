"""Mount options beyond mount(2) flags, as the container sees them: recursive attributes
(rro, rnosuid, ... via mount_setattr), propagation, tmpcopyup, idmapped binds (idmap,
ridmap), overlay paths relative to the bundle; linux.devices, maskedPaths and
readonlyPaths; and the bad inputs for each."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import MountEntry, Runtime, assert_clean_failure, find_mount, parse_mountinfo

pytestmark = pytest.mark.root

MARK = "----mountinfo----"
ID_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def inside(runtime: Runtime, b, before: str = "true") -> tuple[str, list[MountEntry]]:
    b.config["process"]["args"] = ["sh", "-c", f"{before}; echo {MARK}; cat /proc/self/mountinfo"]
    b.write()
    out = runtime.run_bundle(b, "c1").stdout
    head, _, info = out.partition(MARK + "\n")
    return head, parse_mountinfo(info)


def must(entries: list[MountEntry], mountpoint: str) -> MountEntry:
    entry = find_mount(entries, mountpoint)
    assert entry is not None, f"no mount at {mountpoint}: {[e.mountpoint for e in entries]}"
    return entry


@contextlib.contextmanager
def host_tmpfs(path: Path, *make: str) -> Iterator[Path]:
    """A tmpfs mounted on the host at *path* for the test (then `mount --make-X` for each
    of *make*), lazily unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "pyrt-test", str(path)], check=True)
    try:
        for how in make:
            subprocess.run(["mount", f"--make-{how}", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def bind(source: Path | str, destination: str, *options: str, **extra: object) -> dict:
    return {"destination": destination, "type": "bind", "source": str(source),
            "options": ["rbind", *options], **extra}


# -- recursive attributes -------------------------------------------------------------------

def test_rro_is_recursive_ro_is_not(runtime: Runtime, bundle, tmp_path: Path) -> None:
    src = tmp_path / "src"
    with host_tmpfs(src / "sub"):
        b = bundle()
        b.config["mounts"] += [bind(src, "/plain", "ro"), bind(src, "/rec", "rro")]
        head, entries = inside(runtime, b, before="touch /rec/sub/x 2>/dev/null && echo RW || "
                               "echo RO; touch /plain/sub/y 2>/dev/null && echo RW || echo RO")
        assert head.split() == ["RO", "RW"]
        assert must(entries, "/plain").readonly and not must(entries, "/plain/sub").readonly
        assert must(entries, "/rec").readonly and must(entries, "/rec/sub").readonly


def test_recursive_nosuid_nodev_noexec_noatime(runtime: Runtime, bundle, tmp_path: Path) -> None:
    src = tmp_path / "src"
    with host_tmpfs(src / "sub"):
        b = bundle()
        b.config["mounts"].append(
            bind(src, "/data", "rnosuid", "rnodev", "rnoexec", "rnoatime", "rnosymfollow"))
        _, entries = inside(runtime, b)
        for point in ("/data", "/data/sub"):
            e = must(entries, point)
            for opt in ("nosuid", "nodev", "noexec", "noatime", "nosymfollow"):
                assert e.has(opt), (opt, e)
            assert not e.readonly


def test_rrw_clears_what_ro_set(runtime: Runtime, bundle, tmp_path: Path) -> None:
    src = tmp_path / "src"
    with host_tmpfs(src / "sub"):
        subprocess.run(["mount", "-o", "remount,ro", str(src / "sub")], check=True)
        b = bundle()
        b.config["mounts"].append(bind(src, "/data", "rrw"))
        _, entries = inside(runtime, b)
        # the bind's own flag is cleared; the superblock of the host's ro tmpfs stays ro
        assert not must(entries, "/data").readonly
        assert "rw" in must(entries, "/data/sub").options


# -- propagation -----------------------------------------------------------------------------

@pytest.mark.parametrize("option, expect", [
    ("private", ()), ("shared", ("shared:",)), ("unbindable", ("unbindable",)),
    ("rprivate", ()), ("rshared", ("shared:",)), ("runbindable", ("unbindable",)),
])
def test_propagation_of_a_tmpfs(runtime: Runtime, bundle, option: str,
                                expect: tuple[str, ...]) -> None:
    b = bundle()
    b.config["mounts"].append({"destination": "/p", "type": "tmpfs", "source": "tmpfs",
                               "options": [option]})
    _, entries = inside(runtime, b)
    optional = must(entries, "/p").optional
    assert [o.split(":")[0] + (":" if ":" in o else "") for o in optional] == list(expect)


def test_slave_bind_receives_host_mounts(runtime: Runtime, bundle, tmp_path: Path) -> None:
    src = tmp_path / "shared"
    with host_tmpfs(src, "shared"):
        (src / "later").mkdir()
        b = bundle(["sh", "-c", "cat /proc/self/mountinfo"])
        b.config["mounts"].append(bind(src, "/data", "rslave"))
        b.write()
        runtime.create(b, "c1")
        # mounted on the host after create: a slave receives it, a private copy would not
        with host_tmpfs(src / "later"):
            runtime.start("c1")
            runtime.wait_status("c1", "stopped")
        entries = parse_mountinfo(runtime.output("c1"))
        data = must(entries, "/data")
        assert any(o.startswith("master:") for o in data.optional), data
        assert must(entries, "/data/later").fstype == "tmpfs"
        runtime.delete("c1")


# -- tmpcopyup ---------------------------------------------------------------------------------

def test_tmpcopyup(runtime: Runtime, bundle) -> None:
    b = bundle()
    etc = b.rootfs / "opt" / "app"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "main.conf").write_text("from the image\n")
    (etc / "conf.d" / "x.conf").write_text("nested\n")
    (etc / "link").symlink_to("main.conf")
    os.chmod(etc, 0o750)
    os.chmod(etc / "main.conf", 0o600)
    b.config["mounts"].append({"destination": "/opt/app", "type": "tmpfs", "source": "tmpfs",
                               "options": ["tmpcopyup", "nosuid"]})
    head, entries = inside(runtime, b, before=(
        "cat /opt/app/main.conf /opt/app/conf.d/x.conf /opt/app/link; "
        "stat -c %a /opt/app /opt/app/main.conf; echo new > /opt/app/written"))
    assert head.split("\n")[:3] == ["from the image", "nested", "from the image"]
    assert head.split()[-2:] == ["750", "600"]
    assert must(entries, "/opt/app").fstype == "tmpfs"
    assert not (etc / "written").exists()  # writes went to the tmpfs


# -- idmapped mounts ---------------------------------------------------------------------------

def userns_bundle(bundle, tmp_path: Path):
    """A bundle with a new user namespace (0 -> 100000), reachable by that uid."""
    p = tmp_path
    while p != p.parent and str(p).startswith(tempfile.gettempdir() + "/"):
        if p.stat().st_mode & 0o7777 == 0o700:
            p.chmod(0o711)
        p = p.parent
    b = bundle(overrides={"linux": {"uidMappings": ID_MAP, "gidMappings": ID_MAP}})
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/sys/fs/cgroup"]
    return b


def owned_tree(root: Path, uid: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "f").write_text("x")
    os.chown(root / "f", uid, uid)
    return root


def test_idmap_with_mount_mappings(runtime: Runtime, bundle, tmp_path: Path) -> None:
    src = owned_tree(tmp_path / "src", 1000)
    maps = [{"containerID": 1000, "hostID": 2000, "size": 1}]
    b = bundle()
    b.config["mounts"].append(bind(src, "/data", "idmap", uidMappings=maps, gidMappings=maps))
    head, entries = inside(runtime, b, before="stat -c '%u:%g' /data/f")
    assert head.split() == ["2000:2000"]
    assert "idmapped" in must(entries, "/data").options
    assert os.stat(src / "f").st_uid == 1000  # on disk, nothing changed


def test_idmap_is_top_only_ridmap_is_recursive(runtime: Runtime, bundle, tmp_path: Path) -> None:
    src = tmp_path / "src"
    with host_tmpfs(src / "sub"):
        owned_tree(src, 1000)
        owned_tree(src / "sub", 1000)
        maps = [{"containerID": 1000, "hostID": 3000, "size": 1}]
        b = bundle()
        b.config["mounts"] += [
            bind(src, "/top", "idmap", uidMappings=maps, gidMappings=maps),
            bind(src, "/all", "ridmap", uidMappings=maps, gidMappings=maps),
        ]
        head, _ = inside(runtime, b, before="stat -c %u /top/f /top/sub/f /all/f /all/sub/f")
        assert head.split() == ["3000", "1000", "3000", "3000"]


def test_idmap_in_a_user_namespace(runtime: Runtime, bundle, tmp_path: Path) -> None:
    # the usual use: the container's root writes host-root-owned files through the mount
    src = owned_tree(tmp_path / "src", 0)
    b = userns_bundle(bundle, tmp_path)
    (b.rootfs / "data").mkdir()  # the rootfs is the host root's: its root cannot mkdir there
    b.config["mounts"].append(bind(src, "/data", "idmap"))
    head, _ = inside(runtime, b, before="stat -c %u /data/f; echo hi > /data/new; "
                     "stat -c %u /data/new")
    assert head.split() == ["0", "0"]
    assert os.stat(src / "new").st_uid == 0


# -- overlay ------------------------------------------------------------------------------------

def test_overlay_paths_relative_to_the_bundle(runtime: Runtime, bundle) -> None:
    b = bundle()
    for d in ("lower1", "lower2", "upper", "work"):
        (b.path / d).mkdir()
    (b.path / "lower1" / "a").write_text("from lower1\n")
    (b.path / "lower2" / "b").write_text("from lower2\n")
    b.config["mounts"].append({
        "destination": "/merged", "type": "overlay", "source": "overlay",
        "options": ["lowerdir=lower1:lower2", "upperdir=upper", "workdir=work"],
    })
    head, entries = inside(runtime, b, before="cat /merged/a /merged/b; echo w > /merged/c")
    assert head == "from lower1\nfrom lower2\n"
    assert must(entries, "/merged").fstype == "overlay"
    assert (b.path / "upper" / "c").read_text() == "w\n"


# -- devices, masked and read-only paths --------------------------------------------------------

def ls_dev(runtime: Runtime, b) -> dict[str, list[str]]:
    b.config["process"]["args"] = ["ls", "-ln", "/dev"]
    b.write()
    out = runtime.run_bundle(b, "c1").stdout
    dev = {}
    for line in out.splitlines()[1:]:
        words = line.split()
        if words:
            dev[words[words.index("->") - 1] if "->" in words else words[-1]] = words
    return dev


def test_devices_ls(runtime: Runtime, bundle) -> None:
    b = bundle()
    b.config["linux"]["devices"] = [
        {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 0o640,
         "uid": 1000, "gid": 1001},
        {"type": "b", "path": "/dev/pyrt-blk", "major": 7, "minor": 200, "fileMode": 0o600},
        {"type": "p", "path": "/dev/pyrt-fifo", "fileMode": 0o620},
    ]
    b.config["linux"]["resources"]["devices"] += [
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        {"allow": True, "type": "b", "major": 7, "minor": 200, "access": "rwm"},
    ]
    dev = ls_dev(runtime, b)
    assert dev["fuse"][:6] == ["crw-r-----", "1", "1000", "1001", "10,", "229"]
    assert dev["pyrt-blk"][:6] == ["brw-------", "1", "0", "0", "7,", "200"]
    assert dev["pyrt-fifo"][0] == "prw--w----"
    # runc's default nodes and links
    for name, (major, minor) in {"null": (1, 3), "zero": (1, 5), "full": (1, 7),
                                 "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}.items():
        assert dev[name][0] == "crw-rw-rw-" and dev[name][4:6] == [f"{major},", str(minor)]
    assert dev["fd"][0].startswith("l") and dev["fd"][-1] == "/proc/self/fd"
    assert dev["ptmx"][-1] == "pts/ptmx"


def test_devices_in_a_user_namespace_are_host_binds(runtime: Runtime, bundle,
                                                    tmp_path: Path) -> None:
    b = userns_bundle(bundle, tmp_path)
    b.config["process"]["args"] = ["sh", "-c", "ls -ln /dev/null /dev/zero; echo x > /dev/null "
                                   f"&& echo WROTE; echo {MARK}; cat /proc/self/mountinfo"]
    b.write()
    out = runtime.run_bundle(b, "c1").stdout
    head, _, info = out.partition(MARK + "\n")
    lines = head.splitlines()
    assert lines[0].split()[0] == "crw-rw-rw-" and lines[0].split()[4:6] == ["1,", "3"]
    assert lines[-1] == "WROTE"
    # a bind of the host's node, not a mknod: the container's root cannot mknod
    assert must(parse_mountinfo(info), "/dev/null").fstype == "devtmpfs"


def test_masked_and_readonly_paths_proved(runtime: Runtime, bundle) -> None:
    b = bundle()
    b.config["linux"]["maskedPaths"] += ["/etc/hostname", "/etc/secret-dir"]
    (b.rootfs / "etc" / "secret-dir").mkdir()
    (b.rootfs / "etc" / "secret-dir" / "key").write_text("secret\n")
    b.config["linux"]["readonlyPaths"] += ["/tmp"]
    head, entries = inside(runtime, b, before=(
        "stat -c '%t:%T' /etc/hostname; wc -c < /etc/hostname; ls -A /etc/secret-dir | wc -l; "
        "touch /etc/secret-dir/x 2>/dev/null && echo RW || echo RO; "
        "touch /tmp/x 2>/dev/null && echo RW || echo RO; "
        "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo RW || echo RO"))
    assert head.split() == ["1:3", "0", "0", "RO", "RO", "RO"]
    assert must(entries, "/etc/secret-dir").fstype == "tmpfs"
    assert must(entries, "/etc/secret-dir").readonly
    assert must(entries, "/tmp").readonly and must(entries, "/proc/sys").readonly
    assert (b.rootfs / "etc" / "secret-dir" / "key").read_text() == "secret\n"


# -- bad inputs ---------------------------------------------------------------------------------

@pytest.mark.pyruntime_only
@pytest.mark.parametrize("mount, mentions", [
    ({"destination": "/x", "type": "proc", "source": "proc", "options": ["tmpcopyup"]},
     "mounts[7].options: tmpcopyup needs a tmpfs"),
    ({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]},
     "mounts[7]: idmapped mounts are supported for bind mounts only"),
    ({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]},
     "mounts[7].options: idmap needs"),
    ({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rbind"],
      "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
     "mounts[7].gidMappings"),
    ({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"],
      "uidMappings": [{"containerID": 0, "hostID": 1, "size": 0}],
      "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]},
     "mounts[7].uidMappings[0]"),
], ids=["copyup-not-tmpfs", "idmap-not-bind", "idmap-no-maps", "half-maps", "zero-size"])
def test_bad_mount_extensions(runtime: Runtime, bundle, mount: dict, mentions: str) -> None:
    b = bundle()
    b.config["mounts"].append(mount)
    b.write()
    assert_clean_failure(runtime.run("create", "--bundle", b, "c1"), runtime, "c1", mentions)


def test_idmap_of_an_unsupported_filesystem_fails_cleanly(runtime: Runtime, bundle) -> None:
    # procfs cannot be idmapped: the kernel refuses, create fails naming the mount
    maps = [{"containerID": 0, "hostID": 1, "size": 1}]
    b = bundle()
    b.config["mounts"].append(bind("/proc/sys", "/x", "idmap", uidMappings=maps,
                                   gidMappings=maps))
    b.write()
    assert_clean_failure(runtime.run("create", "--bundle", b, "c1"), runtime, "c1",
                         "idmapped bind /proc/sys on /x")
