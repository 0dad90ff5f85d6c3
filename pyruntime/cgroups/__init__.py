"""cgroups: host detection (detect), path placement (paths), linux.resources as plan
entries (resources, systemd_unit -> settings, made at plan time), the one executor of
those entries (apply), where the init joins (joins), and the drivers behind one
interface (driver.Driver: directories, freezing, killing, stats): v1 (legacy and hybrid
hosts), v2 (unified hosts) and systemd. Verbs reach a container's driver through
from_record().
"""

from __future__ import annotations

from pyruntime.errors import Failure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyruntime.cgroups.driver import Driver


RUN_SYSTEMD = "/run/systemd/system"  # sd_booted(): systemd is PID 1


def check_systemd() -> None:
    """Refuse --systemd-cgroup where systemd is not the service manager (runc's check),
    before anything is made; never a silent fall back to cgroupfs."""
    import os

    if not os.path.isdir(RUN_SYSTEMD):
        raise Failure(f"--systemd-cgroup: systemd is not running: {RUN_SYSTEMD} does not "
                      "exist (drop --systemd-cgroup to use the cgroupfs driver)")


def for_container(cgroups_path: str | None, container_id: str,
                  rootless: bool = False, systemd: bool = False) -> Driver:
    """The driver for a new container on this host (nothing is created yet).  `rootless`
    (--rootless) without a cgroups_path: hierarchies the caller may not write are left
    out at create (Driver.skip_denied); with a path, the container must get it.

    `systemd` (--systemd-cgroup): cgroupsPath is SLICE:PREFIX:NAME and systemd makes the
    cgroup; systemd is asked here already, so an unreachable one fails before anything
    is made."""
    from pyruntime.cgroups.detect import UNIFIED, host
    from pyruntime.cgroups.paths import resolve

    h = host()
    if systemd:
        from pyruntime.cgroups.systemd import SystemdV1, SystemdV2
        from pyruntime.cgroups.systemd_unit import parse_cgroups_path

        check_systemd()
        unit_path = parse_cgroups_path(cgroups_path, container_id)
        if h.mode == UNIFIED:
            return SystemdV2.for_new(unit_path, h)
        return SystemdV1.for_new(unit_path, h)
    paths = resolve(h, cgroups_path, container_id)
    driver: Driver
    if h.mode == UNIFIED:
        from pyruntime.cgroups.v2 import V2

        driver = V2(paths, mountpoint=h.hierarchies[0].mountpoint)
    else:
        from pyruntime.cgroups.v1 import V1

        driver = V1(paths)
    driver.skip_denied = rootless and not cgroups_path
    return driver


def from_record(record: dict | None) -> Driver | None:
    """The driver of an existing container, from what state.json recorded; None when it
    has no cgroups (or, rootless, none it could make)."""
    if not record or not record.get("paths"):
        return None
    paths = dict(record.get("paths") or {})
    created = list(record.get("created") or [])
    if record.get("mode") == "systemd":
        from pyruntime.cgroups.systemd import SystemdV2

        return SystemdV2(paths, created, record.get("mountpoint", "/sys/fs/cgroup"),
                         unit=record.get("unit", ""), slice_=record.get("slice", ""),
                         version=int(record.get("version", 0)))
    if record.get("mode") == "systemd-v1":
        from pyruntime.cgroups.systemd import SystemdV1

        return SystemdV1(paths, created, unit=record.get("unit", ""),
                         slice_=record.get("slice", ""), version=int(record.get("version", 0)))
    if record.get("mode") == "v2":
        from pyruntime.cgroups.v2 import V2

        return V2(paths, created, mountpoint=record.get("mountpoint", "/sys/fs/cgroup"))
    from pyruntime.cgroups.v1 import V1

    return V1(paths, created)


def mount_dirs(driver: Driver) -> dict[str, str]:
    """{hierarchy mountpoint: the container's dir}, for the cgroup mount's binds."""
    from pyruntime.cgroups.detect import host

    points = {h.key: h.mountpoint for h in host().hierarchies}
    return {points[key]: d for key, d in driver.paths.items() if key in points}


def of_container(state: object) -> Driver:
    """The driver of a container's cgroups, for the verbs that need them."""
    driver = from_record(state.data.get("cgroup"))  # type: ignore[attr-defined]
    if driver is None:
        raise Failure(f"container {state.id} has no cgroups of its own")  # type: ignore
    return driver
