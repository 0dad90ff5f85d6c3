"""Parsing of skopeo-style references: oci:DIR[:TAG] and oci-archive:FILE[:TAG]."""

import pytest

from pyruntime.image import ImageError
from pyruntime.image.reference import ImageRef, parse_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "text, expected",
    [
        ("oci:/srv/img", ImageRef("oci", "/srv/img")),
        ("oci:/srv/img:latest", ImageRef("oci", "/srv/img", tag="latest")),
        ("oci:rel/dir:v1.2", ImageRef("oci", "rel/dir", tag="v1.2")),
        ("oci-archive:/tmp/a.tar", ImageRef("oci-archive", "/tmp/a.tar")),
        ("oci-archive:/tmp/a.tar:busybox", ImageRef("oci-archive", "/tmp/a.tar", tag="busybox")),
        # ref.name annotations may hold full names: everything after the first ':' is the tag
        (
            "oci:/srv/img:docker.io/library/busybox:1.36",
            ImageRef("oci", "/srv/img", tag="docker.io/library/busybox:1.36"),
        ),
        (f"oci:/srv/img@{D}", ImageRef("oci", "/srv/img", digest=D)),
        (f"oci:/srv/img:@{D}", ImageRef("oci", "/srv/img", digest=D)),
        (f"oci-archive:x.tar@{D}", ImageRef("oci-archive", "x.tar", digest=D)),
    ],
)
def test_parse(text, expected):
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text, msg",
    [
        ("docker://busybox", "expected oci:DIR"),
        ("/srv/img", "expected oci:DIR"),
        ("oci:", "empty path"),
        ("oci:/srv/img:", "empty tag"),
        ("oci:/srv/img@sha256:abc", "malformed digest"),
        (f"oci:/srv/img:v1@{D}", "both a tag and a digest"),
        ("oci:/srv/img:a b", "whitespace"),
    ],
)
def test_refused(text, msg):
    with pytest.raises(ImageError, match=msg):
        parse_reference(text)


def test_str_roundtrip():
    for text in ("oci:/a:t", f"oci:/a@{D}", "oci-archive:/b.tar"):
        assert str(parse_reference(text)) == text
