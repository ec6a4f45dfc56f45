"""htq's tasks sent through the broker (the test Redis) to an in-process Celery worker, which
delivers to a real HTTP target: what eager mode would skip (JSON serialization, routing
to the htq queue, acks, eta) is all there. tests/e2e does the same with `celery -A workers worker`."""
from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from app import create_app
from tests.support.http_target import Reply
from tests.support.waiting import wait_until


@pytest.fixture
def client(settings):
    """The web side, publishing tasks by name through its own Celery client to the test Redis."""
    return create_app(settings).test_client()


def status(client, request_id: str) -> str:
    return client.get(f"/v1/requests/{request_id}/status").get_json()["status"]


def test_a_created_request_travels_as_htq_deliver_requests_to_the_worker_and_reaches_its_target(
        worker, client, http_target, caplog):
    with caplog.at_level(logging.INFO, logger="app.core.attempts"):
        created = client.post("/v1/requests", json={"url": http_target.url + "/hook", "json": {"n": 1}}).get_json()
        [received] = http_target.wait_for(1, "/hook")
        wait_until(lambda: status(client, created["id"]) == "succeeded")
    assert received.method == "POST" and json.loads(received.body) == {"n": 1}
    assert received.headers["Idempotency-Key"] == created["id"] and received.headers["Htq-Attempt"] == "1"
    assert client.get(f"/v1/requests/{created['id']}/response").get_json()["status_code"] == 200
    # Settled in this process, in one line naming the request, with the same fields for JSON logs.
    [line] = [record for record in caplog.records if record.getMessage().startswith(f"request {created['id']}: ")]
    assert re.fullmatch(rf"request {created['id']}: attempt 1 -> succeeded \(200\) in \d+ ms", line.getMessage())
    assert line.fields | {"elapsed_ms": 0, "worker": ""} == {
        "request_id": created["id"], "attempt": 1, "result": "succeeded", "status_code": 200, "error": None,
        "elapsed_ms": 0, "worker": ""}


def test_a_retry_published_by_the_worker_waits_for_its_eta_and_runs_on_the_worker(worker, client, http_target):
    http_target.reply("/flaky", Reply(503, headers={"Retry-After": "1"}), Reply(200))
    created = client.post("/v1/requests", json={"url": http_target.url + "/flaky"}).get_json()
    first, second = http_target.wait_for(2, "/flaky", timeout_s=15)
    assert (first.headers["Htq-Attempt"], second.headers["Htq-Attempt"]) == ("1", "2")
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == created["id"]
    assert second.at - first.at >= 1.0  # Retry-After: the eta the worker published it with
    wait_until(lambda: status(client, created["id"]) == "succeeded")


def test_a_full_batch_travels_as_htq_send_batches_to_the_worker_and_is_posted(worker, client, http_target):
    assert client.put("/v1/batches/events", json={"endpoint": http_target.url + "/in", "max_records": 3,
                                                   "headers": {"X-Source": "htq"}}).status_code == 201
    assert client.post("/v1/batches/events/records/batch", json={"records": [{"n": 1}, "two", [3]]}).status_code == 202
    [received] = http_target.wait_for(1, "/in")
    assert json.loads(received.body) == [{"n": 1}, "two", [3]]
    assert received.headers["Htq-Batch-Id"] and received.headers["X-Source"] == "htq"
    stats = wait_until(lambda: (s := client.get("/v1/batches/events").get_json())["sent_batches"] == 1 and s)
    assert (stats["sent_records"], stats["pending"], stats["in_flight"]) == (3, 0, 0)


def test_a_send_task_that_fails_before_starting_releases_the_batches_it_held(worker, client, store, monkeypatch):
    """The failed message is acknowledged: the worker no longer holds its batches, and beat's next
    flush publishes them again, instead of waiting for the hold to go stale."""
    from app.core import clock
    from app.storage import keys
    from app.storage import workers as store_workers
    from workers.tasks import batches as batch_tasks

    holders = []

    def fail_after_the_hold(rt, name, batches, worker_name):
        store_workers.hold_batches(rt.store, worker_name, name, batches, now_ms=clock.now_ms())  # as on receipt
        holders.append(worker_name)
        raise ConnectionError("Redis went away")

    monkeypatch.setattr(batch_tasks, "run_sends", fail_after_the_hold)
    configured = client.put("/v1/batches/events", json={"endpoint": "http://127.0.0.1:9/in", "max_records": 1})
    assert configured.status_code == 201
    assert client.post("/v1/batches/events/records", json={"n": 1}).status_code == 202
    wait_until(lambda: holders)
    wait_until(lambda: store_workers.held_batches(store, holders[0]) == [])
    [(batch_id, deadline)] = store.redis.zrange(keys.batch_taken("events"), 0, -1, withscores=True)
    assert json.loads(store.redis.hget(keys.batch_meta("events"), batch_id)).get("holder") is None
    assert deadline <= clock.now_ms()  # due now: the next flush publishes it again


@pytest.mark.parametrize("depth", [600, sys.getrecursionlimit() + 500])  # too deep for orjson; for Python
def test_a_request_stored_before_depth_was_limited_is_sent_and_called_back_as_it_was(
        worker, client, store, http_target, depth):
    """Its `json` nests deeper than the writers go (stored by an older htq): the worker still
    starts it, sends it as it was stored, and its callback carries it."""
    from app.storage import keys

    deep = "[" * depth + "]" * depth
    created = client.post("/v1/requests", json={"url": http_target.url + "/hook", "json": 1, "delay": 1,
                                                 "callback_url": http_target.url + "/cb"}).get_json()
    spec = store.redis.hget(keys.request(created["id"]), "spec")
    store.redis.hset(keys.request(created["id"]), "spec", spec.replace('"json": 1', f'"json": {deep}'))
    [sent] = http_target.wait_for(1, "/hook", timeout_s=15)
    assert sent.body == deep.encode()
    [callback] = http_target.wait_for(1, "/cb")
    text = callback.body.decode()  # json.dumps's spacing at 600 levels, orjson's where Python gives up
    assert re.search(r'"json": ?\[\[', text) and deep in text and re.search(r'"status": ?"succeeded"', text)
