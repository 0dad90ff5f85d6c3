"""HOME for a process whose environment has none (or an empty one), as runc's init sets
it: the home directory of process.user.uid in the container's /etc/passwd (its first
entry with that uid), or "/" when there is no such entry or no readable passwd.

The file is read from the host, resolved inside the container's root (native
pyrt_open_read_in_root: symlinks and ".." never leave it), and only if it is a regular
file.  At create that is the rootfs, or the source of the last bind mount on /etc/passwd
or /etc (podman binds a passwd of its own); for exec it is the running container's root
(/proc/PID/root), mounts included.
"""

from __future__ import annotations

import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.spec.model import Mount

PASSWD = "/etc/passwd"
MAX_PASSWD = 1 << 22


def with_home(env: list[str], root: str, uid: int, passwd: str = PASSWD) -> list[str]:
    """env with HOME set if it lacks one; env itself (same list) otherwise.  passwd is
    resolved inside root."""
    values = [e[5:] for e in env if e.startswith("HOME=")]
    if values and values[-1]:
        return env
    home = "HOME=" + home_of(root, uid, passwd)
    if not values:
        return [*env, home]
    return [home if e.startswith("HOME=") else e for e in env]


def passwd_at_create(mounts: list[Mount], rootfs: str, bundle: str) -> tuple[str, str]:
    """(root, path in it) of the passwd the process will see: a bind mount's source wins."""
    for m in reversed(mounts):
        opts = m.options
        if not m.source or not (m.type == "bind" or "bind" in opts or "rbind" in opts):
            continue
        dest = os.path.normpath("/" + m.destination.lstrip("/"))
        source = os.path.join(bundle, m.source)  # a relative source is the bundle's
        if dest == PASSWD:
            return os.path.dirname(source), os.path.basename(source)
        if dest == os.path.dirname(PASSWD):
            return source, os.path.basename(PASSWD)
        if dest == "/":
            break
    return rootfs, PASSWD


def home_of(root: str, uid: int, passwd: str = PASSWD) -> str:
    data = _read_passwd(root, passwd)
    for raw in data.split(b"\n"):
        line = raw.strip()
        if not line:
            continue
        fields = line.split(b":")
        if len(fields) > 2 and _number(fields[2]) == uid:
            return (fields[5] if len(fields) > 5 else b"").decode(errors="surrogateescape")
    return "/"


def _number(field: bytes) -> int:
    """runc's parser (Go's Atoi): a uid that is not a number counts as 0."""
    digits = field[1:] if field[:1] in (b"+", b"-") else field
    return int(field) if digits.isdigit() else 0


def _read_passwd(root: str, passwd: str) -> bytes:
    from pyruntime._native import lib

    try:
        root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        fd = lib.pyrt_open_read_in_root(root_fd, passwd.encode())
    finally:
        os.close(root_fd)
    if fd < 0:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        chunks, size = [], 0
        while size < MAX_PASSWD:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    except OSError:
        return b""
    finally:
        os.close(fd)
