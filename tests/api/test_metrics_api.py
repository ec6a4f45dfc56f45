"""GET /metrics through the Flask app on a real Redis, parsed as Prometheus parses it, after real
operations on requests, queues and batches."""
from __future__ import annotations

import pytest

from app import create_app
from app.core.attempts import Attempts
from app.core.batches import BatchForwarder
from app.core.outcome import FAILED, SUCCEEDED, Outcome
from app.core.publish import Publisher
from app.core.task_names import SEND_BATCHES
from app.extensions import services
from app.storage import workers as store_workers
from tests.support.metrics import scrape
from tests.support.settings import make_settings

FAMILIES = ["htq_requests", "htq_request_lateness_seconds", "htq_attempts", "htq_attempt_duration_seconds",
            "htq_queue_messages", "htq_queue_oldest_age_seconds", "htq_batch_pending_records", "htq_batch_dead",
            "htq_batch_posts", "htq_schedule_runs", "htq_workers", "htq_redis_up", "htq_queues", "htq_batches"]


@pytest.fixture
def app(redis_url, sender, clock):
    return create_app(make_settings(redis_url), publisher=Publisher(sender), clock_ms=clock)


@pytest.fixture
def client(app):
    return app.test_client()


def settle(app, sender, clock, request_id: str, outcome: Outcome, late_ms: int) -> None:
    with app.app_context():
        svc = services()
        attempts = Attempts(svc.store, svc.publisher, svc.settings, clock_ms=clock)
        clock.advance_ms(late_ms)
        [attempt] = attempts.start([(request_id, 1, 0)], "worker@test")
        attempts.finish([(attempt, outcome)], "worker@test")


def test_every_family_of_the_contract_is_there_with_the_deployments_figures(app, client, sender, clock):
    ok = client.post("/v1/requests", json={"url": "http://127.0.0.1:9/a"}).get_json()["id"]
    bad = client.post("/v1/requests", json={"url": "http://127.0.0.1:9/b"}).get_json()["id"]
    client.post("/v1/requests", json={"url": "http://127.0.0.1:9/c", "delay": 600})
    settle(app, sender, clock, ok, Outcome(SUCCEEDED, status_code=200, elapsed_ms=30), late_ms=40)
    settle(app, sender, clock, bad, Outcome(FAILED, status_code=404, elapsed_ms=3000), late_ms=2000)

    client.put("/v1/queues/jobs", json={})
    client.post("/v1/queues/jobs/messages/batch", json={"messages": [{"body": 1}, {"body": 2}, {"body": 3}]})
    client.post("/v1/queues/jobs/messages/receive", json={"max": 1})
    client.post("/v1/queues/jobs/messages", json={"later": True}, query_string={"delay": 60})
    clock.advance_ms(1500)

    client.put("/v1/batches/events", json={"endpoint": "http://127.0.0.1:9/in", "max_records": 2})
    client.post("/v1/batches/events/records/batch", json={"records": [{"a": 1}, {"b": 2}, {"c": 3}]})
    [(_, (name, [[batch_id, attempt]]), _)] = [sent for sent in sender.sent if sent[0] == SEND_BATCHES]
    with app.app_context():
        forwarder = BatchForwarder(services().store, Publisher(sender), services().settings, clock_ms=clock)
        forwarder.finish(forwarder.claim(name, batch_id, attempt, "worker@test"), Outcome(SUCCEEDED, status_code=200))
        store_workers.heartbeat(services().store, "worker@test", host="h", pid=1, started_ms=clock.ms,
                                now_ms=clock.ms)

    metrics = scrape(client)
    assert set(FAMILIES) <= set(metrics)
    assert metrics["htq_redis_up"] == {("htq_redis_up", ()): 1.0}
    requests = metrics["htq_requests"]
    assert requests[("htq_requests", (("status", "succeeded"),))] == 1
    assert requests[("htq_requests", (("status", "failed"),))] == 1
    assert requests[("htq_requests", (("status", "scheduled"),))] == 1
    assert metrics["htq_attempts"] == {("htq_attempts_total", (("outcome", outcome),)): count for outcome, count
                                       in {"succeeded": 1, "retry": 0, "failed": 1, "worker_lost": 0}.items()}
    lateness = metrics["htq_request_lateness_seconds"]
    assert lateness[("htq_request_lateness_seconds_bucket", (("le", "0.025"),))] == 0
    assert lateness[("htq_request_lateness_seconds_bucket", (("le", "0.05"),))] == 1
    assert lateness[("htq_request_lateness_seconds_bucket", (("le", "+Inf"),))] == 2
    assert lateness[("htq_request_lateness_seconds_count", ())] == 2
    # The second request was due with the first: 40 ms, then 2040 ms late.
    assert lateness[("htq_request_lateness_seconds_sum", ())] == pytest.approx(0.04 + 2.04)
    duration = metrics["htq_attempt_duration_seconds"]
    assert duration[("htq_attempt_duration_seconds_bucket", (("le", "0.05"),))] == 1
    assert duration[("htq_attempt_duration_seconds_bucket", (("le", "5.0"),))] == 2
    assert duration[("htq_attempt_duration_seconds_sum", ())] == pytest.approx(3.03)

    def queue(state):
        return metrics["htq_queue_messages"][("htq_queue_messages", (("queue", "jobs"), ("state", state)))]

    assert [queue(s) for s in ("visible", "in_flight", "delayed", "dead")] == [2, 1, 1, 0]
    assert metrics["htq_queue_oldest_age_seconds"] == {("htq_queue_oldest_age_seconds", (("queue", "jobs"),)): 1.5}
    assert metrics["htq_queues"] == {("htq_queues", ()): 1}
    assert metrics["htq_batch_pending_records"] == {("htq_batch_pending_records", (("batch", "events"),)): 1}
    assert metrics["htq_batch_dead"] == {("htq_batch_dead", (("batch", "events"),)): 0}
    assert metrics["htq_batch_posts"][("htq_batch_posts_total", (("batch", "events"), ("outcome", "succeeded")))] == 1
    assert metrics["htq_batch_posts"][("htq_batch_posts_total", (("batch", "events"), ("outcome", "failed")))] == 0
    assert metrics["htq_schedule_runs"] == {}  # registered, no schedule has run
    assert metrics["htq_workers"] == {("htq_workers", ()): 1}


def test_every_web_process_answers_the_same_numbers(redis_url, sender, clock, client):
    client.post("/v1/requests", json={"url": "http://127.0.0.1:9/a", "delay": 600})
    client.post("/v1/queues/jobs/messages", json={"n": 1})
    other = create_app(make_settings(redis_url), publisher=Publisher(sender), clock_ms=clock).test_client()
    first, second = scrape(client), scrape(other)
    htq = {name for name in first if name.startswith("htq_")}
    assert {name: first[name] for name in htq} == {name: second[name] for name in htq}
    assert first["htq_requests"][("htq_requests", (("status", "scheduled"),))] == 1


def test_store_down_answers_redis_up_0(sender, clock):
    app = create_app(make_settings("redis://127.0.0.1:1/0"), publisher=Publisher(sender), clock_ms=clock)
    metrics = scrape(app.test_client())
    assert metrics["htq_redis_up"] == {("htq_redis_up", ()): 0.0}
    assert "htq_requests" not in metrics


def test_schedule_runs_are_counted_per_schedule_and_go_with_it(client):
    target = {"queue": "ticks", "message": {"n": 1}}
    for name in ("nightly", "hourly"):
        assert client.put(f"/v1/schedules/{name}", json={"every": 3600, "target": target}).status_code == 201
    for name in ("nightly", "nightly", "hourly"):
        assert client.post(f"/v1/schedules/{name}/run").status_code == 202

    def runs() -> dict:
        family = scrape(client)["htq_schedule_runs"]
        return {labels[0][1]: value for (_, labels), value in family.items()}

    assert runs() == {"hourly": 1, "nightly": 2}
    assert client.delete("/v1/schedules/hourly").status_code == 204
    assert runs() == {"nightly": 2}
