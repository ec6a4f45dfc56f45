"""Batch forwarding through real Celery worker and beat processes, a real Redis and a real endpoint."""
from __future__ import annotations

import json
import signal
import threading
import time

from app import create_app
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

FAST = {"HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "3"}


def api(redis_url, **overrides):
    return create_app(make_settings(redis_url, publish_grace_s=3, **overrides)).test_client()


def batch_number(received) -> int:
    return int(received.headers["Htq-Batch-Id"].rsplit("-", 1)[1])


def stats(client, name="events") -> dict:
    return client.get(f"/v1/batches/{name}").get_json()


def test_full_batches_leave_at_once_and_the_rest_after_the_interval_in_order(redis_url, services_factory,
                                                                             http_target):
    procs = services_factory(**FAST)
    procs.start_worker(concurrency=2)
    procs.start_beat()
    client = api(redis_url)
    assert client.put("/v1/batches/events", json={"endpoint": http_target.url + "/in", "max_records": 10,
                                                   "interval": 1}).status_code == 201
    posted_at = time.time()
    response = client.post("/v1/batches/events/records/batch", json={"records": [{"n": n} for n in range(25)]})
    assert response.status_code == 202 and len(response.get_json()["ids"]) == 25
    received = sorted(http_target.wait_for(3, "/in", timeout_s=30), key=batch_number)
    assert [len(json.loads(r.body)) for r in received] == [10, 10, 5]
    assert [record["n"] for r in received for record in json.loads(r.body)] == list(range(25))
    assert received[2].at >= posted_at + 1  # the partial batch waited for its interval
    assert max(received[0].at, received[1].at) < received[2].at
    final = wait_until(lambda: (s := stats(client))["sent_batches"] == 3 and s, 10)
    assert (final["sent_records"], final["pending"], final["in_flight"], final["last_status_code"]) == (25, 0, 0, 200)
    # A sleep on purpose, to show that something does not happen: beat goes on flushing (every
    # second) for 1.5 s more, and no empty batch may be sent meanwhile.
    time.sleep(1.5)
    assert len(http_target.requests_to("/in")) == 3
    assert "batch events/" in procs.log("worker") and "POST 10 records" in procs.log("worker")


def test_a_failing_endpoint_gets_retries_with_the_same_id_then_dead_batches_are_redriven(redis_url, services_factory,
                                                                                         http_target):
    procs = services_factory(**FAST)
    procs.start_worker(concurrency=2)
    procs.start_beat()
    client = api(redis_url)
    client.put("/v1/batches/events", json={"endpoint": http_target.url + "/in", "max_records": 2,
                                           "retry": {"max_attempts": 2, "backoff_base": 0.2}})
    # First batch: 500 then 200. Second batch: 503 twice, so it runs out of attempts.
    http_target.reply("/in", Reply(500), Reply(200))
    client.post("/v1/batches/events/records/batch", json={"records": ["a", "b"]})
    first, second = http_target.wait_for(2, "/in", timeout_s=20)
    assert first.headers["Htq-Batch-Id"] == second.headers["Htq-Batch-Id"]
    assert (first.headers["Htq-Attempt"], second.headers["Htq-Attempt"]) == ("1", "2")
    assert second.at - first.at >= 0.2 and first.body == second.body == b'["a","b"]'
    wait_until(lambda: stats(client)["sent_batches"] == 1, 10)

    http_target.reply("/in", Reply(503), Reply(503))
    client.post("/v1/batches/events/records/batch", json={"records": ["c", "d"]})
    dead = wait_until(lambda: client.get("/v1/batches/events/dead").get_json()["items"], 20)
    assert [(d["records"], d["attempts"], d["last_status_code"]) for d in dead] == [(["c", "d"], 2, 503)]
    # The service goes on accepting and forwarding while a batch is dead.
    client.post("/v1/batches/events/records/batch", json={"records": ["e", "f"]})
    wait_until(lambda: stats(client)["sent_batches"] == 2, 10)
    assert client.post("/v1/batches/events/dead/redrive").get_json() == {"moved": 1}
    wait_until(lambda: stats(client)["sent_batches"] == 3, 10)
    redriven = http_target.requests_to("/in")[-1]
    assert redriven.headers["Htq-Batch-Id"] == dead[0]["id"] and redriven.body == b'["c","d"]'
    assert stats(client)["dead_batches"] == 0


def test_a_worker_killed_mid_send_loses_no_record_and_resends_with_the_same_id(redis_url, services_factory,
                                                                               http_target):
    """SIGKILL the whole worker while the endpoint holds its POST: the lease expires, another worker
    sends the same batch (same Htq-Batch-Id), and every record arrives, exactly once per batch id.

    The 12 records make two full batches, sent at the same time by the one task of the victim,
    and a third one after the interval. Whatever the victim sent without recording the answer
    is sent again with its batch id (at-least-once): a receiver keyed on Htq-Batch-Id sees every
    record exactly once, and a batch id always carries the same records."""
    procs = services_factory(**FAST)
    procs.start_worker("victim", concurrency=1)
    procs.start_beat()
    client = api(redis_url)
    client.put("/v1/batches/events", json={"endpoint": http_target.url + "/in", "max_records": 5, "interval": 1,
                                           "timeout": 2})
    http_target.reply("/in", Reply(200, delay_s=30))  # the first POST hangs
    client.post("/v1/batches/events/records/batch", json={"records": list(range(12))})
    hung = http_target.wait_for(1, "/in", timeout_s=30)[0]
    procs.kill("victim", signal.SIGKILL)
    procs.start_worker("rescuer", concurrency=2)
    wait_until(lambda: (s := stats(client))["sent_records"] == 12 and s["in_flight"] == 0, 40, 0.1)
    delivered = http_target.requests_to("/in")[1:]  # every request after the hung one got its 200
    by_id: dict[str, set[bytes]] = {}
    for received in delivered:
        by_id.setdefault(received.headers["Htq-Batch-Id"], set()).add(received.body)
    assert all(len(bodies) == 1 for bodies in by_id.values())  # a batch id always carries the same records
    records = [record for bodies in by_id.values() for record in json.loads(next(iter(bodies)))]
    assert sorted(records) == list(range(12))  # nothing lost, nothing in two batches
    again = [r for r in delivered if r.headers["Htq-Batch-Id"] == hung.headers["Htq-Batch-Id"]]
    assert len(again) == 1 and again[0].body == hung.body
    assert again[0].headers["Htq-Attempt"] == "2"
    assert f"batch events/{hung.headers['Htq-Batch-Id']}: worker lost during attempt 1" in procs.log("rescuer")
    # Only a batch whose answer the victim never recorded may arrive twice.
    assert len(delivered) - len(by_id) <= 1


def test_the_env_batch_is_configured_by_the_worker_and_forwards_records_posted_without_a_put(
        redis_url, services_factory, http_target):
    procs = services_factory(WEBHOOK_POST_ENDPOINT=http_target.url + "/log", WEBHOOK_BATCH_SIZE="3",
                             WEBHOOK_BATCH_INTERVAL="1s", **FAST)
    procs.start_worker(concurrency=2)
    procs.start_beat()
    client = api(redis_url)  # this web side has no WEBHOOK_* of its own: the worker configured `log`
    log_batch = wait_until(lambda: (r := client.get("/v1/batches/log")).status_code == 200 and r.get_json(), 30)
    assert (log_batch["endpoint"], log_batch["max_records"], log_batch["interval"]) == (http_target.url + "/log", 3,
                                                                                        1.0)
    for n in range(4):
        assert client.post("/v1/batches/log/records", json={"user_id": n + 1}).status_code == 202
    received = sorted(http_target.wait_for(2, "/log", timeout_s=20), key=batch_number)
    assert [json.loads(r.body) for r in received] == [[{"user_id": 1}, {"user_id": 2}, {"user_id": 3}],
                                                      [{"user_id": 4}]]


def receipt(client, record_id, name="events") -> dict:
    return client.get(f"/v1/batches/{name}/records/{record_id}").get_json()


def test_a_records_receipt_shows_it_pending_sending_dead_and_sent_after_a_redrive(redis_url, services_factory,
                                                                                  http_target):
    procs = services_factory(**FAST)
    procs.start_worker(concurrency=2)
    procs.start_beat()
    client = api(redis_url)
    client.put("/v1/batches/events", json={"endpoint": http_target.url + "/in", "max_records": 2, "interval": 60,
                                           "retry": {"max_attempts": 2, "backoff_base": 0.2}})
    held = threading.Event()
    http_target.reply("/in", Reply(503, release=held), Reply(503))
    first = client.post("/v1/batches/events/records", json={"n": 1}).get_json()["id"]
    assert receipt(client, first) == {"id": first, "state": "pending", "batch_id": None, "sent_at": None,
                                      "status_code": None}
    client.post("/v1/batches/events/records", json={"n": 2})  # fills the batch
    [posted] = http_target.wait_for(1, "/in", timeout_s=20)
    batch_id = posted.headers["Htq-Batch-Id"]
    assert receipt(client, first) == {"id": first, "state": "sending", "batch_id": batch_id, "sent_at": None,
                                      "status_code": None}
    held.set()
    dead = wait_until(lambda: (r := receipt(client, first))["state"] == "dead" and r, 20)
    assert (dead["batch_id"], dead["status_code"]) == (batch_id, 503)
    assert client.post("/v1/batches/events/dead/redrive").get_json() == {"moved": 1}
    sent = wait_until(lambda: (r := receipt(client, first))["state"] == "sent" and r, 20)
    assert (sent["batch_id"], sent["status_code"]) == (batch_id, 200) and sent["sent_at"].endswith("Z")
    assert http_target.requests_to("/in")[-1].headers["Htq-Batch-Id"] == batch_id
    missing = client.get(f"/v1/batches/events/records/{first.split('.')[0]}.3")
    assert missing.status_code == 404 and missing.get_json()["code"] == 404


def too_large_above(limit: int):
    """An endpoint that takes at most `limit` records per POST: 413 for a bigger JSON array."""
    return lambda received: Reply(413, b"too large") if len(json.loads(received.body)) > limit else Reply(200)


def test_an_endpoint_answering_413_gets_the_batch_in_halves_in_order_each_with_its_own_id(
        redis_url, services_factory, http_target):
    procs = services_factory(**FAST)
    procs.start_worker(concurrency=4)
    procs.start_beat()
    client = api(redis_url)
    client.put("/v1/batches/events", json={"endpoint": http_target.url + "/in", "max_records": 23,
                                           "retry": {"max_attempts": 1}})
    http_target.respond("/in", too_large_above(3))
    ids = client.post("/v1/batches/events/records/batch",
                      json={"records": [{"n": n} for n in range(23)]}).get_json()["ids"]
    final = wait_until(lambda: (s := stats(client))["sent_records"] == 23 and s["in_flight"] == 0 and s, 30, 0.1)
    assert final["dead_batches"] == 0  # one attempt each, yet no 413 used one up
    accepted = [r for r in http_target.requests_to("/in") if len(json.loads(r.body)) <= 3]
    assert [record["n"] for r in accepted for record in json.loads(r.body)] == list(range(23))  # in order
    batch_ids = [r.headers["Htq-Batch-Id"] for r in accepted]
    assert len(set(batch_ids)) == len(accepted) == final["sent_batches"]
    assert all(r.headers["Htq-Attempt"] == "1" for r in accepted)
    # 23 -> 12 + 11 -> 6 + 6 + 6 + 5 -> 3 + 3 each, and 3 + 2: nine POSTs taken, six refused.
    assert [len(json.loads(r.body)) for r in accepted] == [3, 3, 3, 3, 3, 3, 3, 2]
    assert len(http_target.requests_to("/in")) == 8 + 7
    # Each record's receipt names the POST that carried it.
    carried = {json.dumps(record): r.headers["Htq-Batch-Id"] for r in accepted for record in json.loads(r.body)}
    assert [receipt(client, record_id)["batch_id"] for record_id in ids] == [
        carried[json.dumps({"n": n})] for n in range(23)]
    assert "split in two: 12 records in" in procs.log("worker")


def test_a_single_record_answered_413_is_dead_at_once(redis_url, services_factory, http_target):
    procs = services_factory(**FAST)
    procs.start_worker(concurrency=1)
    procs.start_beat()
    client = api(redis_url)
    client.put("/v1/batches/events", json={"endpoint": http_target.url + "/in", "max_records": 1,
                                           "retry": {"max_attempts": 5, "backoff_base": 0.1}})
    http_target.respond("/in", too_large_above(0))
    record_id = client.post("/v1/batches/events/records", json={"big": "x" * 100}).get_json()["id"]
    [dead] = wait_until(lambda: client.get("/v1/batches/events/dead").get_json()["items"], 20)
    assert (dead["records"], dead["attempts"], dead["last_status_code"]) == ([{"big": "x" * 100}], 1, 413)
    assert receipt(client, record_id)["state"] == "dead"
    assert len(http_target.requests_to("/in")) == 1  # not retried


def test_a_worker_killed_while_its_batch_is_answered_413_loses_nothing(redis_url, services_factory, http_target):
    """The victim dies with the 413 on its way: the lease expires, the batch is sent again (attempt
    2), answered 413 again and split; every record still arrives, in order."""
    procs = services_factory(**FAST)
    procs.start_worker("victim", concurrency=1)
    procs.start_beat()
    client = api(redis_url)
    client.put("/v1/batches/events", json={"endpoint": http_target.url + "/in", "max_records": 8, "timeout": 2})
    http_target.reply("/in", Reply(413, delay_s=30))  # the first POST hangs, then would say 413
    http_target.respond("/in", too_large_above(4))
    client.post("/v1/batches/events/records/batch", json={"records": list(range(8))})
    http_target.wait_for(1, "/in", timeout_s=30)
    procs.kill("victim", signal.SIGKILL)
    procs.start_worker("rescuer", concurrency=2)
    wait_until(lambda: (s := stats(client))["sent_records"] == 8 and s["in_flight"] == 0, 40, 0.1)
    accepted = [json.loads(r.body) for r in http_target.requests_to("/in")[1:] if len(json.loads(r.body)) <= 4]
    assert accepted == [[0, 1, 2, 3], [4, 5, 6, 7]]
