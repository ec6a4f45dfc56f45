"""The Notifier as queue long polls use it, on a real Redis: shared wake-ups (a push of n messages
wakes n sleeping waiters, not all), hand-over of a wake-up a finished waiter did not use, the
requested re-check period, and a wake-up for everyone once a lost subscription is back."""
from __future__ import annotations

import threading
import time

import pytest
import redis

from app.storage.notify import Notifier
from tests.support.waiting import wait_parked, wait_until

CHANNEL = "htq:notify:queue:test"


class Pool:
    """Items that waiters take one each; counts every check."""

    def __init__(self):
        self.items: list[str] = []
        self.lock = threading.Lock()
        self.checks = 0

    def take(self):
        with self.lock:
            self.checks += 1
            return self.items.pop(0) if self.items else None

    def add(self, *items: str) -> None:
        with self.lock:
            self.items.extend(items)


@pytest.fixture
def notifier(redis_url):
    return Notifier(redis_url)


@pytest.fixture
def publisher(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def start_waiters(notifier, count, check, timeout_s=2.0, share=True, recheck_s=30.0):
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(
        notifier.wait_for(CHANNEL, timeout_s, check, recheck_s=recheck_s, share=share))) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def wait_asleep(notifier, pool, count):
    """Until `count` waiters are registered and asleep: each checks once before registering and
    once after (its re-check is 30 s away), so 2 x count checks mean every one is past its second."""
    wait_parked(notifier, CHANNEL, count)
    wait_until(lambda: pool.checks >= 2 * count, 3, 0.005)


def test_a_count_wakes_only_that_many_sharing_waiters(notifier, publisher):
    pool = Pool()
    threads, results = start_waiters(notifier, 6, pool.take)
    wait_asleep(notifier, pool, 6)
    checks_before = pool.checks
    pool.add("a", "b")
    publisher.publish(CHANNEL, "2")
    wait_until(lambda: len(results) >= 2, 2, 0.005)
    time.sleep(0.2)  # on purpose, to show what does not happen: a wrongly woken waiter would check
    assert sorted(results) == ["a", "b"]
    assert pool.checks - checks_before == 2  # the other four slept on
    publisher.publish(CHANNEL, "0")  # not a count: everyone wakes (and finds nothing)
    wait_until(lambda: pool.checks - checks_before >= 6, 2, 0.005)
    assert pool.checks - checks_before == 6
    for thread in threads:
        thread.join(10)


def test_a_count_wakes_every_waiter_that_does_not_share(notifier, publisher):
    pool = Pool()
    threads, results = start_waiters(notifier, 4, pool.take, share=False)
    wait_asleep(notifier, pool, 4)
    checks_before = pool.checks
    pool.add("only")
    publisher.publish(CHANNEL, "1")
    wait_until(lambda: pool.checks - checks_before >= 4 and results, 2, 0.005)
    assert pool.checks - checks_before == 4 and results == ["only"]
    for thread in threads:
        thread.join(10)


def test_a_wake_up_that_reaches_a_finished_waiter_is_handed_on(notifier, publisher):
    second_registered = threading.Event()
    calls = {"first": 0, "second": 0}

    def first_check():
        calls["first"] += 1
        if calls["first"] < 2:
            return None
        # Registered and checking: the wake-up published now lands on this waiter while it is
        # busy, and it finishes with a result of its own, so the wake-up is not used.
        second_registered.wait(3)
        publisher.publish(CHANNEL, "1")
        # Time for the notifier's subscriber thread to hand the wake-up to this busy waiter:
        # nothing outside the Notifier shows when it has.
        time.sleep(0.3)
        return "first"

    def second_check():
        calls["second"] += 1
        if calls["second"] == 2:
            second_registered.set()
        return "second" if calls["second"] >= 3 else None

    first = threading.Thread(target=lambda: notifier.wait_for(CHANNEL, 5, first_check, recheck_s=30, share=True))
    first.start()
    wait_parked(notifier, CHANNEL)
    started = time.monotonic()
    result = notifier.wait_for(CHANNEL, 5, second_check, recheck_s=30, share=True)
    assert result == "second" and time.monotonic() - started < 1.5
    first.join(5)


def test_recheck_period_is_the_one_asked_for_and_jittered(notifier):
    pool = Pool()
    started = time.monotonic()
    assert notifier.wait_for(CHANNEL, 2.0, pool.take, recheck_s=0.2) is None
    assert 2.0 <= time.monotonic() - started < 2.5
    assert 11 <= pool.checks <= 24  # one every 0.1 to 0.2 s, plus the two at the start


def test_every_waiter_is_woken_when_the_subscription_comes_back(notifier, redis_server):
    flag = threading.Event()
    threads, results = start_waiters(notifier, 3, lambda: "done" if flag.is_set() else None, timeout_s=30)
    wait_parked(notifier, CHANNEL, 3)
    redis_server.stop()
    flag.set()  # changed while nobody could publish it
    started = time.monotonic()
    redis_server.start()
    for thread in threads:
        thread.join(10)
    assert results == ["done"] * 3
    assert time.monotonic() - started < 8  # well before the 15 to 30 s re-check
