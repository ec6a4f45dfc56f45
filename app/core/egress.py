"""Which hosts a token's `allowed_hosts` admits (CONTRACT.md, "Scoped tokens").

Entries are normalized by app/core/tokens.py: host names, `*.suffix` patterns, IP addresses and
CIDR networks. A name admits that URL host; `*.example.com` admits every name below example.com
(not example.com itself); an address or network admits a URL whose addresses all fall inside it:
an IP literal host, or a name that resolves only to addresses inside. An IPv4-mapped IPv6 address
(::ffff:10.0.0.1) is judged as the IPv4 address it carries. An empty list admits every host.

This only ever narrows: the server's own guard (private addresses, HTQ_ALLOWED_HOSTS) still
applies at delivery, whatever a token admits.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    """Every address `host` resolves to (raises OSError when it resolves to none)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})


def _address(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class Allowlist:
    """A token's allowed hosts, parsed once."""

    def __init__(self, entries: Iterable[str]):
        self.entries = tuple(entries)
        self.names: set[str] = set()
        self.suffixes: list[str] = []
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in self.entries:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if entry.startswith("*."):
                    self.suffixes.append(entry[1:])  # ".example.com"
                else:
                    self.names.add(entry)
                continue
            if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 \
                    and network.network_address.ipv4_mapped is not None:
                network = ipaddress.ip_network(f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}")
            self.networks.append(network)

    def admits_host(self, host: str, resolver: Resolver = resolve) -> bool:
        """Whether a URL naming `host` may be created (resolving a name only when an address or
        network entry could admit it and no name or pattern does)."""
        if not self.entries:
            return True
        host = host.strip("[]").rstrip(".").lower()
        ip = _address(host)
        if ip is not None:
            return self._inside(ip)
        if host in self.names or any(host.endswith(suffix) for suffix in self.suffixes):
            return True
        if not self.networks:
            return False
        try:
            addresses = [_address(text) for text in resolver(host)]
        except OSError:
            return False
        return self.admits_addresses(addresses)

    def admits_name(self, host: str) -> bool:
        """Whether a name or pattern entry admits the URL host `host` by its name alone."""
        host = host.strip("[]").rstrip(".").lower()
        return host in self.names or any(host.endswith(suffix) for suffix in self.suffixes)

    def admits_address(self, text: str) -> bool:
        """Whether an address (as getaddrinfo gives it) is inside an address or network entry."""
        ip = _address(text)
        return ip is not None and self._inside(ip)

    def admits_addresses(self, addresses: Iterable[IPAddress | None]) -> bool:
        """Whether resolved addresses may be reached: every one inside an address or network."""
        listed = list(addresses)
        return bool(listed) and all(ip is not None and self._inside(ip) for ip in listed)

    def _inside(self, ip: IPAddress) -> bool:
        return any(ip in network for network in self.networks if network.version == ip.version)


def refused_urls(allowed_hosts: Iterable[str], urls: dict[str, str | None],
                 resolver: Resolver = resolve) -> dict[str, list[str]]:
    """Per field, a message for each URL whose host `allowed_hosts` does not admit (empty: all admitted)."""
    allowlist = Allowlist(allowed_hosts)
    if not allowlist.entries:
        return {}
    refused = {}
    for field, url in urls.items():
        if not url:
            continue
        host = urlsplit(url).hostname or ""
        if not allowlist.admits_host(host, resolver):
            refused[field] = [f"{host} is not among this token's allowed hosts."]
    return refused
