"""The one way tasks reach the broker, for the web side and the workers alike: a Publisher whose
sender is a Celery app and whose broker errors are Celery's, so a failed publish is PublishFailed
everywhere (app/core/publish.py handles it). And how the workers consume from a full Redis."""
from __future__ import annotations

import logging

from celery import Celery
from kombu.exceptions import OperationalError
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from redis.exceptions import RedisError

from app.core.publish import Publisher, Sender
from app.storage.client import OUT_OF_MEMORY
from config import Settings

log = logging.getLogger(__name__)

# What Celery's send_task raises when the broker is unreachable (after its publish retry policy).
BROKER_ERRORS = (OperationalError, RedisError, OSError)


def publisher(settings: Settings, sender: Sender | None = None) -> Publisher:
    """A Publisher sending through `sender` (a worker's own Celery app), or through a
    publishing-only Celery client: the web side sends tasks by name, it never imports workers."""
    if sender is None:
        sender = BoundedCelery("htq-web", set_as_current=False)
        sender.conf.update(settings.celery_config())
    return Publisher(sender, BROKER_ERRORS)


class BoundedCelery(Celery):
    """A Celery app each of whose publishes is bounded by task_publish_retry_policy (the web's
    client and the workers' app, whose tasks' retries publish through send_task too).

    Celery retries the task message by that policy, but publishes the task-sent event that
    follows it (task_send_sent_event, for Flower) with only the policy passed to send_task, and
    with none kombu retries every second until the broker answers again. A task taken just before
    the broker's master died thus held its API call until a new master was promoted (5 s in a
    Sentinel failover), and every publish of the process queued behind it. Passed explicitly, the
    policy bounds both. An event that still fails is dropped (the task itself went out): Celery
    keeps it in a buffer that nothing sends, which would grow with every outage."""

    def send_task(self, name, args=None, kwargs=None, **options):
        if options.get("retry_policy") is None:
            options["retry_policy"] = self.conf.task_publish_retry_policy
        try:
            return super().send_task(name, args, kwargs, **options)
        finally:
            self.amqp._event_dispatcher._outbound_buffer.clear()


def backlog(app: Celery, queue: str) -> int:
    """How many task messages wait in `queue` of a Redis broker (a list there); 0 when the broker
    cannot tell, so callers fall back to what they would do without a backlog."""
    try:
        with app.pool.acquire(block=True, timeout=2) as connection:
            return int(connection.default_channel.client.llen(queue))
    except (*BROKER_ERRORS, AttributeError) as exc:
        log.warning("broker backlog unknown: %s", exc)
        return 0


class FullRedisQoS(kombu_redis.QoS):
    """kombu's bookkeeping of unacknowledged messages, for a worker that goes on when Redis is
    out of memory (maxmemory reached, `noeviction`).

    kombu takes a message off its queue (BRPOP, which Redis still allows) and then records it as
    unacknowledged, so that it comes back should the worker die; acknowledging deletes that
    record. Both are MULTI transactions, and at maxmemory Redis refuses every command queued in
    a MULTI, even one that frees memory. kombu let the error out of the worker's event loop:
    Celery stopped ("Unrecoverable error") with the message already off its queue, and a
    restarted worker met the same error with the next message. Here, while Redis is full:

    * a message taken off its queue is kept in the worker's memory only and run, as if
      acknowledged early: should the worker be lost before it ends, the task message is lost
      with it, and htq's store, which holds the work itself, has it published again (the relay a
      queued request, the batch sweep a taken batch, once their publish grace has passed);
    * an acknowledgement deletes the record without MULTI, which Redis allows;
    * what cannot be put back on its queue now (a requeue, the messages of a stopping worker,
      the periodic restore) stays recorded and goes back after the broker's visibility timeout.
    """

    def append(self, message, delivery_tag):
        try:
            super().append(message, delivery_tag)
        except OUT_OF_MEMORY as exc:
            log.warning("task %s %s: received while Redis is out of memory, run without its unacked record (%s)",
                        message.headers.get("task"), message.headers.get("id"), exc)
            virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag):
        try:
            super().ack(delivery_tag)
        except OUT_OF_MEMORY:
            self._forget_record(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        try:
            super().reject(delivery_tag, requeue=requeue)
        except OUT_OF_MEMORY as exc:
            if requeue:
                log.warning("task message %s not requeued now, Redis is out of memory: it goes back after the "
                            "broker's visibility timeout (%s)", delivery_tag, exc)
            else:
                self._forget_record(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)

    def restore_unacked(self, client=None):
        try:
            return super().restore_unacked(client)
        except OUT_OF_MEMORY as exc:
            log.warning("%d unacknowledged task messages not put back, Redis is out of memory: they go back after "
                        "the broker's visibility timeout (%s)", len(self._delivered), exc)
            self._delivered.clear()
            return None

    def restore_visible(self, *args, **kwargs):
        try:
            return super().restore_visible(*args, **kwargs)
        except OUT_OF_MEMORY as exc:
            log.warning("unacknowledged task messages not restored yet, Redis is out of memory (%s)", exc)
            return None

    def _forget_record(self, delivery_tag) -> None:
        with self.channel.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            pipe.zrem(self.unacked_index_key, delivery_tag).hdel(self.unacked_key, delivery_tag).execute()


def consume_from_a_full_redis() -> None:
    """Every Redis channel of this process's Celery consumers keeps its books with FullRedisQoS
    (the Sentinel channel is one). Call it before the worker starts consuming."""
    kombu_redis.Channel.QoS = FullRedisQoS
