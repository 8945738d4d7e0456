"""Simulated hosts for multi-node tests: network namespaces on this machine.

``two_hosts()`` creates two namespaces joined by a veth pair, each with its own IPv4 address
(a random /24 in 10.200-239.x.0), a loopback interface and, for the commands it starts, a host
name of its own (``unshare --uts``; the names do not resolve, as on a cluster with a poor
/etc/hosts, so rendezvous and collectives have to use addresses and the right interface).
Traffic goes only between the two addresses and loopback. Every process started with
:meth:`Host.start` is killed (its process group) and both namespaces are removed on exit, also
when the test failed.
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


class NoNamespaces(RuntimeError):
    """Network namespaces cannot be made here (not root, or no ``ip``/``unshare``)."""


@dataclass
class Host:
    netns: str
    hostname: str
    addr: str
    ifname: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host: its namespace and its own host name."""
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', self.hostname, *argv]

    def start(self, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(self.command(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.communicate(timeout=10)
        # Anything left inside the namespace (a process that left our process group).
        pids = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def available() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "unshare") if shutil.which(tool) is None]
    return f"not installed: {', '.join(missing)}" if missing else None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def two_hosts() -> Iterator[tuple[Host, Host]]:
    why = available()
    if why:
        raise NoNamespaces(why)
    tag = f"sc{os.getpid() % 100000}{random.randrange(1000)}"
    net = f"10.{random.randrange(200, 240)}.{random.randrange(256)}"
    hosts = tuple(Host(f"{tag}-h{i}", f"{tag}-node{i}", f"{net}.{i + 1}", f"{tag}v{i}") for i in range(2))
    try:
        for host in hosts:
            _ip("netns", "add", host.netns)
        _ip("link", "add", hosts[0].ifname, "type", "veth", "peer", "name", hosts[1].ifname)
        for host in hosts:
            _ip("link", "set", host.ifname, "netns", host.netns)
            _ip("-n", host.netns, "addr", "add", f"{host.addr}/24", "dev", host.ifname)
            _ip("-n", host.netns, "link", "set", host.ifname, "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
        yield hosts  # type: ignore[misc]
    finally:
        for host in hosts:
            host.kill_all()
        for host in hosts:  # removing a namespace removes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", hosts[0].ifname], capture_output=True, timeout=30)  # if never moved
