"""What /metrics reports, read from Redis: the counters the scripts keep (lua/_stats.lua) and
gauges counted from the state at this instant, in two pipelined round trips, whatever the
number of requests. The histogram bucket bounds the scripts use are defined here, once."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from app.core.model import REQUEST_STATUSES
from app.storage import keys
from app.storage.client import Store
from app.storage.scripts import Script

# Bucket upper bounds in ms; the scripts receive them as a space-separated ARGV.
LATENESS_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000)
DURATION_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000)
LATENESS_BOUNDS = " ".join(map(str, LATENESS_BOUNDS_MS))
DURATION_BOUNDS = " ".join(map(str, DURATION_BOUNDS_MS))
DELIVERY_MINUTES_KEPT = 60  # minutes of finished deliveries kept (the hash trims older ones)

_QUEUE_GAUGES = Script("queue_gauges")

ATTEMPT_OUTCOMES = ("succeeded", "retry", "failed", "worker_lost")
POST_OUTCOMES = ("succeeded", "retry", "failed")  # failed: the batch became dead
QUEUE_STATES = ("visible", "in_flight", "delayed", "dead")


class Histogram(NamedTuple):
    """Cumulative counts per upper bound (seconds), `math.inf` last, and the sum of observations."""

    buckets: list[tuple[float, int]]
    sum_s: float

    @property
    def count(self) -> int:
        return self.buckets[-1][1]


class QueueGauges(NamedTuple):
    name: str
    messages: dict[str, int]  # by state (QUEUE_STATES)
    oldest_age_s: float  # of the oldest visible message, 0 when none is visible


class BatchGauges(NamedTuple):
    name: str
    pending_records: int
    dead: int  # dead batches
    posts: dict[str, int]  # by outcome (POST_OUTCOMES), since the batch was created


class Snapshot(NamedTuple):
    """Everything a scrape reports. Queues, batches and schedules: the first `limit` by name, and
    how many there are in all."""

    requests: dict[str, int]  # by status
    requests_waiting: int  # beyond the horizon, in the store's schedule
    attempts: dict[str, int]  # by outcome (ATTEMPT_OUTCOMES)
    lateness: Histogram
    duration: Histogram
    workers: int  # live
    queue_count: int
    queues: list[QueueGauges]
    batch_count: int
    batches: list[BatchGauges]
    schedule_runs: dict[str, int]


def read(store: Store, *, now_ms: int, alive_after_ms: int, limit: int) -> Snapshot:
    """One pipeline for the global figures and the names, one for the first `limit` queues and
    batches by name (a few O(1) or O(log n) commands each)."""
    pipe = store.pipeline()
    for status in REQUEST_STATUSES:
        pipe.zcard(keys.requests_by_status(status))
    pipe.zcard(keys.requests_due())
    pipe.hgetall(keys.stats_attempts())
    pipe.hgetall(keys.stats_lateness())
    pipe.zrange(keys.schedules(), 0, limit - 1)  # scores 0: the first `limit` by name
    pipe.zcount(keys.workers(), f"({alive_after_ms}", "+inf")
    pipe.smembers(keys.queues())
    pipe.smembers(keys.batches())
    *by_status, waiting, attempts, lateness, schedules, workers, queue_names, batch_names = pipe.execute()

    queues, batches = sorted(queue_names)[:limit], sorted(batch_names)[:limit]
    pipe = store.pipeline()
    for name in queues:
        store.run(_QUEUE_GAUGES, keys={"ready": keys.queue_ready(name), "inflight": keys.queue_inflight(name),
                                       "dead": keys.queue_dead(name)}, args={"now_ms": now_ms}, pipeline=pipe)
    for name in batches:
        pipe.llen(keys.batch_pending(name))
        pipe.zcard(keys.batch_dead(name))
        pipe.hmget(keys.batch(name), [f"posts_{outcome}" for outcome in POST_OUTCOMES])
    for name in schedules:
        pipe.hget(keys.schedule(name), "runs")  # counted by the script that runs a tick
    replies = pipe.execute() if queues or batches or schedules else []

    queue_gauges = [QueueGauges(name, dict(zip(QUEUE_STATES, counts)), max(0, now_ms - oldest_ms) / 1000
                                if oldest_ms >= 0 else 0.0)
                    for name, (*counts, oldest_ms) in zip(queues, replies)]
    batch_replies = replies[len(queues):len(queues) + 3 * len(batches)]
    runs = replies[len(queues) + 3 * len(batches):]
    batch_gauges = [BatchGauges(name, pending, dead, {o: int(n or 0) for o, n in zip(POST_OUTCOMES, posts)})
                    for name, (pending, dead, posts) in zip(batches, _triples(batch_replies))]
    by_outcome, duration = _attempts(attempts)
    return Snapshot(
        requests=dict(zip(REQUEST_STATUSES, by_status, strict=True)), requests_waiting=waiting,
        attempts=by_outcome, lateness=histogram(lateness, LATENESS_BOUNDS_MS), duration=duration,
        workers=workers, queue_count=len(queue_names), queues=queue_gauges,
        batch_count=len(batch_names), batches=batch_gauges,
        schedule_runs={name: int(count or 0) for name, count in zip(schedules, runs)})


def _attempts(fields: dict[str, str]) -> tuple[dict[str, int], Histogram]:
    """Attempts by outcome, and the duration histogram of them all, from the attempts hash:
    "{outcome} {bound}" buckets, "sum_ms" and "worker_lost" (keys.py)."""
    by_outcome = dict.fromkeys(ATTEMPT_OUTCOMES, 0)
    by_outcome["worker_lost"] = int(fields.get("worker_lost", 0))
    buckets: dict[str, int] = {"sum_ms": int(fields.get("sum_ms", 0))}
    for field, value in fields.items():
        outcome, _, bound = field.partition(" ")
        if bound and outcome in by_outcome:
            by_outcome[outcome] += int(value)
            buckets[bound] = buckets.get(bound, 0) + int(value)
    return by_outcome, histogram(buckets, DURATION_BOUNDS_MS)


def _triples(flat: list) -> list[tuple]:
    return [tuple(flat[i:i + 3]) for i in range(0, len(flat), 3)]


def histogram(fields: dict[str, str] | dict[str, int], bounds_ms: Sequence[int]) -> Histogram:
    """A histogram hash (lua/_stats.lua) as cumulative buckets. A field whose bound is no longer
    among `bounds_ms` (they changed since it was counted) is counted in the next bound above it."""
    per_bound = [0] * (len(bounds_ms) + 1)
    for field, value in fields.items():
        if field == "sum_ms":
            continue
        upper = math.inf if field == "inf" else float(field)
        index = next((i for i, bound in enumerate(bounds_ms) if upper <= bound), len(bounds_ms))
        per_bound[index] += int(value)
    cumulative, total = [], 0
    for bound, count in zip([*(b / 1000 for b in bounds_ms), math.inf], per_bound):
        total += count
        cumulative.append((bound, total))
    return Histogram(cumulative, int(fields.get("sum_ms", 0)) / 1000)


def deliveries_per_minute(store: Store, now_ms: int, minutes: int = DELIVERY_MINUTES_KEPT) -> list[int]:
    """Attempts whose HTTP exchange finished in each of the last `minutes` minutes (at most
    DELIVERY_MINUTES_KEPT), oldest first; the last is the current minute, still counting."""
    counts = store.redis.hgetall(keys.stats_deliveries())
    current = now_ms // 60_000
    return [int(counts.get(str(minute), 0)) for minute in range(current - minutes + 1, current + 1)]

