"""The image store under ``<runtime root>/images/``: content-addressed unpacked layers.

Layout (why: layers are shared by every image and container that uses them, so they
are keyed by content and written once, atomically)::

    images/
      lock                          flock: load / remove / prune / bundle registration
      layers/sha256/<hex>/          one unpacked layer, <hex> = its diff_id
                                    (the sha256 of its uncompressed tar)
          diff/                     the tree overlayfs uses as a lowerdir
          layer.json                blob digest, media type, sizes, entries (for inspect)
      images/<quoted name>.json     one record per image name (= its tag)
      bundles/<hash>.json           bundles made from images: their layers are in use
      tmp/                          layers being unpacked (renamed into layers/ when whole)

A layer is unpacked into tmp/, its blob digest and diff_id checked, then renamed into
place; any failure removes the temp dir, so the store never holds a half layer.
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyruntime.image import ImageError
from pyruntime.image.layout import Platform, open_source, resolve, sha256_hex
from pyruntime.image.reference import ImageRef, parse_reference
from pyruntime.image.unpack import unpack


def _write_json_atomic(path: Path, doc: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=False)


@dataclass
class LoadResult:
    """What ``Store.load`` did: the name recorded, and how many layers it had to unpack."""

    name: str
    manifest_digest: str
    layers: list[str]
    unpacked: list[str]


class Store:
    """The layer store and image records of one runtime root."""

    def __init__(self, runtime_root: str | os.PathLike[str]) -> None:
        self.root = Path(runtime_root) / "images"
        self.layers_dir = self.root / "layers" / "sha256"
        self.records_dir = self.root / "images"
        self.bundles_dir = self.root / "bundles"
        self.tmp_dir = self.root / "tmp"

    # -- plumbing -------------------------------------------------------------------

    def _ensure(self) -> None:
        for d in (self.layers_dir, self.records_dir, self.bundles_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise store mutations (a prune must not race a load)."""
        self._ensure()
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

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

    # -- images ---------------------------------------------------------------------

    def load(
        self,
        ref: ImageRef | str,
        name: str | None = None,
        *,
        platform: Platform | None = None,
        allow_devices: bool = False,
    ) -> LoadResult:
        """Load an image from a local OCI layout/archive; unpack only layers not yet stored.

        The image is named ``name``, else its tag, else the ref.name annotation of the
        manifest it resolved to.
        """
        if isinstance(ref, str):
            ref = parse_reference(ref)
        with open_source(ref) as src:
            img = resolve(src, tag=ref.tag, digest=ref.digest, plat=platform)
            name = name or ref.tag or img.ref_name
            if not name:
                raise ImageError(f"{ref}: the image has no tag; give it one (oci:DIR:TAG)")
            unpacked: list[str] = []
            with self.lock():
                for desc, diff_id in zip(img.layers, img.diff_ids, strict=True):
                    if self.has_layer(diff_id):
                        continue
                    self._unpack_layer(src, desc, diff_id, allow_devices)
                    unpacked.append(diff_id)
                record = {
                    "name": name,
                    "source": str(ref),
                    "manifest_digest": img.manifest_digest,
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

    def _unpack_layer(
        self, src: Any, desc: dict[str, Any], diff_id: str, allow_devices: bool
    ) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=sha256_hex(diff_id)[:16] + ".", dir=self.tmp_dir))
        try:
            with src.open_blob(desc, "layer") as blob:
                try:
                    result = unpack(blob, tmp / "diff", allow_devices=allow_devices)
                except ImageError as e:
                    # an unpack refusal may stem from corruption: the digest says which
                    try:
                        blob.verify()
                    except ImageError as bad:
                        raise bad from e
                    raise ImageError(f"{src.name}: layer {desc.get('digest')}: {e}") from e
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
        """Note that a bundle's overlay uses these layers (prune keeps them)."""
        with self.lock():
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

    def prune(self) -> list[str]:
        """Remove layers that no image record and no live bundle uses; return their ids."""
        removed: list[str] = []
        with self.lock():
            used = {lid for rec in self.list() for lid in rec["layers"]} | self._bundle_layers()
            for lid in self.layer_ids():
                if lid not in used:
                    _rmtree(self.layer_path(lid))
                    removed.append(lid)
            # leftovers of interrupted loads (we hold the lock: nothing is unpacking)
            if self.tmp_dir.is_dir():
                for p in self.tmp_dir.iterdir():
                    _rmtree(p)
        return removed
