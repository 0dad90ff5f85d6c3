"""Reading OCI layouts: tag/digest selection, platform choice from (nested) indexes, archives."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyruntime.image import ImageError
from pyruntime.image.layout import (
    ArchiveSource,
    DirSource,
    Platform,
    host_platform,
    resolve,
)
from support.oci_builder import F, LayoutBuilder, write_archive

HOST = host_platform()
OTHER = "s390x" if HOST.architecture != "s390x" else "amd64"


def plat(arch, variant=None):
    p = {"os": "linux", "architecture": arch}
    if variant:
        p["variant"] = variant
    return p


@pytest.fixture
def multi(tmp_path):
    """A layout with a tagged multi-arch index (one level nested) and a plain tagged image."""
    b = LayoutBuilder(tmp_path / "lay")
    host_img = b.image([[F("which", b"host")]], arch=HOST.architecture)
    other_img = b.image([[F("which", b"other")]], arch=OTHER)
    arm_img = b.image([[F("which", b"armv6")]], arch="arm")
    inner = b.image_index(
        [(host_img.descriptor, plat(HOST.architecture)), (arm_img.descriptor, plat("arm", "v6"))]
    )
    outer = b.image_index([(other_img.descriptor, plat(OTHER)), (inner, None)])
    b.tag(outer, "multi")
    plain = b.image([[F("which", b"plain")]], arch=HOST.architecture)
    b.tag(plain.descriptor, "plain")
    b.tag(other_img.descriptor, "foreign-only")
    return b, host_img, other_img, plain


def test_host_platform_is_goarch():
    import platform

    if platform.machine() == "x86_64":
        assert HOST == Platform("linux", "amd64")
    assert HOST.os == "linux"


def test_tag_picks_manifest(multi):
    b, _, _, plain = multi
    img = resolve(DirSource(b.path), tag="plain")
    assert img.manifest_digest == plain.manifest_digest
    assert img.ref_name == "plain"
    assert img.diff_ids == [plain.layers[0].diff_id]


def test_index_picks_this_platform_through_nested_index(multi):
    b, host_img, other_img, _ = multi
    img = resolve(DirSource(b.path), tag="multi")
    assert img.manifest_digest == host_img.manifest_digest
    img = resolve(DirSource(b.path), tag="multi", plat=Platform("linux", OTHER))
    assert img.manifest_digest == other_img.manifest_digest


def test_no_image_for_platform(multi):
    b = multi[0]
    with pytest.raises(ImageError, match="no image for linux/riscv64"):
        resolve(DirSource(b.path), tag="multi", plat=Platform("linux", "riscv64"))


def test_digest_picks_manifest_even_untagged(multi):
    b, host_img, _, _ = multi
    img = resolve(DirSource(b.path), digest=host_img.manifest_digest)
    assert img.manifest_digest == host_img.manifest_digest


def test_unknown_tag_lists_tags(multi):
    with pytest.raises(
        ImageError, match=r"no image tagged 'nope' \(tags: foreign-only, multi, plain\)"
    ):
        resolve(DirSource(multi[0].path), tag="nope")


def test_ambiguous_without_tag(multi):
    with pytest.raises(ImageError, match="holds 3 images"):
        resolve(DirSource(multi[0].path))


def test_single_image_needs_no_tag(tmp_path):
    b = LayoutBuilder(tmp_path / "lay")
    img = b.image([[F("x", b"1")]])
    b.tag(img.descriptor, None)
    assert resolve(DirSource(b.path)).manifest_digest == img.manifest_digest


def test_corrupt_manifest_refused(multi):
    b, _, _, plain = multi
    blob = b.path / "blobs/sha256" / plain.manifest_digest.split(":")[1]
    blob.write_bytes(blob.read_bytes().replace(b"schemaVersion", b"schemaVersioN"))
    with pytest.raises(ImageError, match="does not match its digest"):
        resolve(DirSource(b.path), tag="plain")


def test_not_a_layout(tmp_path):
    with pytest.raises(ImageError, match="no index.json"):
        resolve(DirSource(tmp_path))


def test_archive(multi, tmp_path):
    b, host_img, _, _ = multi
    write_archive(b.path, tmp_path / "img.tar")
    with ArchiveSource(tmp_path / "img.tar") as src:
        img = resolve(src, tag="multi")
        assert img.manifest_digest == host_img.manifest_digest
        with src.open_blob(img.layers[0], "layer") as r:
            r.read()
            r.verify()
