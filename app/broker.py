"""The one way tasks reach the broker, for the web side and the workers alike: a Publisher whose
sender is a Celery app and whose broker errors are Celery's, so a failed publish is PublishFailed
everywhere (app/core/publish.py handles it)."""
from __future__ import annotations

import logging

from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from app.core.publish import Publisher, Sender
from config import Settings

log = logging.getLogger(__name__)

# What Celery's send_task raises when the broker is unreachable (after its publish retry policy).
BROKER_ERRORS = (OperationalError, RedisError, OSError)


def publisher(settings: Settings, sender: Sender | None = None) -> Publisher:
    """A Publisher sending through `sender` (a worker's own Celery app), or through a
    publishing-only Celery client: the web side sends tasks by name, it never imports workers."""
    if sender is None:
        client = Celery("htq-web", set_as_current=False)
        client.conf.update(settings.celery_config())
        sender = client
    return Publisher(sender, BROKER_ERRORS)


def backlog(app: Celery, queue: str) -> int:
    """How many task messages wait in `queue` of a Redis broker (a list there); 0 when the broker
    cannot tell, so callers fall back to what they would do without a backlog."""
    try:
        with app.pool.acquire(block=True, timeout=2) as connection:
            return int(connection.default_channel.client.llen(queue))
    except (*BROKER_ERRORS, AttributeError) as exc:
        log.warning("broker backlog unknown: %s", exc)
        return 0
