"""A busybox-static root filesystem: built once (a template), cloned per bundle.

Bundle.busybox and the pytest plugin's oci_bundle fixture use it, as pyruntime's own
tests do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DIRS = ("bin", "proc", "sys", "dev", "tmp", "etc", "root", "mnt", "home", "var/tmp")


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path
    raise FileNotFoundError("busybox not found: apt-get install busybox-static (make setup does)")


def build_busybox_rootfs(dest: Path) -> Path:
    """Create a rootfs at *dest*: /bin/busybox, a symlink per applet, the usual empty
    directories, a minimal /etc/passwd and /etc/group.  Returns *dest*."""
    busybox = find_busybox()
    dest.mkdir(parents=True, exist_ok=True)
    for name in DIRS:
        (dest / name).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    target = dest / "bin" / "busybox"
    shutil.copy2(busybox, target)
    applets = subprocess.run(
        [str(target), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (dest / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    (dest / "etc" / "hostname").write_text("rootfs\n")
    return dest


def clone_rootfs(template: Path, dest: Path) -> Path:
    """Copy *template* to *dest* cheaply: symlinks as symlinks, regular files hard-linked.

    Hard links share inodes with the session template, so a test must not modify a file
    in place (creating, removing and renaming files is fine)."""
    shutil.copytree(template, dest, symlinks=True, copy_function=os.link)
    return dest
