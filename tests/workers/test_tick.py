"""Beat's tick as a plain function on the real store: it runs the relay, the queue sweep and the
batch flush, each even when one before it fails, and records itself once all ran."""
from __future__ import annotations

import logging

import pytest
import redis

from app.storage import beat as store_beat
from workers.tasks.beat import run_tick


def test_a_tick_runs_each_part_and_records_itself(worker_runtime, store):
    assert store_beat.ticks(store) == (0, 0)
    counts = run_tick(worker_runtime)
    assert set(counts) == {"relay", "queues", "batches", "schedules"}
    assert not any(count for found in counts.values() for count in found.values())  # nothing to do
    recorded = store_beat.ticks(store)
    assert recorded.ticks == 1 and recorded.last_tick_ms > 0


def test_a_failing_part_does_not_stop_the_others_and_the_tick_is_not_recorded(worker_runtime, store, monkeypatch):
    ran = []

    def relay_down():
        ran.append("relay")
        raise redis.ConnectionError("down")

    monkeypatch.setattr(worker_runtime.relay, "tick", relay_down)
    monkeypatch.setattr(worker_runtime.queues, "sweep", lambda: ran.append("queues") or {"returned": 0})
    monkeypatch.setattr(worker_runtime.forwarder, "flush", lambda: ran.append("batches") or {"dead": 1})
    monkeypatch.setattr(worker_runtime.schedules, "tick", lambda: ran.append("schedules") or {"runs": 0})
    with pytest.raises(redis.ConnectionError):
        run_tick(worker_runtime)
    assert ran == ["relay", "queues", "batches", "schedules"]
    assert store_beat.ticks(store).ticks == 0


def test_an_idle_tick_logs_nothing_and_a_notable_one_logs_one_line(worker_runtime, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="workers.tasks.beat"):
        run_tick(worker_runtime)
        assert caplog.records == []
        monkeypatch.setattr(worker_runtime.queues, "sweep", lambda: {"queues": 3, "returned": 2, "dropped": 0})
        run_tick(worker_runtime)
    [line] = caplog.records
    assert line.getMessage() == "tick: queues=3 queues_returned=2"
    assert line.fields == {"queues": 3, "queues_returned": 2}


def test_a_store_refusing_ticks_is_told_once_a_minute_and_when_it_is_over(caplog):
    from workers.tasks.beat import StoreTrouble

    now = [0.0]
    trouble = StoreTrouble(clock_s=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="workers.tasks.beat"):
        for _ in range(60):  # one a second: the first is told
            trouble.failure(redis.exceptions.OutOfMemoryError("OOM command not allowed"))
            now[0] += 1.0
        trouble.failure(redis.exceptions.OutOfMemoryError("OOM command not allowed"))  # a minute on: told
        trouble.success()
        trouble.success()
    assert [r.getMessage() for r in caplog.records] == [
        "tick: the store refused it (OutOfMemoryError: OOM command not allowed); 1 ticks failed so far, "
        "saying so once a minute",
        "tick: the store refused it (OutOfMemoryError: OOM command not allowed); 61 ticks failed so far, "
        "saying so once a minute",
        "tick: works again after 61 failed ticks",
    ]
