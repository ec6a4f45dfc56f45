"""Beat's periodic work: one tick a second that relays due requests, sweeps the queues, flushes
the batches and runs the due schedules, and the expiry of old requests.

One task rather than four a second: Flower and the logs would otherwise be three housekeeping
tasks a second burying the deliveries. The tick sends no task events (Flower never lists it) and,
at INFO, logs only what an operator acts on (a lost worker, work published again, messages
returned or dropped, dead batches); what it publishes shows up as the deliveries themselves.
"""
from __future__ import annotations

import logging
import time

import redis
from celery import shared_task

from app.core import clock
from app.core.task_names import EXPIRE_REQUESTS, FLUSH_BATCHES, RELAY_REQUESTS, RUN_SCHEDULES, SWEEP_QUEUES, TICK
from app.log import fields
from app.storage import beat as store_beat
from workers import runtime

log = logging.getLogger(__name__)

# The counts of a tick worth an INFO line; the others (requests claimed within the horizon, queues
# swept, batches taken) are the normal flow, logged at DEBUG.
NOTABLE = {"relay": ("workers_lost", "republished", "lost"), "queues": ("returned", "dropped"),
           "batches": ("republish", "lost", "dead"), "schedules": ("runs", "refused")}


def _parts(rt: runtime.Runtime) -> dict:
    return {"relay": rt.relay.tick, "queues": rt.queues.sweep, "batches": rt.forwarder.flush,
            "schedules": rt.schedules.tick}


def run_tick(rt: runtime.Runtime) -> dict[str, dict[str, int]]:
    """Each part runs even when one before it failed (the first failure is raised at the end,
    after what the others did is logged); a tick is recorded (app/storage/beat.py) when all ran."""
    counts: dict[str, dict[str, int]] = {}
    failure: Exception | None = None
    for part, run in _parts(rt).items():
        try:
            counts[part] = run()
        except Exception as exc:  # raised below, once the other parts ran
            failure = failure or exc
    done = {(name if name == part else f"{part}_{name}"): count
            for part, found in counts.items() for name, count in found.items() if count}
    notable = any(counts.get(part, {}).get(name) for part, names in NOTABLE.items() for name in names)
    if done:
        log.log(logging.INFO if notable else logging.DEBUG, "tick: %s",
                " ".join(f"{name}={count}" for name, count in done.items()), **fields(**done))
    if failure is not None:
        raise failure
    # The system's time, also on a virtual clock: it says beat is up, as a heartbeat would.
    store_beat.record_tick(rt.store, now_ms=clock.real_ms())
    return counts


class StoreTrouble:
    """What a tick says while Redis refuses it (full, or away): one warning a minute with how many
    ticks failed since, and a line when ticks work again; not a traceback every second."""

    EVERY_S = 60.0

    def __init__(self, clock_s=time.monotonic):
        self.clock_s = clock_s
        self.failed = 0
        self.warned_at: float | None = None

    def failure(self, exc: redis.RedisError) -> None:
        self.failed += 1
        now = self.clock_s()
        if self.warned_at is None or now - self.warned_at >= self.EVERY_S:
            log.warning("tick: the store refused it (%s: %s); %d ticks failed so far, saying so once a minute",
                        type(exc).__name__, exc, self.failed)
            self.warned_at = now

    def success(self) -> None:
        if self.failed:
            log.warning("tick: works again after %d failed ticks", self.failed)
        self.failed, self.warned_at = 0, None


_trouble = StoreTrouble()


@shared_task(name=TICK, ignore_result=True, send_events=False)
def tick() -> dict:
    """Beat, every second: publish due requests and recover lost ones, sweep queues, flush batches,
    run the due schedules (each schedule tick once however many beats send this, app/core/schedules.py)."""
    try:
        counts = run_tick(runtime.current())
    except redis.RedisError as exc:
        _trouble.failure(exc)
        return {}
    _trouble.success()
    return counts


@shared_task(name=EXPIRE_REQUESTS, ignore_result=True, send_events=False)
def expire_requests() -> int:
    """Beat, every minute: delete requests that ended longer ago than the retention period."""
    expired = runtime.current().relay.expire()
    if expired:
        log.info("expired %d requests", expired, **fields(expired=expired))
    return expired


def _legacy(part: str):
    def run() -> dict:
        return _parts(runtime.current())[part]()
    return run


# Ticks queued by an older beat under the names of before htq.tick (app/core/task_names.py).
relay_requests = shared_task(name=RELAY_REQUESTS, ignore_result=True, send_events=False)(_legacy("relay"))
sweep_queues = shared_task(name=SWEEP_QUEUES, ignore_result=True, send_events=False)(_legacy("queues"))
flush_batches = shared_task(name=FLUSH_BATCHES, ignore_result=True, send_events=False)(_legacy("batches"))
run_schedules = shared_task(name=RUN_SCHEDULES, ignore_result=True, send_events=False)(_legacy("schedules"))
