"""Deferred requests end to end: the Flask app, a real Celery worker and beat, a real HTTP target."""
from __future__ import annotations

import pytest
import redis

from app import create_app
from app.core import clock
from app.processes import ServiceProcesses, service_env
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

# A short horizon, lease margin and publish grace make the relay paths happen within seconds.
FAST = {"HTQ_HORIZON": "1", "HTQ_LEASE_MARGIN": "1", "HTQ_PUBLISH_GRACE": "3"}


@pytest.fixture(scope="module")
def stack(redis_server, tmp_path_factory):
    redis.Redis.from_url(redis_server.url).flushall()
    procs = ServiceProcesses(service_env(redis_server.url, **FAST), tmp_path_factory.mktemp("e2e"))
    procs.start_worker(concurrency=2)
    procs.start_beat()
    yield procs
    procs.stop_all()


@pytest.fixture
def client(redis_server, stack):
    return create_app(make_settings(redis_server.url, horizon_s=1, publish_grace_s=3)).test_client()


def wait_status(client, request_id, wanted, timeout_s=20):
    def check():
        status = client.get(f"/v1/requests/{request_id}/status").get_json()
        return status if status["status"] in wanted else None
    return wait_until(check, timeout_s, 0.05)


def test_immediate_request_is_delivered_with_its_headers_and_response_stored(client, http_target):
    http_target.reply("/hook", Reply(201, b'{"ok": true}', {"X-Reply": "yes"}))
    created = client.post("/v1/requests", json={"url": http_target.url + "/hook?q=1", "json": {"a": 1},
                                                 "headers": {"X-Custom": "c"}}).get_json()
    response = client.get(f"/v1/requests/{created['id']}/response?wait=20")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status_code"] == 201 and body["body"] == '{"ok": true}' and body["headers"]["X-Reply"] == "yes"
    [received] = http_target.requests_to("/hook")
    assert received.method == "POST" and received.path == "/hook?q=1" and received.body == b'{"a": 1}'
    assert received.headers["Idempotency-Key"] == created["id"] and received.headers["Htq-Attempt"] == "1"
    assert received.headers["X-Custom"] == "c" and received.headers["Content-Type"] == "application/json"
    assert client.get(f"/v1/requests/{created['id']}").get_json()["status"] == "succeeded"


def test_server_errors_are_retried_with_retry_after_then_succeed(client, http_target):
    http_target.reply("/flaky", Reply(500), Reply(429, headers={"Retry-After": "0"}), Reply(200))
    created = client.post("/v1/requests", json={
        "url": http_target.url + "/flaky", "retry": {"backoff_base": 0.05, "backoff_max": 0.2}}).get_json()
    wait_status(client, created["id"], {"succeeded", "failed"})
    attempts = client.get(f"/v1/requests/{created['id']}/attempts").get_json()["items"]
    assert [a["status_code"] for a in attempts] == [500, 429, 200]
    assert [r.headers["Htq-Attempt"] for r in http_target.requests_to("/flaky")] == ["1", "2", "3"]
    assert {r.headers["Idempotency-Key"] for r in http_target.requests_to("/flaky")} == {created["id"]}


def test_client_error_fails_at_once(client, http_target):
    http_target.reply("/gone", Reply(404))
    created = client.post("/v1/requests", json={"url": http_target.url + "/gone"}).get_json()
    status = wait_status(client, created["id"], {"failed"})
    assert status["attempts"] == 1
    resource = client.get(f"/v1/requests/{created['id']}").get_json()
    assert resource["last_error"].startswith("HTTP 404")


def test_attempts_run_out_and_the_request_fails(client, http_target):
    http_target.reply("/down", *[Reply(503)] * 3)
    created = client.post("/v1/requests", json={"url": http_target.url + "/down", "retry": {
        "max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05}}).get_json()
    wait_status(client, created["id"], {"failed"})
    assert len(http_target.requests_to("/down")) == 3
    response = client.get(f"/v1/requests/{created['id']}/response").get_json()
    assert response["status_code"] == 503 and response["attempt"] == 3


def test_delayed_request_goes_through_the_relay_and_is_never_early(client, http_target):
    created = client.post("/v1/requests", json={"url": http_target.url + "/later", "delay": 2.5}).get_json()
    assert created["status"] == "scheduled"
    due_s = clock.from_rfc3339(created["due_at"]) / 1000
    [received] = http_target.wait_for(1, "/later", timeout_s=20)
    assert received.at >= due_s
    wait_status(client, created["id"], {"succeeded"})


def test_cancel_while_running_sends_delete_when_asked(client, http_target, stack):
    http_target.reply("/slow", Reply(200, delay_s=1.5))
    created = client.post("/v1/requests", json={"url": http_target.url + "/slow", "cancel_notify": True}).get_json()
    wait_status(client, created["id"], {"running"})
    assert client.delete(f"/v1/requests/{created['id']}").status_code == 204
    deletes = wait_until(lambda: [r for r in http_target.requests_to("/slow") if r.method == "DELETE"], 20)
    assert deletes[0].headers["Idempotency-Key"] == created["id"]
    # The attempt that was running when it was canceled ends (its 200 comes 1.5 s late) and is settled.
    wait_until(lambda: f"request {created['id']}: attempt 1 -> " in stack.log("worker"), 20, 0.05)
    assert client.get(f"/v1/requests/{created['id']}/status").get_json()["status"] == "canceled"


def test_callback_receives_the_final_resource(client, http_target):
    created = client.post("/v1/requests", json={"url": http_target.url + "/cb-target",
                                                 "callback_url": http_target.url + "/callback"}).get_json()
    [callback] = http_target.wait_for(1, "/callback", timeout_s=20)
    import json

    body = json.loads(callback.body)
    assert body["id"] == created["id"] and body["status"] == "succeeded" and body["response"]["status_code"] == 200
