"""Task events sent safely from several threads: the `threads` worker pool sends task-started
from the thread that runs the task, while the consumer sends the others, all through the one
event dispatcher, whose producer and buffer are not thread-safe (events went missing)."""
from __future__ import annotations

import threading

from celery.app.events import Events
from celery.events.dispatcher import EventDispatcher


class LockedDispatcher(EventDispatcher):
    """An EventDispatcher that sends one event at a time."""

    def __init__(self, *args, **kwargs):
        self._send_lock = threading.RLock()
        super().__init__(*args, **kwargs)

    def send(self, *args, **kwargs):
        with self._send_lock:
            return super().send(*args, **kwargs)

    def flush(self, *args, **kwargs):
        with self._send_lock:
            return super().flush(*args, **kwargs)


class LockedEvents(Events):
    dispatcher_cls = "workers.events:LockedDispatcher"
