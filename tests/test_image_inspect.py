"""Layer waste: inspect's numbers against a byte count done independently here."""

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyruntime.image import commands
from pyruntime.image.inspect import analyze
from support.oci_builder import (
    BIG,
    WH,
    F,
    H,
    LayoutBuilder,
    busybox_layer,
    sample_layers,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (whiteouts)"),
]

BUSYBOX = os.path.getsize("/bin/busybox")


@pytest.fixture
def loaded(tmp_path):
    b = LayoutBuilder(tmp_path / "lay")
    img = b.image(sample_layers())
    b.tag(img.descriptor, "sample")
    root = tmp_path / "rt"
    commands.load(root, f"oci:{b.path}:sample")
    return root, img


def test_waste_matches_independent_count(loaded):
    root, _ = loaded
    report = commands.inspect(root, "sample")
    # Independent count, from what sample_layers() put in each layer:
    passwd = len(
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
        b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    group = len(b"root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:app,root\nnogroup:x:65534:\n")
    size0 = BUSYBOX + passwd + group + BIG + 1000 + 100 + 500 + 700 + 400 + 300 + 10 + 20
    size1 = 150 + 50 + 2000
    size2 = 200
    # layer 0 loses: /data/big (deleted), /etc/conf v1 (overwritten), /opq/a and /opq/sub/b
    # (opaque dir), /hl2 inode (both names deleted), /gone/{x,y} (dir deleted); /hl/orig is
    # deleted but its hardlink /hl/link still shows the same 400 bytes: not waste.
    waste0 = BIG + 100 + 500 + 700 + 300 + 10 + 20
    # layer 1 loses /etc/conf v2 (overwritten) and /tmpfile (deleted)
    waste1 = 150 + 2000
    assert [lay["size"] for lay in report["layers"]] == [size0, size1, size2]
    assert [lay["wasted_bytes"] for lay in report["layers"]] == [waste0, waste1, 0]
    total = size0 + size1 + size2
    assert report["total_bytes"] == total
    assert report["wasted_bytes"] == waste0 + waste1
    assert report["efficiency"] == pytest.approx((total - waste0 - waste1) / total)
    top = report["wasted_files"][0]
    assert top == {"path": "/data/big", "layer": 0, "bytes": BIG, "reason": "deleted"}
    json.dumps(report)  # the --format json output is plain JSON


def test_added_changed_removed(loaded):
    root, _ = loaded
    layers = commands.inspect(root, "sample")["layers"]
    # layer 1: adds opq/new and tmpfile; changes etc/conf; removes data/big, opq/a,
    # opq/sub, opq/sub/b, hl/orig, hl2/orig, hl2/link
    assert (layers[1]["files_added"], layers[1]["files_changed"], layers[1]["files_removed"]) == (
        2,
        1,
        7,
    )
    # layer 2: changes etc/conf; removes tmpfile and gone/, gone/x, gone/y
    assert (layers[2]["files_added"], layers[2]["files_changed"], layers[2]["files_removed"]) == (
        0,
        1,
        4,
    )
    assert layers[0]["files_removed"] == 0 and layers[0]["files_changed"] == 0
    assert all(lay["compression"] == "gzip" and lay["compressed_size"] > 0 for lay in layers)
    assert [lay["created_by"] for lay in layers] == ["layer 0", "layer 1", "layer 2"]


def test_format_text(loaded):
    root, _ = loaded
    text = commands.format_inspect(commands.inspect(root, "sample"))
    assert "Wasted bytes" in text and "/data/big" in text and "Efficiency" in text


def test_efficient_image(tmp_path):
    b = LayoutBuilder(tmp_path / "lay")
    img = b.image([busybox_layer(), [F("extra", b"e" * 10)]])
    b.tag(img.descriptor, "lean")
    commands.load(tmp_path / "rt", f"oci:{b.path}:lean")
    r = commands.inspect(tmp_path / "rt", "lean")
    assert r["wasted_bytes"] == 0 and r["efficiency"] == 1.0


def test_file_replaced_twice_in_one_tar_and_hardlink_survivor():
    """analyze() on hand-made metas: an inode replaced within its own layer is waste too."""
    metas = [
        # group 0: a file replaced later in the same tar (no path left); b: a hardlink of a
        {
            "entries": {
                "a": {"type": "file", "group": "1"},
                "b": {"type": "hardlink", "group": "1"},
                "c": {"type": "file", "group": "2"},
            },
            "groups": {"0": 64, "1": 32, "2": 16},
        },
        {"entries": {"a": {"type": "whiteout"}, "c": {"type": "whiteout"}}, "groups": {}},
    ]
    r = analyze(metas)
    assert r["layers"][0]["wasted_bytes"] == 64 + 16
    assert r["layers"][0]["size"] == 112
    assert {w["reason"] for w in r["wasted_files"]} == {"replaced in the same layer", "deleted"}


def test_hardlink_layers_roundtrip(tmp_path):
    """Deleting every name of a hardlinked inode wastes it once, not per name."""
    b = LayoutBuilder(tmp_path / "lay")
    img = b.image([[F("f", b"z" * 999), H("g", "f"), H("h", "f")], [WH("f"), WH("g"), WH("h")]])
    b.tag(img.descriptor, "hl")
    commands.load(tmp_path / "rt", f"oci:{b.path}:hl")
    r = commands.inspect(tmp_path / "rt", "hl")
    assert r["total_bytes"] == 999 and r["wasted_bytes"] == 999 and r["efficiency"] == 0.0
