"""linux.netDevices: a host interface moved into the container with its addresses.

This host has no dummy or macvlan link type, so the interface is one end of a veth pair
made by the test in the host namespace (names pyrtv<token>, deleted afterwards)."""

from __future__ import annotations

import os
import subprocess

import pytest

from support import Runtime, assert_clean_failure

pytestmark = pytest.mark.root


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def veth(test_token: str):
    a, b = f"pyrtv{test_token[:6]}a", f"pyrtv{test_token[:6]}b"
    ip("link", "add", a, "type", "veth", "peer", "name", b)
    try:
        ip("addr", "add", "10.199.77.1/24", "dev", a)
        ip("addr", "add", "fd00:77::1/64", "dev", a)
        ip("link", "set", a, "up")
        yield a, b
    finally:
        ip("link", "del", a, check=False)  # gone already if the container's netns took it
        ip("link", "del", b, check=False)


def test_net_device_is_moved_with_its_addresses(runtime: Runtime, bundle, veth) -> None:
    a, _ = veth
    b = bundle(["sh", "-c", "ip -o addr show dev eth7; ip -o link show dev eth7"],
               {"linux": {"netDevices": {a: {"name": "eth7"}}}})
    out = runtime.run_bundle(b, "c1").stdout
    assert "10.199.77.1/24" in out, out
    assert "fd00:77::1/64" in out, out
    flags = out.split("<", 1)[1].split(">", 1)[0].split(",")
    assert "UP" in flags, out  # it was up on the host (NO-CARRIER: its peer is not up)
    assert not os.path.exists(f"/sys/class/net/{a}")  # left the host while it ran


def test_net_device_keeps_its_name(runtime: Runtime, bundle, veth) -> None:
    a, _ = veth
    b = bundle(["sh", "-c", f"cat /sys/class/net/{a}/operstate /sys/class/net/{a}/flags"],
               {"linux": {"netDevices": {a: {}}}})
    _state, flags = runtime.run_bundle(b, "c1").stdout.split()
    assert int(flags, 16) & 1  # IFF_UP


def test_missing_net_device(runtime: Runtime, bundle) -> None:
    b = bundle(["true"], {"linux": {"netDevices": {"pyrtnope0": {}}}})
    result = runtime.run("create", "--bundle", b, "c1")
    assert_clean_failure(result, runtime, "c1", ("linux.netDevices.pyrtnope0",))


def test_net_device_needs_a_new_netns(runtime: Runtime, bundle, veth) -> None:
    a, _ = veth
    b = bundle(["true"], {"linux": {"netDevices": {a: {}}}})
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                       if n["type"] != "network"]
    b.write()
    result = runtime.run("create", "--bundle", b, "c1")
    assert_clean_failure(result, runtime, "c1", ("linux.netDevices",))
    assert os.path.exists(f"/sys/class/net/{a}")
