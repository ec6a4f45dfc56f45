"""Extensions and the per-process services the views call (store, publisher, domain services)."""
from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from flask import Flask, current_app
from flask_smorest import Api
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from app.core.batches import BatchService
from app.core.publish import Publisher
from app.core.queues import QueueService
from app.core.requests import RequestService
from app.storage.client import Store
from app.storage.notify import Notifier
from config import Settings

api = Api()


@dataclass
class Services:
    settings: Settings
    store: Store
    publisher: Publisher
    notifier: Notifier
    requests: RequestService
    queues: QueueService
    batches: BatchService


def init_services(app: Flask, settings: Settings) -> None:
    """Connections are opened lazily, so building the app never needs Redis to be up."""
    store = Store.from_url(settings.redis_url)
    # A publishing-only Celery client: the web side sends tasks by name, it never imports workers.
    celery_client = Celery("htq-web", set_as_current=False)
    celery_client.conf.update(settings.celery_config())
    publisher = Publisher(celery_client, transient_errors=(OperationalError, RedisError, OSError))
    notifier = Notifier(settings.redis_url)
    app.extensions["htq"] = Services(
        settings=settings, store=store, publisher=publisher, notifier=notifier,
        requests=RequestService(store, publisher, settings, notifier),
        queues=QueueService(store, settings, notifier),
        batches=BatchService(store, publisher, settings))


def services() -> Services:
    return current_app.extensions["htq"]
