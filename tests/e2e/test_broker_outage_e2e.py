"""A callback owed while the broker is down is delivered once the broker is back: a broker Redis of
its own, stopped at the moment the request ends, the store Redis staying up, a real worker and
beat (`celery -A workers ...`) and a real HTTP target."""
from __future__ import annotations

import json
import threading

from app import create_app
from app.core import clock
from app.storage import keys
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

FAST = {"HTQ_HORIZON": "1", "HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "3"}


def test_a_callback_owed_while_the_broker_is_down_is_delivered_once_it_is_back(redis_url, store, own_redis,
                                                                               services_factory, http_target):
    procs = services_factory(CELERY_BROKER_URL=own_redis.url, **FAST)
    procs.start_worker(concurrency=2)
    procs.start_beat()
    client = create_app(make_settings(redis_url, broker_url=own_redis.url, horizon_s=1,
                                      publish_grace_s=3)).test_client()
    release = threading.Event()
    http_target.reply("/slow", Reply(200, release=release))
    try:
        created = client.post("/v1/requests", json={"url": http_target.url + "/slow",
                                                     "callback_url": http_target.url + "/callback"}).get_json()
        http_target.wait_for(1, "/slow", timeout_s=30)  # the attempt is running
        own_redis.stop()
    finally:
        release.set()  # the target answers: the request ends while the broker is down
    request_id, entry = created["id"], f"callback:{created['id']}"

    # The worker stores the end and its callback in one script; publishing the callback fails.
    wait_until(lambda: f"request {request_id}: htq.send_callback not published" in procs.log("worker"), 30, 0.05)
    assert client.get(f"/v1/requests/{request_id}/status").get_json()["status"] == "succeeded"
    assert store.redis.zscore(keys.requests_outbox(), entry) is not None
    assert http_target.requests_to("/callback") == []

    own_redis.start()
    # The same worker reconnects and sends the callback. (Celery 5.7.0 exits instead, "Unrecoverable
    # error", when the connection drops while a task is unacknowledged: htq requires celery<5.7.)
    [callback] = http_target.wait_for(1, "/callback", timeout_s=60)
    body = json.loads(callback.body)
    assert body["id"] == request_id and body["status"] == "succeeded" and body["response"]["status_code"] == 200
    wait_until(lambda: store.redis.zscore(keys.requests_outbox(), entry) is None, 30, 0.05)  # taken: not again
    assert procs.procs["worker"].poll() is None and "Unrecoverable error" not in procs.log("worker")


def test_requests_a_worker_held_when_its_broker_restarted_are_delivered_seconds_after_due(
        redis_url, store, own_redis, services_factory, http_target):
    """Celery forgets the eta tasks it held when its broker connection drops (the broker gives
    them back only after its 15 min visibility timeout); the worker releases them, and the relay
    publishes them again after the publish grace. Default settings otherwise."""
    procs = services_factory(CELERY_BROKER_URL=own_redis.url)
    procs.start_worker("holder", concurrency=2)
    procs.start_beat()
    client = create_app(make_settings(redis_url, broker_url=own_redis.url)).test_client()
    wait_until(lambda: client.get("/v1/workers").get_json()["items"], 30, 0.1)
    [worker] = client.get("/v1/workers").get_json()["items"]
    created = client.post("/v1/requests/batch", json={"requests": [
        {"url": http_target.url + "/held", "delay": 6} for _ in range(5)]}).get_json()["items"]
    wait_until(lambda: store.redis.scard(keys.worker_held(worker["name"])) == 5, 20, 0.05)
    own_redis.stop()
    own_redis.start()  # same port, its data kept (AOF)
    wait_until(lambda: store.redis.scard(keys.worker_held(worker["name"])) == 0, 20, 0.05)  # released
    received = http_target.wait_for(5, "/held", timeout_s=60)
    due_s = max(clock.from_rfc3339(request["due_at"]) for request in created) / 1000
    assert max(r.at for r in received) - due_s <= 20  # not after the broker's visibility timeout
    assert procs.procs["holder"].poll() is None and "Unrecoverable error" not in procs.log("holder")
