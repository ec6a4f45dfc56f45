"""A token's allowed hosts: names, *.suffix patterns, addresses and networks, IPv4 and IPv6."""
from __future__ import annotations

import pytest

from app.core.egress import Allowlist, refused_urls
from app.core.tokens import normalize_allowed_hosts

DNS = {"inside.test": ["10.1.2.3"], "half.test": ["10.1.2.3", "192.0.2.1"], "v6.test": ["2001:db8::5"],
       "mapped.test": ["::ffff:10.1.9.9"]}


def fake_resolver(host: str) -> list[str]:
    if host not in DNS:
        raise OSError(f"{host}: no such name")
    return DNS[host]


def allowlist(*entries: str) -> Allowlist:
    return Allowlist(normalize_allowed_hosts(entries))


@pytest.mark.parametrize("entries, host, admitted", [
    ((), "anything.example", True),
    (("api.example.com",), "api.example.com", True),
    (("api.example.com",), "API.Example.com.", True),
    (("api.example.com",), "www.example.com", False),
    (("api.example.com",), "api.example.com.evil.test", False),
    (("*.example.com",), "a.example.com", True),
    (("*.example.com",), "a.b.example.com", True),
    (("*.example.com",), "example.com", False),
    (("*.example.com",), "badexample.com", False),
    (("*.example.com",), "example.com.evil.test", False),
    (("10.1.0.0/16",), "10.1.2.3", True),
    (("10.1.0.0/16",), "10.2.0.1", False),
    (("10.1.0.0/16",), "::ffff:10.1.2.3", True),  # IPv4-mapped IPv6: judged as its IPv4 address
    (("10.1.0.0/16",), "::ffff:10.2.0.1", False),
    (("::ffff:10.1.0.0/112",), "10.1.2.3", True),  # a mapped network admits the IPv4 addresses
    (("10.1.2.3",), "10.1.2.3", True),
    (("10.1.2.3",), "10.1.2.4", False),
    (("2001:db8::/32",), "[2001:db8::1]", True),
    (("2001:db8::/32",), "2001:db9::1", False),
    (("2001:db8::/32",), "10.1.2.3", False),
    (("10.1.0.0/16",), "inside.test", True),  # resolves only inside
    (("10.1.0.0/16",), "half.test", False),  # one address outside is enough to refuse
    (("10.1.0.0/16",), "mapped.test", True),
    (("2001:db8::/32",), "v6.test", True),
    (("10.1.0.0/16",), "unknown.test", False),  # resolves to nothing
    (("api.example.com",), "10.1.2.3", False),  # a name never admits an address
    (("*.example.com", "10.1.0.0/16"), "inside.test", True),
])
def test_what_an_allowlist_admits(entries, host, admitted):
    assert allowlist(*entries).admits_host(host, fake_resolver) is admitted


def test_names_are_not_resolved_when_a_name_admits_them_or_no_network_could():
    def no_dns(host):
        raise AssertionError(f"resolved {host}")

    assert allowlist("*.example.com", "10.0.0.0/8").admits_host("a.example.com", no_dns)
    assert not allowlist("*.example.com").admits_host("other.test", no_dns)


def test_refused_urls_names_each_field_and_its_host():
    refused = refused_urls(("*.example.com",), {"url": "https://a.example.com/x", "callback_url": "http://evil.test/cb",
                                                 "absent": None}, fake_resolver)
    assert refused == {"callback_url": ["evil.test is not among this token's allowed hosts."]}
    assert refused_urls((), {"url": "http://evil.test/"}, fake_resolver) == {}
