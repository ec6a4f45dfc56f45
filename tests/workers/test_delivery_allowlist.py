"""A token's allowed hosts checked again at delivery, against the addresses the connection goes
to, after the server's own guard: names, *.suffix patterns, addresses, networks, IPv6 and
IPv4-mapped addresses; a name rebound to another address after creation is refused."""
from __future__ import annotations

import pytest

from app.core.egress import Allowlist, refused_urls
from tests.support.dns import FakeDns
from tests.workers.test_delivery import send, server  # noqa: F401 - the fixture
from workers.delivery import ALLOWLIST_POOLS, Deliverer, DeliveryConfig, DestinationRefused, _Guard


@pytest.fixture
def dns():
    return FakeDns({"shop.example": ["127.0.0.1"], "api.shop.example": ["127.0.0.1"]})


@pytest.fixture
def deliverer(dns, server):  # noqa: F811 - closed before the server stops: no kept-alive socket holds it
    made = Deliverer(DeliveryConfig(allow_private=True), resolver=dns)
    yield made
    made.close()


def deliver(deliverer, url, allowed_hosts):
    return deliverer.send(delivery_id="req_1", attempt=1, method="GET", url=url, headers={}, body=None,
                          timeout_s=5, allowed_hosts=allowed_hosts)


def url_of(server, host):  # noqa: F811
    return server.url.replace("127.0.0.1", host) + "/status/200"


@pytest.mark.parametrize(("host", "allowed"), [
    ("shop.example", ["shop.example"]),
    ("api.shop.example", ["*.shop.example"]),
    ("127.0.0.1", ["127.0.0.1"]),
    ("shop.example", ["127.0.0.0/8"]),
    ("127.0.0.1", ["::ffff:127.0.0.1"]),
])
def test_an_admitted_destination_is_delivered(deliverer, server, host, allowed):  # noqa: F811
    outcome = deliver(deliverer, url_of(server, host), allowed)
    assert (outcome.verdict, outcome.error) == ("succeeded", None)
    assert server.paths() == ["/status/200"]


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1", ["shop.example"]),        # a name entry admits that name only, not its address
    ("shop.example", ["other.example"]),
    ("shop.example", ["*.shop.example"]),   # a pattern admits names below, not the name itself
    ("shop.example", ["10.0.0.0/8"]),
    ("127.0.0.1", ["::1"]),
])
def test_a_destination_the_allowlist_does_not_admit_is_refused_and_not_retried(deliverer, server, host,  # noqa: F811
                                                                                allowed):
    outcome = deliver(deliverer, url_of(server, host), allowed)
    assert outcome.verdict == "failed"
    assert outcome.error.startswith("destination refused") and "allowed hosts" in outcome.error
    assert server.received == []


def test_no_allowlist_or_an_empty_one_leaves_the_server_guard_alone(deliverer, server):  # noqa: F811
    assert deliver(deliverer, url_of(server, "shop.example"), None).verdict == "succeeded"
    assert deliver(deliverer, url_of(server, "shop.example"), []).verdict == "succeeded"


def test_the_allowlist_only_narrows_the_server_guard(server):  # noqa: F811
    strict = Deliverer(DeliveryConfig(allow_private=False))
    try:
        outcome = deliver(strict, url_of(server, "127.0.0.1"), ["127.0.0.1"])
    finally:
        strict.close()
    assert outcome.verdict == "failed" and "not a public address" in outcome.error
    assert server.received == []


def test_a_name_rebound_after_creation_is_refused_at_delivery(deliverer, dns, server):  # noqa: F811
    url = url_of(server, "shop.example")
    # At creation the name resolves inside the token's network: the API accepts the request.
    assert refused_urls(["127.0.0.1/32"], {"url": url}, resolver=lambda host: ["127.0.0.1"]) == {}
    dns.answers["shop.example"] = ["127.0.0.2"]  # then its DNS answer changes
    outcome = deliver(deliverer, url, ["127.0.0.1/32"])
    assert outcome.verdict == "failed"
    assert outcome.error == ("destination refused: shop.example resolves to 127.0.0.2, which is not among the "
                             "token's allowed hosts")
    assert dns.asked == ["shop.example"] and server.received == []


@pytest.mark.parametrize(("answers", "allowed", "admitted"), [
    (["::ffff:10.1.2.3"], ["10.0.0.0/8"], True),        # mapped: judged as the IPv4 address it carries
    (["::ffff:10.1.2.3"], ["192.168.0.0/16"], False),
    (["2001:db8::5"], ["2001:db8::/32"], True),
    (["2001:db8::5", "10.0.0.1"], ["2001:db8::/32"], False),  # every address must be inside
    (["10.0.0.1"], ["::ffff:10.0.0.0/104"], True),      # a mapped network entry covers IPv4 addresses
])
def test_every_resolved_address_must_be_inside_an_entry(answers, allowed, admitted):
    guard = _Guard(DeliveryConfig(allow_private=True), Allowlist(allowed), FakeDns({"host.example": answers}))
    if admitted:
        assert [info[4][0] for info in guard.resolve("host.example", 80)] == answers
    else:
        with pytest.raises(DestinationRefused, match="not among the token's allowed hosts"):
            guard.resolve("host.example", 80)


def test_each_allowlist_has_its_own_connections(deliverer, server):  # noqa: F811
    """A keep-alive connection made under one allowlist is never reused under another."""
    url = url_of(server, "shop.example")
    for allowed in (["shop.example"], None, ["127.0.0.0/8"], ["shop.example"]):
        assert deliver(deliverer, url, allowed).verdict == "succeeded"
    ports = [received.client_port for received in server.received]
    assert len(set(ports[:3])) == 3 and ports[3] == ports[0]
    first = deliverer._pools_for(["shop.example"])
    for n in range(ALLOWLIST_POOLS):
        deliverer._pools_for([f"host{n}.example"])
    assert deliverer._pools_for(["shop.example"]) is not first  # the least recently used went
    assert len(deliverer._allowlist_pools) == ALLOWLIST_POOLS
