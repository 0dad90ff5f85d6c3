"""Layer extraction: whiteouts, links, metadata, compression, and refusal of hostile tars."""

import io
import os
import stat
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyruntime.image import ImageError
from pyruntime.image.unpack import unpack
from support.oci_builder import (
    DEV,
    FIFO,
    OPQ,
    WH,
    D,
    F,
    H,
    L,
    compress,
    have_zstd,
    layer_tar,
    sha256,
)

is_root = os.geteuid() == 0


def rootonly(f):
    return pytest.mark.root(pytest.mark.skipif(not is_root, reason="needs root")(f))


def run(tmp_path, members, how="none", **kw):
    tar = layer_tar(members)
    return unpack(io.BytesIO(compress(tar, how)), tmp_path / "out", **kw), tar


@pytest.mark.parametrize(
    "how",
    [
        "none",
        "gzip",
        pytest.param("zstd", marks=pytest.mark.skipif(not have_zstd(), reason="no zstd program")),
    ],
)
def test_compression_by_magic_and_diff_id(tmp_path, how):
    res, tar = run(tmp_path, [D("a"), F("a/f", b"hello" * 1000)], how)
    assert res.compression == how
    assert res.diff_id == sha256(tar)
    assert res.tar_bytes == len(tar)
    assert (tmp_path / "out/a/f").read_bytes() == b"hello" * 1000


def test_metadata_links_and_fifo(tmp_path):
    members = [
        D("d", 0o750, uid=12, gid=34),
        F("d/f", b"x" * 10, 0o4755, uid=56, gid=78),
        H("d/h", "d/f"),
        L("abs", "/etc/passwd"),  # absolute symlink targets are fine: resolved in the container
        L("d/rel", "../d/f"),
        FIFO("p"),
        F("implicit/parent/file", b"y"),
    ]
    res, _ = run(tmp_path, members)
    out = tmp_path / "out"
    st = os.lstat(out / "d/f")
    assert stat.S_IMODE(st.st_mode) == 0o4755
    assert st.st_mtime == 1_700_000_000
    if is_root:
        assert (st.st_uid, st.st_gid) == (56, 78)
        assert (os.lstat(out / "d").st_uid, os.lstat(out / "d").st_gid) == (12, 34)
    assert stat.S_IMODE(os.lstat(out / "d").st_mode) == 0o750
    assert os.lstat(out / "d").st_mtime == 1_700_000_000
    assert os.lstat(out / "d/h").st_ino == st.st_ino
    assert os.readlink(out / "abs") == "/etc/passwd"
    assert os.readlink(out / "d/rel") == "../d/f"
    assert stat.S_ISFIFO(os.lstat(out / "p").st_mode)
    assert (out / "implicit/parent/file").read_bytes() == b"y"
    # bookkeeping for inspect: one inode of 10 bytes, named twice
    assert res.entries["d/f"]["group"] == res.entries["d/h"]["group"]
    assert res.size == 11


def test_later_entry_replaces_earlier(tmp_path):
    res, _ = run(
        tmp_path, [F("f", b"old"), F("f", b"newer"), D("x"), F("x/y", b"1"), F("x", b"file")]
    )
    assert (tmp_path / "out/f").read_bytes() == b"newer"
    assert (tmp_path / "out/x").read_bytes() == b"file"
    assert "x/y" not in res.entries


@rootonly
def test_whiteouts_become_overlay_whiteouts(tmp_path):
    res, _ = run(
        tmp_path,
        [
            D("etc"),
            WH("etc/gone"),
            D("var/cache"),
            OPQ("var/cache"),
            F("var/cache/kept", b"k"),
            WH("top"),
        ],
    )
    out = tmp_path / "out"
    for p in ("etc/gone", "top"):
        st = os.lstat(out / p)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert not any(n.startswith(".wh.") for _, _, files in os.walk(out) for n in files)
    assert os.getxattr(out / "var/cache", "trusted.overlay.opaque") == b"y"
    assert (out / "var/cache/kept").read_bytes() == b"k"
    assert res.entries["etc/gone"] == {"type": "whiteout"}
    assert res.opaque == ["var/cache"]


def _refused(tmp_path, members, match, **kw):
    # valid content first, so a half-unpacked layer would exist if cleanup failed
    prefix = [D("ok"), F("ok/file", b"data" * 100)]
    with pytest.raises(ImageError, match=match):
        run(tmp_path, prefix + members, **kw)
    assert not (tmp_path / "out").exists(), "a refused layer must leave nothing behind"


@pytest.mark.parametrize(
    "how",
    [
        "none",
        "gzip",
        pytest.param("zstd", marks=pytest.mark.skipif(not have_zstd(), reason="no zstd program")),
    ],
)
def test_refuses_dotdot(tmp_path, how):
    # a large file after the bad entry: a compressor process must not hang on it
    _refused(
        tmp_path,
        [F("../x", b"evil"), F("after", os.urandom(1 << 20))],
        r"'\.\.' component refused",
        how=how,
    )
    assert not (tmp_path / "x").exists()


def test_refuses_dotdot_in_the_middle(tmp_path):
    _refused(tmp_path, [F("ok/../../x", b"evil")], r"'\.\.' component refused")
    assert not (tmp_path / "x").exists()


def test_refuses_absolute(tmp_path):
    _refused(tmp_path, [F("/abs", b"evil")], "absolute path refused")


def test_refuses_write_through_symlink_dir(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    _refused(
        tmp_path,
        [L("esc", str(outside)), F("esc/pwned", b"evil")],
        "goes through the symlink 'esc'",
    )
    assert not (outside / "pwned").exists()


def test_refuses_write_through_inner_symlink_dir(tmp_path):
    # even a symlink pointing inside the layer is not followed while writing
    _refused(
        tmp_path, [D("real"), L("alias", "real"), F("alias/f", b"x")], "goes through the symlink"
    )


def test_refuses_symlink_replaced_file_trick(tmp_path):
    # a symlink named like an existing file, then a write to it: replaced, never followed
    outside = tmp_path / "victim"
    outside.write_bytes(b"intact")
    res, _ = run(tmp_path, [L("f", str(outside)), F("f", b"evil")])
    assert outside.read_bytes() == b"intact"
    assert (tmp_path / "out/f").read_bytes() == b"evil"


def test_refuses_hardlink_outside(tmp_path):
    _refused(tmp_path, [H("pw", "../../etc/passwd")], r"'\.\.' component refused")


def test_refuses_hardlink_absolute(tmp_path):
    _refused(tmp_path, [H("pw", "/etc/passwd")], "hardlink target '/etc/passwd' is absolute")


def test_refuses_hardlink_not_in_layer(tmp_path):
    _refused(tmp_path, [H("pw", "etc/passwd")], "is not in this layer")


def test_refuses_hardlink_through_symlink(tmp_path):
    _refused(tmp_path, [L("etc", "/etc"), H("pw", "etc/passwd")], "goes through the symlink 'etc'")


def test_refuses_escaping_relative_symlink(tmp_path):
    _refused(tmp_path, [L("ok/up", "../../../etc")], "escapes the layer")


@pytest.mark.parametrize("kind", ["char", "block"])
def test_refuses_device_nodes(tmp_path, kind):
    _refused(tmp_path, [DEV("dev/sda", kind, 8, 0)], f"{kind} device 8:0 refused")


@rootonly
def test_devices_allowed_when_asked(tmp_path):
    run(tmp_path, [DEV("null", "char", 1, 3)], allow_devices=True)
    assert os.lstat(tmp_path / "out/null").st_rdev == os.makedev(1, 3)


def test_refuses_garbage(tmp_path):
    with pytest.raises(ImageError, match="truncated or corrupt|not a valid tar"):
        unpack(
            io.BytesIO(compress(layer_tar([F("a", b"x" * 5000)]), "gzip")[:-30]), tmp_path / "out"
        )
    assert not (tmp_path / "out").exists()
