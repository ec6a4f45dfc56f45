"""The callback and the cancel notice, through the broker to an in-process worker and a real HTTP
target, with signing on: each carries its own webhook-id and Idempotency-Key, not the request's
(a receiver de-duplicating on webhook-id, as Standard Webhooks advises, would drop it), and the
same one on each of its retries."""
from __future__ import annotations

import base64

import pytest

from app import create_app
from tests.support.http_target import Reply
from tests.support.settings import make_settings
from tests.support.waiting import wait_until

SECRET = "whsec_" + base64.b64encode(b"notice-secret-key").decode()


@pytest.fixture
def settings(redis_url):
    return make_settings(redis_url, signing_secret=SECRET)


@pytest.fixture
def client(settings):
    return create_app(settings).test_client()


def ids(received) -> tuple[str, str]:
    return received.headers["webhook-id"], received.headers["Idempotency-Key"]


def test_a_callback_has_its_own_webhook_id_the_same_on_its_retries(worker, client, http_target):
    http_target.reply("/callback", Reply(503), Reply(200))
    created = client.post("/v1/requests", json={"url": http_target.url + "/hook",
                                                "callback_url": http_target.url + "/callback"}).get_json()
    [delivery] = http_target.wait_for(1, "/hook")
    first, second = http_target.wait_for(2, "/callback", timeout_s=15)
    assert ids(delivery) == (created["id"], created["id"])
    assert ids(first) == ids(second) == (f"{created['id']}.callback",) * 2
    assert (first.headers["Htq-Attempt"], second.headers["Htq-Attempt"]) == ("1", "2")
    assert first.headers["webhook-signature"].startswith("v1,")


def test_a_cancel_notice_has_its_own_webhook_id(worker, client, http_target):
    http_target.reply("/job", *[Reply(503)] * 3)
    created = client.post("/v1/requests", json={"url": http_target.url + "/job", "cancel_notify": True,
                                                "retry": {"backoff_base": 3600}}).get_json()
    [delivery, *_] = http_target.wait_for(1, "/job")
    wait_until(lambda: (status := client.get(f"/v1/requests/{created['id']}/status").get_json())["attempts"] >= 1
               and status["status"] != "running")
    assert client.delete(f"/v1/requests/{created['id']}").status_code == 204
    [notice] = wait_until(lambda: [r for r in http_target.requests_to("/job") if r.method == "DELETE"])
    assert ids(notice) == (f"{created['id']}.cancel",) * 2 and ids(delivery) == (created["id"],) * 2
