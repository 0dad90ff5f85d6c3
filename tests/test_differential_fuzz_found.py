"""Differences the differential fuzzer (tests/differential/) found, fixed: the same bundle
under runc 1.1.5 and under pyruntime, compared by what the container sees.

- two linux.devices entries with one path: the first wins (runc's second mknod meets
  EEXIST and is skipped);
- a cgroup mount with a cgroup namespace: the name=systemd hierarchy is mounted afresh,
  source "systemd", as runc does (a bind of it showed the host mount's source);
- a relative mount destination (deprecated, allowed by the runtime-spec): mounted
  relative to / with a warning, as runc 1.1 does, not refused.
"""

from __future__ import annotations

from pathlib import Path

from test_differential_mounts import mountinfo, ours, theirs, twin_bundles, undated

from support import Runtime
from support.runc import AGAINST_RUNC

pytestmark = AGAINST_RUNC


def test_duplicate_device_paths_first_wins(runtime: Runtime, bundle, tmp_path: Path) -> None:
    def setup(b) -> None:
        b.config["linux"]["devices"] = [
            {"type": "c", "path": "/dev/fzdup", "major": 1, "minor": 5, "fileMode": 0o640,
             "uid": 1000, "gid": 1000},
            {"type": "c", "path": "/dev/fzdup", "major": 1, "minor": 3, "fileMode": 0o600},
            {"type": "p", "path": "/opt/fzfifo", "fileMode": 0o600},
            {"type": "c", "path": "/opt/fzfifo", "major": 1, "minor": 3, "fileMode": 0o666},
        ]
        b.config["process"]["args"] = ["sh", "-c", "ls -ln /dev/fzdup /opt/fzfifo"]

    a, b = twin_bundles(bundle, setup)
    mine, runcs = undated(ours(runtime, a).stdout), undated(theirs(tmp_path, b).stdout)
    assert mine == runcs, f"pyruntime: {mine}\nrunc:      {runcs}"
    assert [line.split()[:5] for line in mine] == [
        ["crw-r-----", "1", "1000", "1000", "1,"], ["prw-------", "1", "0", "0", "0"]], mine


def _host_has_systemd_hierarchy() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(" - cgroup " in line and "name=systemd" in line for line in f)


def test_cgroup_namespace_systemd_hierarchy(runtime: Runtime, bundle, tmp_path: Path) -> None:
    def setup(b) -> None:
        b.config["linux"]["namespaces"].append({"type": "cgroup"})
        b.config["process"]["args"] = ["sh", "-c", "grep ' - cgroup' /proc/self/mountinfo; "
                                       "ls /sys/fs/cgroup/systemd | head -3"]

    a, b = twin_bundles(bundle, setup)
    mine, runcs = ours(runtime, a).stdout, theirs(tmp_path, b).stdout
    assert mountinfo(mine) == mountinfo(runcs), f"pyruntime:\n{mine}\nrunc:\n{runcs}"
    if _host_has_systemd_hierarchy():
        systemd = [line for line in mine.splitlines() if "name=systemd" in line]
        assert len(systemd) == 1 and " / /sys/fs/cgroup/systemd " in systemd[0], mine
        assert " - cgroup systemd " in systemd[0], mine


def test_relative_mount_destination(runtime: Runtime, bundle, tmp_path: Path) -> None:
    def setup(b) -> None:
        b.config["mounts"].append({"destination": "mnt/rel", "type": "tmpfs",
                                   "source": "tmpfs", "options": ["size=1m"]})
        b.config["process"]["args"] = ["sh", "-c", "grep ' /mnt/rel ' /proc/self/mountinfo"]

    a, b = twin_bundles(bundle, setup)
    mine, runcs = ours(runtime, a), theirs(tmp_path, b)
    assert mountinfo(mine.stdout) == mountinfo(runcs.stdout), f"{mine.stdout}\n{runcs.stdout}"
    assert len(mountinfo(mine.stdout)) == 1, mine.stdout
    assert "not absolute" in mine.stderr and "not absolute" in runcs.stderr, (mine.stderr,
                                                                              runcs.stderr)
