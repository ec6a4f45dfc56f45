"""The send task's logic as a plain function: a real Deliverer POSTing to a real HTTP target."""
from __future__ import annotations

import json
import logging
import time

import pytest

from app.core.batches import BatchService, Settled
from app.core.task_names import SEND_BATCHES
from tests.support.http_target import Reply
from workers.tasks.batches import configure_env_batch, run_send


@pytest.fixture
def service(rt):
    return BatchService(rt.store, rt.publisher, rt.settings)


def published(sender) -> list[list]:
    """Every [name, batch id, attempt] published, in order."""
    return [[args[0], batch_id, attempt] for name, args, _ in sender.sent if name == SEND_BATCHES
            for batch_id, attempt in args[1]]


def test_a_batch_is_posted_as_one_json_array_with_its_batch_id(rt, service, sender, http_target, caplog):
    service.configure("orders", {"endpoint": http_target.url + "/in", "max_records": 3,
                                 "headers": {"X-Source": "htq-test"}})
    service.add("orders", [{"n": 1}, "two", [3]])
    [[name, batch_id, attempt]] = published(sender)
    with caplog.at_level(logging.INFO, logger="app.core.batches"):
        assert run_send(rt, name, batch_id, attempt, "worker@test") == Settled("sent")
    [received] = http_target.requests_to("/in")
    assert received.method == "POST"
    assert json.loads(received.body) == [{"n": 1}, "two", [3]]
    assert received.headers["Htq-Batch-Id"] == batch_id
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["X-Source"] == "htq-test"
    assert received.headers["Idempotency-Key"] == batch_id
    line = next(r.getMessage() for r in caplog.records if "POST" in r.getMessage())
    assert f"batch orders/{batch_id}: POST 3 records ({len(received.body)} bytes), attempt 1 -> 200 in" in line
    assert " ms: sent" in line
    assert service.get("orders")["sent_records"] == 3
    # A duplicate of the message finds nothing to send.
    assert run_send(rt, name, batch_id, attempt, "worker@test") == Settled("skip")
    assert len(http_target.requests_to("/in")) == 1


def test_a_failed_post_is_retried_with_the_same_batch_id_until_it_succeeds(rt, service, sender, http_target):
    service.configure("orders", {"endpoint": http_target.url + "/in", "max_records": 2,
                                 "retry": {"max_attempts": 3, "backoff_base": 0.5}})
    http_target.reply("/in", Reply(500, b"down"))
    service.add("orders", [1, 2])
    [[name, batch_id, _]] = published(sender)
    assert run_send(rt, name, batch_id, 1, "worker@test") == Settled("retry", 2, 0.5)
    assert service.get("orders")["last_status_code"] == 500
    assert run_send(rt, name, batch_id, 2, "worker@test") == Settled("sent")
    first, second = http_target.requests_to("/in")
    assert first.headers["Htq-Batch-Id"] == second.headers["Htq-Batch-Id"] == batch_id
    assert (first.headers["Htq-Attempt"], second.headers["Htq-Attempt"]) == ("1", "2")
    assert first.body == second.body


def test_an_unreachable_endpoint_ends_as_a_dead_batch_and_is_logged(rt, service, sender, caplog):
    service.configure("orders", {"endpoint": "http://127.0.0.1:9/closed", "max_records": 1, "timeout": 1,
                                 "retry": {"max_attempts": 2, "backoff_base": 0}})
    service.add("orders", ["r"])
    [[name, batch_id, _]] = published(sender)
    assert run_send(rt, name, batch_id, 1, "worker@test") == Settled("retry", 2, 0.0)
    with caplog.at_level(logging.INFO, logger="app.core.batches"):
        assert run_send(rt, name, batch_id, 2, "worker@test") == Settled("dead")
    assert any(f"batch orders/{batch_id}: POST 1 records" in r.getMessage() and "connection error" in r.getMessage()
               for r in caplog.records)
    [dead] = service.dead("orders")
    assert dead["records"] == ["r"] and dead["attempts"] == 2 and "connection error" in dead["error"]


def test_the_worker_configures_the_env_batch_at_start(redis_url, sender):
    from tests.support.settings import make_settings

    settings = make_settings(redis_url, webhook_post_endpoint="http://127.0.0.1:9/hook", webhook_batch_size=7)
    assert configure_env_batch(settings, sender) is True
    assert configure_env_batch(settings, sender) is True  # idempotent
    assert configure_env_batch(make_settings(redis_url), sender) is False


def test_the_worker_starts_even_when_redis_is_down(sender, caplog):
    from app.embedded import free_port
    from tests.support.settings import make_settings

    settings = make_settings(f"redis://127.0.0.1:{free_port()}/0", webhook_post_endpoint="http://127.0.0.1:9/hook")
    with caplog.at_level(logging.WARNING):
        assert configure_env_batch(settings, sender) is False
    assert "not configured from WEBHOOK_*" in caplog.text


def test_one_message_sends_its_batches_together_and_publishes_the_retries_with_a_countdown(
        rt, service, sender, http_target):
    from workers.tasks.batches import run_sends

    service.configure("orders", {"endpoint": http_target.url + "/in", "max_records": 1,
                                 "retry": {"max_attempts": 2, "backoff_base": 1.5}})
    http_target.reply("/in", Reply(200, delay_s=0.3), Reply(503))
    service.add("orders", ["a", "b"])
    [(name, args, eta)] = [entry for entry in sender.sent if entry[0] == SEND_BATCHES]
    assert eta is None and len(args[1]) == 2
    sender.sent.clear()
    started = time.monotonic()
    settled = run_sends(rt, "orders", [tuple(item) for item in args[1]], "worker@test")
    assert time.monotonic() - started < 0.55  # the two POSTs overlapped
    assert sorted(s.result for s in settled) == ["retry", "sent"]
    failed_id = next(item[0] for item, s in zip(args[1], settled) if s.result == "retry")
    [(name, retry_args, retry_eta)] = sender.sent
    assert (name, retry_args) == (SEND_BATCHES, ["orders", [[failed_id, 2]]])
    assert 1.2 < retry_eta.timestamp() - time.time() <= 1.5
