"""The layer store: load verifies and unpacks once, refuses corrupt/hostile images whole, prunes."""

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyruntime.image import ImageError, commands
from pyruntime.image.store import Store
from support.oci_builder import (
    DEV,
    F,
    LayoutBuilder,
    busybox_layer,
    have_zstd,
    sample_layers,
    write_archive,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (whiteouts)"),
]


def layer_dirs(root):
    d = Path(root) / "layers/sha256"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def tmp_leftovers(root):
    d = Path(root) / "tmp"
    return list(d.iterdir()) if d.exists() else []


@pytest.fixture
def layout(tmp_path):
    b = LayoutBuilder(tmp_path / "lay")
    img = b.image(sample_layers(), config={"Cmd": ["/bin/sh"]})
    b.tag(img.descriptor, "sample")
    return b, img


def test_load_unpacks_each_layer_once(tmp_path, layout):
    b, img = layout
    root = tmp_path / "rt"
    store = Store(root)
    res = store.load(f"oci:{b.path}:sample")
    assert res.name == "sample"
    assert res.unpacked == [lay.diff_id for lay in img.layers]
    assert layer_dirs(root) == sorted(lay.diff_id.split(":")[1] for lay in img.layers)
    assert (store.layer_diff(img.layers[0].diff_id) / "bin/busybox").read_bytes() == Path(
        "/bin/busybox"
    ).read_bytes()
    rec = store.get("sample")
    assert rec["manifest_digest"] == img.manifest_digest
    assert rec["layers"] == [lay.diff_id for lay in img.layers]
    meta = store.layer_meta(img.layers[1].diff_id)
    assert meta["blob_digest"] == img.layers[1].digest and meta["compression"] == "gzip"

    # a second load (same image, another name) unpacks nothing; the layer dirs are untouched
    inode = os.stat(store.layer_diff(img.layers[0].diff_id) / "bin/busybox").st_ino
    again = store.load(f"oci:{b.path}:sample", name="copy")
    assert again.unpacked == []
    assert os.stat(store.layer_diff(img.layers[0].diff_id) / "bin/busybox").st_ino == inode
    assert [r["name"] for r in commands.ls(root)] == ["copy", "sample"]
    assert not tmp_leftovers(root)


def test_load_from_oci_archive(tmp_path, layout):
    b, img = layout
    write_archive(b.path, tmp_path / "img.tar")
    name = commands.load(tmp_path / "rt", f"oci-archive:{tmp_path / 'img.tar'}:sample")
    assert name == "sample"
    assert len(layer_dirs(tmp_path / "rt")) == 3


def test_shared_base_layer_not_unpacked_again(tmp_path):
    b = LayoutBuilder(tmp_path / "lay")
    one = b.image([busybox_layer(), [F("one", b"1")]])
    two = b.image([busybox_layer(), [F("two", b"2")]])
    b.tag(one.descriptor, "one")
    b.tag(two.descriptor, "two")
    store = Store(tmp_path / "rt")
    assert len(store.load(f"oci:{b.path}:one").unpacked) == 2
    assert store.load(f"oci:{b.path}:two").unpacked == [two.layers[1].diff_id]


@pytest.mark.skipif(not have_zstd(), reason="no zstd program")
def test_zstd_and_plain_layers(tmp_path):
    b = LayoutBuilder(tmp_path / "lay")
    img = b.image([(busybox_layer(), "zstd"), ([F("plain", b"p" * 100)], "none")])
    b.tag(img.descriptor, "z")
    store = Store(tmp_path / "rt")
    store.load(f"oci:{b.path}:z")
    assert store.layer_meta(img.layers[0].diff_id)["compression"] == "zstd"
    assert (store.layer_diff(img.layers[1].diff_id) / "plain").read_bytes() == b"p" * 100


def test_corrupt_layer_blob_refused_and_nothing_left(tmp_path, layout):
    b, img = layout
    blob = b.path / "blobs/sha256" / img.layers[2].digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    root = tmp_path / "rt"
    with pytest.raises(ImageError, match=f"{img.layers[2].digest}|corrupt|not a valid tar"):
        Store(root).load(f"oci:{b.path}:sample")
    # layers before the bad one are whole and verified; the bad one left nothing
    assert img.layers[2].diff_id.split(":")[1] not in layer_dirs(root)
    assert not tmp_leftovers(root)
    assert commands.ls(root) == []


def test_blob_with_valid_tar_but_wrong_digest(tmp_path):
    """Swap a layer blob for another valid gzip tar: only the digest check can catch it."""
    b = LayoutBuilder(tmp_path / "lay")
    img = b.image([[F("a", b"genuine")]])
    b.tag(img.descriptor, "t")
    other = b.image([[F("a", b"forged!")]])
    src = b.path / "blobs/sha256" / other.layers[0].digest.split(":")[1]
    dst = b.path / "blobs/sha256" / img.layers[0].digest.split(":")[1]
    dst.write_bytes(src.read_bytes())
    root = tmp_path / "rt"
    with pytest.raises(ImageError, match="does not match its digest|descriptor says"):
        Store(root).load(f"oci:{b.path}:t")
    assert layer_dirs(root) == [] and not tmp_leftovers(root)


def test_diff_id_mismatch_refused(tmp_path):
    b = LayoutBuilder(tmp_path / "lay")
    img = b.image([[F("a", b"1")]])
    # rewrite the config with a wrong diff_id, and the manifest to match the new config
    mblob = b.path / "blobs/sha256" / img.manifest_digest.split(":")[1]
    manifest = json.loads(mblob.read_bytes())
    cfg = json.loads(
        (b.path / "blobs/sha256" / manifest["config"]["digest"].split(":")[1]).read_bytes()
    )
    cfg["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    manifest["config"] = b.json_blob(cfg, manifest["config"]["mediaType"])
    b.tag(b.json_blob(manifest, manifest["mediaType"]), "bad")
    root = tmp_path / "rt"
    with pytest.raises(ImageError, match="the image config says sha256:0000"):
        Store(root).load(f"oci:{b.path}:bad")
    assert layer_dirs(root) == [] and not tmp_leftovers(root)


def test_hostile_layer_refused_and_nothing_left(tmp_path):
    b = LayoutBuilder(tmp_path / "lay")
    img = b.image([busybox_layer(), [F("fine", b"x" * 4096), DEV("dev/mem", "char", 1, 1)]])
    b.tag(img.descriptor, "evil")
    root = tmp_path / "rt"
    with pytest.raises(ImageError, match="char device 1:1 refused"):
        commands.load(root, f"oci:{b.path}:evil")
    assert layer_dirs(root) == [img.layers[0].diff_id.split(":")[1]]
    assert not tmp_leftovers(root)
    assert commands.ls(root) == []


def test_prune_removes_only_unreferenced_layers(tmp_path):
    b = LayoutBuilder(tmp_path / "lay")
    one = b.image([busybox_layer(), [F("one", b"1")]])
    two = b.image([busybox_layer(), [F("two", b"2")]])
    b.tag(one.descriptor, "one")
    b.tag(two.descriptor, "two")
    root = tmp_path / "rt"
    commands.load(root, f"oci:{b.path}:one")
    commands.load(root, f"oci:{b.path}:two")
    assert commands.prune(root) == []
    commands.remove(root, "one")
    assert commands.prune(root) == [one.layers[1].diff_id]
    assert sorted(layer_dirs(root)) == sorted(lay.diff_id.split(":")[1] for lay in two.layers)
    # a bundle keeps its layers alive after its image is removed, until the bundle goes
    commands.bundle(root, "two", tmp_path / "bundle")
    commands.remove(root, "two")
    assert commands.prune(root) == []
    commands.delete_bundle(tmp_path / "bundle", remove_dir=True)
    assert sorted(commands.prune(root)) == sorted(lay.diff_id for lay in two.layers)
    assert layer_dirs(root) == []


def test_unknown_image(tmp_path):
    with pytest.raises(ImageError, match="no image named 'nope'"):
        commands.inspect(tmp_path / "rt", "nope")
