"""GET /v1/workers: the workers that heartbeated lately, with an injected clock."""
from __future__ import annotations

from app import create_app
from app.core.workers import DEAD_AFTER_S
from app.storage import workers as sw
from tests.support.settings import make_settings


def test_lists_the_workers_that_heartbeated_within_the_dead_window(redis_url, store, clock):
    client = create_app(make_settings(redis_url), clock_ms=clock).test_client()
    assert client.get("/v1/workers").get_json() == {"items": []}
    sw.heartbeat(store, "w1@host-a", host="host-a", pid=11, started_ms=clock.ms - 5000, now_ms=clock.ms)
    clock.advance(DEAD_AFTER_S - 1)
    sw.heartbeat(store, "w2@host-b", host="host-b", pid=22, started_ms=clock.ms, now_ms=clock.ms)
    [first, second] = client.get("/v1/workers").get_json()["items"]
    assert (first["name"], first["host"], first["pid"]) == ("w1@host-a", "host-a", 11)
    assert second["name"] == "w2@host-b" and second["last_seen_at"].endswith("Z")
    clock.advance(1)  # w1's last heartbeat is DEAD_AFTER_S old: dead
    assert [w["name"] for w in client.get("/v1/workers").get_json()["items"]] == ["w2@host-b"]


def test_the_route_is_in_the_openapi_document(redis_url):
    client = create_app(make_settings(redis_url)).test_client()
    assert "/v1/workers" in client.get("/openapi.json").get_json()["paths"]
