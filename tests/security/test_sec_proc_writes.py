"""CVE-2025-52881: the runtime's writes to /proc are redirected by mounts the container
made, so that a value meant for the container's own sysctl or oom_score_adj lands in a
file the attacker chose: a file of the rootfs, a tmpfs, or another procfs file (the
host's /proc/sys/kernel/core_pattern, /proc/sysrq-trigger). A procfs file bound over
the target passes an fstatfs(PROC_SUPER_MAGIC) check on a file opened by path.

The attacks: config.json mounts over the very file init writes, before init writes it:
- linux.sysctl sets kernel.domainname while /proc/sys/kernel/domainname is covered by a
  bind of another procfs file, by a bind of a file of the rootfs, or /proc/sys/kernel by a
  tmpfs;
- process.oomScoreAdj is set while /proc/1/oom_score_adj (init is pid 1) is covered by a
  bind of another procfs file, named directly or through /proc/self.
The procfs file the tests redirect to is /proc/sys/kernel/hostname (and, for
oom_score_adj, /proc/sys/kernel/domainname): a real procfs file like core_pattern, but
scoped to the writer's uts namespace (the container's own), so a failing defence changes
nothing outside the container and shows as the host or domain name.

Defence (native/procfs.c): init writes through a private procfs, a detached proc mount
no mount of the container covers, with lookups that cross no mount and follow no link,
and checks every fd it writes with fstatfs. The tests read the real values through views
no mount can redirect: a fresh procfs mounted by the container (given CAP_SYS_ADMIN for
it), uname(2) (`hostname`), and /proc/<pid> of a child (not pid 1).
No LSM label is written to /proc/self/attr: those config fields are refused
(tests/test_sysctl_lsm.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Runtime

pytestmark = pytest.mark.root

VALUE = "sysctl-wrote-this"
REDIRECT = "/proc/sys/kernel/hostname"  # procfs; uts-scoped: harmless if written
OOM_REDIRECT = "/proc/sys/kernel/domainname"
HOSTNAME = "pyrt-proc-writes"


def covering(kind: str, rootfs: Path) -> dict:
    if kind == "procfs-file":
        return {"destination": "/proc/sys/kernel/domainname", "type": "bind",
                "source": REDIRECT, "options": ["bind"]}
    if kind == "rootfs-file":
        return {"destination": "/proc/sys/kernel/domainname", "type": "bind",
                "source": str(rootfs / "etc" / "attacker"), "options": ["bind"]}
    return {"destination": "/proc/sys/kernel", "type": "tmpfs", "source": "tmpfs",
            "options": ["mode=755"]}


@pytest.mark.parametrize("kind", ["procfs-file", "rootfs-file", "tmpfs"])
def test_sysctl_is_written_to_the_kernel_not_the_covering_file(runtime: Runtime, bundle,
                                                                kind: str) -> None:
    script = ("mount -t proc proc /fresh-proc && "
              "cat /fresh-proc/sys/kernel/domainname; "
              "cat /proc/sys/kernel/domainname || echo no-such-file; hostname; cat /etc/attacker")
    b = bundle(["sh", "-c", script], {"hostname": HOSTNAME,
                                      "linux": {"sysctl": {"kernel.domainname": VALUE}}})
    with_a_procfs_view(b.config)
    (Path(b.rootfs) / "etc" / "attacker").write_text("attacker's file\n")
    b.config["mounts"].append(covering(kind, Path(b.rootfs)))
    b.write()
    res = runtime.run_bundle(b, "p1", check=False)
    assert res.returncode == 0, res.stderr
    real, seen, host, attacker = res.stdout.splitlines()
    assert real == VALUE  # a procfs no mount covers: the kernel's value for the container
    assert seen == {"procfs-file": HOSTNAME, "rootfs-file": "attacker's file",
                    "tmpfs": "no-such-file"}[kind]  # the cover was in place
    assert host == HOSTNAME  # uname(2): the redirect target was not written
    assert attacker == "attacker's file"
    assert (Path(b.rootfs) / "etc" / "attacker").read_text() == "attacker's file\n"
    assert runtime.state_dirs() == []


@pytest.mark.parametrize("dest", ["/proc/1/oom_score_adj", "/proc/self/oom_score_adj"])
def test_oom_score_adj_is_written_to_init_not_the_covering_file(runtime: Runtime, bundle,
                                                                 dest: str) -> None:
    # init is pid 1; cat is a child (its /proc/<pid> is not covered) and inherited the value
    script = ("cat /proc/sys/kernel/domainname; cat /proc/self/oom_score_adj; "
              "cat /proc/1/oom_score_adj")
    b = bundle(["sh", "-c", script], {"process": {"oomScoreAdj": 123}})
    b.config["mounts"].append({"destination": dest, "type": "bind", "source": OOM_REDIRECT,
                               "options": ["bind"]})
    b.write()
    res = runtime.run_bundle(b, "p1", check=False)
    assert res.returncode == 0, res.stderr
    domain, real, seen = res.stdout.splitlines()
    assert domain == "(none)", res.stdout  # the redirect target was not written
    assert real == "123", res.stdout  # the process got its oom_score_adj
    assert seen == "(none)", res.stdout  # /proc/1/oom_score_adj was covered all along


def test_without_a_cover_the_values_are_set(runtime: Runtime, bundle) -> None:
    """The control: the same settings reach the kernel, seen through the same views."""
    b = bundle(["sh", "-c", "cat /proc/sys/kernel/domainname /proc/1/oom_score_adj"],
               {"process": {"oomScoreAdj": 123},
                "linux": {"sysctl": {"kernel.domainname": VALUE}}})
    res = runtime.run_bundle(b, "p1", check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [VALUE, "123"]


def with_a_procfs_view(config: dict) -> None:
    """CAP_SYS_ADMIN and an empty /fresh-proc, for the container to mount a procfs of its
    own there: the test's view of the values, which no mount of the config covers."""
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_SYS_ADMIN")
    config["mounts"].append({"destination": "/fresh-proc", "type": "tmpfs",
                             "source": "tmpfs", "options": ["nosuid", "nodev"]})
