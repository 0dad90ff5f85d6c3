"""linux.sysctl: which keys may be set, and where they are written.

A sysctl is written only when the namespace that scopes it is the container's own, as
runc's validator decides: IPC keys need an ipc namespace, net.* a network namespace (not
the host's), kernel.domainname a uts namespace (and the domainname field's value, if it has
one). kernel.hostname is refused, as runc does: the hostname field sets it. Anything else
would change the host and is refused.
"""

from __future__ import annotations

import os

from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.spec.model import Spec

IPC_KEYS = frozenset({
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
})


def _dotted(key: str) -> str:
    """'net/ipv4/ip_forward' -> 'net.ipv4.ip_forward' (interface names keep their dots)."""
    return key.replace("/", ".") if "/" in key else key


def _path(key: str) -> str:
    """The file below /proc/sys: dots become slashes unless the key is already a path."""
    return key if "/" in key else key.replace(".", "/")


def _namespace(spec: Spec, kind: str) -> str | None:
    """'new', 'joined:<path>' or None: how the container has a namespace of this kind."""
    linux = spec.linux
    for ns in linux.namespaces if linux else []:
        if ns.type == kind:
            return f"joined:{ns.path}" if ns.path else "new"
    return None


def _is_host_ns(path: str, kind: str) -> bool:
    try:
        return os.stat(path).st_ino == os.stat(f"/proc/self/ns/{kind}").st_ino
    except OSError:
        return False


def plan_sysctls(spec: Spec) -> list[tuple[str, str]]:
    """[(path below /proc/sys, value)] in the config's order; Failure for a refused key."""
    linux = spec.linux
    if linux is None or not linux.sysctl:
        return []
    out = []
    for key, value in linux.sysctl.items():
        where = f"config.json: linux.sysctl: {key!r}"
        path = _path(key)
        parts = path.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise Failure(f"{where}: not a valid sysctl name")
        if not isinstance(value, str) or "\n" in value.rstrip("\n"):
            raise Failure(f"{where}: the value must be one line")
        _check_namespace(spec, _dotted(key), value, where)
        out.append((path, value))
    return out


def _check_namespace(spec: Spec, name: str, value: str, where: str) -> None:
    if name in IPC_KEYS or name.startswith("fs.mqueue."):
        if _namespace(spec, "ipc") is None:
            raise Failure(f"{where}: needs a new ipc namespace (not the host's)")
        return
    if name.startswith("net."):
        how = _namespace(spec, "network")
        if how is None:
            raise Failure(f"{where}: needs a new network namespace (not the host's)")
        if how.startswith("joined:") and _is_host_ns(how[7:], "net"):
            raise Failure(f"{where}: the network namespace to join is the host's")
        return
    if name == "kernel.hostname":  # refused whatever the hostname field says, as runc
        raise Failure(f"{where}: not allowed: it conflicts with the hostname field "
                      "(set hostname instead)")
    if name == "kernel.domainname":
        if _namespace(spec, "uts") is None:
            raise Failure(f"{where}: needs a new uts namespace (not the host's)")
        if spec.domainname and spec.domainname != value:
            raise Failure(f"{where}: conflicts with the domainname field "
                          f"({spec.domainname!r}); set only one, or both the same")
        return
    raise Failure(f"{where}: not in a namespace of the container's own; refusing to change "
                  "the host")
