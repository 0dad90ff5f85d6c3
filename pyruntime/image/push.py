"""`image push NAME [docker://HOST[:PORT]/REPO[:TAG]]`: a stored image to a registry.

The store keeps every blob as it was loaded or pulled (store.py), so the push sends the
very bytes the manifest names: the layer blobs and the config (each skipped when the
registry already has it), then the manifest under the tag.  Nothing is recompressed,
so the pushed image has the digest the store records.
"""

from __future__ import annotations

import io
from typing import Any

from pyruntime.image import ImageError
from pyruntime.image.pull import Progress
from pyruntime.image.reference import DockerRef
from pyruntime.image.registry import Registry
from pyruntime.image.store import Store


class _Reporting(io.RawIOBase):
    """A file read for an upload, reporting the bytes sent."""

    def __init__(self, f: Any, digest: str, size: int, progress: Progress | None) -> None:
        super().__init__()
        self.f, self.digest, self.size, self.progress = f, digest, size, progress
        self.sent = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.f.readinto(b)
        self.sent += n
        if self.progress:
            self.progress(self.digest, self.sent, self.size)
        return n

    def seek(self, offset: int, whence: int = 0) -> int:
        self.sent = 0
        return self.f.seek(offset, whence)


def push(image_root: str, name: str, ref: DockerRef, registry: Registry, *,
         progress: Progress | None = None) -> str:
    """Push image ``name`` to ``ref``; return the manifest digest."""
    store = Store(image_root)
    rec = store.get(name)
    blobs = [(b["digest"], b.get("size")) for b in rec.get("layer_blobs") or ()]
    blobs.append((rec["config_digest"], None))
    for digest in [d for d, _ in blobs] + [rec["manifest_digest"]]:
        if not store.has_blob(digest):
            raise ImageError(f"image {name!r}: blob {digest} is not in the store "
                             "(loaded by an older pyruntime?): load or pull it again")
    for digest, _size in blobs:
        if registry.has_blob(ref.repository, digest):
            if progress:
                progress.note(digest, "already there")
            continue
        path = store.blob_path(digest)
        size = path.stat().st_size
        with open(path, "rb") as f:
            registry.upload_blob(ref.repository, digest,
                                 _Reporting(f, digest, size, progress), size)
    manifest = store.read_blob(rec["manifest_digest"])
    media_type = rec.get("manifest_media_type") or "application/vnd.oci.image.manifest.v1+json"
    registry.put_manifest(ref.repository, ref.reference, manifest, media_type)
    return rec["manifest_digest"]
