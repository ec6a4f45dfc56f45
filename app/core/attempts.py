"""The worker side of deferred requests: relay due work, claim and settle attempts, expire.

Everything time-driven runs from beat through `relay()` and `expire()`; attempts are started
and finished by the delivery task through `start()` and `finish()`.
"""
from __future__ import annotations

import base64
import json
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from app.core import clock
from app.core.outcome import RETRY, SUCCEEDED, Outcome
from app.core.publish import SEND_CALLBACK, Publisher
from app.storage import requests as store_requests
from app.storage.client import Store
from config import Settings

log = logging.getLogger(__name__)

RELAY_BATCH = 500


@dataclass(frozen=True)
class Attempt:
    """An attempt a worker has claimed and must now send."""

    request_id: str
    attempt: int
    due_ms: int
    started_ms: int
    spec: dict

    @property
    def body(self) -> bytes | None:
        if "json" in self.spec:
            return json.dumps(self.spec["json"]).encode()
        if "body" in self.spec:
            return self.spec["body"].encode()
        return None

    @property
    def headers(self) -> dict[str, str]:
        headers = dict(self.spec.get("headers") or {})
        if "json" in self.spec and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return headers


def backoff_ms(attempt: int, base_s: float, max_s: float, retry_after_s: float | None,
               rng: Callable[[], float] = random.random) -> int:
    """Exponential backoff with full jitter; a Retry-After replaces it, capped at max_s."""
    if retry_after_s is not None:
        return int(min(retry_after_s, max_s) * 1000)
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    return int(rng() * ceiling * 1000)


def response_document(attempt: int, outcome: Outcome, received_ms: int) -> dict:
    """The contract's response resource for one attempt."""
    try:
        body, encoding = outcome.body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(outcome.body).decode(), "base64"
    return {
        "status_code": outcome.status_code,
        "reason": outcome.reason or None,
        "headers": outcome.headers,
        "body": body if outcome.status_code is not None else None,
        "body_encoding": encoding,
        "truncated": outcome.truncated,
        "elapsed_ms": outcome.elapsed_ms,
        "received_at": clock.to_rfc3339(received_ms),
        "attempt": attempt,
        "error": outcome.error,
    }


def judged(spec: dict, outcome: Outcome) -> Outcome:
    """The outcome under the request's own rule: with `success_on_any_status` (the htq 2014
    profile) any complete HTTP answer succeeds; network errors and timeouts keep their verdict."""
    if spec.get("success_on_any_status") and outcome.status_code is not None and not outcome.error:
        return replace(outcome, verdict=SUCCEEDED, retry_after_s=None)
    return outcome


def error_text(outcome: Outcome) -> str | None:
    if outcome.error:
        return outcome.error
    if outcome.verdict != SUCCEEDED:
        return f"HTTP {outcome.status_code} {outcome.reason}".strip()
    return None


class Scheduler:
    def __init__(self, store: Store, publisher: Publisher, settings: Settings,
                 clock_ms: Callable[[], int] = clock.now_ms, rng: Callable[[], float] = random.random):
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self.now_ms = clock_ms
        self.rng = rng

    def horizon_end(self, now: int) -> int:
        return now + int(self.settings.horizon_s * 1000)

    def relay(self) -> dict[str, int]:
        """Publish what falls due within the horizon; republish lost publishes; settle dead leases."""
        counts = {"claimed": 0, "republished": 0, "lost": 0}
        while True:
            now = self.now_ms()
            claimed = store_requests.claim_due(self.store, now_ms=now, horizon_end_ms=self.horizon_end(now),
                                               grace_ms=self.settings.publish_grace_ms, limit=RELAY_BATCH)
            self.publisher.deliver(claimed, now)
            counts["claimed"] += len(claimed)
            if len(claimed) < RELAY_BATCH:
                break
        now = self.now_ms()
        overdue = store_requests.recover_overdue(self.store, now_ms=now, grace_ms=self.settings.publish_grace_ms,
                                                 limit=RELAY_BATCH)
        republish = [(rid, attempt, due) for kind, rid, attempt, due in overdue if kind == "republish"]
        self.publisher.deliver(republish, now)
        counts["republished"] = len(republish)
        lost = [(rid, attempt) for kind, rid, attempt, _ in overdue if kind == "lost"]
        records = store_requests.load_many(self.store, [rid for rid, _ in lost])
        outcome = Outcome(verdict=RETRY, error="worker lost during the attempt (lease expired)")
        attempts = [Attempt(rid, attempt, int(rec.get("started_ms") or now), int(rec.get("started_ms") or now),
                            json.loads(rec["spec"]))
                    for (rid, attempt), rec in zip(lost, records) if rec]
        for attempt in attempts:
            log.warning("request %s: attempt %d lost its worker (lease expired)", attempt.request_id, attempt.attempt)
        if attempts:
            self.finish([(attempt, outcome) for attempt in attempts])
        counts["lost"] = len(lost)
        return counts

    def start(self, items: Iterable[tuple[str, int, int]]) -> list[Attempt]:
        """Claim (id, attempt, due_ms) items; duplicates and canceled requests drop out here."""
        items = list(items)
        now = self.now_ms()
        results = store_requests.start_many(self.store, [(rid, attempt) for rid, attempt, _ in items],
                                            now_ms=now, lease_margin_ms=int(self.settings.lease_margin_s * 1000))
        started = []
        for (request_id, attempt, due_ms), result in zip(items, results):
            if result[0] == "started":
                started.append(Attempt(request_id, attempt, int(result[2] or due_ms), now, json.loads(result[1])))
            else:
                log.info("request %s: attempt %d not started (status %s)", request_id, attempt, result[1] or "gone")
        return started

    def finish(self, results: Iterable[tuple[Attempt, Outcome]]) -> None:
        """Store each attempt's outcome and publish what follows, in one round trip."""
        results = [(attempt, judged(attempt.spec, outcome)) for attempt, outcome in results]
        now = self.now_ms()
        pipe = self.store.redis.pipeline(transaction=False)
        next_due = []
        for attempt, outcome in results:
            retry = attempt.spec["retry"]
            due = now + backoff_ms(attempt.attempt, float(retry["backoff_base"]), float(retry["backoff_max"]),
                                   outcome.retry_after_s, self.rng)
            next_due.append(due)
            error = error_text(outcome)
            store_requests.finish(
                self.store, request_id=attempt.request_id, attempt=attempt.attempt, now_ms=now,
                outcome=outcome.verdict, next_due_ms=due, horizon_end_ms=self.horizon_end(now),
                grace_ms=self.settings.publish_grace_ms,
                attempt_record={"attempt": attempt.attempt, "started_at": clock.to_rfc3339(attempt.started_ms),
                                "elapsed_ms": outcome.elapsed_ms, "status_code": outcome.status_code,
                                "error": error},
                response=response_document(attempt.attempt, outcome, now), last_error=error, client=pipe)
        to_publish = []
        for (attempt, outcome), due, decision in zip(results, next_due, pipe.execute()):
            log.info("request %s: attempt %d -> %s (%s)", attempt.request_id, attempt.attempt,
                     decision[-1], outcome.status_code or outcome.error)
            if decision[0] == "publish":
                to_publish.append((attempt.request_id, attempt.attempt + 1, due))
            elif decision[0] == "ended" and attempt.spec.get("callback_url"):
                self.publisher.send(SEND_CALLBACK, [attempt.request_id])
        self.publisher.deliver(to_publish, now)

    def expire(self) -> int:
        """Delete requests that ended more than the retention period ago."""
        cutoff = self.now_ms() - self.settings.retention_s * 1000
        total = 0
        while True:
            expired = store_requests.expire_ended(self.store, cutoff_ms=cutoff, limit=RELAY_BATCH)
            total += expired
            if expired < RELAY_BATCH:
                return total
