"""A store that looks lived in, for the dashboard's browser test and its screenshot: an hour of
finished requests (written through the core with a clock set back, as workers would have), some
waiting, failed and retrying ones, queues with messages and dead letters, batches.

Nothing here is published: only call it on a Redis whose htq has no beat running (its relay would
hand these requests to a worker)."""
from __future__ import annotations

import math
import random

from app.core.attempts import Attempts
from app.core.batches import BatchForwarder, BatchService
from app.core.outcome import Outcome
from app.core.publish import Publisher
from app.core.queues import QueueService, json_body
from app.core.requests import RequestService
from app.storage.client import Store
from config import Settings
from tests.support.clock import FakeClock
from tests.support.sender import RecordingSender

WORKER = "celery@demo"
TARGETS = ("https://billing.example.com/hooks/invoice", "https://api.example.org/v2/orders/sync",
           "https://crm.example.net/webhooks/contact", "https://shop.example.com/api/stock")


def fill(store: Store, settings: Settings, now_ms: int, minutes: int = 60, seed: int = 7) -> None:
    rng = random.Random(seed)
    clock = FakeClock(now_ms - minutes * 60_000)
    publisher = Publisher(RecordingSender())
    requests = RequestService(store, publisher, settings, clock_ms=clock)
    attempts = Attempts(store, publisher, settings, clock_ms=clock, rng=rng.random)
    for minute in range(minutes):
        # A daily rhythm in small: a wave of traffic with noise, a dip, a busy last quarter hour.
        count = max(0, round(9 + 6 * math.sin(minute / 7) + (8 if minute > 45 else 0) + rng.uniform(-3, 3)))
        for _ in range(count):
            clock.ms = now_ms - (minutes - minute) * 60_000 + rng.randrange(55_000)
            created = requests.create({"url": rng.choice(TARGETS), "method": "POST", "headers": {},
                                       "json": {"event": "invoice.paid", "amount": rng.randrange(100, 9000)}})
            due_ms = clock.ms
            clock.ms += rng.choice((3, 5, 8, 12, 20, 40, 120))
            [attempt] = attempts.start([(created.resource["id"], 1, due_ms)], WORKER)
            clock.ms += rng.randrange(40, 400)
            code = rng.choices((200, 201, 404, 500), weights=(80, 10, 3, 7))[0]
            # The latest server errors are still being retried; the older ones ran out of attempts.
            verdict = "succeeded" if code < 300 else "retry" if code == 500 and minute >= minutes - 5 else "failed"
            attempts.finish([(attempt, Outcome(verdict=verdict, status_code=code, reason="",
                                               body=b'{"ok": true}', elapsed_ms=rng.randrange(40, 400)))], WORKER)
    clock.ms = now_ms
    for delay in (600, 1800, 3600, 7200, 86400):
        requests.create({"url": rng.choice(TARGETS), "method": "POST", "headers": {"X-Tenant": "acme"},
                         "json": {"report": "daily"}, "delay": delay})
    for _ in range(2):
        created = requests.create({"url": TARGETS[0], "method": "DELETE", "headers": {}, "delay": 60})
        requests.cancel(created.resource["id"])
    _queues(store, settings, clock)
    _batches(store, publisher, settings, clock)


def _queues(store: Store, settings: Settings, clock: FakeClock) -> None:
    queues = QueueService(store, settings, clock_ms=clock)
    queues.put("emails", {"visibility_timeout": 60, "max_receives": 3})
    queues.push_many("emails", [(json_body({"to": f"user{n}@example.com", "template": "welcome"}), None)
                                for n in range(42)])
    queues.receive("emails", 5)
    queues.put("thumbnails", {"visibility_timeout": 0, "max_receives": 1})
    queues.push_many("thumbnails", [(json_body({"image": f"img/{n}.png", "size": 256}), None) for n in range(12)])
    for _ in range(3):  # received more than max_receives times: dead letters
        queues.receive("thumbnails", 2)
    queues.put("audit", {})
    queues.push_many("audit", [(json_body({"actor": "admin", "action": "login"}), 300) for _ in range(7)])


def _batches(store: Store, publisher: Publisher, settings: Settings, clock: FakeClock) -> None:
    batches = BatchService(store, publisher, settings, clock_ms=clock)
    batches.configure("log", {"endpoint": "https://logs.example.com/ingest", "max_records": 500, "interval": 10})
    batches.add("log", [{"level": "info", "msg": f"request {n} done"} for n in range(37)])
    # A batch the endpoint refused for good: dead, to be redriven.
    sender = RecordingSender()
    batches = BatchService(store, Publisher(sender), settings, clock_ms=clock)
    batches.configure("crm-sync", {"endpoint": "https://crm.example.net/bulk", "max_records": 2,
                                   "retry": {"max_attempts": 1, "backoff_base": 2}})
    batches.add("crm-sync", [{"contact": 17, "email": "ada@example.com"}, {"contact": 18, "email": "alan@example.com"}])
    forwarder = BatchForwarder(store, Publisher(sender), settings, clock_ms=clock)
    for name, batch_id, attempt in sender.batches():
        claimed = forwarder.claim(name, batch_id, attempt, WORKER)
        forwarder.finish(claimed, Outcome(verdict="failed", status_code=422, reason="Unprocessable Entity"))
