"""CVE-2025-52881: the runtime's writes to /proc are redirected by mounts the container
made, so that a value meant for the container's own sysctl or oom_score_adj lands in a
file the attacker chose: a file of the rootfs, a tmpfs, or another procfs file (the
host's /proc/sys/kernel/core_pattern, /proc/sysrq-trigger). A procfs file bound over
the target passes an fstatfs(PROC_SUPER_MAGIC) check on a file opened by path.

The attacks: config.json mounts over the very file init writes, before init writes it:
- linux.sysctl sets kernel.hostname while /proc/sys/kernel/hostname is covered by a bind
  of another procfs file, by a bind of a file of the rootfs, or /proc/sys/kernel by a
  tmpfs;
- process.oomScoreAdj is set while /proc/1/oom_score_adj (init is pid 1) is covered by a
  bind of another procfs file, named directly or through /proc/self.
The procfs file the tests redirect to is /proc/sys/kernel/domainname: a real procfs file
like core_pattern, but scoped to the writer's uts namespace (the container's own), so a
failing defence changes nothing outside the container and shows as the domain name.

Defence (native/procfs.c): init writes through a private procfs, a detached proc mount
no mount of the container covers, with lookups that cross no mount and follow no link,
and checks every fd it writes with fstatfs. The tests read the real values through views
no mount can redirect: uname(2) (`hostname`), and /proc/<pid> of a child (not pid 1).
No LSM label is written to /proc/self/attr: those config fields are refused
(tests/test_sysctl_lsm.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Runtime

pytestmark = pytest.mark.root

VALUE = "sysctl-wrote-this"
REDIRECT = "/proc/sys/kernel/domainname"  # procfs; uts-scoped: harmless if written


def covering(kind: str, rootfs: Path) -> dict:
    if kind == "procfs-file":
        return {"destination": "/proc/sys/kernel/hostname", "type": "bind",
                "source": REDIRECT, "options": ["bind"]}
    if kind == "rootfs-file":
        return {"destination": "/proc/sys/kernel/hostname", "type": "bind",
                "source": str(rootfs / "etc" / "attacker"), "options": ["bind"]}
    return {"destination": "/proc/sys/kernel", "type": "tmpfs", "source": "tmpfs",
            "options": ["mode=755"]}


@pytest.mark.parametrize("kind", ["procfs-file", "rootfs-file", "tmpfs"])
def test_sysctl_is_written_to_the_kernel_not_the_covering_file(runtime: Runtime, bundle,
                                                                kind: str) -> None:
    script = ("hostname; cat /proc/sys/kernel/hostname || echo no-such-file; "
              "cat /proc/sys/kernel/domainname || echo no-such-file; cat /etc/attacker")
    b = bundle(["sh", "-c", script], {"linux": {"sysctl": {"kernel.hostname": VALUE}}})
    del b.config["hostname"]  # kernel.hostname may then be set by sysctl (runc's rule)
    (Path(b.rootfs) / "etc" / "attacker").write_text("attacker's file\n")
    b.config["mounts"].append(covering(kind, Path(b.rootfs)))
    b.write()
    res = runtime.run_bundle(b, "p1", check=False)
    assert res.returncode == 0, res.stderr
    real, seen, domain, attacker = res.stdout.splitlines()
    assert real == VALUE  # uname(2): the kernel's value for the container's uts namespace
    assert seen == {"procfs-file": "(none)", "rootfs-file": "attacker's file",
                    "tmpfs": "no-such-file"}[kind]  # the cover was in place
    if kind != "tmpfs":
        assert domain == "(none)"  # the redirect target was not written
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
    b.config["mounts"].append({"destination": dest, "type": "bind", "source": REDIRECT,
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
    b = bundle(["sh", "-c", "hostname; cat /proc/sys/kernel/hostname /proc/1/oom_score_adj"],
               {"process": {"oomScoreAdj": 123}, "linux": {"sysctl": {"kernel.hostname": VALUE}}})
    del b.config["hostname"]
    b.write()
    res = runtime.run_bundle(b, "p1", check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [VALUE, VALUE, "123"]
