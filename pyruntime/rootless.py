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
    """--root as given, except that a non-root caller's default is
    $XDG_RUNTIME_DIR/pyruntime (runc: $XDG_RUNTIME_DIR/runc), a directory of its own."""
    if root == DEFAULT_ROOT and os.geteuid() != 0:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        if xdg:
            return os.path.join(xdg, "pyruntime")
    return root


def root_failure(root: str, e: OSError) -> Failure:
    """The state root cannot be made: say why a non-root user meets this."""
    if os.geteuid() != 0 and root == DEFAULT_ROOT:
        return Failure(f"--root {root}: {e.strerror}; a non-root user's state lives in "
                       "$XDG_RUNTIME_DIR/pyruntime, and XDG_RUNTIME_DIR is not set: "
                       "set it or pass --root")
    return Failure(f"--root {root}: {e.strerror}")


def enabled(mode: str) -> bool:
    """--rootless auto|true|false.  True: cgroups this caller may not create are left
    out (runc's rootless cgroup manager).  auto is true for a non-root caller, and for
    root inside a user namespace other than the initial one."""
    if mode == "true":
        return True
    if mode == "false":
        return False
    return os.geteuid() != 0 or in_user_namespace()


def in_user_namespace() -> bool:
    """Not the initial user namespace: its uid_map is not the identity on all ids."""
    try:
        with open("/proc/self/uid_map", "rb") as f:
            fields = f.read().split()
    except OSError:
        return False
    return fields != [b"0", b"0", b"4294967295"]


def check_caller(plan) -> None:  # noqa: ANN001 - plan.build.Plan (not imported here)
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
        _check_self_map(plan.uid_map, os.geteuid(), "linux.uidMappings", "uid")
        _check_self_map(plan.gid_map, os.getegid(), "linux.gidMappings", "gid")
        plan.deny_setgroups = True
    fit_process(plan)


def fit_process(plan) -> None:  # noqa: ANN001 - plan.build.Plan
    """The container's (or an exec's) process, started by a non-root caller: setgroups(2)
    is denied in its user namespace, so additional groups cannot be set (as runc)."""
    if os.geteuid() == 0:
        return
    if plan.groups:
        raise Failure("process.user.additionalGids: cannot set additional groups in a "
                      "rootless container (setgroups is denied in its user namespace)")
    plan.set_groups = False


def _check_self_map(text: str | None, own: int, field: str, kind: str) -> None:
    """Only "<n> <own id> 1" can be written by an unprivileged caller itself."""
    lines = (text or "").split("\n")
    rows = [line.split() for line in lines if line]
    if len(rows) != 1 or rows[0][1:] != [str(own), "1"]:
        raise Failure(f"config.json: {field}: a non-root user (own {kind} {own}) can map "
                      f"only its own {kind}, as one entry of size 1 (mapping ranges "
                      "through newuidmap/newgidmap is not supported)")
