"""A resolver with the signature of socket.getaddrinfo whose answers a test sets, name by name:
what a DNS server that changes its answers (rebinding) would give. Names it does not know, and
address literals, resolve as the system resolves them."""
from __future__ import annotations

import socket


class FakeDns:
    def __init__(self, answers: dict[str, list[str]] | None = None):
        self.answers: dict[str, list[str]] = dict(answers or {})
        self.asked: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        self.asked.append(host)
        addresses = self.answers.get(str(host).rstrip(".").lower())
        if addresses is None:
            return socket.getaddrinfo(host, port, family, type, proto, flags)
        infos = []
        for address in addresses:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port)))
        return infos
