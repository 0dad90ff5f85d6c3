"""Bundles from images: config.json from the image config, and the overlay2 rootfs mount."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyruntime.image import ImageError, commands
from pyruntime.image.bundle import is_mounted, overlay_options, unmount_rootfs
from pyruntime.image.store import Store
from support.oci_builder import F, L, LayoutBuilder, busybox_layer, sample_layers

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (whiteouts, mount)"),
]


@pytest.fixture
def bundles(tmp_path):
    """Make bundles; whatever happens, unmount and delete every one at teardown."""
    made: list[Path] = []

    def make(root, name, dirname, args=None, mount=False):
        d = tmp_path / dirname
        made.append(d)
        commands.bundle(root, name, d, args=args, mount=mount)
        return d

    yield make
    for d in made:
        unmount_rootfs(d)
        assert not is_mounted(d / "rootfs")


def load_sample(tmp_path, config=None, layers=None, tag="sample"):
    b = LayoutBuilder(tmp_path / f"lay-{tag}")
    img = b.image(layers or sample_layers(), config=config)
    b.tag(img.descriptor, tag)
    root = tmp_path / "rt"
    commands.load(root, f"oci:{b.path}:{tag}")
    return root, img, b


def config_of(d):
    return json.loads((d / "config.json").read_text())


def test_config_from_image(tmp_path, bundles):
    root, _, _ = load_sample(
        tmp_path,
        config={
            "Entrypoint": ["/bin/busybox"],
            "Cmd": ["sh", "-c", "echo hi"],
            "Env": ["A=1", "PATH=/bin"],
            "WorkingDir": "/data",
            "User": "app",
            "Labels": {"l": "v"},
        },
    )
    cfg = config_of(bundles(root, "sample", "b1"))
    proc = cfg["process"]
    assert proc["args"] == ["/bin/busybox", "sh", "-c", "echo hi"]
    assert proc["env"] == ["A=1", "PATH=/bin", "HOME=/home/app"]
    assert proc["cwd"] == "/data"
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}
    assert proc["terminal"] is False
    assert cfg["root"] == {"path": "rootfs", "readonly": False}
    assert {n["type"] for n in cfg["linux"]["namespaces"]} == {
        "pid",
        "ipc",
        "uts",
        "mount",
        "network",
    }
    assert [m["destination"] for m in cfg["mounts"]] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",  # the same defaults as `pyruntime spec` (runc's)
    ]
    assert cfg["annotations"] == {"l": "v"}
    # args replace Cmd, the Entrypoint stays (docker run IMAGE ARGS)
    cfg = config_of(bundles(root, "sample", "b2", args=["true"]))
    assert cfg["process"]["args"] == ["/bin/busybox", "true"]
    info = json.loads((tmp_path / "b2/bundle.json").read_text())
    assert info["image"] == "sample" and len(info["lowerdirs"]) == 3


@pytest.mark.parametrize(
    "user, expected",
    [
        ("", {"uid": 0, "gid": 0}),
        ("1000", {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}),
        ("4242", {"uid": 4242, "gid": 0}),
        ("app:audio", {"uid": 1000, "gid": 29}),
        ("nobody:7", {"uid": 65534, "gid": 7}),
        ("0:wheel", {"uid": 0, "gid": 10}),
    ],
)
def test_user_resolution(tmp_path, bundles, user, expected):
    root, _, _ = load_sample(tmp_path, config={"Cmd": ["sh"], "User": user})
    assert config_of(bundles(root, "sample", "b"))["process"]["user"] == expected


def test_unknown_user_and_symlinked_passwd(tmp_path, bundles):
    root, _, _ = load_sample(tmp_path, config={"Cmd": ["sh"], "User": "ghost"})
    with pytest.raises(ImageError, match="image user 'ghost' not found"):
        bundles(root, "sample", "b")
    assert not (tmp_path / "b/config.json").exists()
    # an image whose /etc/passwd points at the host's: never read through the symlink
    root, _, _ = load_sample(
        tmp_path,
        config={"Cmd": ["sh"], "User": "root"},
        tag="sneaky",
        layers=[busybox_layer(), [L("etc/passwd", "/etc/passwd")]],
    )
    with pytest.raises(ImageError, match="image user 'root' not found"):
        bundles(root, "sneaky", "b3")


def test_no_command(tmp_path, bundles):
    root, _, _ = load_sample(tmp_path, config={})
    with pytest.raises(ImageError, match="no Entrypoint or Cmd"):
        bundles(root, "sample", "b")
    assert config_of(bundles(root, "sample", "b2", args=["sh"]))["process"]["args"] == ["sh"]


def test_overlay_view_of_three_layers(tmp_path, bundles):
    root, img, b = load_sample(tmp_path)
    store = Store(root)
    d = bundles(root, "sample", "c1", mount=True)
    rootfs = d / "rootfs"
    assert is_mounted(rootfs)
    # deleted files are gone, whiteouts invisible
    for gone in ("data/big", "tmpfile", "hl/orig", "hl2/orig", "hl2/link", "gone"):
        assert not os.path.lexists(rootfs / gone), gone
    assert (rootfs / "data/keep").read_bytes() == b"k" * 1000
    # opaque dir: only this layer's content
    assert sorted(os.listdir(rootfs / "opq")) == ["new"]
    # overwritten twice: the top layer's content
    assert (rootfs / "etc/conf").read_bytes() == b"3" * 200
    assert os.readlink(rootfs / "lnk") == "etc/conf"
    assert (rootfs / "lnk").read_bytes() == b"3" * 200
    assert (rootfs / "hl/link").read_bytes() == b"h" * 400
    assert stat.S_IMODE(os.stat(rootfs / "tmp").st_mode) == 0o1777

    # independent waste check: bytes visible through overlay = total - wasted
    seen, visible = set(), 0
    for dirpath, _, files in os.walk(rootfs):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                visible += st.st_size
    report = commands.inspect(root, "sample")
    assert visible == report["total_bytes"] - report["wasted_bytes"]

    # the image runs from the merged view
    out = subprocess.run(
        ["chroot", str(rootfs), "/bin/sh", "-c", "cat /etc/conf; ls /opq"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert out == "3" * 200 + "new\n"

    # writes land in this container's upper layer, never in the shared layers
    (rootfs / "etc/conf").write_bytes(b"mine")
    (rootfs / "data/keep").unlink()
    assert (d / "upper/etc/conf").read_bytes() == b"mine"
    top = store.layer_diff(img.layers[2].diff_id)
    assert (top / "etc/conf").read_bytes() == b"3" * 200
    assert (store.layer_diff(img.layers[0].diff_id) / "data/keep").exists()

    # a second container of the same image: nothing unpacked, its own clean view
    assert Store(root).load(f"oci:{b.path}:sample").unpacked == []
    d2 = bundles(root, "sample", "c2", mount=True)
    assert (d2 / "rootfs/etc/conf").read_bytes() == b"3" * 200
    assert (d2 / "rootfs/data/keep").exists()

    # delete: upper gone, shared layers stay, other container unaffected
    commands.delete_bundle(d)
    assert not is_mounted(rootfs) and not (d / "upper").exists() and not (d / "rootfs").exists()
    assert all(store.has_layer(lay.diff_id) for lay in img.layers)
    assert (d2 / "rootfs/data/keep").exists()
    commands.delete_bundle(d2, remove_dir=True)
    assert not d2.exists()


def test_many_layers_use_relative_lowerdirs(tmp_path, bundles):
    n = 45
    layers = [busybox_layer()] + [[F(f"f{i}", str(i).encode())] for i in range(1, n)]
    root, img, _ = load_sample(tmp_path, layers=layers, tag="tall")
    d = bundles(root, "tall", "t")
    info = json.loads((d / "bundle.json").read_text())
    data, chdir_to = overlay_options(info, d)
    assert chdir_to is not None, "45 absolute lowerdirs should not fit in one page here"
    commands.mount(d)
    assert is_mounted(d / "rootfs")
    assert (d / "rootfs/f44").read_bytes() == b"44" and (d / "rootfs/f1").read_bytes() == b"1"
    assert os.getcwd() != chdir_to
    commands.unmount(d)
    assert not is_mounted(d / "rootfs")


def test_bundle_refuses_existing_and_missing_layers(tmp_path, bundles):
    root, img, _ = load_sample(tmp_path)
    bundles(root, "sample", "x")
    with pytest.raises(ImageError, match="already holds a bundle"):
        commands.bundle(root, "sample", tmp_path / "x")
    commands.delete_bundle(tmp_path / "x", remove_dir=True)
    commands.remove(root, "sample")
    commands.prune(root)
    with pytest.raises(ImageError, match="no image named 'sample'"):
        commands.bundle(root, "sample", tmp_path / "y")
