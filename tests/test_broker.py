"""The broker side (app/broker.py) on a real Redis: a publish that loses its broker midway ends
within the publish retry policy; filled to its maxmemory, kombu's consumer keeps receiving and
acknowledging instead of raising out of the worker's event loop."""
from __future__ import annotations

import threading
import time

import kombu
import redis
from celery import Celery
from celery.signals import after_task_publish

from app.broker import FullRedisQoS, consume_from_a_full_redis, publisher
from config.settings import broker_url_for
from tests.support.settings import make_settings

# task_publish_retry_policy gives up after about a second of retries (config/settings.py).
PUBLISH_GIVES_UP_S = 2.0

UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's keys, as Celery's Redis broker uses them


def test_in_a_full_redis_a_consumer_receives_and_acknowledges_and_the_unacked_records_go(redis_url, full_redis):
    consume_from_a_full_redis()
    admin = redis.Redis.from_url(redis_url)
    with kombu.Connection(broker_url_for(redis_url)) as connection:
        queue = connection.SimpleQueue("test-full")
        assert isinstance(queue.channel.qos, FullRedisQoS)
        for n in range(2):
            queue.put({"n": n})
        before = queue.get(timeout=5)
        assert admin.hlen(UNACKED) == 1  # recorded: it would come back if this consumer died
        full_redis.fill()
        after = queue.get(timeout=5)  # its record is refused: it is handed over all the same
        assert (before.payload, after.payload) == ({"n": 0}, {"n": 1})
        assert admin.hlen(UNACKED) == 1
        before.ack()  # a MULTI, which a full Redis refuses even for deletions: done without it
        after.ack()
        assert admin.hlen(UNACKED) == 0 and admin.zcard(UNACKED_INDEX) == 0
        assert full_redis.refuses_writes()
        full_redis.free()
        queue.put({"n": 2})
        assert queue.get(timeout=5).payload == {"n": 2}
        queue.close()
    admin.close()


def test_a_publish_whose_broker_dies_after_the_task_message_ends_within_the_retry_policy(own_redis):
    # The broker dies after it took the task message, before Celery's task-sent event (for Flower):
    # that publish too gives up by the retry policy instead of waiting for the broker to come back.
    sender = publisher(make_settings(own_redis.url))
    sender.send("htq.test_noop", [0])  # connected
    done = threading.Event()

    def stop_the_broker(**_):
        own_redis.process.kill()
        own_redis.process.wait()

    def send() -> None:
        sender.send("htq.test_noop", [1])  # taken: no PublishFailed, the event is Celery's own business
        done.set()

    after_task_publish.connect(stop_the_broker, sender="htq.test_noop", weak=False)
    thread = threading.Thread(target=send, daemon=True)
    started = time.monotonic()
    try:
        thread.start()
        ended = done.wait(PUBLISH_GIVES_UP_S)
        took_s = time.monotonic() - started
    finally:
        after_task_publish.disconnect(stop_the_broker, sender="htq.test_noop")
        own_redis.start()  # a publish still retrying ends now
        thread.join(10)
    assert ended, f"send_task still retrying after {took_s:.1f} s"
    assert redis.Redis.from_url(own_redis.url).llen("htq") == 2  # AOF: both task messages kept
    assert not sender._sender.amqp._event_dispatcher._outbound_buffer  # the failed event dropped, not kept


def test_a_tasks_own_retry_is_bounded_by_the_retry_policy_too(monkeypatch):
    """Task.retry and apply_async publish through the app's send_task, as the web's creates do."""
    from app.core.task_names import SEND_CALLBACK
    from workers import app
    from workers.tasks import requests  # noqa: F401  (registers the task)

    sent = []
    monkeypatch.setattr(Celery, "send_task", lambda self, name, args=None, kwargs=None, **options: sent.append(options))
    app.tasks[SEND_CALLBACK].apply_async(["r"], countdown=1)
    assert sent and sent[0]["retry_policy"] == app.conf.task_publish_retry_policy
