"""Namespaces: new ones, the host's when not listed, joined by path, user mappings, uts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from support import Runtime

pytestmark = pytest.mark.root

# OCI namespace type -> /proc/PID/ns/ file name
NS_FILE = {
    "pid": "pid",
    "network": "net",
    "ipc": "ipc",
    "uts": "uts",
    "mount": "mnt",
    "cgroup": "cgroup",
    "user": "user",
    "time": "time",
}
ID_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
USERNS = {"linux": {"uidMappings": ID_MAP, "gidMappings": ID_MAP}}
SLEEP = ["sleep", "1000"]


def traversable(path) -> None:
    """Let a container root mapped to an unprivileged host uid reach the bundle: pytest makes
    its temp dirs 0700 (the state root stays 0700: the runtime must cope, as runc does)."""
    p = Path(path)
    while p != p.parent and str(p).startswith(tempfile.gettempdir() + "/"):
        if p.stat().st_mode & 0o7777 == 0o700:
            p.chmod(0o711)
        p = p.parent


def host_ns(ns_type: str) -> str:
    return os.readlink(f"/proc/self/ns/{NS_FILE[ns_type]}")


def with_namespaces(config: dict, entries: list[dict]) -> dict:
    """Replace the entries of the given types in config's namespace list (in place)."""
    types = {e["type"] for e in entries}
    config["linux"]["namespaces"] = [
        ns for ns in config["linux"]["namespaces"] if ns["type"] not in types
    ] + entries
    return config


def without_namespace(config: dict, ns_type: str) -> dict:
    config["linux"]["namespaces"] = [
        ns for ns in config["linux"]["namespaces"] if ns["type"] != ns_type
    ]
    if ns_type == "uts":
        config.pop("hostname", None)  # a hostname needs a uts namespace
    return config


def readlink_script(ns_type: str) -> list[str]:
    return ["readlink", f"/proc/self/ns/{NS_FILE[ns_type]}"]


@pytest.mark.parametrize("ns_type", list(NS_FILE))
def test_new_namespace(runtime: Runtime, bundle, ns_type: str) -> None:
    if ns_type == "time" and not os.path.exists("/proc/self/ns/time"):
        pytest.skip("kernel without time namespaces")
    b = bundle(readlink_script(ns_type), USERNS if ns_type == "user" else None)
    with_namespaces(b.config, [{"type": ns_type}])
    b.write()
    traversable(b.path)
    inside = runtime.run_bundle(b, "c1").stdout.strip()
    assert inside.startswith(f"{NS_FILE[ns_type]}:["), inside
    assert inside != host_ns(ns_type)


@pytest.mark.parametrize("ns_type", ["network", "ipc", "uts", "cgroup", "time"])
def test_unlisted_namespace_is_the_hosts(runtime: Runtime, bundle, ns_type: str) -> None:
    if ns_type == "time" and not os.path.exists("/proc/self/ns/time"):
        pytest.skip("kernel without time namespaces")
    b = bundle(readlink_script(ns_type))
    without_namespace(b.config, ns_type)
    b.write()
    assert runtime.run_bundle(b, "c1").stdout.strip() == host_ns(ns_type)


@pytest.mark.parametrize("ns_type", ["network", "ipc", "uts", "pid", "cgroup", "user"])
def test_join_namespace_by_path(runtime: Runtime, bundle, ns_type: str) -> None:
    """Container A makes a new namespace; container B joins it by /proc/<A>/ns/<x>."""
    a = bundle(SLEEP, USERNS if ns_type == "user" else None, name="a")
    with_namespaces(a.config, [{"type": ns_type}])
    a.write()
    traversable(a.path)
    runtime.create(a, "a")
    a_pid = runtime.state("a")["pid"]
    a_ns = os.readlink(f"/proc/{a_pid}/ns/{NS_FILE[ns_type]}")
    assert a_ns != host_ns(ns_type)

    ns_file = NS_FILE[ns_type]
    script = f"readlink /proc/self/ns/{ns_file}; echo $$; cat /proc/self/uid_map"
    b = bundle(["sh", "-c", script], name="b")
    with_namespaces(b.config, [{"type": ns_type, "path": f"/proc/{a_pid}/ns/{ns_file}"}])
    if ns_type == "uts":
        b.config.pop("hostname")  # would rename A's uts namespace
    b.write()
    traversable(b.path)
    ns_line, pid_line, *uid_map = runtime.run_bundle(b, "b").stdout.split()
    assert ns_line == a_ns
    if ns_type == "pid":
        assert pid_line != "1", "B joined A's pid namespace, where A's init is pid 1"
    if ns_type == "user":
        assert uid_map == ["0", "100000", "65536"]


def test_user_namespace_mappings(runtime: Runtime, bundle) -> None:
    gid_map = [{"containerID": 0, "hostID": 200000, "size": 1000},
               {"containerID": 1000, "hostID": 300000, "size": 10}]
    b = bundle(
        ["sh", "-c", "cat /proc/self/uid_map; echo --; cat /proc/self/gid_map; echo --; id -u"],
        {"linux": {"uidMappings": ID_MAP, "gidMappings": gid_map}},
    )
    with_namespaces(b.config, [{"type": "user"}])
    b.write()
    traversable(b.path)
    uid_part, gid_part, id_part = runtime.run_bundle(b, "c1").stdout.split("--\n")
    assert [line.split() for line in uid_part.strip().splitlines()] == [["0", "100000", "65536"]]
    assert [line.split() for line in gid_part.strip().splitlines()] == [
        ["0", "200000", "1000"], ["1000", "300000", "10"]]
    assert id_part.strip() == "0"


def test_user_namespace_process_runs_as_mapped_host_uid(runtime: Runtime, bundle) -> None:
    b = bundle(SLEEP, USERNS)
    with_namespaces(b.config, [{"type": "user"}])
    b.write()
    traversable(b.path)
    runtime.create(b, "c1")
    runtime.start("c1")
    pid = runtime.state("c1")["pid"]
    status = open(f"/proc/{pid}/status").read()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == ["100000"] * 4


def test_hostname(runtime: Runtime, bundle) -> None:
    b = bundle(["hostname"], {"hostname": "pyrt-test-host"})
    assert runtime.run_bundle(b, "c1").stdout == "pyrt-test-host\n"
    assert os.uname().nodename != "pyrt-test-host"


def test_domainname(runtime: Runtime, bundle) -> None:
    b = bundle(["cat", "/proc/sys/kernel/domainname"], {"domainname": "pyrt.example"})
    assert runtime.run_bundle(b, "c1").stdout == "pyrt.example\n"


def test_pid_namespace_init_is_pid_1(runtime: Runtime, bundle) -> None:
    assert runtime.run_bundle(bundle(["sh", "-c", "echo $$"]), "c1").stdout == "1\n"


def test_new_network_namespace_has_only_loopback(runtime: Runtime, bundle) -> None:
    out = runtime.run_bundle(bundle(["ls", "/sys/class/net"]), "c1").stdout.split()
    assert out == ["lo"]


def test_exec_joins_every_namespace_kind(runtime: Runtime, bundle) -> None:
    """A container with a new namespace of every kind the runtime knows (time included):
    an exec'd process is in each of the init's (served too, under make test-served)."""
    from pyruntime.plan.linux_consts import NAMESPACES

    b = bundle(SLEEP, USERNS)
    with_namespaces(b.config, [{"type": kind} for kind, _, _ in NAMESPACES])
    b.write()
    traversable(b.path)
    runtime.create(b, "c1")
    pid = runtime.state("c1")["pid"]
    files = [file for _, file, _ in NAMESPACES]
    init = [os.readlink(f"/proc/{pid}/ns/{f}") for f in files]
    assert all(ns != os.readlink(f"/proc/self/ns/{f}")
               for ns, f in zip(init, files, strict=True)), init
    script = "; ".join(f"readlink /proc/self/ns/{f}" for f in files)
    r = runtime.run("exec", "c1", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == init
    runtime.delete("c1", force=True)
