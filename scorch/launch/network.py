"""Which local address and interface face the other nodes (Linux).

gloo binds to the address this host's name resolves to, or to GLOO_SOCKET_IFNAME's; a node
whose name resolves to a loopback address (many /etc/hosts files do) or to nothing would then
listen where no other node can reach it. :func:`choose_interface` picks the interface that
routes to the rendezvous host (or, on the rendezvous host itself, to the other nodes).
"""
from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Iterable

_SIOCGIFADDR = 0x8915


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def route_address(peer: str) -> str | None:
    """This host's address on the route to ``peer`` (a name or an IPv4 address); nothing is sent."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((peer, 9))
            return str(s.getsockname()[0])
    except OSError:
        return None


def interface_addresses() -> dict[str, str]:
    """IPv4 address of each interface that has one: {"eth0": "10.0.0.5", "lo": "127.0.0.1"}."""
    found: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # no IPv4 address
            found[name] = socket.inet_ntoa(packed[20:24])
    return found


def interface_of(address: str) -> str | None:
    return next((name for name, addr in interface_addresses().items() if addr == address), None)


def choose_interface(master_addr: str, peer_addresses: Iterable[str]) -> str | None:
    """The interface for collectives: the one routing to ``master_addr``, or, when that is this
    host (a loopback route), the one routing to the first peer that is elsewhere. None when
    every peer is on this host (nothing to choose)."""
    mine = route_address(master_addr)
    if mine is None or is_loopback(mine):
        here = set(interface_addresses().values())
        elsewhere = next((p for p in peer_addresses if p and not is_loopback(p) and p not in here), None)
        mine = route_address(elsewhere) if elsewhere else None
    if mine is None or is_loopback(mine):
        return None
    return interface_of(mine)


def own_address(ifname: str | None = None) -> str:
    """An address other hosts can reach this one at: ``ifname``'s (GLOO_SOCKET_IFNAME) when
    given, else its name's, unless that is a loopback address (or none), then the first
    non-loopback interface's (the name as a last resort)."""
    if ifname and ifname in interface_addresses():
        return interface_addresses()[ifname]
    name = socket.gethostname()
    try:
        resolved = socket.gethostbyname(name)
    except OSError:
        resolved = ""
    if resolved and not is_loopback(resolved):
        return name
    outside = [addr for addr in interface_addresses().values() if not is_loopback(addr)]
    return outside[0] if outside else name
