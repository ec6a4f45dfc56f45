"""Prometheus metrics read from Redis at scrape time, so every web process reports the same
numbers however many processes and workers there are, and restarts reset nothing: counters and
histograms are kept in Redis by the scripts that change the state (app/storage/stats.py).

Label sets stay bounded: per-queue, per-batch and per-schedule series are reported for the first
LABELLED_LIMIT names in sort order, and `htq_queues` and `htq_batches` count them all, so a scrape
costs about the same with 10,000 queues as with 1,000 (beside reading their names)."""
from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from app.core.workers import Workers
from app.storage import stats
from app.storage.client import Store

log = logging.getLogger(__name__)

LABELLED_LIMIT = 1000  # queues, batches and schedules reported with their own series


class StoreCollector(Collector):
    def __init__(self, store: Store, workers: Workers, limit: int = LABELLED_LIMIT):
        self.store = store
        self.workers = workers
        self.limit = limit

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("htq_redis_up", "1 when the store answered this scrape")
        try:
            snapshot = stats.read(self.store, now_ms=self.workers.now_ms(),
                                  alive_after_ms=self.workers.alive_after_ms(), limit=self.limit)
        except redis.RedisError as exc:
            log.warning("metrics: store unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from requests_families(snapshot)
        yield from queue_families(snapshot)
        yield from batch_families(snapshot)
        yield from schedule_families(snapshot)
        yield gauge("htq_workers", "Live workers (heartbeating)", snapshot.workers)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def histogram(name: str, documentation: str, figures: stats.Histogram) -> HistogramMetricFamily:
    buckets = [(floatToGoString(bound), count) for bound, count in figures.buckets]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=figures.sum_s)


def requests_families(snapshot: stats.Snapshot) -> Iterator[Metric]:
    requests = GaugeMetricFamily("htq_requests", "Deferred requests held, by status", labels=["status"])
    for status, count in snapshot.requests.items():
        requests.add_metric([status], count)
    yield requests
    yield gauge("htq_requests_scheduled_beyond_horizon",
                "Requests waiting in the store for their time (not yet handed to workers)", snapshot.requests_waiting)
    attempts = CounterMetricFamily("htq_attempts", "Attempts of deferred requests finished, by outcome "
                                   "(retry: another attempt follows; failed: the request failed with it)",
                                   labels=["outcome"])
    for outcome, count in snapshot.attempts.items():
        attempts.add_metric([outcome], count)
    yield attempts
    yield histogram("htq_request_lateness_seconds", "Attempt start minus its due time", snapshot.lateness)
    yield histogram("htq_attempt_duration_seconds", "Duration of an attempt's HTTP exchange", snapshot.duration)


def queue_families(snapshot: stats.Snapshot) -> Iterator[Metric]:
    yield gauge("htq_queues", "Message queues (those past the label limit have no series of their own)",
                snapshot.queue_count)
    messages = GaugeMetricFamily("htq_queue_messages", "Messages of a queue, by state", labels=["queue", "state"])
    oldest = GaugeMetricFamily("htq_queue_oldest_age_seconds", "Age of a queue's oldest visible message (0: none)",
                               labels=["queue"])
    for queue in snapshot.queues:
        for state, count in queue.messages.items():
            messages.add_metric([queue.name, state], count)
        oldest.add_metric([queue.name], queue.oldest_age_s)
    yield messages
    yield oldest


def batch_families(snapshot: stats.Snapshot) -> Iterator[Metric]:
    yield gauge("htq_batches", "Batch forwarders (those past the label limit have no series of their own)",
                snapshot.batch_count)
    pending = GaugeMetricFamily("htq_batch_pending_records", "Records waiting to be taken into a batch",
                                labels=["batch"])
    dead = GaugeMetricFamily("htq_batch_dead", "Dead batches (attempts exhausted), waiting for a redrive",
                             labels=["batch"])
    posts = CounterMetricFamily("htq_batch_posts", "POSTs of batches settled, by outcome (failed: the batch "
                                "became dead), since the batch was created", labels=["batch", "outcome"])
    for batch in snapshot.batches:
        pending.add_metric([batch.name], batch.pending_records)
        dead.add_metric([batch.name], batch.dead)
        for outcome, count in batch.posts.items():
            posts.add_metric([batch.name, outcome], count)
    yield from (pending, dead, posts)


def schedule_families(snapshot: stats.Snapshot) -> Iterator[Metric]:
    runs = CounterMetricFamily("htq_schedule_runs", "Runs of a schedule", labels=["schedule"])
    for name, count in snapshot.schedule_runs.items():
        runs.add_metric([name], count)
    yield runs
