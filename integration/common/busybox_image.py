"""Build a busybox OCI image offline (no registry): an OCI layout directory and an
oci-archive of it, from the host's busybox-static, with nothing but the stdlib.

    python integration/common/busybox_image.py OUT_DIR [NAME]

writes OUT_DIR/layout/ and OUT_DIR/busybox.tar (the archive `ctr images import` and
`podman load` read) and prints the image name; write_rootfs_tar() gives the same files as
one plain tarball, for `docker import`. The index entry carries both names
clients read: io.containerd.image.name (containerd) and org.opencontainers.image.ref.name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from support.oci_builder import D, F, L, LayoutBuilder, layer_tar, write_archive

DEFAULT_NAME = "docker.io/library/pyrt-busybox:latest"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def busybox_members() -> list:
    busybox = Path("/bin/busybox").read_bytes()
    applets = subprocess.run(["/bin/busybox", "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    members = [D("bin"), F("bin/busybox", busybox, 0o755), D("etc"), D("tmp", 0o1777),
               D("root", 0o700), D("proc"), D("sys"), D("dev"), D("run"), D("var"),
               D("var/tmp", 0o1777)]
    members += [L(f"bin/{a}", "busybox") for a in applets if a != "busybox"]
    members += [
        F("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                        b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        F("etc/group", b"root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"),
    ]
    return members


def build(out: Path, name: str = DEFAULT_NAME) -> Path:
    """Write out/layout and out/busybox.tar; return the archive's path."""
    layout = out / "layout"
    builder = LayoutBuilder(layout)
    image = builder.image([busybox_members()], config={
        "Cmd": ["sh"], "Env": [f"PATH={PATH}"],
        "WorkingDir": "/"}, history=["busybox-static from the host"])
    desc = dict(image.descriptor)
    desc["annotations"] = {"io.containerd.image.name": name,
                           "org.opencontainers.image.ref.name": name}
    builder.index.append(desc)
    builder.write_index()
    archive = out / "busybox.tar"
    write_archive(layout, archive)
    return archive


def write_rootfs_tar(path: Path) -> None:
    """The same files as one plain rootfs tarball (what `docker import` reads)."""
    path.write_bytes(layer_tar(busybox_members()))


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    build(target, sys.argv[2] if len(sys.argv) > 2 else DEFAULT_NAME)
    print(sys.argv[2] if len(sys.argv) > 2 else DEFAULT_NAME)
