"""The notice tasks through the broker (the test Redis) and an in-process worker, to a real HTTP
target: each settles its outbox entry, removed once the notice is delivered or given up (or its
request is gone), put off past each retry in between."""
from __future__ import annotations

import json
import threading

import pytest

from app.core.requests import RequestService
from app.core.task_names import SEND_CALLBACK
from app.storage import keys
from tests.support.http_target import Reply
from tests.support.waiting import wait_until


@pytest.fixture
def service(worker_runtime):
    """Requests created as the web side does, publishing through the worker's Celery app."""
    return RequestService(worker_runtime.store, worker_runtime.publisher, worker_runtime.settings)


def owed_at(store, entry: str) -> float | None:
    return store.redis.zscore(keys.requests_outbox(), entry)


def test_a_delivered_callback_leaves_the_outbox(worker, service, store, http_target):
    request_id = service.create({"url": http_target.url + "/hook", "method": "POST", "headers": {},
                                 "callback_url": http_target.url + "/cb"}).resource["id"]
    [callback] = http_target.wait_for(1, "/cb")
    assert json.loads(callback.body)["status"] == "succeeded"
    wait_until(lambda: owed_at(store, f"callback:{request_id}") is None)


def test_a_callback_given_up_leaves_the_outbox(worker, service, store, http_target):
    http_target.reply("/cb", Reply(404))  # fails for good: no retry
    request_id = service.create({"url": http_target.url + "/hook", "method": "POST", "headers": {},
                                 "callback_url": http_target.url + "/cb"}).resource["id"]
    http_target.wait_for(1, "/cb")
    wait_until(lambda: owed_at(store, f"callback:{request_id}") is None)
    assert len(http_target.requests_to("/cb")) == 1


def test_a_retrying_callback_is_put_off_past_its_retry_then_leaves_the_outbox(worker, service, store, http_target,
                                                                            settings):
    http_target.reply("/cb", Reply(503))  # retried after 1 s
    request_id = service.create({"url": http_target.url + "/hook", "method": "POST", "headers": {},
                                 "callback_url": http_target.url + "/cb"}).resource["id"]
    [first] = http_target.wait_for(1, "/cb")
    retry_due_ms = round(first.at * 1000) + 1000
    # Held by the worker: the relay would not publish it before a grace after the retry.
    wait_until(lambda: (owed_at(store, f"callback:{request_id}") or 0) >= retry_due_ms + settings.publish_grace_ms)
    http_target.wait_for(2, "/cb")
    wait_until(lambda: owed_at(store, f"callback:{request_id}") is None)


def test_a_delivered_cancel_notice_leaves_the_outbox(worker, service, store, http_target):
    http_target.reply("/flaky", Reply(503, headers={"Retry-After": "50"}))  # its retry waits (in the worker)
    answer_the_notice = threading.Event()
    http_target.reply("/flaky", Reply(200, release=answer_the_notice))  # held while the test looks
    request_id = service.create({"url": http_target.url + "/flaky", "method": "POST", "headers": {},
                                 "cancel_notify": True}).resource["id"]
    http_target.wait_for(1, "/flaky")
    wait_until(lambda: (status := service.status(request_id))["attempts"] == 1 and status["status"] == "retrying")
    service.cancel(request_id)  # after an attempt was sent: the notice is owed
    assert owed_at(store, f"cancel:{request_id}") is not None
    answer_the_notice.set()
    [delete] = [r for r in http_target.wait_for(2, "/flaky") if r.method == "DELETE"]
    assert delete.headers["Idempotency-Key"] == request_id
    wait_until(lambda: owed_at(store, f"cancel:{request_id}") is None)


def test_a_notice_about_a_request_gone_leaves_the_outbox(worker, celery_app, store):
    store.redis.zadd(keys.requests_outbox(), {"callback:01NOSUCHREQUEST": 0})
    celery_app.send_task(SEND_CALLBACK, args=["01NOSUCHREQUEST"])
    wait_until(lambda: owed_at(store, "callback:01NOSUCHREQUEST") is None)


def test_a_callback_about_a_request_that_has_not_ended_sends_nothing(worker, celery_app, service, store, http_target):
    """Republished while its request runs again (retried since it ended): the next end owes its own."""
    request_id = service.create({"url": http_target.url + "/hook", "method": "POST", "headers": {}, "delay": 600,
                                 "callback_url": http_target.url + "/cb"}).resource["id"]
    store.redis.zadd(keys.requests_outbox(), {f"callback:{request_id}": 0})
    celery_app.send_task(SEND_CALLBACK, args=[request_id])
    wait_until(lambda: owed_at(store, f"callback:{request_id}") is None)
    assert http_target.requests_to("/cb") == []
