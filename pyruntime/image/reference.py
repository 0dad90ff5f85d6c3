"""Parse skopeo-style image references: ``oci:DIR[:TAG]``, ``oci-archive:FILE[:TAG]``,
``docker-archive:FILE[:NAME:TAG]`` (local files), and ``docker://HOST[:PORT]/NAME[:TAG]``
(a registry; see ``parse_docker``).

The part after the first ``:`` following the path is the reference, as skopeo splits it
(so the path itself cannot contain ``:``).  The reference is a tag (matched against the
``org.opencontainers.image.ref.name`` annotation) or a digest written ``@sha256:HEX``
(``oci:DIR@sha256:HEX`` and ``oci:DIR:@sha256:HEX`` are both accepted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyruntime.image import ImageError

TRANSPORTS = ("oci", "oci-archive", "docker-archive")
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
        hint = "; docker:// is for `image pull`" if transport == "docker" else ""
        raise ImageError(
            f"image reference {text!r}: expected oci:DIR[:TAG], oci-archive:FILE[:TAG] "
            f"or docker-archive:FILE[:NAME:TAG]{hint}"
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


DOCKER_HUB = "registry-1.docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")


@dataclass(frozen=True)
class DockerRef:
    """``docker://HOST[:PORT]/NAME[:TAG|@sha256:DIGEST]``: where to find an image.

    ``name`` is the reference as given, without ``docker://``: the image's name in the
    store (what ``run --image`` and ``image inspect`` take)."""

    host: str
    repository: str
    tag: str | None
    digest: str | None
    name: str

    @property
    def reference(self) -> str:
        """What the manifest URL names: the digest, else the tag (``latest`` by default)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return "docker://" + self.name


def parse_docker(text: str) -> DockerRef:
    """Parse ``docker://HOST[:PORT]/NAME[:TAG|@DIGEST]``.

    The first component is the registry host when it has a ``.`` or a ``:`` or is
    ``localhost``, as docker decides; otherwise the image is on Docker Hub (and a
    one-component name is under ``library/``).
    """
    if not text.startswith("docker://"):
        raise ImageError(f"image reference {text!r}: expected docker://HOST[:PORT]/NAME[:TAG]")
    name = text[len("docker://"):]
    rest, digest = name, None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not is_digest(digest):
            raise ImageError(f"image reference {text!r}: malformed digest {digest!r}")
    first, slash, path = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host = first
        if not _HOST_RE.match(host):
            raise ImageError(f"image reference {text!r}: bad registry host {host!r}")
    else:
        host, path = DOCKER_HUB, rest
        if "/" not in path:
            path = "library/" + path
    tag = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1:]
        if not _TAG_RE.match(tag):
            raise ImageError(f"image reference {text!r}: bad tag {tag!r}")
    if not path or not _REPO_RE.match(path):
        raise ImageError(
            f"image reference {text!r}: bad repository name {path!r} "
            "(lowercase letters, digits, separators . _ - and /)"
        )
    return DockerRef(host=host, repository=path, tag=tag, digest=digest, name=name)
