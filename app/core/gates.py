"""What an attempt passes before it starts (CONTRACT "Delivery policy"): flow control per key and
the circuit breaker per destination. The scripts enforce them (app/storage/lua/_gates.lua); this
module holds their rules on the Python side.

Flow control: requests sharing `flow.key` start at most `rate` per `period` seconds (no window of
`period` holds more starts: a log of starts and reservations, so two workers on two hosts share
it exactly) and at most `parallelism` at once (a counted set of slots, each with a lease, so a
dead worker's slot comes back when it is found dead or its lease ends). The latest limits sent for
a key apply to all its requests. A request held back by the rate is published again for the start
time reserved for it; one held back by parallelism waits parked until a slot frees. Neither uses
an attempt.

Circuit breaker: after `failures` retryable failures in a row a destination (`host[:port]` of the
url) opens for `cooldown` seconds; its requests wait parked without using attempts; then one probe
goes (half-open): an answer closes it and wakes the waiters, a retryable failure opens it again.
An answer that is not retried (a 404, say) counts as the destination answering: it closes too.
"""
from __future__ import annotations

from typing import NamedTuple
from urllib.parse import urlsplit

from app.core.model import ms
from app.core.outcome import RETRY, SUCCEEDED, Outcome

# Limits of `flow` fields (the API validates against them; CONTRACT documents them).
MAX_RATE = 10_000
MAX_PERIOD_S = 86_400
MAX_PARALLELISM = 10_000
FLOW_KEY_PATTERN = r"^[A-Za-z0-9._:@+=~-]{1,200}$"

# What a finished attempt tells its destination's breaker (_gates.lua's settle_gates).
BREAKER_FAILURE = "failure"
BREAKER_SUCCESS = "success"
BREAKER_NOTHING = ""


class Breaker(NamedTuple):
    """The breaker's settings: HTQ_BREAKER_FAILURES, HTQ_BREAKER_COOLDOWN."""

    failures: int = 10
    cooldown_ms: int = 30_000

    @classmethod
    def of(cls, settings) -> Breaker:
        return cls(settings.breaker_failures, ms(settings.breaker_cooldown_s))


def destination(url: str) -> str:
    """`host[:port]` of a url, lower case, the port only when the url names one: one breaker per
    destination. "" when the url has no host (the attempt fails without reaching anything)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None and host else host


def flow_of(spec: dict) -> tuple[str, str]:
    """(key, "rate period_ms parallelism") of a spec's `flow`, ("", "") without one; 0 is no limit."""
    flow = spec.get("flow")
    if not flow:
        return "", ""
    period_ms = ms(flow.get("period", 1))
    return flow["key"], f"{int(flow.get('rate') or 0)} {period_ms} {int(flow.get('parallelism') or 0)}"


def breaker_news(judged: Outcome) -> str:
    """What an attempt's outcome, under the request's own rules, tells the breaker: a retryable
    failure, an answer (the destination is up), or nothing (htq's own failure: a worker lost, a
    destination refused before anything was sent)."""
    if judged.worker_lost:
        return BREAKER_NOTHING
    if judged.verdict == RETRY:
        return BREAKER_FAILURE
    if judged.verdict == SUCCEEDED or judged.status_code is not None:
        return BREAKER_SUCCESS
    return BREAKER_NOTHING

