"""Attempts and the relay with an injected clock on a real Redis: horizon, claims, leases, retries, expiry."""
from __future__ import annotations

import pytest

from app.core.attempts import Attempts, backoff_ms, response_document
from app.core.outcome import Outcome
from app.core.publish import DISPATCH_LEAD_MS, Publisher
from app.core.relay import RequestRelay
from app.core.requests import RequestService
from app.core.workers import DEAD_AFTER_S
from app.storage import keys, outbox, stats
from app.storage import requests as store_requests
from app.storage import workers as store_workers
from app.storage.outbox import Notice


@pytest.fixture
def service(store, settings, sender, clock):
    return RequestService(store, Publisher(sender), settings, clock_ms=clock)


@pytest.fixture
def attempts(store, settings, sender, clock):
    return Attempts(store, Publisher(sender), settings, clock_ms=clock, rng=lambda: 0.5)


@pytest.fixture
def relay(store, settings, sender, clock, attempts):
    return RequestRelay(store, Publisher(sender), settings, attempts, clock_ms=clock)


def fields(**extra):
    return {"url": "http://127.0.0.1:9/x", "method": "POST", "headers": {}, **extra}


def test_relay_publishes_only_what_enters_the_horizon_with_its_exact_eta(service, relay, sender, clock):
    far = service.create(fields(delay=3600)).resource["id"]
    soon = service.create(fields(delay=90)).resource["id"]
    assert sender.sent == []
    clock.advance_ms(31_000)
    assert relay.tick()["claimed"] == 1
    [(name, [[items]], eta)] = sender.sent
    assert name == "htq.deliver_requests" and items == [soon, 1, clock.ms - 31_000 + 90_000]
    assert round(eta.timestamp() * 1000) == items[2] - DISPATCH_LEAD_MS  # the worker waits out the rest
    assert service.status(far)["status"] == "scheduled"


def test_two_relays_never_publish_a_request_twice(service, relay, store, settings, sender, clock):
    ids = {service.create(fields(delay=100)).resource["id"] for _ in range(5)}
    publisher = Publisher(sender)
    other_attempts = Attempts(store, publisher, settings, clock_ms=clock)
    other = RequestRelay(store, publisher, settings, other_attempts, clock_ms=clock)
    clock.advance_ms(50_000)
    relay.tick()
    other.tick()
    published = [item[0] for item in sender.deliveries()]
    assert sorted(published) == sorted(ids)


def test_duplicate_delivery_of_an_attempt_is_dropped(service, attempts):
    request_id = service.create(fields()).resource["id"]
    assert len(attempts.start([(request_id, 1, 0)], "worker@test")) == 1
    assert attempts.start([(request_id, 1, 0)], "worker@test") == []


def test_retry_goes_back_through_the_schedule_with_backoff(service, attempts, sender, clock):
    request_id = service.create(fields(retry={"backoff_base": 100, "backoff_max": 1000})).resource["id"]
    [attempt] = attempts.start([(request_id, 1, clock.ms)], "worker@test")
    attempts.finish([(attempt, Outcome(verdict="retry", status_code=503, reason="Service Unavailable"))])
    status = service.status(request_id)
    # Full jitter with rng 0.5 over min(1000, 100 * 2^0) s = 50 s: within the horizon.
    assert status["status"] == "retrying" and status["attempts"] == 1  # until attempt 2 starts
    assert sender.deliveries()[-1] == [request_id, 2, clock.ms + 50_000]
    assert service.get(request_id)["last_error"] == "HTTP 503 Service Unavailable"
    [attempt] = attempts.start([(request_id, 2, clock.ms + 50_000)], "worker@test")
    attempts.finish([(attempt, Outcome(verdict="retry", retry_after_s=5000))])
    # Retry-After replaces the backoff, capped at backoff_max (1000 s): beyond the horizon.
    assert service.status(request_id)["status"] == "retrying"
    assert service.get(request_id)["next_attempt_at"] is not None


def test_expired_lease_is_settled_as_a_lost_attempt_and_retried(service, attempts, relay, sender, clock, settings):
    request_id = service.create(fields(timeout=10)).resource["id"]
    attempts.start([(request_id, 1, clock.ms)], "worker@test")
    clock.advance_ms(10_000 + settings.lease_margin_ms + 1)
    counts = relay.tick()
    assert counts["lost"] == 1
    recorded = service.attempts(request_id)
    assert recorded[0]["error"].startswith("worker lost")
    assert service.status(request_id)["status"] in {"queued", "retrying"}


def test_an_attempt_whose_worker_stopped_heartbeating_counts_once_as_worker_lost(service, attempts, relay, store,
                                                                                  clock, settings):
    request_id = service.create(fields()).resource["id"]
    store_workers.heartbeat(store, "gone@test", host="h", pid=1, started_ms=clock.ms, now_ms=clock.ms)
    attempts.start([(request_id, 1, clock.ms)], "gone@test")
    clock.advance(DEAD_AFTER_S + 1)
    assert relay.tick()["lost"] == 1
    clock.advance_ms(settings.publish_grace_ms + 1)
    relay.tick()  # nothing lost twice: the attempt was settled
    figures = stats.read(store, now_ms=clock.ms, alive_after_ms=0, limit=10)
    assert figures.attempts == {"succeeded": 0, "retry": 0, "failed": 0, "worker_lost": 1}
    assert figures.duration.count == 0 and figures.lateness.count == 1


def test_publish_lost_before_start_is_published_again_after_the_grace(service, relay, sender, clock, settings):
    request_id = service.create(fields()).resource["id"]
    sender.sent.clear()
    clock.advance_ms(settings.publish_grace_ms + 1)
    assert relay.tick()["republished"] == 1
    assert sender.deliveries() == [[request_id, 1, clock.ms - settings.publish_grace_ms - 1]]


def test_final_outcome_with_callback_publishes_the_callback(service, attempts, sender):
    request_id = service.create(fields(callback_url="http://127.0.0.1:9/cb")).resource["id"]
    [attempt] = attempts.start([(request_id, 1, 0)], "worker@test")
    attempts.finish([(attempt, Outcome(verdict="succeeded", status_code=200, reason="OK"))])
    assert ("htq.send_callback", [request_id], None) in sender.sent


def notices(sender) -> list[tuple[str, str]]:
    return [(name, args[0]) for name, args, _ in sender.sent if name in ("htq.send_callback", "htq.notify_cancel")]


def test_a_callback_is_published_at_once_then_by_the_relay_each_grace_until_a_worker_takes_it(
        service, attempts, relay, sender, clock, settings, store):
    request_id = service.create(fields(callback_url="http://127.0.0.1:9/cb")).resource["id"]
    [attempt] = attempts.start([(request_id, 1, clock.ms)], "worker@test")
    attempts.finish([(attempt, Outcome(verdict="failed", status_code=404))])
    assert notices(sender) == [("htq.send_callback", request_id)]  # the fast path, from the worker
    assert relay.tick()["notices"] == 0  # its task has a grace to take it
    clock.advance_ms(settings.publish_grace_ms)
    assert relay.tick()["notices"] == 1
    assert relay.tick()["notices"] == 0  # published again only a grace later
    assert notices(sender) == [("htq.send_callback", request_id)] * 2
    outbox.settle(store, Notice.CALLBACK, request_id,  # its task delivered it
                  ended_ms=store_requests.load(store, request_id)["ended_ms"])
    clock.advance_ms(settings.publish_grace_ms)
    assert relay.tick()["notices"] == 0
    assert len(notices(sender)) == 2


def test_a_cancel_notice_is_owed_only_once_something_was_sent_and_the_relay_publishes_it(
        service, attempts, relay, sender, clock, settings):
    waiting = service.create(fields(cancel_notify=True, delay=600)).resource["id"]
    sent = service.create(fields(cancel_notify=True)).resource["id"]
    unasked = service.create(fields()).resource["id"]
    attempts.start([(sent, 1, clock.ms), (unasked, 1, clock.ms)], "worker@test")
    for request_id in (waiting, sent, unasked):
        service.cancel(request_id)
    assert notices(sender) == [("htq.notify_cancel", sent)]
    clock.advance_ms(settings.publish_grace_ms)
    assert relay.tick()["notices"] == 1
    assert notices(sender) == [("htq.notify_cancel", sent)] * 2


def test_an_attempt_settled_as_lost_that_ends_the_request_owes_its_callback(
        service, attempts, relay, sender, clock, settings):
    request_id = service.create(fields(timeout=10, callback_url="http://127.0.0.1:9/cb",
                                       retry={"max_attempts": 1})).resource["id"]
    attempts.start([(request_id, 1, clock.ms)], "worker@test")
    clock.advance_ms(10_000 + settings.lease_margin_ms + 1)
    counts = relay.tick()
    assert counts["lost"] == 1 and service.status(request_id)["status"] == "failed"
    assert notices(sender) == [("htq.send_callback", request_id)]
    clock.advance_ms(settings.publish_grace_ms)
    assert relay.tick()["notices"] == 1


def test_expire_removes_requests_after_the_retention(service, relay, clock, settings):
    request_id = service.create(fields()).resource["id"]
    service.cancel(request_id)
    assert relay.expire() == 0
    clock.advance_ms(settings.retention_s * 1000)
    assert relay.expire() == 1
    with pytest.raises(Exception) as gone:
        service.get(request_id)
    assert type(gone.value).__name__ == "Gone"


def test_backoff_is_exponential_with_full_jitter_and_capped():
    assert backoff_ms(1, 1, 3600, None, rng=lambda: 1.0) == 1000
    assert backoff_ms(4, 1, 3600, None, rng=lambda: 1.0) == 8000
    assert backoff_ms(30, 1, 3600, None, rng=lambda: 1.0) == 3_600_000
    assert backoff_ms(3, 1, 3600, None, rng=lambda: 0.0) == 0
    assert backoff_ms(3, 1, 60, 7200, rng=lambda: 1.0) == 60_000
    assert backoff_ms(3, 1, 60, 2.5, rng=lambda: 1.0) == 2500


def test_binary_response_bodies_are_stored_as_base64():
    doc = response_document(2, Outcome(verdict="succeeded", status_code=200, body=b"\x89PNG"), 0)
    assert doc["body_encoding"] == "base64" and doc["body"] == "iVBORw==" and doc["attempt"] == 2
    text = response_document(1, Outcome(verdict="retry", error="timeout after 5s"), 0)
    assert text["status_code"] is None and text["body"] is None and text["error"] == "timeout after 5s"


def test_scheduled_requests_cost_no_broker_messages(service, sender, store):
    service.create_many([fields(delay=86400)] * 100)
    assert sender.sent == []
    assert store.redis.zcard(keys.requests_due()) == 100
