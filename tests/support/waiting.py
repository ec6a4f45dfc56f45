"""Waiting on a condition instead of sleeping: poll it until it holds, fail the test if it never does."""
from __future__ import annotations

import time


def wait_until(predicate, timeout_s: float = 10.0, interval_s: float = 0.02):
    """Poll `predicate` until it returns a truthy value, and return that value; fail the test
    after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(interval_s)


def wait_parked(notifier, channel: str, count: int = 1, timeout_s: float = 10.0) -> None:
    """Until `count` long polls of this process wait on `channel` (Notifier.waiting): a publish
    from then on reaches each of them, so a test can act knowing they are already waiting."""
    wait_until(lambda: notifier.waiting(channel) >= count, timeout_s, 0.005)
