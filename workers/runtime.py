"""Per-process services of a worker: the store, the scheduler, the HTTP deliverer, a thread pool.

Built lazily on first use inside each pool process (and rebuilt after a fork), so no socket or
session is ever shared between processes.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from app.core.publish import DELIVERY_CHUNK, Publisher
from app.core.scheduler import Scheduler
from app.storage.client import Store
from config import Settings
from workers.delivery import Deliverer, DeliveryConfig


@dataclass
class Runtime:
    settings: Settings
    store: Store
    publisher: Publisher
    scheduler: Scheduler
    deliverer: Deliverer
    executor: ThreadPoolExecutor


_lock = threading.Lock()
_current: Runtime | None = None


def build(settings: Settings, sender) -> Runtime:
    store = Store.from_url(settings.redis_url)
    publisher = Publisher(sender)
    return Runtime(
        settings=settings, store=store, publisher=publisher,
        scheduler=Scheduler(store, publisher, settings),
        deliverer=Deliverer(DeliveryConfig.from_settings(settings)),
        # One thread per request of a task message, so a chunk is sent all at once.
        executor=ThreadPoolExecutor(max_workers=DELIVERY_CHUNK, thread_name_prefix="htq-send"))


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
