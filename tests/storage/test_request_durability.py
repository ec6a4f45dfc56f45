"""Accepted requests survive a Redis restart: the store runs with AOF."""
from __future__ import annotations

from app.core.publish import Publisher
from app.core.requests import RequestService
from app.storage import keys
from app.storage.client import Store


def test_accepted_requests_and_their_schedule_survive_a_redis_restart(redis_server, redis_url, settings, sender):
    store = Store.from_url(redis_url)
    service = RequestService(store, Publisher(sender), settings)
    later = service.create({"url": "http://127.0.0.1:9/a", "method": "POST", "headers": {}, "delay": 3600})
    now = service.create({"url": "http://127.0.0.1:9/b", "method": "POST", "headers": {}})
    batch = service.create_many([{"url": "http://127.0.0.1:9/c", "method": "PUT", "headers": {}, "delay": 7200}] * 3)
    store.redis.close()

    redis_server.restart()

    store = Store.from_url(redis_url)
    service = RequestService(store, Publisher(sender), settings)
    assert service.get(later.resource["id"])["status"] == "scheduled"
    assert service.get(now.resource["id"])["status"] == "queued"
    assert store.redis.zscore(keys.requests_due(), later.resource["id"]) is not None
    assert store.redis.zscore(keys.requests_inflight(), now.resource["id"]) is not None
    assert {item["id"] for item in batch} <= set(store.redis.zrange(keys.requests_due(), 0, -1))
    assert store.redis.zcard(keys.requests_all()) == 5
    # The scripts load again after the restart emptied Redis' script cache.
    again = service.create({"url": "http://127.0.0.1:9/d", "method": "GET", "headers": {}})
    assert again.resource["status"] == "queued"
