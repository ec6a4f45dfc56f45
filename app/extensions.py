"""Extensions and the per-process services the views call (store, publisher, domain services)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app
from flask_smorest import Api

from app import broker
from app.api.openapi import register_converters
from app.core import clock
from app.core.batches import BatchService
from app.core.publish import Publisher
from app.core.queues import QueueService
from app.core.requests import RequestService
from app.core.schedules import ScheduleService
from app.core.workers import Workers
from app.storage.client import Store
from app.storage.notify import Notifier
from config import Settings

api = Api()
register_converters(api)


@dataclass
class Services:
    settings: Settings
    store: Store
    publisher: Publisher
    notifier: Notifier
    requests: RequestService
    queues: QueueService
    batches: BatchService
    workers: Workers
    schedules: ScheduleService


def init_services(app: Flask, settings: Settings, publisher: Publisher | None = None,
                  clock_ms: Callable[[], int] = clock.now_ms) -> None:
    """Connections are opened lazily, so building the app never needs Redis to be up. `publisher`
    and `clock_ms` replace the broker and the real clock (tests pass a recorder and a fake clock)."""
    store = Store.from_url(settings.redis_url)
    publisher = publisher or broker.publisher(settings)
    notifier = Notifier(settings.redis_url)
    requests = RequestService(store, publisher, settings, notifier, clock_ms=clock_ms)
    app.extensions["htq"] = Services(
        settings=settings, store=store, publisher=publisher, notifier=notifier, requests=requests,
        queues=QueueService(store, settings, notifier, clock_ms=clock_ms),
        batches=BatchService(store, publisher, settings, clock_ms=clock_ms),
        workers=Workers(store, clock_ms),
        schedules=ScheduleService(store, publisher, settings, requests, clock_ms=clock_ms))


def services() -> Services:
    return current_app.extensions["htq"]
