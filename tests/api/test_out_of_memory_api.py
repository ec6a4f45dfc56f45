"""Redis out of memory (maxmemory reached, noeviction), through the Flask app on a real Redis: every
write that accepts work answers 503 with Retry-After (in each compat profile's own shape), never
500; reads, receives and acknowledgements go on; writes work again as soon as memory is freed."""
from __future__ import annotations

import pytest
import redis

from app import create_app
from app.core.publish import Publisher
from app.errors import OUT_OF_MEMORY_MESSAGE, OUT_OF_MEMORY_RETRY_AFTER_S
from tests.support.settings import make_settings

TARGET = "http://127.0.0.1:9/hook"
LOG_ENDPOINT = "http://127.0.0.1:9/log"

NATIVE_WRITES = [
    ("post", "/v1/queues/q/messages", {"n": 1}),
    ("post", "/v1/queues/new/messages", {"n": 1}),
    ("post", "/v1/queues/q/messages/batch", {"messages": [{"body": 1}, {"body": 2}]}),
    ("put", "/v1/queues/q2", {"visibility_timeout": 5}),
    ("post", "/v1/requests", {"url": TARGET}),
    ("post", "/v1/requests/batch", {"requests": [{"url": TARGET}, {"url": TARGET, "delay": 60}]}),
    ("post", "/v1/batches/b/records", {"n": 1}),
    ("post", "/v1/batches/b/records/batch", {"records": [1, 2, 3]}),
    ("put", "/v1/batches/b2", {"endpoint": TARGET}),
    ("post", "/compat/htq/", {"url": TARGET}),  # the 2014 profile answers in htq's own shape
]
COMPAT_WRITES = [  # method, path, body, what the profile's error body looks like
    ("post", "/compat/timers/timers", {"seconds": 5, "url": TARGET}, lambda r: r.get_json()["error"]["details"]),
    ("post", "/compat/wq/", {"a": 1}, lambda r: r.get_json()["error"]),
    ("post", "/compat/pushpull/queues/jobs", b"hello", lambda r: r.get_data(as_text=True)),
    ("post", "/compat/forwarder/log", {"user_id": 1}, lambda r: r.get_json()["message"]),
]


@pytest.fixture
def client(redis_url, sender):
    app = create_app(make_settings(redis_url, max_body_bytes=1024, webhook_post_endpoint=LOG_ENDPOINT),
                     publisher=Publisher(sender))
    return app.test_client()


@pytest.fixture
def stored(client) -> dict:
    """What exists before Redis fills up: a queue with messages, a batch, requests, a timer."""
    assert client.post("/v1/queues/q/messages/batch", json={"messages": [{"body": i} for i in range(3)]}
                       ).status_code == 201
    assert client.put("/v1/batches/b", json={"endpoint": TARGET, "max_records": 2}).status_code == 201
    assert client.post("/v1/batches/b/records", json={"n": 0}).status_code == 202  # the next one fills it
    request = client.post("/v1/requests", json={"url": TARGET, "delay": 600}).get_json()
    timer = client.post("/compat/timers/timers", json={"minutes": 5, "url": TARGET}).get_json()
    return {"request": request["id"], "timer": timer["id"]}


def call(client, method, path, body):
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    return getattr(client, method)(path, **kwargs)


@pytest.mark.parametrize("method, path, body", NATIVE_WRITES, ids=[f"{m} {p}" for m, p, _ in NATIVE_WRITES])
def test_a_write_to_a_full_redis_is_503_with_retry_after_then_works_once_memory_is_freed(
        client, stored, full_redis, method, path, body):
    full_redis.fill()
    refused = call(client, method, path, body)
    assert refused.status_code == 503, refused.get_data(as_text=True)
    assert refused.headers["Retry-After"] == str(OUT_OF_MEMORY_RETRY_AFTER_S)
    assert refused.get_json() == {"code": 503, "status": "Service Unavailable", "message": OUT_OF_MEMORY_MESSAGE}
    assert refused.headers["Htq-Nothing-Stored"] == "true"
    full_redis.free()
    accepted = call(client, method, path, body)
    assert accepted.status_code in (200, 201, 202, 303), accepted.get_data(as_text=True)


@pytest.mark.parametrize("method, path, body, error_text", COMPAT_WRITES, ids=[p for _, p, _, _ in COMPAT_WRITES])
def test_a_compat_write_to_a_full_redis_is_503_in_the_profile_shape(client, stored, full_redis, method, path,
                                                                    body, error_text):
    full_redis.fill()
    refused = call(client, method, path, body)
    assert refused.status_code == 503, refused.get_data(as_text=True)
    assert refused.headers["Retry-After"] == str(OUT_OF_MEMORY_RETRY_AFTER_S)
    assert "out of memory" in error_text(refused) and refused.headers["Htq-Nothing-Stored"] == "true"
    full_redis.free()
    assert call(client, method, path, body).status_code in (200, 201)


def test_in_a_full_redis_reads_receives_acks_and_cancels_go_on(client, stored, full_redis):
    full_redis.fill()
    request_id = stored["request"]
    for path in [f"/v1/requests/{request_id}", f"/v1/requests/{request_id}/status",
                 f"/v1/requests/{request_id}/attempts", "/v1/requests?status=scheduled", "/v1/queues",
                 "/v1/queues/q", "/v1/queues/q/dead", "/v1/batches", "/v1/batches/b", "/v1/batches/b/dead",
                 f"/compat/timers/timers/{stored['timer']}", "/compat/htq/", "/readyz", "/metrics"]:
        response = client.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
    assert client.get(f"/v1/requests/{request_id}/response?wait=0").status_code == 202
    assert client.get("/v1/queues/q").get_json()["visible"] == 3

    received = client.post("/v1/queues/q/messages/receive", json={"max": 2}).get_json()["messages"]
    assert [m["body"] for m in received] == [0, 1]
    acked = client.post("/v1/queues/q/messages/ack", json={"messages": [
        {"id": m["id"], "receipt": m["receipt"]} for m in received]})
    assert acked.get_json() == {"acked": 2, "failed": []}
    assert client.delete(f"/v1/requests/{request_id}").status_code == 204
    assert client.get(f"/v1/requests/{request_id}/status").get_json()["status"] == "canceled"
    assert full_redis.refuses_writes()


def test_a_redis_that_may_evict_keys_is_warned_about_at_start_up(redis_url, capsys):
    admin = redis.Redis.from_url(redis_url)
    create_app(make_settings(redis_url))
    assert "maxmemory-policy" not in capsys.readouterr().out  # noeviction: nothing to say
    admin.config_set("maxmemory-policy", "allkeys-lru")
    try:
        create_app(make_settings(redis_url))
    finally:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.close()
    assert "Redis maxmemory-policy is allkeys-lru" in capsys.readouterr().out
