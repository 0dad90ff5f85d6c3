"""What changes when an unprivileged user runs pyruntime (README, Rootless).

Three decisions, each as runc 1.1.5 makes them: where the state lives (`state_root`),
whether cgroup permission errors may be skipped (`enabled`, the --rootless option), and
that a caller without root needs a user namespace (`check_caller`).
"""

from __future__ import annotations

import os

from pyruntime.errors import Failure

# --root's default in pyruntime/cli/table.py, for root.
DEFAULT_ROOT = "/run/pyruntime"


def state_root(root: str) -> str:
    """--root as given, except that a rootless caller's default is
    $XDG_RUNTIME_DIR/pyruntime (runc: $XDG_RUNTIME_DIR/runc), a directory of its own."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if root == DEFAULT_ROOT and xdg and _honor_xdg():
        return os.path.join(xdg, "pyruntime")
    return root


def _honor_xdg() -> bool:
    """runc's rule: a non-root user, or root in a user namespace (rootless podman runs the
    runtime so) unless $USER says root; never the real root (its /run/user/0)."""
    if os.geteuid() != 0:
        return True
    return in_user_namespace() and os.environ.get("USER", "") != "root"


def prepare_root(option: str, root: str) -> None:
    """Before a verb uses the state root `root` (from --root `option`), as runc does.

    The $XDG_RUNTIME_DIR default is made mode 0700 with the sticky bit on every call: the
    XDG spec lets a session manager prune what lacks it there.  A non-root caller left with
    root's default (no XDG_RUNTIME_DIR) is refused naming that cause, for every verb
    alike (runc: "mkdir /run/runc: permission denied"), rather than a missing container
    or an empty list read from a directory it cannot use."""
    if root != option:
        try:
            os.makedirs(root, 0o700, exist_ok=True)
            os.chmod(root, 0o1700)
        except OSError as e:
            raise Failure(f"state root {root}: {e.strerror}: the path in $XDG_RUNTIME_DIR "
                          "must be writable by the user") from None
    elif root == DEFAULT_ROOT and os.geteuid() != 0 and not os.access(root, os.W_OK | os.X_OK):
        import errno

        raise root_failure(root, OSError(errno.EACCES, os.strerror(errno.EACCES)))


def root_failure(root: str, e: OSError) -> Failure:
    """The state root cannot be made: say why a non-root user meets this."""
    if os.geteuid() != 0 and root == DEFAULT_ROOT:
        return Failure(f"--root {root}: {e.strerror}; a non-root user's state lives in "
                       "$XDG_RUNTIME_DIR/pyruntime, and XDG_RUNTIME_DIR is not set: "
                       "set it or pass --root")
    return Failure(f"--root {root}: {e.strerror}")


# runc reads --rootless with Go's strconv.ParseBool, "" and "auto" (any case) aside
_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))


def enabled(mode: str) -> bool:
    """--rootless auto|true|false.  True: cgroups this caller may not create are left
    out (runc's rootless cgroup manager).  auto is true for a non-root caller, and for
    root inside a user namespace other than the initial one.  Checked where it is used
    (create, run), as runc does."""
    if mode in _TRUE:
        return True
    if mode in _FALSE:
        return False
    if mode.lower() not in ("", "auto"):
        raise Failure(f"--rootless {mode!r}: expected true, false or auto")
    return os.geteuid() != 0 or in_user_namespace()


def in_user_namespace() -> bool:
    """Not the initial user namespace: its uid_map is not the identity on all ids."""
    try:
        with open("/proc/self/uid_map", "rb") as f:
            fields = f.read().split()
    except OSError:
        return False
    return fields != [b"0", b"0", b"4294967295"]


def check_caller(plan) -> None:  # plan.build.Plan (not imported here)
    """Fit a container's plan to a non-root caller, or refuse it with the reason.

    Such a caller can make namespaces, mounts and devices only as the root of a user
    namespace it creates or joins (runc: "rootless container requires user namespaces").
    Without newuidmap it may map only its own uid and gid, and the kernel lets it write
    gid_map only after "deny" in /proc/PID/setgroups; so no additional groups either.
    """
    if os.geteuid() == 0:
        return
    from pyruntime.plan.linux_consts import CLONE_NEWUSER

    new = bool(plan.clone_flags & CLONE_NEWUSER)
    if not (new or any(flag == CLONE_NEWUSER for flag, _ in plan.joins)):
        raise Failure("config.json: linux.namespaces: running as a non-root user "
                      f"(uid {os.geteuid()}) needs root or a user namespace: add "
                      '{"type": "user"} with linux.uidMappings/gidMappings '
                      "(`pyruntime spec --rootless` writes such a config)")
    if new:
        plan.newuidmap = _map_writer(plan.uid_map, os.geteuid(), "uid")
        plan.newgidmap = _map_writer(plan.gid_map, os.getegid(), "gid")
        plan.deny_setgroups = plan.newgidmap is None
        check_mapped(plan)
    check_host_namespaces(plan)
    fit_process(plan)


# filesystems the kernel mounts only for the owner of a namespace the container has:
# fstype -> (that namespace's name in linux.namespaces, what works instead)
NAMESPACED_FS = {
    "mqueue": ("ipc", "a bind of the host's /dev/mqueue"),
    "sysfs": ("network", "a read-only rbind of /sys, as `pyruntime spec --rootless` writes"),
}


def check_host_namespaces(plan) -> None:  # plan.build.Plan
    """An mqueue or sysfs mount in a container that shares the host's IPC or network
    namespace fails with EPERM for a non-root caller (runc 1.1.5 too, at mount time):
    refuse it now, naming the namespace it lacks."""
    from pyruntime.plan.linux_consts import NAMESPACE_FLAGS

    for m in plan.mounts:
        need = NAMESPACED_FS.get(m.fstype or "")
        if need is None:
            continue
        name, other = need
        flag = NAMESPACE_FLAGS[name]
        if not (plan.clone_flags & flag or any(f == flag for f, _ in plan.joins)):
            raise Failure(f"config.json: mounts: {m.destination}: mounting {m.fstype} needs "
                          f"the container's own {name} namespace when not root (add "
                          f'{{"type": "{name}"}} to linux.namespaces), or {other}')


def _mapped(text: str | None, inner: int) -> bool:
    """Whether the id `inner` of the container is in the map `text` ("inner outer size")."""
    for line in (text or "").split("\n"):
        if line:
            start, _outer, size = (int(x) for x in line.split())
            if start <= inner < start + size:
                return True
    return False


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _check_user(plan, maps: dict[str, str | None], field: str) -> None:
    for kind, inner in (("uid", plan.uid), ("gid", plan.gid)):
        if not _mapped(maps[kind], inner):
            raise Failure(f"{field}{kind}: {inner} is not mapped in the container's user "
                          f"namespace (linux.{kind}Mappings)")


def check_mapped(plan) -> None:  # plan.build.Plan
    """The ids a rootless container uses must exist in its user namespace: refuse the
    config naming the field (runc: "cannot set uid to unmapped user in user namespace",
    "cannot specify gid= mount options for unmapped gid in rootless containers"), rather
    than a bare EINVAL from setresgid(2) or mount(2) in the init."""
    _check_user(plan, {"uid": plan.uid_map, "gid": plan.gid_map}, "config.json: process.user.")
    for m in plan.mounts:
        for option in (m.data or "").split(","):
            kind, _, value = option.partition("=")
            if kind in ("uid", "gid") and value.isdigit() \
                    and not _mapped(getattr(plan, f"{kind}_map"), int(value)):
                raise Failure(f"config.json: mounts: {m.destination}: option {option}: {kind} "
                              f"{value} is not mapped in the container's user namespace "
                              f"(linux.{kind}Mappings); `pyruntime spec --rootless` leaves "
                              "such options out")


def fit_process(plan, proc: str | None = None) -> None:  # plan.build.Plan
    """The container's (or an exec's) process, started by a non-root caller: setgroups(2)
    is denied in its user namespace, so additional groups cannot be set (as runc).  `proc`
    (an exec's: /proc/PID of the container's init): its user must be mapped there."""
    if os.geteuid() == 0:
        return
    if plan.groups:
        raise Failure("process.user.additionalGids: cannot set additional groups in a "
                      "rootless container (setgroups is denied in its user namespace)")
    plan.set_groups = False
    if proc is not None:
        try:
            maps = {kind: _read(f"{proc}/{kind}_map") for kind in ("uid", "gid")}
        except OSError:
            return  # the container is gone: the exec fails on joining it
        _check_user(plan, maps, "exec: process.user.")


HELPERS = {"uid": ("/usr/bin/newuidmap", "/etc/subuid"),
           "gid": ("/usr/bin/newgidmap", "/etc/subgid")}


def _map_writer(text: str | None, own: int, kind: str) -> str | None:
    """None: the caller writes this map itself, which the kernel allows for one entry of
    size 1 onto its own id.  Otherwise the setuid helper (package uidmap) that writes it,
    once every entry is the own id or inside a range /etc/sub{u,g}id grants the caller."""
    field = f"linux.{kind}Mappings"
    rows = [[int(x) for x in line.split()] for line in (text or "").split("\n") if line]
    if len(rows) == 1 and rows[0][1:] == [own, 1]:
        return None
    tool, ranges_file = HELPERS[kind]
    if not os.access(tool, os.X_OK):
        raise Failure(f"config.json: {field}: a non-root user (own {kind} {own}) can map "
                      f"only its own {kind} (one entry of size 1) without {tool} "
                      "(package uidmap) and ranges in " + ranges_file)
    granted = _subid_ranges(ranges_file, own if kind == "uid" else os.geteuid())
    for _inner, outer, size in rows:
        if not ((outer == own and size == 1)
                or any(start <= outer and outer + size <= start + count
                       for start, count in granted)):
            raise Failure(f"config.json: {field}: host {kind}s {outer}-{outer + size - 1} are "
                          f"neither the user's own {kind} ({own}) nor in its ranges in "
                          f"{ranges_file} ({granted or 'none'})")
    return tool


def _subid_ranges(path: str, uid: int) -> list[tuple[int, int]]:
    """The (start, count) ranges `path` grants to the user `uid` (by name or number)."""
    import pwd

    try:
        names = {str(uid), pwd.getpwuid(uid).pw_name}
    except KeyError:
        names = {str(uid)}
    ranges = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[0] in names:
                    ranges.append((int(fields[1]), int(fields[2])))
    except (OSError, ValueError):
        pass
    return ranges
