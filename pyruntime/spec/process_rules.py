"""The rules a process object follows beyond its shape: the one check for config.json's
process (create, run) and for an exec'd one (process.json or exec's flags).

Integer ranges are not here: the model declares them and the decoder checks them
(spec/model.py, spec/record.py). `where` is the JSON path prefix of the process in the
error, e.g. "config.json: process." or "process.json: ".
"""

from __future__ import annotations

from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.spec.model import Process

CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
LSM_MARKERS = {"AppArmor": "/sys/kernel/security/apparmor", "SELinux": "/sys/fs/selinux/enforce"}


def check_process(p: Process, where: str) -> None:
    """Raise Failure, naming the field under `where`, for the first rule `p` breaks."""
    from pyruntime.plan.linux_consts import CAPABILITIES, RLIMITS

    if not p.args:
        raise Failure(f"{where}args: must name the program to run")
    if not p.cwd.startswith("/"):
        raise Failure(f"{where}cwd: must be an absolute path: {p.cwd!r}")
    for i, e in enumerate(p.env):
        if "=" not in e:
            raise Failure(f"{where}env[{i}]: expected KEY=VALUE, got {e!r}")
    if p.capabilities is not None:
        for field in CAPABILITY_SETS:
            for name in getattr(p.capabilities, field) or []:
                if name not in CAPABILITIES:
                    raise Failure(f"{where}capabilities.{field}: unknown capability {name!r}")
    for j, r in enumerate(p.rlimits):
        if r.type not in RLIMITS:
            raise Failure(f"{where}rlimits[{j}].type: unknown rlimit {r.type!r}")
        if r.soft > r.hard:
            raise Failure(f"{where}rlimits[{j}]: {r.type} soft limit above hard")
    if p.apparmor_profile:
        refuse_lsm(f"{where}apparmorProfile", "AppArmor")
    if p.selinux_label:
        refuse_lsm(f"{where}selinuxLabel", "SELinux")


def refuse_lsm(field: str, lsm: str) -> None:
    """This runtime applies no LSM labels: refuse a process (or mount label) that asks for
    one rather than run it unconfined."""
    import os

    why = ("is not supported by pyruntime" if os.path.exists(LSM_MARKERS[lsm])
           else "is not enabled on this host")
    raise Failure(f"{field}: {lsm} {why}; remove the field to run without it")
