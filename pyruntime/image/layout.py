"""Read OCI image layouts: a directory or an oci-archive tar of one.

Why here: the store must never trust what it reads.  Every blob is read through a
reader that checks its sha256 (and size) against the descriptor that named it, so a
corrupt or tampered layout is refused before anything it said is used.

An oci-archive is read in place (``tarfile`` member access), never extracted, so a
hostile archive cannot write anywhere.  Selection: a tag picks the index.json entry
whose ``org.opencontainers.image.ref.name`` annotation equals it; a digest picks that
manifest (or index) directly; an image index (nested ones too) is narrowed to the
manifest for this platform (linux/GOARCH of this machine).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform as _platform
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from pyruntime.image import ImageError
from pyruntime.image.reference import ImageRef, is_digest

REF_NAME = "org.opencontainers.image.ref.name"

MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)
MANIFEST_TYPES = (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST)

#: the largest JSON document (index, manifest, config) we agree to read into memory
MAX_JSON = 16 << 20

_GOARCH = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", None),
    "i686": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}


@dataclass(frozen=True)
class Platform:
    """An OCI platform; ``variant`` None matches any variant."""

    os: str
    architecture: str
    variant: str | None = None

    def matches(self, p: dict[str, Any]) -> bool:
        if p.get("os") != self.os or p.get("architecture") != self.architecture:
            return False
        v = p.get("variant")
        if self.variant and v and v != self.variant:
            # arm64 images often say v8; treat a missing or equal variant as fine
            return False
        return True


def host_platform() -> Platform:
    """This machine's platform in Go's naming, as image indexes use it."""
    machine = _platform.machine().lower()
    arch, variant = _GOARCH.get(machine, (machine, None))
    return Platform("linux", arch, variant)


def sha256_hex(digest: str) -> str:
    """The hex part of a sha256 digest; anything else is refused."""
    if not is_digest(digest):
        raise ImageError(f"unsupported or malformed digest {digest!r} (only sha256 is supported)")
    return digest.split(":", 1)[1]


class VerifyingReader(io.RawIOBase):
    """Wraps a blob stream; hashes what is read and checks digest and size at EOF.

    ``verify()`` must be called (it drains the rest) before the content is trusted.
    """

    def __init__(self, raw: IO[bytes], digest: str, size: int | None, what: str) -> None:
        super().__init__()
        self._raw = raw
        self._hex = sha256_hex(digest)
        self._digest = digest
        self._size = size
        self._what = what
        self._h = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._raw.readinto(b) if hasattr(self._raw, "readinto") else None
        if n is None:
            data = self._raw.read(len(b))
            n = len(data)
            b[:n] = data
        if n:
            self._h.update(memoryview(b)[:n])
            self.count += n
            if self._size is not None and self.count > self._size:
                raise ImageError(
                    f"{self._what} {self._digest}: larger than the {self._size} bytes "
                    "its descriptor says"
                )
        return n

    def verify(self) -> None:
        """Drain what is left, then raise ImageError unless size and digest match."""
        while self.read(1 << 20):
            pass
        if self._size is not None and self.count != self._size:
            raise ImageError(
                f"{self._what} {self._digest}: {self.count} bytes, descriptor says {self._size}"
            )
        got = self._h.hexdigest()
        if got != self._hex:
            raise ImageError(
                f"{self._what} {self._digest}: content does not match its digest (got sha256:{got})"
            )

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class Source:
    """Where a layout's files come from; subclasses: a directory, an oci-archive, a
    docker-archive (docker_archive.py), a registry (registry.py)."""

    name: str
    #: the bytes of each JSON blob read (manifests and configs are stored as they came)
    raw: dict[str, bytes]

    def open(self, relpath: str) -> BinaryIO:  # pragma: no cover - interface
        raise NotImplementedError

    def exists(self, relpath: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open_blob(self, desc: dict[str, Any], what: str = "blob") -> VerifyingReader:
        """Open the blob a descriptor names, through a digest/size-checking reader."""
        digest = desc.get("digest", "")
        hexd = sha256_hex(digest)
        rel = f"blobs/sha256/{hexd}"
        if not self.exists(rel):
            raise ImageError(f"{self.name}: {what} {digest} is missing (no {rel})")
        size = desc.get("size")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise ImageError(f"{self.name}: {what} {digest}: bad size {size!r}")
        return VerifyingReader(self.open(rel), digest, size, what)

    def read_json_blob(self, desc: dict[str, Any], what: str) -> dict[str, Any]:
        """Read, verify and parse a JSON blob (manifest, index, config)."""
        size = desc.get("size", 0)
        if isinstance(size, int) and size > MAX_JSON:
            raise ImageError(f"{self.name}: {what} {desc.get('digest')} is too large")
        with self.open_blob(desc, what) as r:
            data = r.read(MAX_JSON + 1)
            r.verify()
        doc = _parse_json(data, f"{what} {desc.get('digest')}")
        if not hasattr(self, "raw"):
            self.raw = {}
        self.raw[desc["digest"]] = data
        return doc

    def read_index(self) -> dict[str, Any]:
        """Read index.json (it has no digest to verify: it is the root of trust)."""
        if not self.exists("index.json"):
            raise ImageError(f"{self.name}: not an OCI image layout (no index.json)")
        if self.exists("oci-layout"):
            with self.open("oci-layout") as f:
                lay = _parse_json(f.read(MAX_JSON), "oci-layout")
            if not str(lay.get("imageLayoutVersion", "")).startswith("1."):
                raise ImageError(
                    f"{self.name}: unsupported imageLayoutVersion {lay.get('imageLayoutVersion')!r}"
                )
        with self.open("index.json") as f:
            return _parse_json(f.read(MAX_JSON + 1), "index.json")


class DirSource(Source):
    """An OCI image layout directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path)
        self.name = f"oci:{path}"
        if not self.root.is_dir():
            raise ImageError(f"{self.name}: no such directory")

    def _path(self, relpath: str) -> Path:
        return self.root / relpath

    def exists(self, relpath: str) -> bool:
        p = self._path(relpath)
        # a layout whose blobs are symlinks is fine (digests are checked anyway)
        return p.is_file()

    def open(self, relpath: str) -> BinaryIO:
        return open(self._path(relpath), "rb")


class ArchiveSource(Source):
    """An oci-archive: a (possibly compressed) tar of a layout, read without extracting."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = f"oci-archive:{path}"
        try:
            self._tar = tarfile.open(path, "r:*")
        except (OSError, tarfile.TarError) as e:
            raise ImageError(f"{self.name}: cannot open archive: {e}") from e
        self._members: dict[str, tarfile.TarInfo] = {}
        for m in self._tar.getmembers():
            name = m.name
            while name.startswith("./"):
                name = name[2:]
            if m.isfile():
                self._members[name] = m

    def exists(self, relpath: str) -> bool:
        return relpath in self._members

    def open(self, relpath: str) -> BinaryIO:
        f = self._tar.extractfile(self._members[relpath])
        assert f is not None
        return f  # type: ignore[return-value]

    def close(self) -> None:
        self._tar.close()


def open_source(ref: ImageRef) -> Source:
    """The Source for a parsed reference's transport."""
    if ref.transport == "oci":
        return DirSource(ref.path)
    if ref.transport == "oci-archive":
        return ArchiveSource(ref.path)
    if ref.transport == "docker-archive":
        from pyruntime.image.docker_archive import DockerArchiveSource

        return DockerArchiveSource(ref.path)
    raise ImageError(f"unsupported transport {ref.transport!r}")


class NoPlatformMatch(ImageError):
    """An index has no manifest for the wanted platform (other errors are not this)."""


@dataclass
class ResolvedImage:
    """A manifest picked from a layout, with its config, all verified."""

    manifest_digest: str
    manifest: dict[str, Any]
    config_digest: str
    config: dict[str, Any]
    layers: list[dict[str, Any]]
    ref_name: str | None = None
    diff_ids: list[str] = field(default_factory=list)
    manifest_raw: bytes = b""
    config_raw: bytes = b""
    manifest_media_type: str | None = None


def _parse_json(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_JSON:
        raise ImageError(f"{what}: larger than {MAX_JSON} bytes")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ImageError(f"{what}: not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ImageError(f"{what}: expected a JSON object")
    return doc


def _kind(desc: dict[str, Any], doc: dict[str, Any] | None = None) -> str:
    mt = desc.get("mediaType") or (doc or {}).get("mediaType")
    if mt in INDEX_TYPES:
        return "index"
    if mt in MANIFEST_TYPES:
        return "manifest"
    if doc is not None:
        if "manifests" in doc:
            return "index"
        if "layers" in doc:
            return "manifest"
    raise ImageError(f"descriptor {desc.get('digest')}: unsupported media type {mt!r}")


def _select_platform(
    src: Source, index: dict[str, Any], plat: Platform, where: str, depth: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """From an index, the (descriptor, manifest) for ``plat``; nested indexes are followed."""
    if depth > 8:
        raise ImageError(f"{src.name}: image indexes nested too deep")
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise ImageError(f"{src.name}: {where} has no manifests list")
    exact = [
        d
        for d in manifests
        if isinstance(d, dict) and d.get("platform") and plat.matches(d["platform"])
    ]
    loose = [d for d in manifests if isinstance(d, dict) and not d.get("platform")]
    for desc in exact + loose:
        doc = src.read_json_blob(desc, "manifest")
        kind = _kind(desc, doc)
        if kind == "manifest":
            if desc in loose and len(exact + loose) > 1:
                # no platform on the descriptor: take it only if its config agrees
                cfg = src.read_json_blob(doc.get("config", {}), "config")
                if not plat.matches(
                    {
                        "os": cfg.get("os"),
                        "architecture": cfg.get("architecture"),
                        "variant": cfg.get("variant"),
                    }
                ):
                    continue
            return desc, doc
        try:
            return _select_platform(src, doc, plat, f"index {desc.get('digest')}", depth + 1)
        except NoPlatformMatch:
            continue
    have = sorted(
        {
            f"{d['platform'].get('os')}/{d['platform'].get('architecture')}"
            for d in manifests
            if isinstance(d, dict) and isinstance(d.get("platform"), dict)
        }
    )
    raise NoPlatformMatch(
        f"{src.name}: {where} has no image for {plat.os}/{plat.architecture}"
        + (f" (it has: {', '.join(have)})" if have else "")
    )


def resolve(
    src: Source, tag: str | None = None, digest: str | None = None, plat: Platform | None = None
) -> ResolvedImage:
    """Pick the manifest a tag or digest names (or the only one), verify it and its config."""
    plat = plat or host_platform()
    index = src.read_index()
    entries = [d for d in index.get("manifests", []) if isinstance(d, dict)]
    if digest:
        matches = [d for d in entries if d.get("digest") == digest]
        desc = matches[0] if matches else {"digest": digest}
        ref_name = (desc.get("annotations") or {}).get(REF_NAME)
    elif tag:
        matches = [d for d in entries if (d.get("annotations") or {}).get(REF_NAME) == tag]
        if not matches:
            names = sorted({(d.get("annotations") or {}).get(REF_NAME) for d in entries} - {None})
            raise ImageError(
                f"{src.name}: no image tagged {tag!r}"
                + (f" (tags: {', '.join(names)})" if names else " (the layout has no tags)")
            )
        if len(matches) > 1:
            raise ImageError(f"{src.name}: tag {tag!r} names {len(matches)} manifests")
        desc = matches[0]
        ref_name = tag
    else:
        if len(entries) != 1:
            raise ImageError(
                f"{src.name}: the layout holds {len(entries)} images; "
                "name one with :TAG or @sha256:..."
            )
        desc = entries[0]
        ref_name = (desc.get("annotations") or {}).get(REF_NAME)

    doc = src.read_json_blob(desc, "manifest")
    if _kind(desc, doc) == "index":
        desc, doc = _select_platform(src, doc, plat, f"index {desc.get('digest')}")
    layers = doc.get("layers")
    cfg_desc = doc.get("config")
    if not isinstance(layers, list) or not isinstance(cfg_desc, dict):
        raise ImageError(f"{src.name}: manifest {desc.get('digest')} lacks config or layers")
    config = src.read_json_blob(cfg_desc, "config")
    diff_ids = ((config.get("rootfs") or {}).get("diff_ids")) or []
    if len(diff_ids) != len(layers):
        raise ImageError(
            f"{src.name}: config {cfg_desc.get('digest')} lists {len(diff_ids)} diff_ids "
            f"for {len(layers)} layers"
        )
    for d in diff_ids:
        sha256_hex(d)
    return ResolvedImage(
        manifest_digest=desc["digest"],
        manifest=doc,
        config_digest=cfg_desc["digest"],
        config=config,
        layers=layers,
        ref_name=ref_name,
        diff_ids=list(diff_ids),
        manifest_raw=src.raw[desc["digest"]],
        config_raw=src.raw[cfg_desc["digest"]],
        manifest_media_type=desc.get("mediaType") or doc.get("mediaType") or MT_OCI_MANIFEST,
    )
