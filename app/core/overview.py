"""Figures for the dashboard's overview that no API resource holds: requests finished per minute
and the lateness of deliveries.

Each figure comes from one function here, read from what the store keeps anyway (the index of
ended requests, the request hashes, the schedule) at a bounded cost per call; the dashboard knows
nothing of where they come from, so they can be pointed at counters kept for `/metrics` instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from app.storage import requests as store_requests
from app.storage.client import Store

MINUTE_MS = 60_000
LATENESS_SAMPLE = 100  # the latest ended requests whose first attempt's lateness is measured


def requests_by_status(store: Store) -> dict[str, int]:
    """Live requests of each status (one ZCARD each, in one round trip)."""
    return store_requests.count_by_status(store)[0]


def deliveries_per_minute(store: Store, now_ms: int, minutes: int = 60) -> list[int]:
    """Requests that ended (succeeded, failed or canceled) in each of the last `minutes` calendar
    minutes, oldest first; the last is the minute now running. One ZCOUNT per minute on the index
    of ended requests, whatever their number. A request retried after it ended leaves that index,
    and with it the minute it ended in."""
    current_ms = now_ms - now_ms % MINUTE_MS
    return store_requests.ended_per_window(store, start_ms=current_ms - (minutes - 1) * MINUTE_MS,
                                           window_ms=MINUTE_MS, windows=minutes)


@dataclass(frozen=True)
class Lateness:
    """How late deliveries start: over the first attempts of the latest ended requests (`sample`
    of them), the median, 95th percentile and maximum of start − due time; and, now, how many
    requests wait in the schedule past their due time (`overdue`), the oldest by `oldest_overdue_ms`."""

    sample: int
    p50_ms: int | None
    p95_ms: int | None
    max_ms: int | None
    overdue: int
    oldest_overdue_ms: int | None


def lateness(store: Store, now_ms: int, sample: int = LATENESS_SAMPLE) -> Lateness:
    """Only first attempts are measured: a retry's due time is not kept once the request ended.
    (A request canceled before its first attempt and then retried counts from its first due time.)"""
    late = sorted(max(0, timing.started_ms - timing.due_ms)
                  for timing in store_requests.latest_ended(store, sample)
                  if timing.attempts == 1 and timing.started_ms is not None and timing.due_ms is not None)
    overdue, oldest_due_ms = store_requests.overdue_waiting(store, now_ms=now_ms)
    return Lateness(sample=len(late), p50_ms=percentile(late, 50), p95_ms=percentile(late, 95),
                    max_ms=late[-1] if late else None, overdue=overdue,
                    oldest_overdue_ms=None if oldest_due_ms is None else now_ms - oldest_due_ms)


def percentile(ordered: list[int], rank: float) -> int | None:
    """Nearest-rank percentile of an ascending list; None when it is empty."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]
