"""Safe extraction of one OCI layer tar into a directory that overlayfs can use as a lowerdir.

Why its own module: a layer is untrusted input that we write to the host as root.
Every write is done relative to a directory fd we opened ourselves, walking each
path component with O_NOFOLLOW, so the extractor never follows a symlink, not even
one the same tar just created.  Refused with ImageError: absolute names, ``..``
components, relative symlinks whose target leaves the layer, hardlinks whose target
is not an earlier entry of this layer, char/block devices (unless the caller allows
them and we are root).  FIFOs are allowed.

OCI whiteouts become overlay whiteouts: ``D/.wh.NAME`` -> a 0:0 char device
``D/NAME``; ``D/.wh..wh..opq`` -> xattr ``trusted.overlay.opaque=y`` on ``D``.  Both
need root (CAP_MKNOD, CAP_SYS_ADMIN for trusted.*).

Compression is detected by magic (gzip, zstd, else plain tar).  zstd uses the
``zstandard`` module if importable, else the ``zstd`` program (Debian: zstd).

``unpack()`` returns what the inspector needs (entries, regular-file groups), so
waste can be computed later from the recorded tar content, without overlay.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import shutil
import stat
import subprocess
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pyruntime.image import ImageError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WH_PREFIX = ".wh."
WH_META_PREFIX = ".wh..wh."
WH_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
#: xattrs from PAX headers that we restore; everything else (trusted.*, security.selinux, ...)
#: is dropped: an image must not forge overlay metadata or host labels.
ALLOWED_XATTR_PREFIXES = ("user.", "security.capability")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class UnpackResult:
    """What a layer contained: its diff_id, and entries for the inspector.

    ``entries`` maps a layer-relative path to {"type", and for "file"/"hardlink" the
    "group" (an inode: one regular file and its hardlinks)}; ``groups`` maps a group id
    to its byte size; ``opaque`` lists dirs made opaque.  Whiteouts are entries of
    type "whiteout" at the path they hide.
    """

    diff_id: str
    compression: str
    tar_bytes: int
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    opaque: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Regular-file content bytes of this layer (each inode once)."""
        return sum(self.groups.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "diff_id": self.diff_id,
            "compression": self.compression,
            "tar_bytes": self.tar_bytes,
            "size": self.size,
            "entries": self.entries,
            "groups": self.groups,
            "opaque": self.opaque,
        }


class _Prefixed(io.RawIOBase):
    """A stream with some already-read bytes put back in front (for magic sniffing)."""

    def __init__(self, prefix: bytes, raw: IO[bytes]) -> None:
        super().__init__()
        self._prefix = prefix
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._raw.read(len(b))
        b[: len(data)] = data
        return len(data)


class _Hashing(io.RawIOBase):
    """Counts and sha256-hashes the uncompressed tar stream: that hash is the diff_id."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self.h = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        self.h.update(data)
        self.count += n
        return n

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


class _ZstdProcess(io.RawIOBase):
    """zstd -dc fed by a thread from ``src``; errors of either side surface on read/close."""

    def __init__(self, src: IO[bytes]) -> None:
        super().__init__()
        exe = shutil.which("zstd")
        if exe is None:
            raise ImageError(
                "this layer is zstd-compressed: install the zstd program "
                "or the zstandard Python package"
            )
        self._proc = subprocess.Popen(
            [exe, "-d", "-c", "-q"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._err: BaseException | None = None
        self._src = src
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            while True:
                chunk = self._src.read(1 << 20)
                if not chunk:
                    break
                stdin.write(chunk)
        except BrokenPipeError:
            pass
        except BaseException as e:  # re-raised in the reading thread
            self._err = e
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        assert self._proc.stdout is not None
        data = self._proc.stdout.read(len(b))
        n = len(data)
        b[:n] = data
        if n == 0:
            self._finish()
        return n

    def _finish(self) -> None:
        self._thread.join()
        if self._err is not None:
            raise self._err
        rc = self._proc.wait()
        if rc != 0:
            assert self._proc.stderr is not None
            msg = self._proc.stderr.read().decode(errors="replace").strip()
            raise ImageError(f"zstd layer does not decompress: {msg or f'zstd exited {rc}'}")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._thread.join()
        for f in (self._proc.stdout, self._proc.stderr):
            if f is not None:
                f.close()
        super().close()


def decompressed(raw: IO[bytes]) -> tuple[IO[bytes], str]:
    """Sniff the compression of a layer blob by magic; return (tar stream, name)."""
    head = b""
    while len(head) < 4:
        chunk = raw.read(4 - len(head))
        if not chunk:
            break
        head += chunk
    src = io.BufferedReader(_Prefixed(head, raw), 1 << 16)
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=src, mode="rb"), "gzip"  # type: ignore[return-value]
    if head.startswith(ZSTD_MAGIC):
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            return io.BufferedReader(_ZstdProcess(src), 1 << 16), "zstd"
        reader = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
        return reader, "zstd"
    return src, "none"


def normalize_name(name: str, what: str = "entry") -> list[str]:
    """Split a tar member name into safe components; refuse absolute names and ``..``."""
    if "\0" in name:
        raise ImageError(f"layer {what} {name!r}: name contains a NUL byte")
    if name.startswith("/"):
        raise ImageError(f"layer {what} {name!r}: absolute path refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageError(f"layer {what} {name!r}: '..' component refused (path escapes the layer)")
    return parts


class _Extractor:
    """Writes tar members below ``root`` through dirfds, never following symlinks."""

    def __init__(self, root: Path, allow_devices: bool) -> None:
        self.root = root
        self.rootfd = os.open(root, _DIR_FLAGS)
        self.is_root = os.geteuid() == 0
        self.allow_devices = allow_devices
        self.dir_meta: dict[str, tarfile.TarInfo] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, int] = {}
        self.opaque: list[str] = []
        self._next_group = 0

    def close(self) -> None:
        os.close(self.rootfd)

    # -- path walking -------------------------------------------------------------

    def _walk(self, parts: list[str], name: str, create: bool) -> int:
        """An O_PATH fd of the directory ``parts`` (created as needed); symlinks refused."""
        fd = os.dup(self.rootfd)
        try:
            for i, comp in enumerate(parts):
                try:
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                sub = "/".join(parts[: i + 1])
                if stat.S_ISLNK(st.st_mode):
                    raise ImageError(
                        f"layer entry {name!r}: its path goes through the symlink {sub!r} (refused)"
                    )
                if not stat.S_ISDIR(st.st_mode):
                    raise ImageError(f"layer entry {name!r}: {sub!r} is not a directory")
                nfd = os.open(comp, _PATH_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _forget(self, rel: str) -> None:
        """Drop bookkeeping for ``rel`` and everything below it."""
        pre = rel + "/"
        for k in [k for k in self.entries if k == rel or k.startswith(pre)]:
            del self.entries[k]
        for k in [k for k in self.dir_meta if k == rel or k.startswith(pre)]:
            del self.dir_meta[k]
        self.opaque = [d for d in self.opaque if not (d == rel or d.startswith(pre))]

    def _clear(self, pfd: int, leaf: str, rel: str, keep_dir: bool) -> bool:
        """Make room for a new entry (a later tar entry replaces an earlier one).

        Returns True if an existing directory was kept (dir over dir merges)."""
        try:
            st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(self.root / rel)
        else:
            os.unlink(leaf, dir_fd=pfd)
        self._forget(rel)
        return False

    # -- metadata -----------------------------------------------------------------

    def _apply_fd_meta(self, fd: int, m: tarfile.TarInfo) -> None:
        if self.is_root:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)
        for key, value in (m.pax_headers or {}).items():
            if key.startswith("SCHILY.xattr."):
                attr = key[len("SCHILY.xattr.") :]
                if attr.startswith(ALLOWED_XATTR_PREFIXES):
                    raw = value.encode("utf-8", "surrogateescape")
                    try:
                        os.setxattr(fd, attr, raw)
                    except OSError as e:
                        raise ImageError(
                            f"layer entry {m.name!r}: cannot set xattr {attr}: {e}"
                        ) from e
        mt = int(m.mtime * 1_000_000_000)
        os.utime(fd, ns=(mt, mt))

    def finish_dirs(self) -> None:
        """Apply directory metadata last: creating children would bump their mtime."""
        for rel, m in sorted(self.dir_meta.items(), key=lambda kv: -kv[0].count("/")):
            parts = rel.split("/") if rel else []
            if parts:
                pfd = self._walk(parts[:-1], m.name, create=False)
                try:
                    fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=pfd)
                finally:
                    os.close(pfd)
            else:
                fd = os.dup(self.rootfd)
            try:
                self._apply_fd_meta(fd, m)
            finally:
                os.close(fd)

    # -- one member ---------------------------------------------------------------

    def add(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = normalize_name(m.name)
        if not parts:
            if not m.isdir():
                raise ImageError(f"layer entry {m.name!r}: the layer root must be a directory")
            self.dir_meta[""] = m
            return
        leaf = parts[-1]
        parent = parts[:-1]
        rel = "/".join(parts)
        if leaf.startswith(WH_PREFIX):
            self._whiteout(m, parent, leaf)
            return
        pfd = self._walk(parent, m.name, create=True)
        try:
            if m.isdir():
                if not self._clear(pfd, leaf, rel, keep_dir=True):
                    os.mkdir(leaf, 0o700, dir_fd=pfd)
                self.dir_meta[rel] = m
                self.entries[rel] = {"type": "dir"}
            elif m.isreg():
                self._clear(pfd, leaf, rel, keep_dir=False)
                self._file(tar, m, pfd, leaf, rel)
            elif m.issym():
                self._symlink(m, pfd, leaf, parent, rel)
            elif m.islnk():
                self._hardlink(m, pfd, leaf, rel)
            elif m.isfifo():
                self._clear(pfd, leaf, rel, keep_dir=False)
                self._mknod(m, pfd, leaf, stat.S_IFIFO, 0)
                self.entries[rel] = {"type": "fifo"}
            elif m.ischr() or m.isblk():
                kind = "char" if m.ischr() else "block"
                if not self.allow_devices:
                    raise ImageError(
                        f"layer entry {m.name!r}: {kind} device {m.devmajor}:{m.devminor} refused "
                        "(device nodes are not allowed in image layers)"
                    )
                if not self.is_root:
                    raise ImageError(f"layer entry {m.name!r}: creating a {kind} device needs root")
                self._clear(pfd, leaf, rel, keep_dir=False)
                mode = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                self._mknod(m, pfd, leaf, mode, os.makedev(m.devmajor, m.devminor))
                self.entries[rel] = {"type": kind}
            else:
                raise ImageError(f"layer entry {m.name!r}: unsupported tar entry type {m.type!r}")
        finally:
            os.close(pfd)

    def _file(
        self, tar: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, leaf: str, rel: str
    ) -> None:
        fd = os.open(
            leaf,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=pfd,
        )
        try:
            src = tar.extractfile(m)
            assert src is not None
            with os.fdopen(os.dup(fd), "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            self._apply_fd_meta(fd, m)
        finally:
            os.close(fd)
        gid = str(self._next_group)
        self._next_group += 1
        self.groups[gid] = m.size
        self.entries[rel] = {"type": "file", "group": gid}

    def _symlink(
        self, m: tarfile.TarInfo, pfd: int, leaf: str, parent: list[str], rel: str
    ) -> None:
        target = m.linkname
        if not target or "\0" in target:
            raise ImageError(f"layer entry {m.name!r}: bad symlink target {target!r}")
        if not target.startswith("/"):
            resolved = posixpath.normpath(posixpath.join("/".join(parent), target))
            if resolved == ".." or resolved.startswith("../"):
                raise ImageError(
                    f"layer entry {m.name!r}: symlink target {target!r} escapes the layer (refused)"
                )
        self._clear(pfd, leaf, rel, keep_dir=False)
        os.symlink(target, leaf, dir_fd=pfd)
        if self.is_root:
            os.chown(leaf, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        mt = int(m.mtime * 1_000_000_000)
        os.utime(leaf, ns=(mt, mt), dir_fd=pfd, follow_symlinks=False)
        self.entries[rel] = {"type": "symlink", "target": target}

    def _hardlink(self, m: tarfile.TarInfo, pfd: int, leaf: str, rel: str) -> None:
        if m.linkname.startswith("/"):
            raise ImageError(
                f"layer entry {m.name!r}: hardlink target {m.linkname!r} is absolute (refused)"
            )
        tparts = normalize_name(m.linkname, "hardlink target")
        if not tparts:
            raise ImageError(f"layer entry {m.name!r}: hardlink to the layer root refused")
        trel = "/".join(tparts)
        if trel == rel:
            raise ImageError(f"layer entry {m.name!r}: hardlink to itself")
        try:
            tpfd = self._walk(tparts[:-1], m.name, create=False)
        except FileNotFoundError:
            tpfd = -1
        try:
            try:
                st = os.stat(tparts[-1], dir_fd=tpfd, follow_symlinks=False) if tpfd >= 0 else None
            except FileNotFoundError:
                st = None
            if st is None:
                raise ImageError(
                    f"layer entry {m.name!r}: hardlink target {m.linkname!r} "
                    "is not in this layer (refused)"
                )
            if stat.S_ISDIR(st.st_mode):
                raise ImageError(f"layer entry {m.name!r}: hardlink to a directory refused")
            self._clear(pfd, leaf, rel, keep_dir=False)
            os.link(tparts[-1], leaf, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            if tpfd >= 0:
                os.close(tpfd)
        target = self.entries.get(trel, {})
        entry: dict[str, Any] = {"type": "hardlink", "target": trel}
        if "group" in target:
            entry["group"] = target["group"]
        self.entries[rel] = entry

    def _mknod(self, m: tarfile.TarInfo, pfd: int, leaf: str, kind: int, dev: int) -> None:
        os.mknod(leaf, kind | 0o600, dev, dir_fd=pfd)
        fd = os.open(leaf, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            if self.is_root:
                os.chown(leaf, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            os.chmod(f"/proc/self/fd/{fd}", m.mode & 0o7777)
            mt = int(m.mtime * 1_000_000_000)
            os.utime(leaf, ns=(mt, mt), dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(fd)

    def _whiteout(self, m: tarfile.TarInfo, parent: list[str], leaf: str) -> None:
        prel = "/".join(parent)
        if leaf == WH_OPAQUE:
            pfd = self._walk(parent, m.name, create=True)
            try:
                fd = os.open(".", _DIR_FLAGS, dir_fd=pfd)
            finally:
                os.close(pfd)
            try:
                os.setxattr(fd, OPAQUE_XATTR, b"y")
            except OSError as e:
                raise ImageError(
                    f"layer entry {m.name!r}: cannot mark {prel or '/'!r} opaque "
                    f"({OPAQUE_XATTR}): {e.strerror} (loading images needs root)"
                ) from e
            finally:
                os.close(fd)
            if prel not in self.opaque:
                self.opaque.append(prel)
            return
        if leaf.startswith(WH_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): meaningless here
        target = leaf[len(WH_PREFIX) :]
        if not target:
            raise ImageError(f"layer entry {m.name!r}: whiteout of nothing")
        rel = "/".join(parent + [target])
        pfd = self._walk(parent, m.name, create=True)
        try:
            self._clear(pfd, target, rel, keep_dir=False)
            try:
                os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
            except PermissionError as e:
                raise ImageError(
                    f"layer entry {m.name!r}: cannot create the overlay whiteout for {rel!r}: "
                    f"{e.strerror} (loading images needs root)"
                ) from e
        finally:
            os.close(pfd)
        self.entries[rel] = {"type": "whiteout"}


def _rmtree(path: Path) -> None:
    if path.exists() or path.is_symlink():

        def onerror(func: Any, p: str, _exc: Any) -> None:
            try:
                os.chmod(os.path.dirname(p), 0o700)
                func(p)
            except OSError:
                pass

        shutil.rmtree(path, onerror=onerror)


def unpack(
    blob: IO[bytes], dest: str | os.PathLike[str], *, allow_devices: bool = False
) -> UnpackResult:
    """Extract a (gzip/zstd/plain) layer stream into the new directory ``dest``.

    ``dest`` must not exist; on any error it is removed entirely, so a refused or
    broken layer leaves nothing behind.  The stream is read to its end (so a
    verifying reader around it sees every byte).
    """
    dest = Path(dest)
    os.mkdir(dest, 0o755)
    ex: _Extractor | None = None
    stream: IO[bytes] | None = None
    try:
        ex = _Extractor(dest, allow_devices)
        stream, compression = decompressed(blob)
        hashing = _Hashing(stream)
        try:
            with tarfile.open(fileobj=io.BufferedReader(hashing, 1 << 16), mode="r|") as tar:
                for m in tar:
                    ex.add(tar, m)
        except tarfile.TarError as e:
            raise ImageError(f"layer is not a valid tar archive: {e}") from e
        except (EOFError, gzip.BadGzipFile, zlib_error()) as e:
            raise ImageError(f"layer stream is truncated or corrupt: {e}") from e
        try:
            hashing.drain()
        except (EOFError, gzip.BadGzipFile, zlib_error()) as e:
            raise ImageError(f"layer stream is truncated or corrupt: {e}") from e
        ex.finish_dirs()
        return UnpackResult(
            diff_id="sha256:" + hashing.h.hexdigest(),
            compression=compression,
            tar_bytes=hashing.count,
            entries=ex.entries,
            groups=ex.groups,
            opaque=ex.opaque,
        )
    except BaseException:
        if ex is not None:
            ex.close()
            ex = None
        _rmtree(dest)
        raise
    finally:
        if ex is not None:
            ex.close()
        if stream is not None:
            try:
                stream.close()
            except Exception:  # closing after an error must not mask it
                pass


def zlib_error() -> type[BaseException]:
    import zlib

    return zlib.error
