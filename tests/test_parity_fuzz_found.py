"""Differences from runc 1.1.5 that tests/differential/ found, now fixed.  Each bundle
runs under pyruntime and under runc; both must show the container the same thing.

- A read-only tmpfs without mode= over an existing directory (with or without
  tmpcopyup): mounted writable, given the directory's mode (and, with tmpcopyup, its
  content), then remounted read-only.  An explicit mode= still wins (runc 1.1.5 chmods
  over it: a departure, tests/test_differential_mounts.py).
- process.oomScoreAdj with a new user namespace: set before any namespace applies, so
  the container sees it; a value below the runtime's own fails under both.
- With no mount namespace, a failure in the container's setup leaves none of its mounts
  in the runtime's mount namespace, however fast the runtime destroys the container
  (also tests/test_differential_mounts.py::test_no_mount_namespace_failure_leaves_no_mounts).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_differential_mounts import (
    ID_MAP,
    LEFT,
    PRIVATE_MNTNS,
    _left,
    _without_mount_namespace,
    mountinfo,
    ours,
    theirs,
    twin_bundles,
)

from support import Runtime
from support.runc import AGAINST_RUNC
from support.runc import open_tmp_path_for_userns as userns

pytestmark = AGAINST_RUNC


# -- a read-only tmpfs over an existing directory ----------------------------------------------

def test_read_only_tmpfs_takes_mode_then_goes_read_only(runtime: Runtime, bundle,
                                                        tmp_path: Path) -> None:
    dirs = {"/plain": 0o710, "/copied": 0o1750, "/explicit": 0o751}

    def setup(b) -> None:
        rootfs = b.path / "rootfs"
        for d, mode in dirs.items():
            (rootfs / d[1:] / "sub").mkdir(parents=True)
            (rootfs / d[1:] / "sub" / "f").write_text(f"image {d}\n")
            os.chmod(rootfs / d[1:], mode)
        b.config["mounts"] += [
            {"destination": "/plain", "type": "tmpfs", "source": "tmpfs",
             "options": ["ro", "nosuid", "size=1m"]},
            {"destination": "/copied", "type": "tmpfs", "source": "tmpfs",
             "options": ["tmpcopyup", "ro", "nodev"]},
            {"destination": "/fresh", "type": "tmpfs", "source": "tmpfs",
             "options": ["ro", "tmpcopyup"]},
            {"destination": "/explicit", "type": "tmpfs", "source": "tmpfs",
             "options": ["ro", "mode=700"]},
        ]
        b.config["process"]["args"] = ["sh", "-c", (
            "for d in /plain /copied /fresh /explicit; do stat -c '%a %n' $d; "
            "cat $d/sub/f 2>/dev/null || echo \"$d empty\"; "
            "touch $d/new 2>&1 | sed 's/^touch: //'; done; echo '## mountinfo'; "
            "grep -E ' /(plain|copied|fresh|explicit) ' /proc/self/mountinfo")]

    a, b = twin_bundles(bundle, setup)
    mine, runcs = ours(runtime, a).stdout, theirs(tmp_path, b).stdout
    seen_mine, _, mi_mine = mine.partition("## mountinfo\n")
    seen_runc, _, mi_runc = runcs.partition("## mountinfo\n")
    assert seen_mine.splitlines() == [
        "710 /plain", "/plain empty", "/plain/new: Read-only file system",
        "1750 /copied", "image /copied", "/copied/new: Read-only file system",
        "1777 /fresh", "/fresh empty", "/fresh/new: Read-only file system",
        "700 /explicit", "/explicit empty", "/explicit/new: Read-only file system"]
    # departure: runc 1.1.5 chmods over an explicit mode= (the config's mode wins here)
    assert seen_runc.splitlines() == [*seen_mine.splitlines()[:9], "751 /explicit",
                                      *seen_mine.splitlines()[10:]]
    assert [line.split(" - ")[0].split()[-1] for line in mountinfo(mi_mine)] == [
        "ro,nosuid,relatime", "ro,nodev,relatime", "ro,relatime", "ro,relatime"]
    assert mountinfo(mi_mine) == mountinfo(mi_runc)


# -- oomScoreAdj ------------------------------------------------------------------------------

def _user_namespace(b) -> None:
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.config["linux"]["uidMappings"] = ID_MAP
    b.config["linux"]["gidMappings"] = ID_MAP
    b.config["mounts"] = [m for m in b.config["mounts"] if m["destination"] != "/sys/fs/cgroup"]


def _has_cap_sys_resource() -> bool:
    status = Path("/proc/self/status").read_text()
    eff = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    return bool(int(eff.split()[1], 16) >> 24 & 1)  # CAP_SYS_RESOURCE is 24


@pytest.mark.parametrize("user_ns", [False, True], ids=["no-userns", "userns"])
def test_oom_score_adj_raised(runtime: Runtime, bundle, tmp_path: Path, user_ns: bool) -> None:
    userns(tmp_path)
    value = min(int(Path("/proc/self/oom_score_adj").read_text()) + 500, 1000)

    def setup(b) -> None:
        if user_ns:
            _user_namespace(b)
        b.config["process"]["oomScoreAdj"] = value
        b.config["process"]["args"] = ["cat", "/proc/self/oom_score_adj", "/proc/1/oom_score_adj"]

    a, b = twin_bundles(bundle, setup)
    mine, runcs = ours(runtime, a).stdout, theirs(tmp_path, b).stdout
    assert mine == f"{value}\n{value}\n"
    assert mine == runcs


@pytest.mark.parametrize("user_ns", [False, True], ids=["no-userns", "userns"])
def test_oom_score_adj_lowered(runtime: Runtime, bundle, tmp_path: Path, user_ns: bool) -> None:
    """Below the runtime's own value: CAP_SYS_RESOURCE decides, for both runtimes (runc's
    init writes it before any namespace applies, and fails without the capability)."""
    userns(tmp_path)

    def setup(b) -> None:
        if user_ns:
            _user_namespace(b)
        b.config["process"]["oomScoreAdj"] = -999
        b.config["process"]["args"] = ["cat", "/proc/self/oom_score_adj"]

    a, b = twin_bundles(bundle, setup)
    mine, runcs = ours(runtime, a, check=False), theirs(tmp_path, b, check=False)
    if _has_cap_sys_resource():
        assert (mine.returncode, mine.stdout) == (runcs.returncode, runcs.stdout) == (0, "-999\n")
        return
    assert mine.returncode != 0 and runcs.returncode != 0
    assert mine.stderr.strip().splitlines() == [
        'pyruntime: oom_score_adj: write "-999" to /proc/self/oom_score_adj: permission denied']
    assert "failed to update /proc/self/oom_score_adj: Permission denied" in runcs.stderr


# -- no mount namespace: a failure leaves no mounts ----------------------------------------

@pytest.mark.parametrize(("failure", "words"), [
    ("rlimit", "operation not permitted"),
    ("exec", '"/no/such/program": stat /no/such/program: no such file or directory')])
def test_no_mount_namespace_failure_detaches_before_reporting(
        runtime: Runtime, bundle, tmp_path: Path, failure: str, words: str) -> None:
    """The init fails after its mounts: `run` kills it as soon as it reads the error, so
    the mounts must be gone by then.  (runc 1.1.5 leaves them: a departure.)"""
    def setup(b) -> None:
        _without_mount_namespace(b)
        if failure == "rlimit":  # above fs.nr_open: setrlimit fails, in either init
            b.config["process"]["rlimits"] = [
                {"type": "RLIMIT_NOFILE", "hard": 2**31, "soft": 2**31}]
        else:
            b.config["process"]["args"] = ["/no/such/program"]

    a, b = twin_bundles(bundle, setup)
    for _ in range(3):  # each run is a fresh race
        mine = ours(runtime, a, prefix=tuple(PRIVATE_MNTNS), check=False,
                    after=f"cd {a.path}; {LEFT}")
        assert "## rc 1" in mine.stdout and words in mine.stderr, mine.stderr
        assert _left(mine.stdout, a.path) == []
    runcs = theirs(tmp_path, b, prefix=tuple(PRIVATE_MNTNS), check=False,
                   after=f"cd {b.path}; {LEFT}")
    assert "## rc 0" not in runcs.stdout and words in runcs.stderr.replace('\\"', '"')
    assert _left(runcs.stdout, b.path) != []
