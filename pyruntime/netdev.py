"""linux.netDevices: move host interfaces into the container's new network namespace.

The kernel drops an interface's addresses (and brings it down) when it changes namespace,
so they are read first and added back inside, under the new name if one is given; an
interface that was up is brought up again. Runs in the runtime after the init reported
READY (it waits on the exec fifo, so the user's program sees the interface from its
first instruction). pyroute2 is imported only here, only when there is work.
"""

from __future__ import annotations

import os

from pyruntime.errors import Failure
from pyruntime.plan import linux_consts as k

IFF_UP = 1
AF_INET6 = 10


def check(spec, clone_flags: int) -> list[tuple[str, str]]:  # Spec
    """(host name, name inside) for each device; a one-line error naming the field."""
    linux = spec.linux
    if linux is None or not linux.net_devices:
        return []
    if not clone_flags & k.CLONE_NEWNET:
        raise Failure("config.json: linux.netDevices: needs a new network namespace "
                      "(linux.namespaces has no network entry without a path)")
    moves = []
    for host, dev in linux.net_devices.items():
        where = f"config.json: linux.netDevices.{host}"
        if not host or "/" in host or host in (".", "..") or len(host) > 15:
            raise Failure(f"{where}: not an interface name")
        name = (dev.name if dev is not None else None) or host
        if "/" in name or name in (".", "..") or len(name) > 15:
            raise Failure(f"{where}.name: not an interface name: {name!r}")
        if not os.path.exists(f"/sys/class/net/{host}"):
            raise Failure(f"{where}: no such network interface on the host")
        moves.append((host, name))
    return moves


def move(pid: int, moves: list[tuple[str, str]]) -> None:
    from pyroute2 import IPRoute

    nsfd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        moved = []
        with IPRoute() as host:
            for name, new_name in moves:
                where = f"linux.netDevices.{name}"
                found = host.link_lookup(ifname=name)
                if not found:
                    raise Failure(f"{where}: no such network interface on the host")
                index = found[0]
                link = host.get_links(index)[0]
                addrs = [(a["family"], a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                         for a in host.get_addr(index=index)
                         if not (a["family"] == AF_INET6
                                 and a.get_attr("IFA_ADDRESS", "").startswith("fe80:"))]
                try:
                    host.link("set", index=index, net_ns_fd=nsfd)
                except Exception as e:  # pyroute2's NetlinkError and others
                    raise Failure(f"{where}: move into the container: {e}") from None
                moved.append((name, new_name, addrs, bool(link["flags"] & IFF_UP)))
        with IPRoute(netns=nsfd, flags=0) as inside:
            for name, new_name, addrs, up in moved:
                where = f"linux.netDevices.{name}"
                try:
                    index = inside.link_lookup(ifname=name)[0]
                    if new_name != name:
                        inside.link("set", index=index, ifname=new_name)
                    for family, address, prefixlen in addrs:
                        inside.addr("add", index=index, address=address, prefixlen=prefixlen,
                                    family=family)
                    if up:
                        inside.link("set", index=index, state="up")
                except Exception as e:
                    raise Failure(f"{where}: set up inside the container: {e}") from None
    finally:
        os.close(nsfd)
