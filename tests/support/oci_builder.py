"""Build OCI image layouts and oci-archives for tests, with nothing but the stdlib.

Layers are lists of members made with F/D/L/H/WH/OPQ/DEV/FIFO/RAW; ``LayoutBuilder``
writes blobs, configs, manifests, indexes and index.json like skopeo/umoci do.
Hostile members (``../x``, ``/abs``, ...) are written verbatim: tarfile does not
sanitize names on write.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MTIME = 1_700_000_000
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

Member = tuple[tarfile.TarInfo, "bytes | None"]


def _info(path: str, type_: bytes, mode: int, uid: int = 0, gid: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(path)
    ti.type = type_
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.mtime = MTIME
    return ti


def F(path: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0) -> Member:
    ti = _info(path, tarfile.REGTYPE, mode, uid, gid)
    ti.size = len(data)
    return ti, data


def D(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Member:
    return _info(path, tarfile.DIRTYPE, mode, uid, gid), None


def L(path: str, target: str) -> Member:
    ti = _info(path, tarfile.SYMTYPE, 0o777)
    ti.linkname = target
    return ti, None


def H(path: str, target: str) -> Member:
    ti = _info(path, tarfile.LNKTYPE, 0o644)
    ti.linkname = target
    return ti, None


def WH(path: str) -> Member:
    """An OCI whiteout hiding ``path`` of the layers below."""
    d, _, name = path.rpartition("/")
    return F(f"{d}/.wh.{name}" if d else f".wh.{name}")


def OPQ(dirpath: str) -> Member:
    """Mark ``dirpath`` opaque: lower layers' content below it disappears."""
    return F(f"{dirpath}/.wh..wh..opq" if dirpath else ".wh..wh..opq")


def DEV(path: str, kind: str = "char", major: int = 1, minor: int = 3) -> Member:
    ti = _info(path, tarfile.CHRTYPE if kind == "char" else tarfile.BLKTYPE, 0o666)
    ti.devmajor, ti.devminor = major, minor
    return ti, None


def FIFO(path: str) -> Member:
    return _info(path, tarfile.FIFOTYPE, 0o644), None


def layer_tar(members: list[Member]) -> bytes:
    """The uncompressed tar of a layer (PAX format, members in the given order)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def have_zstd() -> bool:
    """False lets a zstd test skip on a developer's machine; CI installs zstd (make setup),
    so there a missing zstd is a failure, not a skip."""
    if shutil.which("zstd") is not None:
        return True
    if os.environ.get("CI") == "true":
        raise RuntimeError("zstd is missing under CI: make setup installs it")
    return False


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        return subprocess.run(
            ["zstd", "-q", "-c", "-3"], input=data, stdout=subprocess.PIPE, check=True
        ).stdout
    if how == "none":
        return data
    raise ValueError(how)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def busybox_layer(extra: list[Member] | None = None) -> list[Member]:
    """A base layer: /bin/busybox with a few applet symlinks, /etc/passwd and /etc/group."""
    with open("/bin/busybox", "rb") as f:
        bb = f.read()
    members = [D("bin"), F("bin/busybox", bb, 0o755), D("etc"), D("tmp", 0o1777)]
    for applet in ("sh", "ls", "cat", "echo", "id", "stat", "true", "pwd", "env"):
        members.append(L(f"bin/{applet}", "busybox"))
    members.append(
        F(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\n"
            b"app:x:1000:1000:app:/home/app:/bin/sh\n"
            b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
    )
    members.append(
        F(
            "etc/group",
            b"root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:app,root\nnogroup:x:65534:\n",
        )
    )
    return members + (extra or [])


@dataclass
class BuiltLayer:
    tar: bytes
    blob: bytes
    diff_id: str
    digest: str
    compression: str


@dataclass
class BuiltImage:
    manifest_digest: str
    config_digest: str
    layers: list[BuiltLayer] = field(default_factory=list)
    descriptor: dict[str, Any] = field(default_factory=dict)


class LayoutBuilder:
    """Writes an OCI image layout directory (oci-layout, index.json, blobs/sha256/)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.index: list[dict[str, Any]] = []

    def blob(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = sha256(data)
        (self.path / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def json_blob(self, doc: dict[str, Any], media_type: str) -> dict[str, Any]:
        return self.blob(json.dumps(doc, sort_keys=True).encode(), media_type)

    def image(
        self,
        layers: list[list[Member] | tuple[list[Member], str]],
        config: dict[str, Any] | None = None,
        arch: str = "amd64",
        history: list[str] | None = None,
    ) -> BuiltImage:
        """Write layers, config and manifest blobs; return what was written (not indexed)."""
        built: list[BuiltLayer] = []
        descs = []
        for spec in layers:
            members, how = spec if isinstance(spec, tuple) else (spec, "gzip")
            tar = layer_tar(members)
            blob = compress(tar, how)
            mt = MT_LAYER + {"gzip": "+gzip", "zstd": "+zstd", "none": ""}[how]
            desc = self.blob(blob, mt)
            descs.append(desc)
            built.append(BuiltLayer(tar, blob, sha256(tar), desc["digest"], how))
        cfg = {
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch,
            "os": "linux",
            "config": config if config is not None else {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in built]},
            "history": [
                {"created_by": h} for h in (history or [f"layer {i}" for i in range(len(built))])
            ],
        }
        cdesc = self.json_blob(cfg, MT_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cdesc, "layers": descs}
        mdesc = self.json_blob(manifest, MT_MANIFEST)
        return BuiltImage(mdesc["digest"], cdesc["digest"], built, mdesc)

    def image_index(
        self, entries: list[tuple[dict[str, Any], dict[str, Any] | None]]
    ) -> dict[str, Any]:
        """An image index blob over (descriptor, platform or None) pairs."""
        manifests = []
        for desc, plat in entries:
            d = dict(desc)
            if plat:
                d["platform"] = plat
            manifests.append(d)
        return self.json_blob(
            {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}, MT_INDEX
        )

    def tag(self, desc: dict[str, Any], name: str | None) -> None:
        d = dict(desc)
        if name:
            d["annotations"] = {REF_NAME: name}
        self.index.append(d)
        self.write_index()

    def write_index(self) -> None:
        doc = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": self.index}
        (self.path / "index.json").write_text(json.dumps(doc))


def write_archive(layout: str | os.PathLike[str], archive: str | os.PathLike[str]) -> None:
    """An oci-archive: the layout directory's content as a plain tar, as skopeo writes it."""
    layout = Path(layout)
    with tarfile.open(archive, "w") as tf:
        for p in sorted(layout.rglob("*")):
            tf.add(p, arcname=str(p.relative_to(layout)), recursive=False)


BIG = 3 * 1024 * 1024 + 17


def sample_layers() -> list[list[Member]]:
    """A 3-layer image exercising deletes, opaque dirs, hardlinks, symlinks, overwrites.

    layer 0: busybox base, /data/big (BIG bytes), /data/keep, /etc/conf v1, /opq/{a,sub/b},
             /hl/orig + hardlink /hl/link, /hl2/orig + hardlink /hl2/link, /lnk -> etc/conf
    layer 1: deletes /data/big, /etc/conf v2, /opq opaque + /opq/new, deletes /hl/orig (its
             hardlink stays) and both /hl2 names, adds /tmpfile
    layer 2: deletes /tmpfile, /etc/conf v3, deletes the dir /gone
    """
    base = busybox_layer(
        [
            D("data"),
            F("data/big", b"B" * BIG),
            F("data/keep", b"k" * 1000),
            F("etc/conf", b"1" * 100),
            D("opq"),
            F("opq/a", b"a" * 500),
            D("opq/sub"),
            F("opq/sub/b", b"b" * 700),
            D("hl"),
            F("hl/orig", b"h" * 400),
            H("hl/link", "hl/orig"),
            D("hl2"),
            F("hl2/orig", b"i" * 300),
            H("hl2/link", "hl2/orig"),
            L("lnk", "etc/conf"),
            D("gone"),
            F("gone/x", b"x" * 10),
            F("gone/y", b"y" * 20),
        ]
    )
    layer1 = [
        WH("data/big"),
        D("etc"),
        F("etc/conf", b"2" * 150),
        D("opq"),
        OPQ("opq"),
        F("opq/new", b"n" * 50),
        WH("hl/orig"),
        WH("hl2/orig"),
        WH("hl2/link"),
        F("tmpfile", b"t" * 2000),
    ]
    layer2 = [WH("tmpfile"), D("etc"), F("etc/conf", b"3" * 200), WH("gone")]
    return [base, layer1, layer2]
