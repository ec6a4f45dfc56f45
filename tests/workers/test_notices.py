"""The callback and the cancel notice, through the broker to an in-process worker and a real HTTP
target, with signing on: each carries its own webhook-id, not the request's (a receiver
de-duplicating on webhook-id, as Standard Webhooks advises, would drop it), the same on each of its
retries and signed as such; their Idempotency-Key stays the request id, as the contract says of
every request htq sends."""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from app import create_app
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

KEY = b"notice-secret-key"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


@pytest.fixture
def settings(redis_url):
    return make_settings(redis_url, signing_secret=SECRET)


@pytest.fixture
def client(settings):
    return create_app(settings).test_client()


def ids(received) -> tuple[str, str]:
    return received.headers["webhook-id"], received.headers["Idempotency-Key"]


def signature_is_valid(received) -> bool:
    """Standard Webhooks: HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>"."""
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode() + received.body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    return received.headers["webhook-signature"] == f"v1,{expected}"


def test_a_callback_has_its_own_webhook_id_the_same_on_its_retries(worker, client, http_target):
    http_target.reply("/callback", Reply(503), Reply(200))
    created = client.post("/v1/requests", json={"url": http_target.url + "/hook",
                                                "callback_url": http_target.url + "/callback"}).get_json()
    [delivery] = http_target.wait_for(1, "/hook")
    first, second = http_target.wait_for(2, "/callback", timeout_s=15)
    assert ids(delivery) == (created["id"], created["id"])
    assert ids(first) == ids(second) == (f"{created['id']}.callback", created["id"])
    assert (first.headers["Htq-Attempt"], second.headers["Htq-Attempt"]) == ("1", "2")
    assert signature_is_valid(first)


def test_a_cancel_notice_has_its_own_webhook_id(worker, client, http_target):
    http_target.reply("/job", *[Reply(503)] * 3)
    created = client.post("/v1/requests", json={"url": http_target.url + "/job", "cancel_notify": True,
                                                "retry": {"backoff_base": 3600}}).get_json()
    [delivery, *_] = http_target.wait_for(1, "/job")
    wait_until(lambda: (status := client.get(f"/v1/requests/{created['id']}/status").get_json())["attempts"] >= 1
               and status["status"] != "running")
    assert client.delete(f"/v1/requests/{created['id']}").status_code == 204
    [notice] = wait_until(lambda: [r for r in http_target.requests_to("/job") if r.method == "DELETE"])
    assert ids(notice) == (f"{created['id']}.cancel", created["id"]) and ids(delivery) == (created["id"],) * 2
    assert signature_is_valid(notice)
