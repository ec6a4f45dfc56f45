"""Flow control and breaker fields and routes through the Flask app on a real Redis: validation
of `flow`, GET /v1/flows/{key}, GET /v1/destinations."""
from __future__ import annotations

import pytest

from app import create_app
from app.core.publish import Publisher
from app.storage import keys
from tests.support.settings import make_settings


@pytest.fixture
def client(redis_url, sender):
    return create_app(make_settings(redis_url), publisher=Publisher(sender)).test_client()


@pytest.mark.parametrize("flow", [
    {}, {"key": "k"}, {"rate": 5}, {"key": "", "rate": 1}, {"key": "a b", "rate": 1}, {"key": "a/b", "rate": 1},
    {"key": "k" * 201, "rate": 1}, {"key": 7, "rate": 1}, {"key": "k", "rate": 0}, {"key": "k", "rate": 10_001},
    {"key": "k", "rate": 1.5}, {"key": "k", "rate": "5"}, {"key": "k", "parallelism": 0},
    {"key": "k", "parallelism": True}, {"key": "k", "rate": 1, "period": 0}, {"key": "k", "rate": 1, "period": 86_401},
    {"key": "k", "parallelism": 1, "period": 5}, {"key": "k", "rate": 1, "burst": 2}, "k", None,
])
def test_flow_is_validated_naming_the_field(client, flow):
    response = client.post("/v1/requests", json={"url": "http://example.com/hook", "flow": flow})
    assert response.status_code == 422, response.get_json()
    assert "flow" in response.get_json()["errors"]


def test_a_flow_is_kept_shown_and_its_key_has_a_state(client):
    flow = {"key": "partner:eu-1", "rate": 50, "period": 2, "parallelism": 5}
    created = client.post("/v1/requests", json={"url": "http://example.com/hook", "delay": 60, "flow": flow})
    assert created.status_code == 201
    assert client.get(f"/v1/requests/{created.get_json()['id']}").get_json()["flow"] == flow
    assert client.get("/v1/flows/partner:eu-1").get_json() == {
        "key": "partner:eu-1", "rate": 50, "period": 2.0, "parallelism": 5, "waiting": 0, "in_flight": 0}
    only = client.post("/v1/requests", json={"url": "http://example.com/hook", "flow": {"key": "p", "parallelism": 2}})
    assert only.get_json()["flow"] == {"key": "p", "parallelism": 2, "period": 1}
    assert client.get("/v1/flows/p").get_json()["rate"] is None
    plain = client.post("/v1/requests", json={"url": "http://example.com/hook"}).get_json()
    assert "flow" not in plain


def test_the_latest_limits_sent_for_a_key_apply(client):
    for rate in (10, 30):
        client.post("/v1/requests", json={"url": "http://example.com/hook", "delay": 60,
                                          "flow": {"key": "k", "rate": rate}})
    assert client.get("/v1/flows/k").get_json()["rate"] == 30


def test_an_unknown_flow_key_is_404(client):
    response = client.get("/v1/flows/never-sent")
    assert response.status_code == 404 and "never-sent" in response.get_json()["message"]


def test_destinations_list_the_breakers_with_news(client, store):
    assert client.get("/v1/destinations").get_json() == {"items": []}
    far = 4_102_444_800_000  # 2100-01-01
    store.redis.hset(keys.destination("hooks.example.com"), mapping={"failures": 12, "open_until": far})
    store.redis.hset(keys.destination("api.example.org:8443"), mapping={"failures": 3})
    store.redis.hset(keys.destination("old.example.net"), mapping={"failures": 10, "open_until": 1000})
    store.redis.zadd(keys.destinations(), {"hooks.example.com": 0, "api.example.org:8443": 0,
                                           "old.example.net": 0, "expired.example": 0})
    assert client.get("/v1/destinations").get_json()["items"] == [
        {"destination": "api.example.org:8443", "state": "closed", "consecutive_failures": 3, "open_until": None},
        {"destination": "hooks.example.com", "state": "open", "consecutive_failures": 12,
         "open_until": "2100-01-01T00:00:00.000Z"},
        {"destination": "old.example.net", "state": "half_open", "consecutive_failures": 10,
         "open_until": "1970-01-01T00:00:01.000Z"},
    ]


def test_the_dashboard_lists_the_breakers_with_news(client, store):
    assert "no breaker is counting failures" in client.get("/ui/workers").text
    store.redis.hset(keys.destination("hooks.example.com"), mapping={"failures": 12, "open_until": 4_102_444_800_000})
    store.redis.zadd(keys.destinations(), {"hooks.example.com": 0})
    page = client.get("/ui/workers").text
    assert "<code>hooks.example.com</code>" in page and ">open<" in page and "2100-01-01 00:00:00" in page
