"""Runs a task's sends with as few threads as keep up with them.

A task message carries up to 50 requests (app/core/publish.py DELIVERY_CHUNK). Handing each to
a thread of its own sends them all at once, which a slow target needs; but against a fast one
the hand-offs and the threads' fight for the GIL cost more CPU than the sends themselves (on 2
cores: ~670 µs of worker CPU per delivery with 50 threads, ~430 µs sending in turn).

So one thread starts sending the items in turn, and every `TICK_S` the rate so far says how
long the waiting items would take: if longer than `SPREAD_S`, threads are added in proportion
(all at once when not one item has finished yet). Against a fast target one thread sends all
50; against a slow one (an answer or a wait for the due time longer than a tick) every item
gets its own thread after one tick; between the two, the threads a target's speed needs. A
burst of items due at once is spread over about `SPREAD_S` at most, or one tick more.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

TICK_S = 0.005
SPREAD_S = 0.015


def run_all(executor: Executor, fn: Callable[[Item], Result], items: Sequence[Item],
            tick_s: float = TICK_S, spread_s: float = SPREAD_S) -> list[Result]:
    """`fn(item)` for each item, on the executor's threads; the results in the items' order.
    Every item is run even when one raises; then the first exception is raised."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    waiting = deque(enumerate(items))
    results: list = [None] * len(items)
    errors: list[BaseException] = []
    unfinished = len(items)
    changed = threading.Condition()

    def work() -> None:
        nonlocal unfinished
        while True:
            with changed:
                if not waiting:
                    return
                index, item = waiting.popleft()
            try:
                results[index] = fn(item)
            except BaseException as exc:  # raised in the caller's thread once all are done
                errors.append(exc)
            with changed:
                unfinished -= 1
                if not unfinished:
                    changed.notify()

    with changed:
        executor.submit(work)
        threads, since, finished_before = 1, time.monotonic(), 0
        while waiting:
            changed.wait(tick_s)
            if not waiting:
                break
            # The rate of the threads at work, measured since the last were added.
            now, finished = time.monotonic(), len(items) - unfinished - finished_before
            # Threads that would send the waiting items within spread_s at that rate; with not
            # one item finished, one for every item.
            needed = threads + len(waiting)
            if finished:
                needed = threads * len(waiting) * (now - since) / finished / spread_s
            if needed > threads:
                more = min(len(waiting), math.ceil(needed) - threads)
                for _ in range(more):
                    executor.submit(work)
                threads, since, finished_before = threads + more, now, finished_before + finished
        while unfinished:
            changed.wait()
    if errors:
        raise errors[0]
    return results
