"""Hosts on one machine: Linux network namespaces joined by a bridge, built with iproute2's `ip`.

Each host is a namespace with its loopback up and one veth link into a bridge in the root
namespace; the bridge has the subnet's first address, so the root namespace (the bench or the
test) reaches every host and every host reaches it. The subnet is a free /24 inside 10.77.0.0/16
and every name carries this process's id, so parallel runs do not clash and the leftovers of a
run that died are found (`sweep_stale`). Root is needed.

    net = Network()                      # unavailable_reason() says why it cannot be built
    redis_host = net.add_host("redis")
    redis_host.popen([...])              # runs inside the namespace (`ip netns exec`)
    net.lose(redis_host)                 # link cut, then every process in it SIGKILLed
    net.destroy()                        # everything removed
"""
from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass

PREFIX = "htq"
SUBNETS = ipaddress.ip_network("10.77.0.0/16")
_NAME = re.compile(rf"^{PREFIX}(\d+)-")
_LINK = re.compile(rf"^{PREFIX}(\d+)[bv]")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here, or None when they can (one is made and removed)."""
    if os.geteuid() != 0:
        return "network namespaces need root (bench/netns.py builds them with `ip netns add`)"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
    ip("netns", "del", probe, check=False)
    bridge = f"{PREFIX}{os.getpid()}bp"
    made = ip("link", "add", bridge, "type", "bridge", check=False)
    if made.returncode != 0:
        return f"`ip link add ... type bridge` failed: {made.stderr.strip() or made.returncode}"
    ip("link", "del", bridge, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_namespace_processes(namespace: str) -> None:
    """SIGKILL every process in the namespace, until none is left."""
    for _ in range(50):
        found = ip("netns", "pids", namespace, check=False).stdout.split()
        if not found:
            return
        for pid in found:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in found:
            _wait_gone(int(pid))


def _wait_gone(pid: int) -> None:
    import time

    for _ in range(200):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it
            if done:
                return
        except ChildProcessError:
            if not _alive(pid):
                return
        time.sleep(0.01)


def sweep_stale() -> list[str]:
    """Remove namespaces and links of earlier runs whose process is gone; their names."""
    removed = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _NAME.match(name)
        if match and not _alive(int(match.group(1))):
            kill_namespace_processes(name)
            ip("netns", "del", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        match = _LINK.match(name)
        if match and not _alive(int(match.group(1))):
            ip("link", "del", name, check=False)
            removed.append(name)
    return removed


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 10.77.0.0/16 that no address of this machine is in."""
    used = set()
    for line in ip("-o", "-4", "addr", "show", check=False).stdout.splitlines():
        used.add(ipaddress.ip_interface(line.split()[3]).network)
    start = os.getpid() % 250 + 1
    for offset in range(255):
        subnet = ipaddress.ip_network(f"10.77.{(start + offset) % 255}.0/24")
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise RuntimeError("no free /24 left in 10.77.0.0/16")


@dataclass
class Host:
    name: str  # its role: "redis", "web1", ...
    namespace: str
    address: str
    link: str  # the veth end in the root namespace (in the bridge)

    def argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *argv]

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(argv), **kwargs)

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.argv(argv), **kwargs)


class Network:
    """A bridge and the hosts plugged into it; destroy() removes them all."""

    def __init__(self):
        self.tag = f"{PREFIX}{os.getpid()}"
        self.subnet = free_subnet()
        addresses = self.subnet.hosts()
        self.gateway = str(next(addresses))  # the bridge's, in the root namespace
        self._addresses = addresses
        self.bridge = f"{self.tag}b"
        self.hosts: list[Host] = []
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self, name: str) -> Host:
        index = len(self.hosts)
        host = Host(name, f"{self.tag}-{name}", str(next(self._addresses)), f"{self.tag}v{index}")
        inner = f"{self.tag}i{index}"
        ip("netns", "add", host.namespace)
        self.hosts.append(host)
        ip("link", "add", host.link, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", host.namespace)
        ip("link", "set", host.link, "master", self.bridge, "up")
        ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inner)
        ip("-n", host.namespace, "link", "set", inner, "up")
        ip("-n", host.namespace, "link", "set", "lo", "up")
        ip("-n", host.namespace, "route", "add", "default", "via", self.gateway)
        return host

    def lose(self, host: Host) -> None:
        """The host is gone: its link is cut first (no FIN or RST reaches anyone), then every
        process in it is killed with SIGKILL."""
        ip("link", "set", host.link, "down", check=False)
        ip("link", "del", host.link, check=False)
        kill_namespace_processes(host.namespace)

    def destroy(self) -> None:
        for host in self.hosts:
            kill_namespace_processes(host.namespace)
            ip("link", "del", host.link, check=False)
            ip("netns", "del", host.namespace, check=False)
        self.hosts = []
        ip("link", "del", self.bridge, check=False)
