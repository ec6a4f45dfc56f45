"""A Redis that runs out of memory under a running htq (its own Redis, gunicorn, a Celery worker and
beat, each a real process): writes answer 503 and reads go on; the worker and beat keep running
through refused settles, starts, acknowledgements and publishes; once memory is freed, without any
restart, every request is delivered (the one whose outcome could not be stored, again)."""
from __future__ import annotations

import threading

import pytest
import requests

from app.embedded import free_port
from app.errors import OUT_OF_MEMORY_RETRY_AFTER_S
from app.processes import ServiceProcesses, TemporaryRedis, service_env
from tests.support.http_target import Reply
from tests.support.memory import FullRedis
from tests.support.waiting import wait_until

TIMEOUT_S = 5  # of the attempt whose settle is refused: its lease ends 6 s after it started


@pytest.fixture
def stack(tmp_path):
    server = TemporaryRedis()
    server.start()
    procs = ServiceProcesses(service_env(server.url, HTQ_PUBLISH_GRACE="2", HTQ_LEASE_MARGIN="1",
                                         WEB_CONCURRENCY="1"), tmp_path)
    full = FullRedis(server.url)
    try:
        base = procs.start_web(free_port())
        procs.start_worker(concurrency=2)
        procs.start_beat()
        procs.wait_log("worker", " ready.")
        yield procs, base, full
    finally:
        full.restore()
        procs.stop_all()
        server.cleanup()


def refused_tasks(log: str) -> int:
    return sum("raised unexpected" in line and "OutOfMemoryError" in line for line in log.splitlines())


def status_of(base: str, request_id: str) -> dict:
    return requests.get(f"{base}/v1/requests/{request_id}/status", timeout=5).json()


def test_htq_keeps_running_through_a_full_redis_and_delivers_everything_once_memory_is_freed(stack, http_target):
    procs, base, full = stack
    gate = threading.Event()
    http_target.reply("/settle", Reply(release=gate))
    settle = requests.post(f"{base}/v1/requests", json={"url": http_target.url + "/settle", "timeout": TIMEOUT_S},
                           timeout=5).json()["id"]
    start = requests.post(f"{base}/v1/requests", json={"url": http_target.url + "/start", "delay": 2},
                          timeout=5).json()["id"]  # published now with its eta; due once Redis is full
    http_target.wait_for(1, "/settle")
    full.fill()
    gate.set()  # the answer arrives in a full Redis: its outcome cannot be stored

    for method, path, body in [("post", "/v1/queues/q/messages", {"n": 1}), ("post", "/v1/requests",
                               {"url": http_target.url + "/x"}), ("put", "/v1/batches/b", {"endpoint": "http://x/"}),
                               ("put", "/v1/queues/q", {})]:
        refused = getattr(requests, method)(base + path, json=body, timeout=5)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == str(OUT_OF_MEMORY_RETRY_AFTER_S)
    assert status_of(base, settle)["status"] == "running"
    assert requests.get(f"{base}/v1/requests?status=queued", timeout=5).json()["items"][0]["id"] == start

    # Each refusal reached the processes: the settle and the start (the tasks fail and are
    # acknowledged), beat's publishes. Both processes go on.
    wait_until(lambda: refused_tasks(procs.log("worker")) >= 2, timeout_s=20)
    wait_until(lambda: "Couldn't apply scheduled task" in procs.log("beat"), timeout_s=10)
    assert full.refuses_writes()
    assert procs.procs["worker"].poll() is None and procs.procs["beat"].poll() is None

    full.free()
    # The relay hands back both once their lease or publish grace has passed: the settled attempt
    # counts as lost (its worker's outcome never reached the store) and is sent again.
    wait_until(lambda: status_of(base, settle)["status"] == "succeeded", timeout_s=30, interval_s=0.2)
    wait_until(lambda: status_of(base, start)["status"] == "succeeded", timeout_s=30, interval_s=0.2)
    assert len(http_target.requests_to("/settle")) == 2 and len(http_target.requests_to("/start")) == 1
    attempts = requests.get(f"{base}/v1/requests/{settle}/attempts", timeout=5).json()["items"]
    assert [a["attempt"] for a in attempts] == [1, 2] and "lost" in attempts[0]["error"]
    assert requests.post(f"{base}/v1/queues/q/messages", json={"n": 1}, timeout=5).status_code == 201
    assert "Unrecoverable error" not in procs.log("worker")
    assert procs.procs["worker"].poll() is None and procs.procs["beat"].poll() is None
