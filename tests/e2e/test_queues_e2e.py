"""Message queues end to end: real Celery worker and beat (the sweep), and a real gunicorn server
(config/gunicorn.py, gevent) holding 500 long polls while it keeps answering other requests."""
from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from app import create_app
from app.embedded import free_port
from app.storage import keys
from app.storage.client import Store
from bench.long_polls import collect, open_long_polls, wait_parked
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

LONG_POLLS = 500


@pytest.fixture
def client(redis_url):
    return create_app(make_settings(redis_url)).test_client()


def test_beat_sweep_returns_expired_locks_and_dead_letters_on_idle_queues(client, store, services_factory):
    services = services_factory()
    services.start_worker(concurrency=1)
    services.start_beat()
    client.put("/v1/queues/retry", json={"visibility_timeout": 1})
    client.put("/v1/queues/poison", json={"visibility_timeout": 1, "max_receives": 1})
    retry_id = client.post("/v1/queues/retry/messages", json="again").get_json()["id"]
    poison_id = client.post("/v1/queues/poison/messages", json="bad").get_json()["id"]
    for name in ("retry", "poison"):
        assert len(client.post(f"/v1/queues/{name}/messages/receive", json={}).get_json()["messages"]) == 1
    # Nobody receives or reads the queues again: only the beat sweep can move these messages.
    wait_until(lambda: store.redis.zscore(keys.queue_ready("retry"), retry_id) is not None, 30, 0.1)
    wait_until(lambda: store.redis.zscore(keys.queue_dead("poison"), poison_id) is not None, 30, 0.1)
    assert store.redis.zcard(keys.queue_inflight("retry")) == store.redis.zcard(keys.queue_inflight("poison")) == 0
    assert "tick: " in services.log("worker") and " queues_returned=" in services.log("worker")  # by beat's tick
    assert client.get("/v1/queues/poison").get_json()["dead"] == 1
    received = client.post("/v1/queues/retry/messages/receive", json={}).get_json()["messages"]
    assert [(m["id"], m["receive_count"]) for m in received] == [(retry_id, 2)]


def test_beat_sweep_drops_messages_past_retention(client, store, services_factory):
    services = services_factory()
    services.start_worker(concurrency=1)
    services.start_beat()
    client.put("/v1/queues/old", json={"retention": 60})
    message_id = client.post("/v1/queues/old/messages", json=1).get_json()["id"]
    # Age the message by rewriting its first-available time, as if it had been pushed 61 s ago.
    store.redis.zadd(keys.queue_ages("old"), {message_id: int(time.time() * 1000) - 61_000})
    wait_until(lambda: not store.redis.hexists(keys.queue_meta("old"), message_id), 30, 0.1)
    assert client.get("/v1/queues/old").get_json()["visible"] == 0


# -- a real gunicorn server ---------------------------------------------------------------------


class Web:
    """A one-request-per-connection HTTP client of the web server on `port`."""

    def __init__(self, port: int):
        self.port = port

    def request(self, method: str, path: str, body=None) -> tuple[int, dict | str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read().decode()
            return response.status, json.loads(data) if data.startswith(("{", "[")) else data
        finally:
            conn.close()


@pytest.fixture
def web(services_factory):
    """gunicorn as the Procfile runs it (config/gunicorn.py, gevent) against the test Redis."""
    port = free_port()
    services_factory(LOG_LEVEL="WARNING").start_web(port)
    return Web(port)


def test_gunicorn_holds_500_long_polls_while_other_requests_answer_quickly(web, store):
    assert web.request("PUT", "/v1/queues/q", {})[0] == 201
    store.redis.config_resetstat()
    polls = open_long_polls(web.port, "q", LONG_POLLS, {"wait": 20, "max": 1})
    wait_parked(store.redis, LONG_POLLS)  # every poll has checked the queue and is waiting
    latencies = []
    for _ in range(100):
        started = time.perf_counter()
        status, _ = web.request("GET", "/v1/queues/q")
        latencies.append(time.perf_counter() - started)
        assert status == 200
    latencies.sort()
    assert latencies[98] < 0.1, f"p99 {latencies[98] * 1000:.1f} ms with {LONG_POLLS} long polls waiting"
    assert collect(polls, 1, 0) == []  # none has answered yet: all are still waiting

    pushed_at = time.monotonic()
    for start in range(0, LONG_POLLS, 100):
        status, _ = web.request("POST", "/v1/queues/q/messages/batch",
                                {"messages": [{"body": i} for i in range(start, start + 100)]})
        assert status == 201
    answers = collect(polls, LONG_POLLS, 15)
    assert len(answers) == LONG_POLLS and time.monotonic() - pushed_at < 10
    bodies = []
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), answer[:300]
        bodies += [m["body"] for m in json.loads(body)["messages"]]
    assert sorted(bodies) == list(range(LONG_POLLS))  # each message to exactly one poll


def test_gunicorn_serves_a_full_queue_cycle(web, redis_url):
    status, pushed = web.request("POST", "/v1/queues/jobs/messages/batch",
                                 {"messages": [{"body": {"n": i}} for i in range(5)]})
    assert status == 201
    status, received = web.request("POST", "/v1/queues/jobs/messages/receive", {"max": 10, "wait": 1})
    assert [m["id"] for m in received["messages"]] == pushed["ids"]
    status, acked = web.request("POST", "/v1/queues/jobs/messages/ack", {"messages": [
        {"id": m["id"], "receipt": m["receipt"]} for m in received["messages"]]})
    assert acked == {"acked": 5, "failed": []}
    assert Store.from_url(redis_url).redis.hlen(keys.queue_meta("jobs")) == 0


def test_gunicorn_closes_an_idle_keep_alive_connection_after_keepalive_seconds(web):
    """gevent's HTTP server alone would keep it open as long as the client does, and a stopping
    worker would wait its whole graceful timeout (35 s) for such clients."""
    with socket.create_connection(("127.0.0.1", web.port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        answer = b""
        while not answer.endswith(b"\r\n\r\nOK"):
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        idle_since = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server
        assert 4 < time.monotonic() - idle_since < 10


def test_beat_sweep_moves_a_poison_message_to_the_dead_letter_queue_waking_its_long_poll(services_factory):
    """Through real HTTP: nobody receives from the source again, so only beat's sweep can move the
    message; a long poll already waiting on the target gets it, with its id and body, and
    /metrics counts it as visible there, not as dead in the source."""
    from concurrent.futures import ThreadPoolExecutor

    from prometheus_client.parser import text_string_to_metric_families

    services = services_factory(LOG_LEVEL="WARNING")
    port = free_port()
    services.start_web(port)
    services.start_worker(concurrency=1)
    services.start_beat()
    web = Web(port)
    assert web.request("PUT", "/v1/queues/failed", {})[0] == 201
    assert web.request("PUT", "/v1/queues/orders", {"visibility_timeout": 1, "max_receives": 1,
                                                    "dead_letter_queue": "failed"})[0] == 201
    assert web.request("GET", "/v1/queues/orders")[1]["dead_letter_queue"] == "failed"
    status, created = web.request("POST", "/v1/queues/orders/messages", {"order": 7})
    assert status == 201
    status, received = web.request("POST", "/v1/queues/orders/messages/receive", {})
    assert [m["id"] for m in received["messages"]] == [created["id"]]
    with ThreadPoolExecutor(1) as pool:
        poll = pool.submit(web.request, "POST", "/v1/queues/failed/messages/receive", {"wait": 20})
        status, answer = poll.result(timeout=30)
    assert status == 200
    assert [(m["id"], m["body"], m["receive_count"]) for m in answer["messages"]] == [(created["id"], {"order": 7}, 1)]
    status, text = web.request("GET", "/metrics")
    gauges = {(s.labels["queue"], s.labels["state"]): s.value
              for family in text_string_to_metric_families(text) if family.name == "htq_queue_messages"
              for s in family.samples}
    assert gauges[("failed", "in_flight")] == 1 and gauges[("orders", "dead")] == 0
    assert gauges[("orders", "in_flight")] == gauges[("orders", "visible")] == 0
