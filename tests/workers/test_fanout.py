"""workers/fanout.py: a task's sends in turn on one thread while they keep up, all at once when not."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from workers import fanout


@pytest.fixture
def executor():
    with ThreadPoolExecutor(max_workers=50) as pool:
        yield pool


def test_results_come_in_the_items_order(executor):
    assert fanout.run_all(executor, lambda n: n * n, list(range(50))) == [n * n for n in range(50)]


def test_items_that_keep_up_are_sent_by_one_thread(executor):
    threads = []
    # A tick far longer than the whole run: the first look at the rate comes after the end.
    fanout.run_all(executor, lambda n: threads.append(threading.get_ident()), list(range(50)), tick_s=5)
    assert len(threads) == 50 and len(set(threads)) == 1


def test_items_that_do_not_keep_up_all_get_a_thread(executor):
    """Each item waits until every item has started: sent in turn, the first would wait forever."""
    all_started = threading.Barrier(50, timeout=10)
    fanout.run_all(executor, lambda n: all_started.wait(), list(range(50)), tick_s=0.01)
    assert not all_started.broken


def test_every_item_runs_before_the_first_error_is_raised(executor):
    ran = []

    def fn(n):
        ran.append(n)
        if n % 10 == 3:
            raise ValueError(f"item {n}")
        return n

    with pytest.raises(ValueError, match="item 3"):
        fanout.run_all(executor, fn, list(range(50)), tick_s=0.001)
    assert sorted(ran) == list(range(50))


def test_one_item_runs_in_the_callers_thread(executor):
    assert fanout.run_all(executor, lambda n: threading.get_ident(), [1]) == [threading.get_ident()]
    assert fanout.run_all(executor, lambda n: n, []) == []
