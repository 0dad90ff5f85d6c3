"""Parse skopeo-style image references: ``oci:DIR[:TAG]`` and ``oci-archive:FILE[:TAG]``.

The part after the first ``:`` following the path is the reference, as skopeo splits it
(so the path itself cannot contain ``:``).  The reference is a tag (matched against the
``org.opencontainers.image.ref.name`` annotation) or a digest written ``@sha256:HEX``
(``oci:DIR@sha256:HEX`` and ``oci:DIR:@sha256:HEX`` are both accepted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyruntime.image import ImageError

TRANSPORTS = ("oci", "oci-archive")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference; exactly one of tag/digest may be set, or neither."""

    transport: str
    path: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        if self.digest:
            return f"{self.transport}:{self.path}@{self.digest}"
        if self.tag:
            return f"{self.transport}:{self.path}:{self.tag}"
        return f"{self.transport}:{self.path}"


def is_digest(text: str) -> bool:
    """True for a well-formed ``sha256:<64 lowercase hex>`` digest."""
    return bool(_DIGEST_RE.match(text))


def parse_reference(text: str) -> ImageRef:
    """Parse ``oci:DIR[:TAG|@DIGEST]`` or ``oci-archive:FILE[:TAG|@DIGEST]``."""
    transport, sep, rest = text.partition(":")
    if not sep or transport not in TRANSPORTS:
        raise ImageError(
            f"image reference {text!r}: expected oci:DIR[:TAG] or oci-archive:FILE[:TAG]"
        )
    digest: str | None = None
    tag: str | None = None
    at = rest.rfind("@sha256:")
    if at != -1:
        candidate = rest[at + 1 :]
        if not is_digest(candidate):
            raise ImageError(f"image reference {text!r}: malformed digest {candidate!r}")
        digest = candidate
        path = rest[:at]
        if path.endswith(":"):
            path = path[:-1]
        if ":" in path:
            raise ImageError(f"image reference {text!r}: both a tag and a digest given")
    else:
        path, sep, ref = rest.partition(":")
        if sep:
            if not ref:
                raise ImageError(f"image reference {text!r}: empty tag")
            if any(c.isspace() or c == "\0" for c in ref):
                raise ImageError(f"image reference {text!r}: tag has whitespace")
            tag = ref
    if not path:
        raise ImageError(f"image reference {text!r}: empty path")
    return ImageRef(transport=transport, path=path, tag=tag, digest=digest)
