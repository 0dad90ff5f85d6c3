"""linux.sysctl (written only in the container's own namespaces, through a private procfs)
and the LSM fields this host cannot honour (refused, naming the field)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import Runtime, assert_clean_failure

pytestmark = pytest.mark.root


def host_value(path: str) -> str:
    return Path("/proc/sys", path).read_text().strip()


def test_sysctls_in_the_containers_namespaces(runtime: Runtime, bundle) -> None:
    before = {p: host_value(p) for p in ("net/ipv4/ip_forward", "kernel/shmmni",
                                          "fs/mqueue/msg_max", "kernel/domainname")}
    b = bundle(["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni "
                "/proc/sys/fs/mqueue/msg_max /proc/sys/net/ipv4/conf/lo/forwarding "
                "/proc/sys/kernel/domainname"])
    b.config["linux"]["sysctl"] = {
        "net.ipv4.ip_forward": "1",
        "kernel.shmmni": "1234",
        "fs.mqueue.msg_max": "77",
        "net/ipv4/conf/lo/forwarding": "1",  # the path form
        "kernel.domainname": "example.test",
    }
    b.write()
    out = runtime.run_bundle(b, "c1").stdout.split()
    assert out == ["1", "1234", "77", "1", "example.test"]
    # the host's values did not move
    assert {p: host_value(p) for p in before} == before


def test_sysctl_written_before_readonly_proc_sys(runtime: Runtime, bundle) -> None:
    # /proc/sys is a readonlyPath: the write must still happen, and the container still
    # cannot change it itself
    b = bundle(["sh", "-c", "cat /proc/sys/net/ipv4/ip_default_ttl; "
                "echo 12 > /proc/sys/net/ipv4/ip_default_ttl 2>/dev/null && echo RW || echo RO"])
    b.config["linux"]["sysctl"] = {"net.ipv4.ip_default_ttl": "99"}
    b.write()
    assert runtime.run_bundle(b, "c1").stdout.split() == ["99", "RO"]


NO_NETNS = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
NO_IPCNS = [{"type": t} for t in ("pid", "network", "uts", "mount")]
NO_UTSNS = [{"type": t} for t in ("pid", "network", "ipc", "mount")]


@pytest.mark.pyruntime_only
@pytest.mark.parametrize("sysctl, namespaces, mentions", [
    ({"net.ipv4.ip_forward": "1"}, NO_NETNS, "needs a new network namespace"),
    ({"kernel.shmmax": "1"}, NO_IPCNS, "needs a new ipc namespace"),
    ({"fs.mqueue.queues_max": "1"}, NO_IPCNS, "needs a new ipc namespace"),
    ({"kernel.domainname": "x"}, NO_UTSNS, "needs a new uts namespace"),
    ({"kernel.hostname": "x"}, None, "conflicts with the hostname field"),
    ({"vm.swappiness": "1"}, None, "refusing to change the host"),
    ({"kernel.pid_max": "1"}, None, "refusing to change the host"),
    ({"net/../kernel/x": "1"}, None, "not a valid sysctl name"),
    ({"net.ipv4.no_such_key": "1"}, None, "No such file"),
], ids=["net", "ipc", "mqueue", "uts", "hostname", "vm", "kernel", "dotdot", "unknown"])
def test_refused_sysctls(runtime: Runtime, bundle, sysctl: dict, namespaces: list | None,
                         mentions: str) -> None:
    b = bundle()
    b.config["linux"]["sysctl"] = sysctl
    if namespaces is not None:
        b.config["linux"]["namespaces"] = namespaces
        if not any(n["type"] == "uts" for n in namespaces):
            del b.config["hostname"]
    b.write()
    result = runtime.run("create", "--bundle", b, "c1")
    line = assert_clean_failure(result, runtime, "c1", mentions)
    assert "sysctl" in line


@pytest.mark.pyruntime_only
@pytest.mark.parametrize("field, overrides", [
    ("process.apparmorProfile", {"process": {"apparmorProfile": "docker-default"}}),
    ("process.selinuxLabel", {"process": {"selinuxLabel": "system_u:system_r:svirt_lxc_net_t:s0"}}),
    ("linux.mountLabel", {"linux": {"mountLabel": "system_u:object_r:svirt_sandbox_file_t:s0"}}),
])
def test_lsm_fields_are_refused(runtime: Runtime, bundle, field: str, overrides: dict) -> None:
    b = bundle(overrides=overrides)
    result = runtime.run("create", "--bundle", b, "c1")
    line = assert_clean_failure(result, runtime, "c1", field)
    assert "not enabled on this host" in line or "not supported" in line
