"""/compat/htq end to end: the Flask app, a real Celery worker and beat, a real HTTP target."""
from __future__ import annotations

import pytest

from app import create_app
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

FAST = {"HTQ_HORIZON": "1", "HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "3"}


@pytest.fixture
def client(redis_url, services_factory):
    procs = services_factory(**FAST)
    procs.start_worker(concurrency=2)
    procs.start_beat()
    return create_app(make_settings(redis_url, horizon_s=1, publish_grace_s=3)).test_client()


def send(client, **body) -> str:
    response = client.post("/compat/htq/", json=body)
    assert response.status_code == 303
    return response.headers["Location"]


def status(client, location) -> str:
    return client.get(location + "status/").get_json()["status"]


def test_request_is_sent_once_and_any_answer_is_its_successful_response(client, http_target):
    http_target.reply("/task", Reply(404, b"no such thing", {"X-Why": "gone"}))
    location = send(client, url=http_target.url + "/task?x=1", data="payload", headers={"X-Custom": "c"})
    response = client.get(location + "response/")  # waits for the worker
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "success" and body["code"] == 404 and body["reason"] == "Not Found"
    assert body["data"] == "no such thing" and body["headers"]["X-Why"] == "gone"
    assert body["uuid"] == location.rstrip("/").rsplit("/", 1)[1] and body["elapsed"] >= 0
    [received] = http_target.requests_to("/task")
    assert received.method == "POST" and received.path == "/task?x=1" and received.body == b"payload"
    assert received.headers["X-Custom"] == "c"
    assert status(client, location) == "success"


def test_timeout_is_final_and_cancel_in_flight_sends_delete(client, http_target):
    http_target.reply("/slow", Reply(200, delay_s=2.5))
    http_target.reply("/long", Reply(200, b"too late", delay_s=2.5))
    timed_out = send(client, url=http_target.url + "/slow", timeout=1)
    canceled = send(client, url=http_target.url + "/long")
    wait_until(lambda: status(client, canceled) == "pending", 20)
    assert client.delete(canceled).status_code == 204
    [delete] = wait_until(lambda: [r for r in http_target.requests_to("/long") if r.method == "DELETE"], 20)
    assert status(client, canceled) == "canceled"
    body = client.get(timed_out + "response/").get_json()
    assert body["status"] == "timeout" and body["message"].startswith("timeout") and body["time"] > 0
    assert status(client, timed_out) == "timeout" and len(http_target.requests_to("/slow")) == 1
    wait_until(lambda: len(http_target.requests_to("/long")) == 2, 10)
    assert client.get(canceled + "response/").get_json() == {}
