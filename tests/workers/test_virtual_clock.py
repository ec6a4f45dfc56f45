"""The virtual clock (HTQ_CLOCK=virtual) end to end in one process: the web app and a real
in-process Celery worker share the clock's offset in the test Redis, and no beat runs: an advance
alone makes what came due happen, promptly, on a real HTTP target."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from app import create_app
from app.core import clock
from tests.support.http_target import Reply
from tests.support.waiting import wait_until

DAY_S = 86400


@pytest.fixture
def settings(settings):
    return replace(settings, clock="virtual")


@pytest.fixture(autouse=True)
def real_clock_after():
    yield
    clock.use_real()


@pytest.fixture
def client(settings, worker):
    return create_app(settings).test_client()


def advance(client, seconds: float) -> str:
    answer = client.post("/v1/clock/advance", json={"seconds": seconds})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["now"]


def status(client, request_id: str) -> dict:
    return client.get(f"/v1/requests/{request_id}/status").get_json()


def test_a_request_due_in_three_days_and_its_retries_are_sent_as_the_clock_advances(client, http_target):
    http_target.reply("/remind", Reply(503, headers={"Retry-After": "3600"}), Reply(200))
    before = client.get("/v1/clock").get_json()
    assert before["virtual"] is True
    created = client.post("/v1/requests", json={"url": http_target.url + "/remind", "delay": 3 * DAY_S,
                                                 "callback_url": http_target.url + "/cb"}).get_json()
    advance(client, 3 * DAY_S - 60)  # within the horizon: handed to the worker with a (real) eta a minute away
    assert status(client, created["id"])["status"] == "queued"
    time.sleep(0.5)
    assert not http_target.requests_to("/remind")
    started = time.monotonic()
    now = advance(client, 60)
    [first] = http_target.wait_for(1, "/remind", timeout_s=5)
    assert time.monotonic() - started < 5 and clock.from_rfc3339(now) >= clock.from_rfc3339(created["due_at"])
    wait_until(lambda: status(client, created["id"])["status"] == "retrying")
    advance(client, 3600)  # its Retry-After, on the virtual clock
    first, second = http_target.wait_for(2, "/remind", timeout_s=5)
    assert (first.headers["Htq-Attempt"], second.headers["Htq-Attempt"]) == ("1", "2")
    http_target.wait_for(1, "/cb")
    assert status(client, created["id"])["status"] == "succeeded"
    assert client.get("/v1/clock").get_json()["now"] >= now  # never back


def test_queue_delays_visibility_and_retention_follow_the_virtual_clock(client):
    assert client.put("/v1/queues/jobs", json={"visibility_timeout": 3600}).status_code in (200, 201)
    assert client.post("/v1/queues/jobs/messages?delay=600", json="later").status_code == 201
    assert client.post("/v1/queues/jobs/messages/receive", json={}).get_json()["messages"] == []
    advance(client, 600)
    [message] = client.post("/v1/queues/jobs/messages/receive", json={}).get_json()["messages"]
    assert message["body"] == "later"
    assert client.post("/v1/queues/jobs/messages/receive", json={}).get_json()["messages"] == []  # locked 1 h
    advance(client, 3600)
    [again] = client.post("/v1/queues/jobs/messages/receive", json={}).get_json()["messages"]
    assert again["id"] == message["id"] and again["receive_count"] == 2


def test_a_batch_interval_and_request_retention_pass_with_an_advance(client, http_target, settings):
    assert client.put("/v1/batches/daily", json={"endpoint": http_target.url + "/in", "max_records": 1000,
                                                 "interval": 3600}).status_code == 201
    assert client.post("/v1/batches/daily/records", json={"n": 1}).status_code == 202
    created = client.post("/v1/requests", json={"url": http_target.url + "/hook"}).get_json()
    http_target.wait_for(1, "/hook")
    wait_until(lambda: status(client, created["id"])["status"] == "succeeded")
    advance(client, 3600)
    [posted] = http_target.wait_for(1, "/in", timeout_s=5)
    assert posted.body == b'[{"n":1}]'
    advance(client, settings.retention_s)
    assert client.get(f"/v1/requests/{created['id']}").status_code == 410
