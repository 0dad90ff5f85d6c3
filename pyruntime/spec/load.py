"""Read a bundle's config.json into the typed model, with errors that name the JSON path."""

from __future__ import annotations

import os

from pyruntime import jsonio
from pyruntime.errors import Failure, errno_text
from pyruntime.spec.model import Spec
from pyruntime.spec.record import DecodeError, decode

MAX_FILE = 16 << 20  # bytes, for config.json and process.json (runc has no bound)


def read_bounded(path: str, name: str, *, nofollow: bool) -> bytes:
    """The bytes of a regular file of at most MAX_FILE bytes, else Failure naming `name`.

    Opened non-blocking (a FIFO would block the open) and checked with fstat before a
    byte is read: a symlink to /dev/zero or a FIFO fails at once.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (os.O_NOFOLLOW if nofollow else 0)
    fd = os.open(path, flags)  # OSError: the caller words it
    try:
        import stat

        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Failure(f"{name}: not a regular file")
        if st.st_size > MAX_FILE:
            raise Failure(f"{name}: {st.st_size} bytes, over the limit of {MAX_FILE}")
        chunks, size, want = [], 0, st.st_size + 1
        while True:  # the file may grow meanwhile: read to EOF, bounded
            chunk = os.read(fd, min(want, MAX_FILE + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_FILE:
                raise Failure(f"{name}: over the limit of {MAX_FILE} bytes")
            want = 1 << 20
    finally:
        os.close(fd)


def load_bundle_config(bundle: str) -> Spec:
    """Load and validate `<bundle>/config.json`; raise Failure with one clear line."""
    path = os.path.join(bundle, "config.json")
    try:
        raw = read_bounded(path, "config.json", nofollow=True)
    except FileNotFoundError:
        if not os.path.isdir(bundle):
            raise Failure(f"bundle {bundle}: no such directory") from None
        raise Failure(f"config.json: not found in bundle {bundle}") from None
    except OSError as e:
        if e.errno == 40:  # ELOOP: O_NOFOLLOW met a symlink
            raise Failure("config.json: is a symbolic link; the bundle's config.json "
                          "must be a regular file") from None
        raise Failure(f"config.json: {errno_text(e.errno)}") from None
    return parse_config(raw)


def decode_json(raw: bytes | str, cls: type, name: str) -> object:
    """JSON text into the model class `cls`; errors are one line naming `name` and the path."""
    try:
        data = jsonio.loads(raw)
    except ValueError as e:
        raise Failure(f"{name}: invalid JSON: {e}") from None
    try:
        return decode(cls, data, "")
    except DecodeError as e:
        raise Failure(f"{name}: {e}") from None


def parse_config(raw: bytes | str) -> Spec:
    """Decode and validate config.json text."""
    spec = decode_json(raw, Spec, "config.json")
    from pyruntime.spec.validate import validate

    validate(spec)
    return spec
