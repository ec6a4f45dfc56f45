"""Beat's work on deferred requests: hand to the workers what falls due within the horizon,
publish again what was published but never started, settle attempts whose worker died, publish
the notices the outbox owes until a worker takes them, and expire requests that ended longer ago
than the retention period."""
from __future__ import annotations

import logging
from collections.abc import Callable

from app.core import clock
from app.core.attempts import Attempt, Attempts
from app.core.outcome import RETRY, Outcome
from app.core.publish import Publisher
from app.core.task_names import NOTIFY_CANCEL, SEND_CALLBACK
from app.core.workers import Workers
from app.log import fields
from app.storage import gates as store_gates
from app.storage import outbox
from app.storage import requests as store_requests
from app.storage.client import Store
from app.storage.outbox import Notice
from config import Settings

log = logging.getLogger(__name__)

RELAY_BATCH = 500
GATES_PER_TICK = 100  # gates with waiting requests looked at per tick (each at most once a second)
LEASE_EXPIRED = Outcome(verdict=RETRY, error="worker lost during the attempt (lease expired)", worker_lost=True)
WORKER_STOPPED = Outcome(verdict=RETRY, error="worker lost during the attempt (it stopped heartbeating)",
                         worker_lost=True)
# The task that sends each kind of notice the outbox holds.
NOTICE_TASKS = {Notice.CALLBACK: SEND_CALLBACK, Notice.CANCEL: NOTIFY_CANCEL}


class RequestRelay:
    def __init__(self, store: Store, publisher: Publisher, settings: Settings, attempts: Attempts,
                 clock_ms: Callable[[], int] | None = None, backlog: Callable[[], int] = lambda: 0):
        """`backlog()` tells how many task messages wait in the broker (0 when it cannot tell):
        an unstarted request nobody holds is published again only when none wait. An injected
        `clock_ms` (tests) is the timetable's and liveness's; by default they are clock.now_ms
        and clock.real_ms, apart on a virtual clock."""
        self.store = store
        self.publisher = publisher
        self.settings = settings
        self.attempts = attempts
        self.workers = Workers(store, clock_ms or clock.real_ms)
        self.now_ms = clock_ms or clock.now_ms
        self.backlog = backlog

    def tick(self) -> dict[str, int]:
        """Beat, every second: hand back what dead workers held; publish what falls due within
        the horizon; republish lost publishes; settle attempts whose lease expired; wake what
        waits at a gate that lets it through now."""
        counts = {"claimed": 0, "republished": 0, "lost": 0, "workers_lost": 0}
        for name in self.workers.dead():
            held = self.workers.reap(name, self.settings.publish_grace_ms)
            republished, lost = [due.request_id for due in held.republish], [due.request_id for due in held.lost]
            log.warning("worker %s stopped heartbeating: %d attempts it held published again (%s), %d it ran "
                        "lost (%s)", name, len(republished), " ".join(republished) or "-", len(lost),
                        " ".join(lost) or "-", **fields(worker=name, republished=republished, lost=lost))
            self.publisher.deliver(held.republish, self.now_ms())
            self._settle_lost(held.lost, WORKER_STOPPED)
            counts["workers_lost"] += 1
            counts["republished"] += len(held.republish)
            counts["lost"] += len(held.lost)
        while True:
            now = self.now_ms()
            claimed = store_requests.claim_due(self.store, now_ms=now, horizon_end_ms=now + self.settings.horizon_ms,
                                               grace_ms=self.settings.publish_grace_ms, limit=RELAY_BATCH)
            self.publisher.deliver(claimed, now)
            counts["claimed"] += len(claimed)
            if len(claimed) < RELAY_BATCH:
                break
        now = self.now_ms()
        overdue = store_requests.recover_overdue(self.store, now_ms=now, grace_ms=self.settings.publish_grace_ms,
                                                 alive_after_ms=self.workers.alive_after_ms(),
                                                 held_after_ms=self.workers.held_after_ms(), backlog=self.backlog,
                                                 limit=RELAY_BATCH)
        self.publisher.deliver(overdue.republish, now)
        counts["republished"] += len(overdue.republish)
        self._settle_lost(overdue.lost, LEASE_EXPIRED)
        counts["lost"] += len(overdue.lost)
        now = self.now_ms()
        woken = store_gates.sweep(self.store, now_ms=now, grace_ms=self.settings.publish_grace_ms,
                                  lease_margin_ms=self.settings.lease_margin_ms, limit=GATES_PER_TICK)
        self.publisher.deliver(woken, now)
        counts["woken"] = len(woken)
        counts["notices"] = self._publish_notices()
        return counts

    def _publish_notices(self) -> int:
        """Publish the outbox's notices whose time has come; each is published again a grace
        later until its task removes it. The first one the broker refuses ends the round: the
        others claimed with it wait for the grace too, like any publish that failed."""
        published = 0
        while True:
            now = self.now_ms()
            owed = outbox.claim(self.store, now_ms=now, grace_ms=self.settings.publish_grace_ms, limit=RELAY_BATCH)
            for notice, request_id in owed:
                if not self.publisher.notify(NOTICE_TASKS[notice], request_id):
                    return published
                published += 1
            if len(owed) < RELAY_BATCH:
                return published

    def _settle_lost(self, lost: list[store_requests.Due], outcome: Outcome) -> None:
        now = self.now_ms()
        records = store_requests.load_many(self.store, [due.request_id for due in lost])
        attempts = []
        for due, record in zip(lost, records):
            if record:
                started_ms = int(record.get("started_ms") or now)
                attempts.append(Attempt(due.request_id, due.attempt, started_ms, started_ms,
                                        store_requests.spec_of(record)))
        if attempts:
            self.attempts.finish([(attempt, outcome) for attempt in attempts])

    def expire(self) -> int:
        """Delete requests that ended more than the retention period ago."""
        cutoff = self.now_ms() - self.settings.retention_ms
        total = 0
        while True:
            expired = store_requests.expire_ended(self.store, cutoff_ms=cutoff, limit=RELAY_BATCH)
            total += expired
            if expired < RELAY_BATCH:
                return total
