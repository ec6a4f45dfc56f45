"""A worker whose broker is unreachable handles a failed publish as the web side does: through the
one Publisher (app/broker.py), which maps Celery's broker errors to PublishFailed, logs, and leaves
stored work to the relay. Real Celery, a broker address where nothing listens, a real Redis store."""
from __future__ import annotations

import logging

import pytest
from celery import Celery

from app.core import clock
from app.core.outcome import RETRY, SUCCEEDED, Outcome
from app.core.publish import Publisher
from app.core.requests import RequestService
from app.embedded import free_port
from app.storage import keys
from tests.support.settings import make_settings
from workers import runtime


@pytest.fixture
def worker_side(redis_url):
    settings = make_settings(redis_url, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    celery_app = Celery("htq-test-worker", set_as_current=False)
    celery_app.conf.update(settings.celery_config())
    built = runtime.build(settings, celery_app)
    yield built
    built.deliverer.close()
    built.executor.shutdown()
    built.store.close()


def create(store, settings, **fields) -> str:
    service = RequestService(store, Publisher(_Discard()), settings)
    return service.create({"url": "http://127.0.0.1:9/x", "method": "POST", "headers": {}, **fields}).resource["id"]


class _Discard:
    def send_task(self, *args, **kwargs):
        pass


def test_a_retry_the_broker_refuses_is_logged_and_left_to_the_relay(worker_side, store, caplog):
    request_id = create(store, worker_side.settings, retry={"backoff_base": 0.01, "backoff_max": 0.01})
    [attempt] = worker_side.attempts.start([(request_id, 1, 0)], "worker@test")
    with caplog.at_level(logging.WARNING, logger="app.core.publish"):
        worker_side.attempts.finish([(attempt, Outcome(RETRY, status_code=503))])  # does not raise
    assert store.redis.hget(keys.request(request_id), "status") == "retrying"
    assert store.redis.zscore(keys.requests_inflight(), request_id) is not None  # the relay publishes it again
    assert any(f"requests {request_id} not published" in message for message in caplog.messages)


def test_a_callback_the_broker_refuses_stays_in_the_outbox_and_the_attempt_still_settles(worker_side, store,
                                                                                        caplog):
    request_id = create(store, worker_side.settings, callback_url="http://127.0.0.1:9/cb")
    [attempt] = worker_side.attempts.start([(request_id, 1, 0)], "worker@test")
    with caplog.at_level(logging.WARNING, logger="app.core.publish"):
        worker_side.attempts.finish([(attempt, Outcome(SUCCEEDED, status_code=200))])
    assert store.redis.hget(keys.request(request_id), "status") == "succeeded"
    [record] = [r for r in caplog.records if "htq.send_callback not published" in r.getMessage()]
    assert record.levelno == logging.WARNING and request_id in record.getMessage()
    # Not lost: the relay publishes it once the publish grace has passed.
    assert store.redis.zscore(keys.requests_outbox(), f"callback:{request_id}") is not None


def test_a_cancel_notice_the_broker_refuses_stays_in_the_outbox(worker_side, store, caplog):
    request_id = create(store, worker_side.settings, cancel_notify=True)
    worker_side.attempts.start([(request_id, 1, 0)], "worker@test")
    service = RequestService(store, worker_side.publisher, worker_side.settings)
    with caplog.at_level(logging.WARNING, logger="app.core.publish"):
        service.cancel(request_id)
    assert any(f"request {request_id}: htq.notify_cancel not published" in m for m in caplog.messages)
    assert store.redis.zscore(keys.requests_outbox(), f"cancel:{request_id}") is not None


def test_a_relay_whose_broker_refuses_a_notice_stops_there_and_keeps_them_all(worker_side, store, caplog):
    owed = {f"callback:{create(store, worker_side.settings)}": 0 for _ in range(3)}
    store.redis.zadd(keys.requests_outbox(), owed)  # due: their publish grace has passed
    before_ms = clock.now_ms()
    with caplog.at_level(logging.WARNING, logger="app.core.publish"):
        assert worker_side.relay.tick()["notices"] == 0
    assert len([m for m in caplog.messages if "htq.send_callback not published" in m]) == 1  # not one per notice
    # Each is published again a grace later, as any publish that failed.
    scores = [store.redis.zscore(keys.requests_outbox(), entry) for entry in owed]
    assert all(score >= before_ms + worker_side.settings.publish_grace_ms for score in scores)


def test_beat_work_goes_on_when_the_broker_refuses_its_publishes(worker_side, store, caplog):
    request_id = create(store, worker_side.settings)  # queued, its publish lost: the relay's to publish again
    store.redis.zadd(keys.requests_inflight(), {request_id: 0})  # its publish grace has passed
    with caplog.at_level(logging.WARNING, logger="app.core.publish"):
        assert worker_side.relay.tick()["republished"] == 1  # published (and refused), then counted: no raise
    assert any(f"requests {request_id} not published" in message for message in caplog.messages)
