"""Per-process services of a worker: the store, the publisher, the attempts and the relay, the
HTTP deliverer, a thread pool.

Built lazily on first use inside each pool process (and rebuilt after a fork), so no socket or
session is ever shared between processes.
"""
from __future__ import annotations

import dataclasses
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
from app.storage.client import MAX_CONNECTIONS, Store
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


# Threads sending at once in one process, and keep-alive connections kept per target: a task
# message's requests all at once, for each task the process runs at the same time, up to this.
MAX_SENDS = 500

_lock = threading.Lock()
_current: Runtime | None = None


def sends_at_once(settings: Settings) -> int:
    """A prefork process runs one task at a time; threads and greenlets run `concurrency`."""
    tasks = 1 if settings.worker_pool == "prefork" else settings.concurrency
    return min(MAX_SENDS, tasks * DELIVERY_CHUNK)


def build(settings: Settings, sender: Sender) -> Runtime:
    # A connection for each task running at once, and some for the relay, beat's ticks and events.
    store = Store.from_settings(settings, max_connections=max(MAX_CONNECTIONS, settings.concurrency + 16))
    sends = sends_at_once(settings)
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
        deliverer=Deliverer(dataclasses.replace(DeliveryConfig.from_settings(settings), connections=sends)),
        # One thread per request of a task message, so a chunk is sent all at once.
        executor=ThreadPoolExecutor(max_workers=sends, thread_name_prefix="htq-send"))


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
