"""Wake-ups through Redis pub/sub: one subscriber connection per process, any number of waiters.

A long poll (a response wait, a queue receive) registers an event for a channel, checks its
condition, and sleeps on the event until a script PUBLISHes on that channel. Registering before
checking means no wake-up is lost; the waiter also re-checks at least once a second, so a
dropped subscription (a Redis restart) only delays it and never strands it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

import redis

from app.storage import keys

log = logging.getLogger(__name__)

T = TypeVar("T")
RECHECK_S = 1.0


class Notifier:
    def __init__(self, redis_url: str):
        self._redis_url = redis_url
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = defaultdict(set)
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None

    def wait_for(self, channel: str, timeout_s: float, check: Callable[[], T | None]) -> T | None:
        """Return check()'s first non-None result, or None once timeout_s has passed."""
        deadline = time.monotonic() + timeout_s
        result = check()
        if result is not None or timeout_s <= 0:
            return result
        self._ensure_listening()
        event = threading.Event()
        with self._lock:
            self._waiters[channel].add(event)
        try:
            while True:
                event.clear()
                result = check()
                remaining = deadline - time.monotonic()
                if result is not None or remaining <= 0:
                    return result
                event.wait(min(remaining, RECHECK_S))
        finally:
            with self._lock:
                waiters = self._waiters.get(channel)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[channel]

    def _ensure_listening(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._listen, name="htq-notify", daemon=True)
                    self._thread.start()
        self._subscribed.wait(RECHECK_S)

    def _listen(self) -> None:
        while True:
            try:
                client = redis.Redis.from_url(self._redis_url, decode_responses=True,
                                              socket_connect_timeout=2, health_check_interval=10)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(keys.notify_pattern())
                self._subscribed.set()
                for message in pubsub.listen():
                    if message and message.get("type") == "pmessage":
                        self._wake(message["channel"])
            except redis.RedisError as exc:
                # Warn once per outage; waiters keep re-checking every RECHECK_S meanwhile.
                if self._subscribed.is_set():
                    log.warning("notification subscriber lost its connection: %s", exc)
                self._subscribed.clear()
                time.sleep(0.5)

    def _wake(self, channel: str) -> None:
        with self._lock:
            events = list(self._waiters.get(channel, ()))
        for event in events:
            event.set()
