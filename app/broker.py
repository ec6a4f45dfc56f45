"""The one way tasks reach the broker, for the web side and the workers alike: a Publisher whose
sender is a Celery app and whose broker errors are Celery's, so a failed publish is PublishFailed
everywhere (app/core/publish.py handles it)."""
from __future__ import annotations

from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from app.core.publish import Publisher, Sender
from config import Settings

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
