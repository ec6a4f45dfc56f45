"""Wake-ups through Redis pub/sub: one subscriber connection per process, any number of waiters.

A long poll (a response wait, a queue receive) registers an event for a channel, checks its
condition, and sleeps on the event until a script PUBLISHes on that channel. Registering before
checking means no wake-up is lost; the waiter also re-checks at least once a second (or every
`recheck_s` it asks for), so a dropped subscription (a Redis restart) only delays it and never
strands it, and every waiter is woken once the subscription is back. Re-checks are jittered, so
hundreds of waiters that started together do not all query Redis at the same instant. The
subscriber pings Redis when the channel is quiet and reconnects when no answer comes, so a
connection that died silently is noticed too. Works the same under gevent (gunicorn's gevent
workers patch threading, so the subscriber thread is a greenlet and waiters park cheaply).

The ping is redis-py's own health check, not `PubSub.ping()`: redis-py speaks RESP3 by default,
where Redis answers a PING on a subscribed connection with a plain `PONG` (RESP2 sent a
["pong", ""] message), and `get_message` takes that string for a subscribe message (its type
read as "P") and drops it, so the answer to `PubSub.ping()` never comes back. The health check's
PING carries a known payload that redis-py recognizes and swallows in either protocol, counting
the ones not answered yet in `health_check_response_counter`; that count is what is watched.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TypeVar

import redis

from app.storage import keys
from app.storage.client import connect

log = logging.getLogger(__name__)

T = TypeVar("T")
RECHECK_S = 1.0
PING_EVERY_S = 5.0  # the subscriber pings Redis when its connection has been quiet this long
ANSWER_WITHIN_S = 10.0  # and reconnects when a ping is still unanswered after this long
POLL_S = 1.0  # how long the subscriber waits for a message before it looks at its pings again


class Notifier:
    def __init__(self, redis_url: str, ping_every_s: float = PING_EVERY_S,
                 answer_within_s: float = ANSWER_WITHIN_S, connector: Callable[..., redis.Redis] | None = None):
        """`connector` makes the subscriber's client (connect_to(settings) behind Sentinels);
        connect(redis_url) unless given."""
        self._connect = connector or (lambda **options: connect(redis_url, **options))
        self._ping_every_s = ping_every_s
        self._answer_within_s = answer_within_s
        self._lock = threading.Lock()
        # channel -> {event: shares}, oldest waiter first (dicts keep insertion order)
        self._waiters: dict[str, dict[threading.Event, bool]] = defaultdict(dict)
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None

    def wait_for(self, channel: str, timeout_s: float, check: Callable[[], T | None],
                 recheck_s: float = RECHECK_S, share: bool = False) -> T | None:
        """Return check()'s first non-None result, or None once timeout_s has passed.

        check() runs again each time the channel is published on, and at the latest after a
        random pause between recheck_s / 2 and recheck_s. A caller whose condition only changes
        with a publish (or at times it computes itself) may ask for a longer recheck_s.

        Waiters that `share` compete for what a publish announces: a message whose data is a
        count n (a queue push of n messages) wakes only the n oldest sleeping ones, not all of
        them; any other message wakes them all. A shared wake-up that reaches a waiter which is
        already done is handed on to the next sleeping one, so none is lost.
        """
        deadline = time.monotonic() + timeout_s
        result = check()
        if result is not None or timeout_s <= 0:
            return result
        self._ensure_listening()
        event = threading.Event()
        with self._lock:
            self._waiters[channel][event] = share
        try:
            while True:
                event.clear()
                result = check()
                remaining = deadline - time.monotonic()
                if result is not None or remaining <= 0:
                    return result
                event.wait(min(remaining, recheck_s * (0.5 + random.random() / 2)))
        finally:
            with self._lock:
                waiters = self._waiters.get(channel)
                if waiters is not None:
                    waiters.pop(event, None)
                    if share and event.is_set():
                        self._wake_sharing(waiters, 1)
                    if not waiters:
                        del self._waiters[channel]

    def waiting(self, channel: str) -> int:
        """How many waiters of this process are registered on `channel` now, each of which a
        publish from now on reaches (read-only, for operators and tests)."""
        with self._lock:
            return len(self._waiters.get(channel, ()))

    def _ensure_listening(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._listen, name="htq-notify", daemon=True)
                    self._thread.start()
        self._subscribed.wait(RECHECK_S)

    def _listen(self) -> None:
        while True:
            pubsub = None
            try:
                # Its own connection, whose health check pings Redis once it has been quiet for
                # ping_every_s (get_message sends it; see _relay).
                client = self._connect(health_check_interval=self._ping_every_s, max_connections=1)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(keys.notify_pattern())
                self._subscribed.set()
                self._wake_all()  # what was published while nobody listened is checked now
                self._relay(pubsub)
            except redis.RedisError as exc:
                # Warn once per outage; waiters keep re-checking meanwhile.
                if self._subscribed.is_set():
                    log.warning("notification subscriber lost its connection: %s", exc)
                self._subscribed.clear()
                time.sleep(0.5)
            finally:
                if pubsub is not None:
                    pubsub.close()

    def _relay(self, pubsub) -> None:
        """Wake the waiters of each channel published on, until the connection fails or goes silent.

        A connection is alive while it delivers messages or leaves no health-check PING
        unanswered; one that keeps a PING unanswered for answer_within_s died without closing
        (a host or network gone), which reads never report and writes only after many minutes."""
        answered = time.monotonic()
        while True:
            message = pubsub.get_message(timeout=POLL_S)
            now = time.monotonic()
            if message is not None and message.get("type") == "pmessage":
                self._wake(message["channel"], message["data"])
            if message is not None or pubsub.health_check_response_counter == 0:
                answered = now
            elif now - answered > self._answer_within_s:
                raise redis.ConnectionError(f"no answer from Redis to a PING for {self._answer_within_s:.0f} s")

    def _wake(self, channel: str, data: str = "") -> None:
        count = _count(data)
        with self._lock:
            waiters = self._waiters.get(channel)
            if not waiters:
                return
            for event, shares in waiters.items():
                if not shares or count is None:
                    event.set()
            if count is not None:
                self._wake_sharing(waiters, count)

    @staticmethod
    def _wake_sharing(waiters: dict[threading.Event, bool], count: int) -> None:
        """Wake the `count` oldest sharing waiters that are asleep (the lock is held)."""
        for event, shares in waiters.items():
            if count <= 0:
                return
            if shares and not event.is_set():
                event.set()
                count -= 1

    def _wake_all(self) -> None:
        with self._lock:
            for waiters in self._waiters.values():
                for event in waiters:
                    event.set()


def _count(data: str) -> int | None:
    """The n of a message announcing n new things, else None (a message for every waiter)."""
    try:
        count = int(data)
    except (TypeError, ValueError):
        return None
    return count if count > 0 else None
