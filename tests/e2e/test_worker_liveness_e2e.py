"""A worker that dies or stops hands back what it held within seconds, with htq's default lease
margin and publish grace (no short cuts): real worker processes killed with SIGKILL or stopped
with SIGTERM, a real beat and Redis, a real HTTP target. The relay finds a dead worker by its
missing heartbeats, not by a lease or the broker's visibility timeout."""
from __future__ import annotations

import signal
import socket
import time

import pytest

from app import create_app
from app.core import clock
from app.storage import keys
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

LATE_S = 15  # the bound of the issue: held work delivered within 15 s of its due time


@pytest.fixture
def client(redis_url):
    return create_app(make_settings(redis_url)).test_client()


def node(name: str) -> str:
    return f"{name}@{socket.gethostname()}"


def live_names(client) -> set[str]:
    return {worker["name"] for worker in client.get("/v1/workers").get_json()["items"]}


def create_due_in(client, url: str, delays_s: list[float]) -> dict[str, float]:
    """{id: due time (epoch seconds, as the server set it)} of requests created with these delays."""
    due = {}
    for delay_s in delays_s:
        created = client.post("/v1/requests", json={"url": url, "delay": delay_s}).get_json()
        due[created["id"]] = clock.from_rfc3339(created["due_at"]) / 1000
    return due


def lateness_s(http_target, path: str, due: dict[str, float]) -> dict[str, float]:
    arrivals = {}
    for received in http_target.requests_to(path):
        arrivals.setdefault(received.headers["Idempotency-Key"], received.at)
    return {request_id: arrivals[request_id] - due_at for request_id, due_at in due.items()}


def test_a_killed_worker_holding_eta_tasks_leaves_the_list_and_its_requests_arrive_in_time(
        client, store, services_factory, http_target):
    procs = services_factory()
    procs.start_worker("victim", concurrency=2)
    procs.start_beat()
    wait_until(lambda: node("victim") in live_names(client), 30, 0.1)
    due = create_due_in(client, http_target.url + "/held", [4 + i * 0.25 for i in range(20)])
    wait_until(lambda: store.redis.scard(keys.worker_held(node("victim"))) == 20, 10, 0.05)  # all in its memory
    procs.kill("victim", signal.SIGKILL)
    killed_at = time.monotonic()
    procs.start_worker("rescuer", concurrency=2)
    wait_until(lambda: node("victim") not in live_names(client), 12, 0.1)
    assert time.monotonic() - killed_at <= 10  # noticed within 10 s
    http_target.wait_for(20, "/held", timeout_s=40)
    late = lateness_s(http_target, "/held", due)
    assert max(late.values()) <= LATE_S, sorted(late.values())
    assert min(late.values()) >= 0  # never early
    # The target records an arrival before it answers: the outcome is stored just after.
    wait_until(lambda: {client.get(f"/v1/requests/{i}/status").get_json()["status"] for i in due} == {"succeeded"},
               10, 0.1)


def test_an_attempt_running_when_its_worker_is_killed_is_retried_within_seconds_despite_a_long_timeout(
        client, services_factory, http_target):
    procs = services_factory()
    procs.start_worker("victim", concurrency=1)
    procs.start_beat()
    http_target.reply("/slow", Reply(200, delay_s=60), Reply(200))
    created = client.post("/v1/requests", json={"url": http_target.url + "/slow", "timeout": 120,
                                                 "retry": {"backoff_base": 0.01}}).get_json()
    http_target.wait_for(1, "/slow", timeout_s=30)
    procs.kill("victim", signal.SIGKILL)
    killed_at = time.time()
    procs.start_worker("rescuer", concurrency=1)
    first, second = http_target.wait_for(2, "/slow", timeout_s=30)
    assert second.at - killed_at <= LATE_S  # not after the lease (120 s + 30 s)
    assert (first.headers["Htq-Attempt"], second.headers["Htq-Attempt"]) == ("1", "2")
    attempts = client.get(f"/v1/requests/{created['id']}/attempts").get_json()["items"]
    assert "worker lost" in attempts[0]["error"]


def test_a_worker_stopped_with_sigterm_mid_backlog_hands_back_what_it_held_at_once(
        client, services_factory, http_target):
    procs = services_factory()
    procs.start_worker("leaving", concurrency=1)
    procs.start_beat()
    wait_until(lambda: node("leaving") in live_names(client), 30, 0.1)
    http_target.reply("/backlog", *[Reply(200, delay_s=0.2)] * 40)
    due = create_due_in(client, http_target.url + "/backlog", [2 + i * 0.1 for i in range(30)])
    http_target.wait_for(1, "/backlog", timeout_s=20)
    procs.stop("leaving")  # SIGTERM: Celery's warm shutdown
    assert node("leaving") not in live_names(client)  # deregistered as it stopped, not found dead later
    procs.start_worker("staying", concurrency=4)
    http_target.wait_for(30, "/backlog", timeout_s=40)
    late = lateness_s(http_target, "/backlog", due)
    assert max(late.values()) <= LATE_S, sorted(late.values())


def test_a_batch_being_posted_when_its_worker_is_killed_is_sent_again_within_seconds(
        client, services_factory, http_target):
    procs = services_factory()
    procs.start_worker("victim", concurrency=1)
    procs.start_beat()
    http_target.reply("/batch", Reply(200, delay_s=60), Reply(200))
    assert client.put("/v1/batches/events", json={"endpoint": http_target.url + "/batch", "max_records": 2,
                                                   "timeout": 30}).status_code == 201
    assert client.post("/v1/batches/events/records/batch", json={"records": [1, 2]}).status_code == 202
    http_target.wait_for(1, "/batch", timeout_s=30)
    procs.kill("victim", signal.SIGKILL)
    killed_at = time.time()
    procs.start_worker("rescuer", concurrency=1)
    first, second = http_target.wait_for(2, "/batch", timeout_s=30)
    assert second.at - killed_at <= LATE_S  # not after the lease (30 s + 30 s)
    assert first.headers["Htq-Batch-Id"] == second.headers["Htq-Batch-Id"] and second.body == b"[1,2]"
