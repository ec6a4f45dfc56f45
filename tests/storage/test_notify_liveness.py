"""The Notifier's subscriber on a real Redis: a quiet channel never makes it reconnect (its pings
are answered), while a connection that died without closing is noticed, replaced, and every
waiter is woken once the subscription is back."""
from __future__ import annotations

import logging
import threading
import time

import pytest
import redis

from app.storage.notify import Notifier
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_parked, wait_until

CHANNEL = "htq:notify:queue:liveness"
LONG_RECHECK_S = 300.0  # waiters re-check on their own only after 150 to 300 s: any wake-up is the subscriber's


class Waiter:
    """One long poll in a thread, waiting until `ready` is set; counts its checks."""

    def __init__(self, notifier: Notifier, timeout_s: float):
        self.ready = threading.Event()
        self.checks = 0
        self.results: list = []
        self.thread = threading.Thread(target=lambda: self.results.append(
            notifier.wait_for(CHANNEL, timeout_s, self._check, recheck_s=LONG_RECHECK_S)), daemon=True)
        self.thread.start()
        wait_parked(notifier, CHANNEL)

    def _check(self):
        self.checks += 1
        return "done" if self.ready.is_set() else None


def subscribers(admin: redis.Redis) -> list[int]:
    return [client["id"] for client in admin.client_list(_type="pubsub")]


def notify_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "app.storage.notify" and r.levelno >= logging.WARNING]


@pytest.mark.slow
def test_a_subscriber_idle_for_a_minute_keeps_its_connection_and_wakes_a_long_poll_at_once(own_redis, caplog):
    """SLOW ON PURPOSE: waits out one real minute, the production ping intervals at work."""
    caplog.set_level(logging.WARNING, logger="app.storage.notify")
    admin = redis.Redis.from_url(own_redis.url, decode_responses=True)
    notifier = Notifier(own_redis.url)
    waiter = Waiter(notifier, timeout_s=120)
    [subscriber] = subscribers(admin)
    time.sleep(60)  # a quiet channel: nothing published for a minute
    pings = admin.info("commandstats")["cmdstat_ping"]["calls"]
    assert pings >= 6  # the subscriber pinged every 5 s of quiet, and heard every answer:
    assert subscribers(admin) == [subscriber]  # still its first connection
    assert notify_warnings(caplog) == []

    waiter.ready.set()
    published = time.monotonic()
    admin.publish(CHANNEL, "done")
    waiter.thread.join(5)
    assert waiter.results == ["done"] and time.monotonic() - published < 1
    admin.close()


def test_a_connection_that_died_silently_is_noticed_and_waiters_are_woken_after_reconnecting(redis_server,
                                                                                             redis_url, caplog):
    caplog.set_level(logging.WARNING, logger="app.storage.notify")
    proxy = TcpProxy(redis_server.port)
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        notifier = Notifier(proxy.url(), ping_every_s=0.5, answer_within_s=1.5)
        waiter = Waiter(notifier, timeout_s=30)
        checks = waiter.checks
        admin.publish(CHANNEL, "x")  # proves the subscription live: the waiter checks again
        wait_until(lambda: waiter.checks > checks, 5, 0.01)

        proxy.freeze()  # the subscriber's connection stays open, but nothing passes any more
        waiter.ready.set()  # changed while no publish can reach this process
        frozen = time.monotonic()
        waiter.thread.join(15)
        assert waiter.results == ["done"]
        assert time.monotonic() - frozen < 6  # a ping unanswered for 1.5 s, then a new subscription
        assert proxy.connections() == 2
        # (Only this subscriber's: one an earlier test left without its Redis may warn too.)
        assert sum("no answer from Redis to a PING" in warning for warning in notify_warnings(caplog)) == 1
    finally:
        proxy.close()
        admin.close()
