"""Per-process services of a worker: the store, the publisher, the attempts and the relay, the
HTTP deliverer, a thread pool.

Built lazily on first use inside each pool process (and rebuilt after a fork), so no socket or
session is ever shared between processes.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from celery import Celery

from app import broker
from app.core.attempts import Attempts
from app.core.batches import BatchForwarder
from app.core.publish import DELIVERY_CHUNK, Publisher, Sender
from app.core.queues import QueueService
from app.core.relay import RequestRelay
from app.core.requests import RequestService
from app.core.schedules import ScheduleService
from app.core.virtual_clock import use_clock
from app.storage.client import Store
from config import Settings
from workers.delivery import Deliverer, DeliveryConfig


@dataclass
class Runtime:
    settings: Settings
    store: Store
    publisher: Publisher
    attempts: Attempts
    relay: RequestRelay
    forwarder: BatchForwarder
    queues: QueueService
    schedules: ScheduleService
    deliverer: Deliverer
    executor: ThreadPoolExecutor


_lock = threading.Lock()
_current: Runtime | None = None


def build(settings: Settings, sender: Sender) -> Runtime:
    store = Store.from_settings(settings)
    use_clock(settings, store)
    publisher = broker.publisher(settings, sender)
    attempts = Attempts(store, publisher, settings)

    def backlog() -> int:
        return _backlog(sender, settings)

    return Runtime(
        settings=settings, store=store, publisher=publisher, attempts=attempts,
        relay=RequestRelay(store, publisher, settings, attempts, backlog=backlog),
        forwarder=BatchForwarder(store, publisher, settings, backlog=backlog),
        queues=QueueService(store, settings),
        schedules=ScheduleService(store, publisher, settings, RequestService(store, publisher, settings)),
        deliverer=Deliverer(DeliveryConfig.from_settings(settings)),
        # One thread per request of a task message, so a chunk is sent all at once.
        executor=ThreadPoolExecutor(max_workers=DELIVERY_CHUNK, thread_name_prefix="htq-send"))


def _backlog(sender: Sender, settings: Settings) -> int:
    """Task messages waiting in the broker's htq queue; 0 for a sender that is not a Celery app."""
    return broker.backlog(sender, settings.celery_config()["task_default_queue"]) if isinstance(sender, Celery) else 0


def current() -> Runtime:
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                from workers import app, settings

                _current = build(settings, app)
    return _current


def reset() -> None:
    global _current
    _current = None
