"""The overview's figures on a real Redis with an injected clock: requests finished per minute and
the lateness of deliveries."""
from __future__ import annotations

import pytest

from app.core import overview
from app.core.attempts import Attempts
from app.core.outcome import Outcome
from app.core.publish import Publisher
from app.core.requests import RequestService

WORKER = "worker@test"


@pytest.fixture
def service(store, settings, sender, clock):
    return RequestService(store, Publisher(sender), settings, clock_ms=clock)


@pytest.fixture
def attempts(store, settings, sender, clock):
    return Attempts(store, Publisher(sender), settings, clock_ms=clock)


def fields(**extra):
    return {"url": "http://127.0.0.1:9/x", "method": "POST", "headers": {}, **extra}


def deliver(attempts, request_id, due_ms, status_code=200):
    [attempt] = attempts.start([(request_id, 1, due_ms)], WORKER)
    verdict = "succeeded" if status_code < 400 else "failed"
    attempts.finish([(attempt, Outcome(verdict=verdict, status_code=status_code))], WORKER)


def test_deliveries_per_minute_counts_ended_requests_by_calendar_minute(service, attempts, store, clock):
    clock.ms -= clock.ms % 60_000  # the start of a minute
    start = clock.ms
    for minute, count in ((0, 3), (2, 1), (59, 2)):
        clock.ms = start + minute * 60_000 + 30_000
        for _ in range(count):
            created = service.create(fields())
            deliver(attempts, created.resource["id"], clock.ms)
    clock.ms = start + 59 * 60_000 + 45_000
    service.cancel(service.create(fields(delay=600)).resource["id"])  # canceled ends it too
    counts = overview.deliveries_per_minute(store, clock.ms)
    assert len(counts) == 60
    assert counts[0] == 3 and counts[2] == 1 and counts[59] == 3 and sum(counts) == 7
    # An hour on, they are out of the window; the window's length is the caller's.
    assert overview.deliveries_per_minute(store, clock.ms + 3_600_000) == [0] * 60
    assert overview.deliveries_per_minute(store, clock.ms, minutes=5) == [0, 0, 0, 0, 3]


def test_lateness_of_first_attempts_and_of_requests_waiting_past_due(service, attempts, store, clock):
    empty = overview.lateness(store, clock.ms)
    assert empty == overview.Lateness(0, None, None, None, 0, None)
    for late_ms in (10, 20, 30, 40, 1000):
        created = service.create(fields())
        due = clock.ms
        clock.advance_ms(late_ms)
        deliver(attempts, created.resource["id"], due)
    retried = service.create(fields()).resource["id"]
    deliver(attempts, retried, clock.ms, status_code=404)
    service.retry(retried)  # its second attempt is not measured: its due time is not kept
    clock.advance_ms(5000)
    [second] = attempts.start([(retried, 2, clock.ms - 5000)], WORKER)
    attempts.finish([(second, Outcome(verdict="succeeded", status_code=200))], WORKER)
    waiting = service.create(fields(delay=3600)).resource["id"]
    clock.advance(3600 + 7)  # due 7 s ago, and no relay ran
    figures = overview.lateness(store, clock.ms)
    assert (figures.sample, figures.p50_ms, figures.p95_ms, figures.max_ms) == (5, 30, 1000, 1000)
    assert (figures.overdue, figures.oldest_overdue_ms) == (1, 7000)
    service.run_now(waiting)
    assert overview.lateness(store, clock.ms).overdue == 0


def test_percentile_is_nearest_rank():
    assert overview.percentile([], 50) is None
    assert overview.percentile([5], 95) == 5
    assert overview.percentile(list(range(1, 101)), 95) == 95
    assert overview.percentile([1, 2, 3, 4], 50) == 2
