"""A worker's life as the store sees it, run in the worker's main process: it heartbeats from a
thread of its own, records each task message of requests it receives (the attempts it now holds),
and, when it stops gracefully, hands back at once what it still held."""
from __future__ import annotations

import logging
import os
import socket
import threading

import redis

from app.core import clock
from app.core.task_names import DELIVER_REQUESTS, SEND_BATCHES
from app.core.workers import HEARTBEAT_EVERY_S, Workers
from app.storage.client import Store
from config import Settings

log = logging.getLogger(__name__)


class Liveness:
    def __init__(self, settings: Settings, name: str):
        self.settings = settings
        self.name = name
        self.store = Store.from_settings(settings)
        self.workers = Workers(self.store)
        self.started_ms = clock.now_ms()
        self._stopping = threading.Event()
        # Set while what was held when the broker connection dropped is not released yet: with the
        # broker on the store's Redis (a failover, a restart), that Redis is down too just then.
        self._release_pending = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name="htq-heartbeat", daemon=True)

    def start(self) -> None:
        self._heartbeat()
        self._thread.start()

    def received(self, task_name: str, args: list) -> None:
        """A task message reached this worker: what it carries is now held here."""
        self._release_if_pending()  # first, or the holds recorded now would be released with the old
        try:
            if task_name == DELIVER_REQUESTS:
                self.workers.hold(self.name, [(str(item[0]), int(item[1])) for item in args[0]])
            elif task_name == SEND_BATCHES:
                self.workers.hold_batches(self.name, str(args[0]), [(str(i), int(a)) for i, a in args[1]])
        except redis.RedisError as exc:
            log.warning("worker %s: could not record what it holds (%s); the relay recovers it later", self.name, exc)

    def release_held(self) -> None:
        """The broker connection dropped: Celery forgets the task messages it held (they come back
        only after the broker's visibility timeout), so what was not started is released, for the
        relay to publish again after the publish grace (batches: at beat's next flush) instead of 15
        minutes later. When Redis does not answer, tried again at each heartbeat and before the next
        task message is recorded, whichever comes first."""
        with self._lock:
            self._release_pending = True
            self._release()

    def _release_if_pending(self) -> None:
        if self._release_pending:
            with self._lock:
                if self._release_pending:
                    self._release()

    def _release(self) -> None:
        try:
            requests, batches = self.workers.release_held(self.name)
            self._release_pending = False
            if requests or batches:
                log.warning("worker %s lost its broker connection: %d requests and %d batches it held released",
                            self.name, requests, batches)
        except redis.RedisError as exc:
            log.warning("worker %s: could not release what it held (%s); trying again at the next heartbeat",
                        self.name, exc)

    def stop(self) -> None:
        """A graceful stop: no more heartbeats, and what is still held goes back to work now."""
        self._stopping.set()
        self._thread.join(HEARTBEAT_EVERY_S * 2)
        try:
            # Celery puts the task messages it holds back on the broker's queue as it stops: the
            # holds are only released here, not published a second time.
            held = self.workers.reap(self.name, self.settings.publish_grace_ms, republish=False)
            if held.lost:
                log.info("worker %s stopping: %d attempts it ran left to the relay", self.name, len(held.lost))
        except redis.RedisError as exc:
            log.warning("worker %s: could not hand back what it held (%s); it is recovered once it is found dead",
                        self.name, exc)
        finally:
            self.store.close()

    def _beat(self) -> None:
        while not self._stopping.wait(HEARTBEAT_EVERY_S):
            self._heartbeat()

    def _heartbeat(self) -> None:
        self._release_if_pending()
        try:
            self.workers.heartbeat(self.name, socket.gethostname(), os.getpid(), self.started_ms)
        except redis.RedisError as exc:
            log.warning("worker %s: heartbeat failed: %s", self.name, exc)
