"""A request's success and retry rules, through the broker to a real worker and a real HTTP target."""
from __future__ import annotations

import pytest

from app import create_app
from tests.support.http_target import Reply
from tests.support.waiting import wait_until


@pytest.fixture
def client(settings, worker):
    return create_app(settings).test_client()


def ended(client, request_id: str) -> dict:
    def check():
        resource = client.get(f"/v1/requests/{request_id}").get_json()
        return resource if resource["status"] in ("succeeded", "failed") else None
    return wait_until(check, 20, 0.05)


FAST = {"backoff_base": 0.05, "backoff_max": 0.1}


def test_a_200_whose_json_says_no_is_retried_until_it_says_yes(client, http_target):
    http_target.reply("/api", Reply(200, b'{"ok": false}'), Reply(200, b"busy"), Reply(200, b'{"ok": true}'))
    created = client.post("/v1/requests", json={"url": http_target.url + "/api", "retry": FAST,
                                                 "success": {"json": {"path": "ok", "equals": True}}}).get_json()
    assert created["success"] == {"json": {"path": "ok", "equals": True}}
    resource = ended(client, created["id"])
    assert resource["status"] == "succeeded" and resource["attempts"] == 3
    attempts = client.get(f"/v1/requests/{created['id']}/attempts").get_json()["items"]
    assert "'ok' is not the expected value" in attempts[0]["error"]


def test_retry_on_retries_a_404_and_fails_a_500_for_good(client, http_target):
    http_target.reply("/late", Reply(404), Reply(200))
    retried = client.post("/v1/requests", json={"url": http_target.url + "/late",
                                                 "retry": {**FAST, "on": [404]}}).get_json()
    assert ended(client, retried["id"])["status"] == "succeeded"
    http_target.reply("/down", Reply(500), Reply(500))
    failed = client.post("/v1/requests", json={"url": http_target.url + "/down",
                                                "retry": {**FAST, "on": [404]}}).get_json()
    resource = ended(client, failed["id"])
    assert resource["status"] == "failed" and resource["attempts"] == 1


def test_no_attempt_starts_past_max_duration(client, http_target):
    http_target.reply("/busy", *[Reply(503, headers={"Retry-After": "1"})] * 5)
    created = client.post("/v1/requests", json={"url": http_target.url + "/busy",
                                                 "retry": {"max_attempts": 10, "max_duration": 1.5}}).get_json()
    resource = ended(client, created["id"])
    assert resource["status"] == "failed" and resource["attempts"] == 2  # the third would start after 2 s
    assert "retry.max_duration" in resource["last_error"]
