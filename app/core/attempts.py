"""Attempts of deferred requests, on the worker side: claim each one before it is sent, then
store its outcome and hand on what follows (the next attempt, the callback)."""
from __future__ import annotations

import base64
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from app.core import clock, gates, jsontext, policy
from app.core.model import ms
from app.core.outcome import FAILED, RETRY, SUCCEEDED, Outcome
from app.core.publish import Publisher
from app.core.task_names import SEND_CALLBACK
from app.log import fields
from app.storage import requests as store_requests
from app.storage.client import Store
from app.storage.requests import AttemptEnd, Next
from config import Settings

log = logging.getLogger(__name__)


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
            return jsontext.dumps_sent(self.spec["json"]).encode()
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
        return ms(min(retry_after_s, max_s))
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    return ms(rng() * ceiling)


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


def error_text(outcome: Outcome) -> str | None:
    if outcome.error:
        return outcome.error
    if outcome.verdict != SUCCEEDED:
        return f"HTTP {outcome.status_code} {outcome.reason}".strip()
    return None


class Attempts:
    """Claims attempts for the delivery task and settles them; one per worker process."""

    def __init__(self, store: Store, publisher: Publisher, settings: Settings,
                 clock_ms: Callable[[], int] = clock.now_ms, rng: Callable[[], float] = random.random):
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self.now_ms = clock_ms
        self.rng = rng

    def start(self, items: Iterable[tuple[str, int, int]], worker: str) -> list[Attempt]:
        """Claim (id, attempt, due_ms) items for `worker` (its node name), which then holds them;
        duplicates and canceled requests drop out here, and the gates (app/core/gates.py) hold
        back what may not start yet: published again for the start its rate reserved, or parked."""
        items = list(items)
        now = self.now_ms()
        results = store_requests.start_many(self.store, [(rid, attempt) for rid, attempt, _ in items], worker=worker,
                                            now_ms=now, lease_margin_ms=self.settings.lease_margin_ms,
                                            horizon_end_ms=now + self.settings.horizon_ms,
                                            grace_ms=self.settings.publish_grace_ms)
        started, deferred = [], []
        for (request_id, attempt, _), result in zip(items, results):
            if result.spec is not None:
                started.append(Attempt(request_id, attempt, result.send_ms, now, result.spec))
            elif result.deferred_ms is not None:
                log.debug("request %s: attempt %d waits for its flow's rate until %s", request_id, attempt,
                          clock.to_rfc3339(result.deferred_ms))
                if result.publish:
                    deferred.append((request_id, attempt, result.deferred_ms))
            elif result.parked is not None:
                log.debug("request %s: attempt %d waits at %s", request_id, attempt, result.parked)
            else:
                log.info("request %s: attempt %d not started (status %s)", request_id, attempt, result.status or "gone")
        self.publisher.deliver(deferred, now)
        return started

    def finish(self, results: Iterable[tuple[Attempt, Outcome]], worker: str = "") -> None:
        """Store each attempt's outcome and publish what follows, in one round trip. `worker`
        ran them and holds them no more ("" when the relay settles attempts of a lost worker)."""
        now = self.now_ms()
        judged = [self._end(attempt, outcome, now) for attempt, outcome in results]
        results = [(attempt, outcome) for (attempt, _), (outcome, _) in zip(results, judged)]
        ends = [end for _, end in judged]
        settled = store_requests.finish_many(self.store, ends, worker=worker, now_ms=now,
                                             horizon_end_ms=now + self.settings.horizon_ms,
                                             grace_ms=self.settings.publish_grace_ms,
                                             lease_margin_ms=self.settings.lease_margin_ms,
                                             breaker=gates.Breaker.of(self.settings))
        to_publish = []
        for (attempt, outcome), end, result in zip(results, ends, settled):
            to_publish.extend(result.woken)
            result_text = str(result.final_status or result.next)
            log.info("request %s: attempt %d -> %s (%s) in %d ms", attempt.request_id, attempt.attempt, result_text,
                     outcome.status_code or outcome.error, outcome.elapsed_ms,
                     **fields(request_id=attempt.request_id, attempt=attempt.attempt, result=result_text,
                              status_code=outcome.status_code, error=outcome.error, elapsed_ms=outcome.elapsed_ms,
                              worker=worker or None))
            if result.next is Next.PUBLISH:
                to_publish.append((attempt.request_id, attempt.attempt + 1, end.next_due_ms))
            elif result.next is Next.ENDED and end.callback:
                # Recorded in the outbox by the same script; published here at once, and by the
                # relay again should no worker take it within the grace.
                self.publisher.notify(SEND_CALLBACK, attempt.request_id)
        self.publisher.deliver(to_publish, now)

    def _end(self, attempt: Attempt, outcome: Outcome, now: int) -> tuple[Outcome, AttemptEnd]:
        """The outcome under the request's rules (policy.judge; a retry that would start past
        `retry.max_duration` after the first attempt fails instead), and what to store."""
        retry = attempt.spec["retry"]
        outcome = policy.judge(attempt.spec, outcome)
        breaker_news = gates.breaker_news(outcome)
        next_due_ms = now + backoff_ms(attempt.attempt, float(retry["backoff_base"]), float(retry["backoff_max"]),
                                       outcome.retry_after_s, self.rng)
        if outcome.verdict == RETRY and retry.get("max_duration") is not None:
            first_ms = attempt.started_ms if attempt.attempt == 1 else store_requests.first_attempt_started_ms(
                self.store, attempt.request_id)
            if next_due_ms > (first_ms or attempt.started_ms) + ms(retry["max_duration"]):
                outcome = replace(outcome, verdict=FAILED, error=f"{error_text(outcome)}; not retried: "
                                  f"retry.max_duration ({retry['max_duration']:g} s after the first attempt) passed")
        error = error_text(outcome)
        return outcome, AttemptEnd(
            request_id=attempt.request_id, attempt=attempt.attempt, verdict=outcome.verdict, next_due_ms=next_due_ms,
            record={"attempt": attempt.attempt, "started_at": clock.to_rfc3339(attempt.started_ms),
                    "elapsed_ms": outcome.elapsed_ms, "status_code": outcome.status_code, "error": error},
            response=response_document(attempt.attempt, outcome, now), last_error=error,
            callback=bool(attempt.spec.get("callback_url")), elapsed_ms=outcome.elapsed_ms,
            worker_lost=outcome.worker_lost, breaker_news=breaker_news)
