"""`image pull docker://HOST[:PORT]/NAME[:TAG|@DIGEST]`: from a registry into the store.

Steps, and why in this order:

1. The manifest (by tag or digest) and, for an index or a manifest list, the manifest
   for this platform, then the config: small, verified against their digests (a tag's
   answer is the root of trust, as index.json is for a layout), parsed by the same code
   as a local layout (layout.resolve over a RegistrySource).
2. Each layer whose diff_id is not in the store is downloaded in parallel to
   ``downloads/<hex>.part`` (flocked: two pulls of one blob take turns), hashed as it
   arrives.  A part left by an earlier, interrupted pull is resumed with a Range request
   when the registry honours it.  A blob whose size or digest is wrong is deleted and
   the pull fails naming it: nothing of it is kept.
3. Under the store's lock: the verified blobs move into blobs/, each is unpacked, the
   manifest and config are stored, the record is written (Store.commit).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, BinaryIO

import urllib3

from pyruntime.image import ImageError
from pyruntime.image.layout import (
    MAX_JSON,
    Platform,
    Source,
    VerifyingReader,
    resolve,
    sha256_hex,
)
from pyruntime.image.reference import DockerRef
from pyruntime.image.registry import Registry, iter_body
from pyruntime.image.store import LoadResult, Store

PARALLEL = 3
ATTEMPTS = 4  # per blob: a dropped connection is resumed from where it broke off

Progress = Callable[[str, int, int | None], None]  # (digest, bytes so far, total)


class BadBlob(ImageError):
    """A blob whose size or digest is not what its descriptor says."""


class Cancelled(ImageError):
    """A download stopped because another one failed."""


class RegistrySource(Source):
    """A Source whose blobs come from a registry: lets layout.resolve pick the manifest
    (tag -> manifest or index -> this platform's manifest -> config) as for a layout."""

    def __init__(self, registry: Registry, ref: DockerRef, store: Store | None = None) -> None:
        self.registry = registry
        self.store = store
        self.ref = ref
        self.name = str(ref)
        self.raw: dict[str, bytes] = {}
        self._manifests: dict[str, tuple[bytes, str]] = {}

    def read_index(self) -> dict[str, Any]:
        """A one-entry index naming what the tag (or digest) points at."""
        data, media_type = self.registry.get_manifest(self.ref.repository, self.ref.reference)
        if len(data) > MAX_JSON:
            raise ImageError(f"{self.name}: manifest larger than {MAX_JSON} bytes")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.ref.digest and digest != self.ref.digest:
            raise ImageError(f"{self.name}: manifest content does not match its digest "
                             f"(got {digest})")
        self._manifests[digest] = (data, media_type)
        desc: dict[str, Any] = {"digest": digest, "size": len(data)}
        if media_type:
            desc["mediaType"] = media_type
        return {"manifests": [desc]}

    def exists(self, relpath: str) -> bool:
        return True  # the registry says 404 if not

    def open(self, relpath: str) -> BinaryIO:  # pragma: no cover - open_blob is used
        raise NotImplementedError

    def open_blob(self, desc: dict[str, Any], what: str = "blob") -> VerifyingReader:
        """Manifests from /manifests/, configs from /blobs/ (or the store, where a pull
        put them before); both small, read whole, checked against their digests."""
        digest = desc.get("digest", "")
        sha256_hex(digest)
        size = desc.get("size")
        if size is not None and (not isinstance(size, int) or size < 0 or size > MAX_JSON):
            raise ImageError(f"{self.name}: {what} {digest}: bad size {size!r}")
        if what == "manifest":
            if digest not in self._manifests:
                self._manifests[digest] = self.registry.get_manifest(
                    self.ref.repository, digest)
            data = self._manifests[digest][0]
        elif self.store is not None and self.store.has_blob(digest):  # pulled before
            with self.store.open_blob(desc, what) as r:
                data = r.read(MAX_JSON + 1)
        else:
            resp = self.registry.get_blob(self.ref.repository, digest)
            data = resp.read(MAX_JSON + 1, decode_content=False)
            resp.close()
            if resp.status != 200:
                raise ImageError(f"{what} {digest}: HTTP {resp.status}")
        return VerifyingReader(io.BytesIO(data), digest, size, what)


def pull(image_root: str, ref: DockerRef, registry: Registry, *,
         platform: Platform | None = None, progress: Progress | None = None,
         allow_devices: bool = False) -> LoadResult:
    """Pull ``ref`` into the store at ``image_root``; name the image ``ref.name``."""
    store = Store(image_root)
    src = RegistrySource(registry, ref, store)
    img = resolve(src, plat=platform)  # the one entry read_index gives: the reference's
    store.ensure()
    wanted = [d for d, diff in zip(img.layers, img.diff_ids, strict=True)
              if not store.has_layer(diff) and not store.has_blob(d.get("digest", ""))]
    fetcher = _Fetcher(store, registry, ref.repository, progress)
    if wanted:
        _fetch_all(fetcher, _unique(wanted))

    def adopt(desc: dict[str, Any]) -> None:
        digest = desc["digest"]
        done = fetcher.done_path(digest)
        if not done.is_file():  # a prune took it, or it was stored when we looked
            fetcher.fetch(desc)
        store.adopt_blob(done, digest)

    return store.commit(ref.name, str(ref), img, adopt, allow_devices=allow_devices)


def _fetch_all(fetcher: _Fetcher, descs: list[dict[str, Any]]) -> None:
    """Download in parallel; the first failure cancels the rest.  A blob that fails its
    digest takes every download of this pull with it (that source is not trusted); any
    other failure leaves the parts for a resumed pull."""
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(descs))) as pool:
        futures = [pool.submit(fetcher.fetch, d) for d in descs]
        wait(futures, return_when=FIRST_EXCEPTION)
        errors = [f.exception() for f in futures if f.done() and f.exception()]
        if errors:
            fetcher.cancel.set()
        wait(futures)
    errors = [f.exception() for f in futures if f.exception() is not None]
    if not errors:
        return
    bad = [e for e in errors if isinstance(e, BadBlob)]
    if bad:
        for d in descs:
            for path in (fetcher.part_path(d["digest"]), fetcher.done_path(d["digest"])):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        raise bad[0]
    real = [e for e in errors if not isinstance(e, Cancelled)]
    raise (real or errors)[0]


def _unique(descs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for d in descs:
        if d["digest"] not in seen:
            seen.add(d["digest"])
            out.append(d)
    return out


class _Fetcher:
    """Downloads blobs to downloads/<hex>.part, verified, then renamed to <hex>.blob."""

    def __init__(self, store: Store, registry: Registry, repository: str,
                 progress: Progress | None) -> None:
        self.store = store
        self.registry = registry
        self.repository = repository
        self.progress = progress
        self.cancel = threading.Event()

    def part_path(self, digest: str) -> Path:
        return self.store.downloads_dir / (sha256_hex(digest) + ".part")

    def done_path(self, digest: str) -> Path:
        return self.store.downloads_dir / (sha256_hex(digest) + ".blob")

    def fetch(self, desc: dict[str, Any]) -> None:
        digest = desc.get("digest", "")
        size = desc.get("size")
        if not isinstance(size, int) or size < 0:
            raise ImageError(f"layer {digest}: bad size {size!r} in the manifest")
        part = self.part_path(digest)
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # another pull of this blob: wait for it
            st = os.fstat(fd)
            if self.done_path(digest).is_file() or self.store.has_blob(digest):
                with contextlib.suppress(FileNotFoundError):  # an empty part we made
                    if st.st_size == 0 and os.stat(part).st_ino == st.st_ino:
                        part.unlink()
                return
            if st.st_nlink == 0:  # a prune removed it while we waited
                os.close(fd)
                fd = -1
                return self.fetch(desc)
            with os.fdopen(os.dup(fd), "r+b") as f:
                try:
                    self._download(f, digest, size)
                except BadBlob:
                    with contextlib.suppress(FileNotFoundError):
                        part.unlink()  # not kept, not even for a resume
                    raise
            os.rename(part, self.done_path(digest))
        finally:
            if fd >= 0:
                os.close(fd)

    def _download(self, f: BinaryIO, digest: str, size: int) -> None:
        resumed = os.fstat(f.fileno()).st_size > 0
        try:
            self._fetch_into(f, digest, size)
        except BadBlob:
            if not resumed:
                raise
            # the part an earlier pull left (from another registry, a disk error) may be
            # what is wrong, not this registry's blob: once more, from nothing
            f.seek(0)
            f.truncate()
            self._fetch_into(f, digest, size)

    def _fetch_into(self, f: BinaryIO, digest: str, size: int) -> None:
        """Resume from what ``f`` holds; verify size and digest at the end."""
        h = hashlib.sha256()
        have = 0
        while chunk := f.read(1 << 20):  # what an interrupted pull left: hash it again
            h.update(chunk)
            have += len(chunk)
        if have > size:
            f.seek(0)
            f.truncate()
            h, have = hashlib.sha256(), 0
        error: Exception | None = None
        for _ in range(ATTEMPTS):
            if have == size:
                break
            if self.cancel.is_set():
                raise Cancelled(f"layer {digest}: cancelled")
            resp = self.registry.get_blob(self.repository, digest, have)
            try:
                if resp.status == 416:
                    # no byte at `have` < size: the registry's copy is shorter than the
                    # descriptor says (starting over would only fetch the same again)
                    raise BadBlob(f"layer {digest}: the registry's copy ends at byte {have}, "
                                  f"its descriptor says {size} bytes")
                if resp.status == 200 and have:
                    # the registry ignored the range: start over
                    f.seek(0)
                    f.truncate()
                    h, have = hashlib.sha256(), 0
                elif resp.status == 206 and not _range_starts_at(resp, have):
                    raise ImageError(f"layer {digest}: the registry answered the wrong range "
                                     f"({resp.headers.get('Content-Range')})")
                f.seek(have)
                for chunk in iter_body(resp):
                    have += len(chunk)
                    if have > size:
                        raise BadBlob(f"layer {digest}: larger than the {size} bytes "
                                      "its descriptor says")
                    f.write(chunk)
                    h.update(chunk)
                    if self.progress:
                        self.progress(digest, have, size)
                    if self.cancel.is_set():
                        raise Cancelled(f"layer {digest}: cancelled")
                f.flush()
                error = None
            except (urllib3.exceptions.HTTPError, OSError) as e:
                error = e  # a dropped connection: resume from what arrived
                f.flush()
            finally:
                resp.close()  # read or not, this connection is done
        if have != size:
            if error is not None:
                raise ImageError(f"layer {digest}: download failed: {error}")
            raise BadBlob(f"layer {digest}: {have} bytes, descriptor says {size}")
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise BadBlob(f"layer {digest}: content does not match its digest (got {got})")
        os.fsync(f.fileno())


def _range_starts_at(resp: urllib3.BaseHTTPResponse, offset: int) -> bool:
    cr = resp.headers.get("Content-Range", "")
    unit, _, spec = cr.partition(" ")
    return unit == "bytes" and spec.partition("-")[0] == str(offset)
