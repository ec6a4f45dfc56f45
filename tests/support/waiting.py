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
