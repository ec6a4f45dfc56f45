"""Prometheus metrics read from Redis at scrape time, so every web process reports the same
numbers however many processes and workers there are."""
from __future__ import annotations

import logging

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.storage import requests as store_requests
from app.storage.client import Store

log = logging.getLogger(__name__)


class StoreCollector(Collector):
    def __init__(self, store: Store):
        self.store = store

    def collect(self):
        requests = GaugeMetricFamily("htq_requests", "Deferred requests held, by status", labels=["status"])
        waiting = GaugeMetricFamily("htq_requests_scheduled_beyond_horizon",
                                    "Requests waiting in the store for their time (not yet handed to workers)")
        up = GaugeMetricFamily("htq_redis_up", "1 when the store answered this scrape")
        try:
            by_status, due = store_requests.count_by_status(self.store)
        except redis.RedisError as exc:
            log.warning("metrics: store unavailable: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        for status, count in by_status.items():
            requests.add_metric([status], count)
        waiting.add_metric([], due)
        up.add_metric([], 1)
        yield from (requests, waiting, up)
