"""The image store under ``--image-root`` (default /var/lib/pyruntime): blobs as
fetched, and content-addressed unpacked layers.

Layout (why: layers are shared by every image and container that uses them, so they
are keyed by content and written once, atomically; the blobs are kept as the registry
or layout had them, so `image push` sends the very bytes whose digests the manifest
names)::

    <image root>/
      lock                          flock: what enters or leaves the store, bundle records
      blobs/sha256/<hex>            manifests, configs and layer blobs, each verified
      layers/sha256/<hex>/          one unpacked layer, <hex> = its diff_id
                                    (the sha256 of its uncompressed tar)
          diff/                     the tree overlayfs uses as a lowerdir
          layer.json                blob digest, media type, sizes, entries (for inspect)
      images/<quoted name>.json     one record per image name (= its tag)
      bundles/<hash>.json           bundles made from images: their layers are in use
      downloads/<hex>.part          blobs being fetched (kept for a resumed pull)
      tmp/                          layers being unpacked, blobs being copied in

A blob is written to tmp/ or downloads/, its digest checked, then renamed into blobs/;
a layer is unpacked into tmp/ from a stored blob, its diff_id checked, then renamed
into layers/.  Any failure removes the temp file or dir, so the store never holds a
half blob or a half layer; a killed process leaves only tmp/ entries (removed by the
next load or pull, under the lock) and downloads/ parts (resumed by the next pull).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyruntime.image import ImageError
from pyruntime.image.layout import (
    Platform,
    ResolvedImage,
    VerifyingReader,
    open_source,
    resolve,
    sha256_hex,
)
from pyruntime.image.reference import ImageRef, parse_reference
from pyruntime.image.unpack import unpack

_CHUNK = 1 << 20


def _write_json_atomic(path: Path, doc: Any) -> None:
    _write_atomic(path, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _syncfs(path: Path) -> None:
    """syncfs(2) of the filesystem holding ``path``: one call flushes a whole unpacked
    layer (fsync of each of its files would cost far more)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise ImageError(f"syncfs {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=False)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        _rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@dataclass
class LoadResult:
    """What a load or pull did: the name recorded, and which layers it had to unpack."""

    name: str
    manifest_digest: str
    layers: list[str]
    unpacked: list[str]


class Store:
    """The blobs, layers and image records under one image root."""

    def __init__(self, image_root: str | os.PathLike[str]) -> None:
        self.root = Path(image_root).absolute()
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.layers_dir = self.root / "layers" / "sha256"
        self.records_dir = self.root / "images"
        self.bundles_dir = self.root / "bundles"
        self.downloads_dir = self.root / "downloads"
        self.tmp_dir = self.root / "tmp"

    # -- plumbing -------------------------------------------------------------------

    def ensure(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for d in (self.blobs_dir, self.layers_dir, self.records_dir, self.bundles_dir,
                  self.downloads_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise what enters or leaves the store: a prune must not remove a layer
        that a load or pull is about to record, or that a bundle is about to use."""
        self.ensure()
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _clean_tmp(self) -> None:
        """Leftovers of killed loads and pulls (the caller holds the lock: nothing else is
        unpacking or copying a blob in)."""
        if self.tmp_dir.is_dir():
            for p in self.tmp_dir.iterdir():
                _remove(p)

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / sha256_hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, desc: dict[str, Any], what: str) -> VerifyingReader:
        """A stored blob, read through a digest check (the disk is not trusted either)."""
        digest = desc.get("digest", "")
        return VerifyingReader(open(self.blob_path(digest), "rb"), digest, desc.get("size"), what)

    def read_blob(self, digest: str) -> bytes:
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    def put_blob_bytes(self, digest: str, data: bytes) -> None:
        """Store a small blob (manifest, config) whose digest the caller has checked."""
        if hashlib.sha256(data).hexdigest() != sha256_hex(digest):
            raise ImageError(f"blob {digest}: content does not match its digest")
        if not self.has_blob(digest):
            _write_atomic(self.blob_path(digest), data)

    def put_blob_stream(self, reader: VerifyingReader, digest: str) -> None:
        """Copy a blob in through its verifying reader; nothing stays if it does not verify."""
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix=sha256_hex(digest)[:16] + ".")
        try:
            with os.fdopen(fd, "wb") as f:
                while chunk := reader.read(_CHUNK):
                    f.write(chunk)
                reader.verify()
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.blob_path(digest))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def adopt_blob(self, path: Path, digest: str) -> None:
        """Move a verified download into blobs/ (the caller holds the lock)."""
        os.rename(path, self.blob_path(digest))

    def layer_path(self, layer_id: str) -> Path:
        """The layer's directory (holding diff/ and layer.json)."""
        return self.layers_dir / sha256_hex(layer_id)

    def layer_diff(self, layer_id: str) -> Path:
        """The unpacked tree of a layer: what overlay gets as a lowerdir."""
        return self.layer_path(layer_id) / "diff"

    def has_layer(self, layer_id: str) -> bool:
        return (self.layer_path(layer_id) / "layer.json").is_file()

    def layer_meta(self, layer_id: str) -> dict[str, Any]:
        with open(self.layer_path(layer_id) / "layer.json") as f:
            return json.load(f)

    def _record_path(self, name: str) -> Path:
        if not name:
            raise ImageError("empty image name")
        return self.records_dir / (urllib.parse.quote(name, safe="") + ".json")

    def layer_ids(self) -> list[str]:
        """Every layer present in the store (complete ones only)."""
        if not self.layers_dir.is_dir():
            return []
        return sorted(
            "sha256:" + p.name for p in self.layers_dir.iterdir() if (p / "layer.json").is_file()
        )

    def blob_digests(self) -> list[str]:
        if not self.blobs_dir.is_dir():
            return []
        return sorted("sha256:" + p.name for p in self.blobs_dir.iterdir()
                      if len(p.name) == 64 and not p.name.startswith("."))

    # -- images ---------------------------------------------------------------------

    def load(
        self,
        ref: ImageRef | str,
        name: str | None = None,
        *,
        platform: Platform | None = None,
        allow_devices: bool = False,
    ) -> LoadResult:
        """Load an image from a local OCI layout/archive or a docker-archive; unpack only
        layers not yet stored.

        The image is named ``name``, else its tag, else the ref.name annotation of the
        manifest it resolved to.
        """
        if isinstance(ref, str):
            ref = parse_reference(ref)
        with open_source(ref) as src:
            if ref.transport == "docker-archive":
                from pyruntime.image.docker_archive import resolve_docker_archive

                img = resolve_docker_archive(src, ref.tag)  # type: ignore[arg-type]
                name = name or img.ref_name
            else:
                img = resolve(src, tag=ref.tag, digest=ref.digest, plat=platform)
                name = name or ref.tag or img.ref_name
            if not name:
                raise ImageError(f"{ref}: the image has no tag; give it one (oci:DIR:TAG)")

            def copy_in(desc: dict[str, Any]) -> None:
                with src.open_blob(desc, "layer") as blob:
                    self.put_blob_stream(blob, desc["digest"])

            return self.commit(name, str(ref), img, copy_in, allow_devices=allow_devices)

    def commit(
        self,
        name: str,
        source: str,
        img: ResolvedImage,
        fetch_blob: Callable[[dict[str, Any]], None],
        *,
        allow_devices: bool = False,
    ) -> LoadResult:
        """Under the lock: bring in each missing layer (``fetch_blob(desc)`` puts its blob
        into blobs/), unpack it, store manifest and config, write the image's record."""
        unpacked: list[str] = []
        with self.lock():
            self._clean_tmp()
            for desc, diff_id in zip(img.layers, img.diff_ids, strict=True):
                if self.has_layer(diff_id):
                    continue
                digest = desc.get("digest", "")
                sha256_hex(digest)
                if not self.has_blob(digest):
                    fetch_blob(desc)
                self._unpack_layer(desc, diff_id, allow_devices)
                unpacked.append(diff_id)
            self.put_blob_bytes(img.manifest_digest, img.manifest_raw)
            self.put_blob_bytes(img.config_digest, img.config_raw)
            record = {
                "name": name,
                "source": source,
                "manifest_digest": img.manifest_digest,
                "manifest_media_type": img.manifest_media_type,
                "config_digest": img.config_digest,
                "config": img.config,
                "layers": img.diff_ids,
                "layer_blobs": [
                    {
                        "digest": d.get("digest"),
                        "mediaType": d.get("mediaType"),
                        "size": d.get("size"),
                    }
                    for d in img.layers
                ],
                "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            _write_json_atomic(self._record_path(name), record)
        return LoadResult(name, img.manifest_digest, list(img.diff_ids), unpacked)

    def _unpack_layer(self, desc: dict[str, Any], diff_id: str, allow_devices: bool) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=sha256_hex(diff_id)[:16] + ".", dir=self.tmp_dir))
        try:
            with self.open_blob(desc, "layer") as blob:
                try:
                    result = unpack(blob, tmp / "diff", allow_devices=allow_devices)
                except ImageError as e:
                    # an unpack refusal may stem from corruption: the digest says which
                    try:
                        blob.verify()
                    except ImageError as bad:
                        raise bad from e
                    raise ImageError(f"layer {desc.get('digest')}: {e}") from e
                blob.verify()
            if result.diff_id != diff_id:
                raise ImageError(
                    f"layer {desc.get('digest')}: uncompressed content is {result.diff_id}, "
                    f"the image config says {diff_id}"
                )
            meta = result.to_json()
            meta.update(
                blob_digest=desc.get("digest"),
                media_type=desc.get("mediaType"),
                blob_size=desc.get("size"),
            )
            _write_json_atomic(tmp / "layer.json", meta)
            _syncfs(tmp)  # the layer is on disk before its name says it is whole
            final = self.layer_path(diff_id)
            try:
                os.rename(tmp, final)
            except OSError:
                if self.has_layer(diff_id):
                    _rmtree(tmp)  # someone else finished it first
                else:
                    raise
        except BaseException:
            if tmp.exists():
                _rmtree(tmp)
            if not self.has_layer(diff_id):  # a blob that does not unpack is not kept
                with contextlib.suppress(FileNotFoundError):
                    self.blob_path(desc.get("digest", "")).unlink()
            raise

    def get(self, name: str) -> dict[str, Any]:
        """The record of an image by name; ImageError if there is none."""
        p = self._record_path(name)
        try:
            with open(p) as f:
                return json.load(f)
        except FileNotFoundError:
            raise ImageError(f"no image named {name!r} (see `pyruntime image ls`)") from None

    def list(self) -> list[dict[str, Any]]:
        """All image records, by name."""
        if not self.records_dir.is_dir():
            return []
        out = []
        for p in sorted(self.records_dir.glob("*.json")):
            with open(p) as f:
                out.append(json.load(f))
        return sorted(out, key=lambda r: r["name"])

    def remove(self, name: str) -> None:
        """Forget an image name; its layers stay until ``prune``."""
        with self.lock():
            p = self._record_path(name)
            if not p.exists():
                raise ImageError(f"no image named {name!r}")
            p.unlink()

    # -- bundles using layers ---------------------------------------------------------

    def _bundle_key(self, bundle_dir: Path) -> Path:
        h = hashlib.sha256(str(bundle_dir.resolve()).encode()).hexdigest()[:32]
        return self.bundles_dir / f"{h}.json"

    def register_bundle(self, bundle_dir: Path, image: str, layers: list[str]) -> None:
        """Note that a bundle's overlay uses these layers (prune keeps them).  The caller
        holds the lock (see bundle.create_bundle)."""
        _write_json_atomic(
            self._bundle_key(bundle_dir),
            {"bundle": str(bundle_dir.resolve()), "image": image, "layers": layers},
        )

    def unregister_bundle(self, bundle_dir: Path) -> None:
        with self.lock():
            with contextlib.suppress(FileNotFoundError):
                self._bundle_key(bundle_dir).unlink()

    def _bundle_layers(self) -> set[str]:
        used: set[str] = set()
        if not self.bundles_dir.is_dir():
            return used
        for p in self.bundles_dir.glob("*.json"):
            with open(p) as f:
                doc = json.load(f)
            if (Path(doc["bundle"]) / "bundle.json").is_file():
                used.update(doc["layers"])
            else:
                p.unlink()  # the bundle is gone: a stale registration
        return used

    def used(self) -> tuple[set[str], set[str]]:
        """(layers, blobs) that an image record or a live bundle uses.  Under the lock."""
        layers, blobs = set(self._bundle_layers()), set()
        for rec in self.list():
            layers.update(rec["layers"])
            blobs.update((rec["manifest_digest"], rec["config_digest"]))
            blobs.update(b["digest"] for b in rec.get("layer_blobs") or () if b.get("digest"))
        return layers, blobs

    def prune(self) -> list[str]:
        """Remove layers and blobs that no image record and no live bundle uses, and
        downloads no pull is writing; return the layer ids removed."""
        removed: list[str] = []
        with self.lock():
            used_layers, used_blobs = self.used()
            for lid in self.layer_ids():
                if lid not in used_layers:
                    _rmtree(self.layer_path(lid))
                    removed.append(lid)
            for digest in self.blob_digests():
                if digest not in used_blobs:
                    self.blob_path(digest).unlink()
            self._clean_tmp()
            for d in (self.blobs_dir, self.records_dir, self.bundles_dir):
                for p in d.glob(".tmp-*"):  # a write killed half-way (all under the lock)
                    p.unlink()
            for p in self.downloads_dir.iterdir():
                self._remove_download(p)
        return removed

    def _remove_download(self, path: Path) -> None:
        """Remove a partial download unless a pull holds its flock (it is being written)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            _remove(path)
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        finally:
            os.close(fd)
