"""The counters the scripts keep for /metrics, and the snapshot read from them, on a real Redis."""
from __future__ import annotations

import dataclasses
import json
import math

from app.core.gates import Breaker
from app.storage import batches as sb
from app.storage import keys, stats
from app.storage import queues as sq
from app.storage import requests as sr
from app.storage import workers as sw
from app.storage.batches import BatchConfig
from app.storage.requests import AttemptEnd, NewRequest

# start_many's horizon and publish grace, for a request with no flow: what a rate defers needs them.
UNGATED = {"horizon_end_ms": 10**15, "grace_ms": 10_000}

T0 = 1_700_000_000_000
HORIZON_MS = 60_000
GRACE_MS = 120_000
WORKER = "worker@test"
SPEC = {"url": "http://127.0.0.1:1/x", "method": "POST", "headers": {}, "timeout": 5,
        "retry": {"max_attempts": 2, "backoff_base": 1, "backoff_max": 60}}
QUEUE_DEFAULTS = {"visibility_timeout_ms": 30_000, "max_receives": 1, "retention_ms": 345_600_000, "delay_ms": 0}


def create(store, request_id, due, now=T0):
    sr.create(store, NewRequest(request_id, due, {**SPEC, "id": request_id}), now_ms=now,
              horizon_end_ms=now + HORIZON_MS, grace_ms=GRACE_MS)


def start(store, request_id, attempt, now):
    [started] = sr.start_many(store, [(request_id, attempt)], worker=WORKER, now_ms=now, lease_margin_ms=30_000,
                              **UNGATED)
    return started


def finish(store, request_id, attempt, now, verdict, elapsed_ms=0, worker_lost=False):
    [settled] = sr.finish_many(store, [AttemptEnd(request_id, attempt, verdict, now + 1000, {"attempt": attempt}, {},
                                                  None, elapsed_ms=elapsed_ms, worker_lost=worker_lost)],
                               worker=WORKER, now_ms=now, horizon_end_ms=now + HORIZON_MS, grace_ms=GRACE_MS,
                               lease_margin_ms=0, breaker=Breaker())
    return settled


def snapshot(store, now=T0, limit=1000) -> stats.Snapshot:
    return stats.read(store, now_ms=now, alive_after_ms=now - 7000, limit=limit)


def bucket(histogram: stats.Histogram, bound_s: float) -> int:
    return dict(histogram.buckets)[bound_s]


def test_a_started_attempt_counts_its_lateness_and_one_claimed_early_counts_zero(store):
    create(store, "late", T0)
    create(store, "early", T0 + 5000)
    assert start(store, "late", 1, T0 + 300).spec is not None
    assert start(store, "early", 1, T0 + 4000).spec is not None  # waits for its due time before sending
    lateness = snapshot(store).lateness
    assert lateness.count == 2 and lateness.sum_s == 0.3
    assert bucket(lateness, 0.005) == 1 and bucket(lateness, 0.25) == 1 and bucket(lateness, 0.5) == 2
    assert lateness.buckets[-1] == (math.inf, 2)


def test_a_duplicate_start_counts_nothing(store):
    create(store, "A", T0)
    start(store, "A", 1, T0)
    assert start(store, "A", 1, T0 + 5).spec is None
    assert snapshot(store).lateness.count == 1


def test_finished_attempts_count_by_outcome_with_their_duration_and_a_delivery_per_minute(store):
    for request_id in ("A", "B", "C"):
        create(store, request_id, T0)
        start(store, request_id, 1, T0)
    finish(store, "A", 1, T0 + 10, "succeeded", elapsed_ms=40)
    finish(store, "B", 1, T0 + 10, "retry", elapsed_ms=700)
    finish(store, "C", 1, T0 + 10, "failed", elapsed_ms=40_000)
    start(store, "B", 2, T0 + 2000)
    finish(store, "B", 2, T0 + 2100, "retry", elapsed_ms=90)  # the limit (2) turns it into failed
    figures = snapshot(store)
    assert figures.attempts == {"succeeded": 1, "retry": 1, "failed": 2, "worker_lost": 0}
    assert figures.duration.count == 4 and figures.duration.sum_s == 40.83
    assert bucket(figures.duration, 0.05) == 1 and bucket(figures.duration, 0.1) == 2
    assert bucket(figures.duration, 1.0) == 3 and bucket(figures.duration, 30.0) == 3
    assert bucket(figures.duration, 60.0) == 4
    assert stats.deliveries_per_minute(store, T0 + 2100)[-1] == 4


def test_a_stale_finish_counts_nothing(store):
    create(store, "A", T0)
    start(store, "A", 1, T0)
    finish(store, "A", 1, T0 + 10, "succeeded")
    assert finish(store, "A", 1, T0 + 20, "succeeded").next == "stale"
    assert snapshot(store).attempts["succeeded"] == 1


def test_an_attempt_whose_worker_died_counts_as_worker_lost_without_duration_or_delivery(store):
    create(store, "A", T0)
    start(store, "A", 1, T0)
    finish(store, "A", 1, T0 + 60_000, "retry", worker_lost=True)
    figures = snapshot(store)
    assert figures.attempts == {"succeeded": 0, "retry": 0, "failed": 0, "worker_lost": 1}
    assert figures.duration.count == 0
    assert sum(stats.deliveries_per_minute(store, T0 + 60_000)) == 0


def test_a_dead_workers_started_attempt_settled_by_the_relay_path_counts_once(store):
    create(store, "A", T0)
    sw.heartbeat(store, WORKER, host="h", pid=1, started_ms=T0, now_ms=T0)
    start(store, "A", 1, T0)
    held = sw.reap(store, WORKER, now_ms=T0 + 9000, grace_ms=GRACE_MS)
    [lost] = held.lost
    finish(store, lost.request_id, lost.attempt, T0 + 9000, "retry", worker_lost=True)
    finish(store, lost.request_id, lost.attempt, T0 + 9001, "retry", worker_lost=True)  # reported again: stale
    assert snapshot(store).attempts["worker_lost"] == 1


def test_deliveries_per_minute_are_oldest_first_and_minutes_past_the_hour_are_trimmed(store):
    minute = 60_000
    start_ms = (T0 // minute) * minute
    for n, at in enumerate([start_ms, start_ms + 10, start_ms + 2 * minute, start_ms + 61 * minute]):
        create(store, f"R{n}", at, now=at)
        start(store, f"R{n}", 1, at)
        finish(store, f"R{n}", 1, at, "succeeded")
    per_minute = stats.deliveries_per_minute(store, start_ms + 61 * minute)
    assert len(per_minute) == 60 and per_minute[-1] == 1
    assert per_minute[-60] == 1  # start + 2 minutes, 59 minutes before the current one
    assert sum(per_minute) == 2
    # The first delivery of minute 61 dropped minute 0 (older than 60 minutes) from the hash.
    assert sorted(store.redis.hkeys(keys.stats_deliveries())) == [str(start_ms // minute + 2),
                                                                  str(start_ms // minute + 61)]
    assert stats.deliveries_per_minute(store, start_ms + 2 * minute, minutes=3) == [0, 0, 1]


def test_batch_posts_are_counted_by_outcome_in_the_batch(store):
    config = BatchConfig(endpoint="http://127.0.0.1:9/in", max_records=1, max_bytes=1 << 20, interval_ms=10_000,
                         headers={}, max_attempts=2, backoff_base_ms=1000, timeout_ms=30_000)
    sb.configure(store, "orders", config, now_ms=T0, grace_ms=GRACE_MS, epoch="E")
    first, second = (sb.add(store, "orders", [json.dumps(n)], now_ms=T0, grace_ms=GRACE_MS).taken[0] for n in (1, 2))

    def attempt(batch_id, number, verdict):
        sb.claim(store, "orders", batch_id, number, worker=WORKER, now_ms=T0, lease_margin_ms=5000)
        return sb.finish(store, "orders", batch_id, number, worker=WORKER, now_ms=T0, verdict=verdict,
                         status_code=500, error=None, deadline_ms=T0 + 1000, grace_ms=GRACE_MS,
                         retention_ms=86_400_000).result

    assert [attempt(first, 1, "retry"), attempt(first, 2, "succeeded")] == ["retry", "sent"]
    assert [attempt(second, 1, "retry"), attempt(second, 2, "retry")] == ["retry", "dead"]
    sb.add(store, "orders", ["3"], now_ms=T0, grace_ms=GRACE_MS)  # taken at once (max_records 1)
    config_two = dataclasses.replace(config, max_records=10)
    sb.configure(store, "other", config_two, now_ms=T0, grace_ms=GRACE_MS, epoch="F")
    sb.add(store, "other", ["1", "2"], now_ms=T0, grace_ms=GRACE_MS)
    figures = snapshot(store)
    assert figures.batch_count == 2
    orders, other = figures.batches
    assert orders == stats.BatchGauges("orders", 0, 1, {"succeeded": 1, "retry": 2, "failed": 1})
    assert other == stats.BatchGauges("other", 2, 0, {"succeeded": 0, "retry": 0, "failed": 0})


def test_queue_gauges_count_messages_by_state_and_the_oldest_visible_ones_age(store):
    def push(name, delay_ms=None, now=T0):
        return sq.push(store, name, now_ms=now, id_suffix="x", defaults=QUEUE_DEFAULTS,
                       messages=[(f"j{n}", delay_ms) for n in range(1)])

    push("busy", now=T0 - 4000)
    push("busy", now=T0 - 1000)
    push("busy", delay_ms=60_000)
    push("busy", now=T0 - 100_000)  # received once (max_receives 1), lock expired: dead on the next receive
    sq.receive(store, "busy", now_ms=T0 - 100_000, max_messages=1, visibility_timeout_ms=1000, token="t")
    sq.receive(store, "busy", now_ms=T0 - 500, max_messages=1, visibility_timeout_ms=None, token="t")
    sq.put(store, "empty", now_ms=T0, defaults=QUEUE_DEFAULTS, updates={})
    figures = snapshot(store)
    assert figures.queue_count == 2
    busy, empty = figures.queues
    assert busy.messages == {"visible": 1, "in_flight": 1, "delayed": 1, "dead": 1}
    assert busy.oldest_age_s == 1.0  # the message pushed at T0 - 4000 is in flight; T0 - 1000 waits
    assert empty == stats.QueueGauges("empty", {"visible": 0, "in_flight": 0, "delayed": 0, "dead": 0}, 0.0)


def test_the_snapshot_reports_the_first_names_up_to_the_limit_and_counts_them_all(store):
    for n in range(5):
        sq.put(store, f"q{4 - n}", now_ms=T0, defaults=QUEUE_DEFAULTS, updates={})
    figures = snapshot(store, limit=3)
    assert figures.queue_count == 5 and [q.name for q in figures.queues] == ["q0", "q1", "q2"]


def test_requests_by_status_and_live_workers(store):
    create(store, "A", T0)
    create(store, "B", T0 + 3_600_000)
    sw.heartbeat(store, "alive@h", host="h", pid=1, started_ms=T0, now_ms=T0 - 1000)
    sw.heartbeat(store, "dead@h", host="h", pid=2, started_ms=T0, now_ms=T0 - 8000)
    figures = snapshot(store)
    assert figures.requests["queued"] == 1 and figures.requests["scheduled"] == 1
    assert figures.requests_waiting == 1 and figures.workers == 1


def test_a_histogram_folds_fields_of_bounds_no_longer_defined_into_the_next_bound_above():
    figures = stats.histogram({"5": "1", "7": "2", "10": "1", "inf": "3", "999999": "1", "sum_ms": "1234"},
                              (5, 10, 100))
    assert figures.buckets == [(0.005, 1), (0.01, 4), (0.1, 4), (math.inf, 8)]
    assert figures.sum_s == 1.234 and figures.count == 8
