"""The planner's decisions, checked without root: flags, mounts, devices, capabilities."""

from __future__ import annotations

import json
import os

import pytest

from pyruntime.errors import Failure
from pyruntime.plan import linux_consts as k
from pyruntime.plan.build import build_plan
from pyruntime.plan.mount_options import parse_options
from pyruntime.spec.default import default_spec
from pyruntime.spec.load import parse_config


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "file.txt").write_text("x")
    return tmp_path


def _plan(bundle, mutate=None, **kw):
    spec = default_spec()
    if mutate:
        mutate(spec)
    return build_plan(parse_config(json.dumps(spec)), str(bundle), "/fifo", **kw)


def test_default_plan(bundle) -> None:
    plan = _plan(bundle)
    assert plan.clone_flags == (k.CLONE_NEWPID | k.CLONE_NEWNET | k.CLONE_NEWIPC
                                | k.CLONE_NEWUTS | k.CLONE_NEWNS)
    assert plan.joins == []
    assert plan.uid_map is None
    assert plan.loopback_up
    assert plan.rootfs == os.path.realpath(bundle / "rootfs")
    assert plan.readonly_root
    assert plan.root_propagation_pre == k.MS_SLAVE | k.MS_REC
    assert plan.hostname == "pyruntime"
    assert plan.path_search.startswith("/usr/local/sbin:")
    bits = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE, KILL, NET_BIND_SERVICE
    assert plan.set_caps and plan.caps["bounding"] == bits and plan.caps["inheritable"] == 0
    assert plan.rlimits == [(7, "RLIMIT_NOFILE", 1024, 1024)]
    assert plan.umask == 0o022
    dev = {d.path: d for d in plan.devices}
    assert dev["/dev/null"].mode == k.S_IFCHR | 0o666 and (dev["/dev/null"].major,
                                                             dev["/dev/null"].minor) == (1, 3)
    assert ("/proc/self/fd", "/dev/fd") in plan.symlinks
    sysfs = next(m for m in plan.mounts if m.destination == "/sys")
    assert sysfs.flags == k.MS_NOSUID | k.MS_NOEXEC | k.MS_NODEV | k.MS_RDONLY
    tmpfs = next(m for m in plan.mounts if m.destination == "/dev")
    assert tmpfs.data == "mode=755,size=65536k" and tmpfs.flags & k.MS_STRICTATIME


def test_options_table() -> None:
    o = parse_options(["rbind", "ro", "rw", "nosuid", "rprivate", "size=1m", "mode=700"])
    assert o.flags == k.MS_BIND | k.MS_REC | k.MS_NOSUID
    assert o.propagation == k.MS_PRIVATE | k.MS_REC
    assert o.data == "size=1m,mode=700"


def test_bind_mounts_resolve_source_and_kind(bundle) -> None:
    def mutate(spec):
        spec["mounts"] += [
            {"destination": "/f", "type": "bind", "source": "file.txt", "options": ["ro"]},
            {"destination": "/d", "source": "rootfs", "options": ["rbind"]},
        ]

    plan = _plan(bundle, mutate)
    f, d = plan.mounts[-2], plan.mounts[-1]
    assert f.source == str(bundle / "file.txt") and f.is_file and f.fstype is None
    assert f.flags == k.MS_BIND | k.MS_RDONLY
    assert not d.is_file and d.flags == k.MS_BIND | k.MS_REC


def test_user_namespace_maps_and_joins(bundle) -> None:
    def mutate(spec):
        spec["linux"]["namespaces"] += [{"type": "user"},
                                        {"type": "cgroup", "path": "/proc/self/ns/cgroup"}]
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    plan = _plan(bundle, mutate)
    assert plan.clone_flags & k.CLONE_NEWUSER
    assert plan.uid_map == "0 100000 65536\n" and plan.gid_map == "0 100000 65536\n"
    assert plan.joins == [(k.CLONE_NEWCGROUP, "/proc/self/ns/cgroup")]
    assert all(d.bind_from_host for d in plan.devices)


def test_user_namespace_is_joined_first(bundle) -> None:
    def mutate(spec):
        spec["linux"]["namespaces"] = [{"type": "network", "path": "/proc/self/ns/net"},
                                       {"type": "user", "path": "/proc/self/ns/user"},
                                       {"type": "mount"}]
        spec.pop("hostname")

    plan = _plan(bundle, mutate)
    assert [flag for flag, _ in plan.joins] == [k.CLONE_NEWUSER, k.CLONE_NEWNET]
    assert not plan.loopback_up


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: s["process"]["capabilities"].update(bounding=["CAP_NOPE"]),
     "process.capabilities.bounding: unknown capability 'CAP_NOPE'"),
    (lambda s: s["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}),
     "process.rlimits[1].type: unknown rlimit 'RLIMIT_BOGUS'"),
    (lambda s: s["mounts"].append({"destination": "/x", "type": "bind", "source": "/nonexist"}),
     "mounts[7].source: /nonexist: No such file or directory"),
    (lambda s: s["mounts"].append({"destination": "/x", "source": "x"}),
     "mounts[7].type: required unless the mount is a bind mount"),
    (lambda s: s["linux"]["namespaces"].append({"type": "cgroup", "path": "/proc/nope/ns/x"}),
     "linux.namespaces[5].path: /proc/nope/ns/x: no such namespace file"),
    (lambda s: s["root"].update(path="missing"), "root.path:"),
    (lambda s: s["linux"].update(devices=[{"type": "x", "path": "/dev/x"}]),
     "linux.devices[0].type: unknown device type 'x'"),
    # anywhere in the rootfs (tests/test_differential_mounts.py), but a full path below /
    (lambda s: s["linux"].update(devices=[{"type": "p", "path": "dev/x"}]),
     "linux.devices[0].path: must be an absolute path below /: 'dev/x'"),
    (lambda s: s["linux"].update(devices=[{"type": "p", "path": "//"}]),
     "linux.devices[0].path: must be an absolute path below /: '//'"),
])
def test_plan_refusals_name_the_field(bundle, mutate, message) -> None:
    with pytest.raises(Failure, match="^config.json: ") as info:
        _plan(bundle, mutate)
    assert message in str(info.value)


def test_tmpfs_keeps_dir_mode_unless_mode_given(bundle) -> None:
    def mutate(s):
        s["mounts"] += [{"destination": "/a", "type": "tmpfs", "source": "tmpfs"},
                        {"destination": "/b", "type": "tmpfs", "source": "tmpfs",
                         "options": ["size=1m", "mode=0700"]}]
    a, b = _plan(bundle, mutate).mounts[-2:]
    assert a.keep_dir_mode and not b.keep_dir_mode


def test_shared_root_propagation_is_applied_after_pivot(bundle) -> None:
    plan = _plan(bundle, lambda s: s["linux"].update(rootfsPropagation="rshared"))
    assert plan.root_propagation_pre == k.MS_SLAVE | k.MS_REC
    assert plan.root_propagation_post == k.MS_SHARED | k.MS_REC
