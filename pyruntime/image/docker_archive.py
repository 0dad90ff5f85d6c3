"""Read a docker-archive: what `docker save` (and `skopeo copy ... docker-archive:`) writes.

The archive holds ``manifest.json`` (a list of ``{"Config", "RepoTags", "Layers"}``),
the config JSON file, and one uncompressed (rarely gzip) tar per layer; member names
vary by writer (``<id>/layer.tar``, ``<hex>.tar``, ``blobs/sha256/<hex>``), and some
are symlinks to others inside the archive.  It is read in place, never extracted.

There is no manifest to verify against, so, as with an OCI layout's index.json, the
archive is the root of trust: each layer's digest is computed from its bytes (and
checked again as it is copied into the store), the config's from its bytes (checked
against its file name when that name is a digest), and the layers' content against the
config's diff_ids as they are unpacked.  An OCI manifest is made for the image so that
the store (and `image push`) treat it like any other.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from typing import Any, BinaryIO

from pyruntime.image import ImageError
from pyruntime.image.layout import (
    MAX_JSON,
    MT_OCI_MANIFEST,
    ArchiveSource,
    ResolvedImage,
    VerifyingReader,
    sha256_hex,
)

MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"


def familiar(name: str) -> str:
    """``docker.io/library/busybox:1`` -> ``busybox:1``, as docker shows names."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


class DockerArchiveSource(ArchiveSource):
    """A docker-archive tar; blobs are found by the digests computed from its members."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.name = f"docker-archive:{path}"
        self.raw = {}
        self._links: dict[str, tarfile.TarInfo] = {}
        for m in self._tar.getmembers():
            if m.issym():
                self._links[m.name.removeprefix("./")] = m
        self._by_digest: dict[str, str] = {}

    def member(self, relpath: str) -> str:
        """The regular member ``relpath`` names, following symlinks inside the archive."""
        path = posixpath.normpath(relpath.removeprefix("./"))
        for _ in range(16):
            if path in self._members:
                return path
            link = self._links.get(path)
            if link is None:
                break
            target = posixpath.normpath(posixpath.join(posixpath.dirname(path), link.linkname))
            if target.startswith("../") or target.startswith("/") or target == "..":
                raise ImageError(f"{self.name}: {relpath} points outside the archive")
            path = target
        raise ImageError(f"{self.name}: no file {relpath!r} in the archive")

    def read_small(self, relpath: str, what: str) -> bytes:
        m = self._members[self.member(relpath)]
        if m.size > MAX_JSON:
            raise ImageError(f"{self.name}: {what} {relpath} is too large")
        with self.open(self.member(relpath)) as f:
            return f.read()

    def digest_of(self, relpath: str) -> tuple[str, int, bool]:
        """(sha256 digest, size, gzip?) of a member, read once."""
        h = hashlib.sha256()
        size = 0
        head = b""
        with self.open(self.member(relpath)) as f:
            while chunk := f.read(1 << 20):
                if not head:
                    head = chunk[:2]
                h.update(chunk)
                size += len(chunk)
        digest = "sha256:" + h.hexdigest()
        self._by_digest[digest] = self.member(relpath)
        return digest, size, head == b"\x1f\x8b"

    def open_blob(self, desc: dict[str, Any], what: str = "blob") -> VerifyingReader:
        digest = desc.get("digest", "")
        sha256_hex(digest)
        rel = self._by_digest.get(digest)
        if rel is None:
            raise ImageError(f"{self.name}: {what} {digest} is not in the archive")
        raw: BinaryIO = self.open(rel)
        return VerifyingReader(raw, digest, desc.get("size"), what)


def _parse(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise ImageError(f"{what}: not valid JSON: {e}") from e


def resolve_docker_archive(src: DockerArchiveSource, tag: str | None) -> ResolvedImage:
    """The image ``tag`` (NAME:TAG among the RepoTags) names, or the only one."""
    entries = _parse(src.read_small("manifest.json", "manifest.json"), f"{src.name}: manifest.json")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ImageError(f"{src.name}: manifest.json: expected a list of objects")
    if tag:
        chosen = [e for e in entries
                  if familiar(tag) in {familiar(str(t)) for t in e.get("RepoTags") or ()}]
        if not chosen:
            tags = sorted({familiar(str(t)) for e in entries for t in e.get("RepoTags") or ()})
            raise ImageError(f"{src.name}: no image tagged {tag!r}"
                             + (f" (tags: {', '.join(tags)})" if tags else " (it has no tags)"))
    else:
        chosen = entries
        if len(chosen) != 1:
            raise ImageError(f"{src.name}: the archive holds {len(chosen)} images; "
                             "name one with :NAME:TAG")
    entry = chosen[0]
    config_path, layer_paths = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_path, str) or not isinstance(layer_paths, list):
        raise ImageError(f"{src.name}: manifest.json: an entry lacks Config or Layers")

    config_raw = src.read_small(config_path, "config")
    config_digest = "sha256:" + hashlib.sha256(config_raw).hexdigest()
    stem = posixpath.basename(config_path).removesuffix(".json")
    if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem) \
            and stem != sha256_hex(config_digest):
        raise ImageError(f"{src.name}: config {config_path}: content does not match its "
                         f"name (got {config_digest})")
    config = _parse(config_raw, f"{src.name}: config {config_path}")
    if not isinstance(config, dict):
        raise ImageError(f"{src.name}: config {config_path}: expected a JSON object")
    diff_ids = ((config.get("rootfs") or {}).get("diff_ids")) or []
    if len(diff_ids) != len(layer_paths):
        raise ImageError(f"{src.name}: config lists {len(diff_ids)} diff_ids "
                         f"for {len(layer_paths)} layers")
    for d in diff_ids:
        sha256_hex(d)

    layers = []
    for rel in layer_paths:
        if not isinstance(rel, str):
            raise ImageError(f"{src.name}: manifest.json: bad layer path {rel!r}")
        digest, size, gz = src.digest_of(rel)
        layers.append({"mediaType": MT_LAYER + ("+gzip" if gz else ""),
                       "digest": digest, "size": size})
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": config_digest, "size": len(config_raw)},
        "layers": layers,
    }
    manifest_raw = json.dumps(manifest, separators=(",", ":")).encode()
    tags = [familiar(str(t)) for t in entry.get("RepoTags") or ()]
    return ResolvedImage(
        manifest_digest="sha256:" + hashlib.sha256(manifest_raw).hexdigest(),
        manifest=manifest,
        config_digest=config_digest,
        config=config,
        layers=layers,
        ref_name=familiar(tag) if tag else (tags[0] if tags else None),
        diff_ids=list(diff_ids),
        manifest_raw=manifest_raw,
        config_raw=config_raw,
        manifest_media_type=MT_OCI_MANIFEST,
    )
