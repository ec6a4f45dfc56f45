"""/v1/requests through the Flask app on a real Redis: every route, every validation rule."""
from __future__ import annotations

import json
import time

import pytest

from app import create_app
from app.core.publish import Publisher
from app.extensions import services
from app.storage import keys
from tests.support.settings import make_settings

URL = "http://127.0.0.1:9/hook"


@pytest.fixture
def app(redis_url, sender):
    return create_app(make_settings(redis_url, max_body_bytes=1024), publisher=Publisher(sender))


@pytest.fixture
def client(app):
    return app.test_client()


def create(client, **body):
    return client.post("/v1/requests", json={"url": URL, **body})


def test_create_returns_the_resource_with_location(client, sender):
    response = create(client, json={"a": 1}, headers={"X-Trace": "1"}, delay=0)
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/v1/requests/{body['id']}"
    assert body["status"] == "queued" and body["method"] == "POST" and body["json"] == {"a": 1}
    assert body["headers"] == {"X-Trace": "1"} and body["attempts"] == 0 and body["timeout"] == 30
    assert body["retry"] == {"max_attempts": 10, "backoff_base": 1.0, "backoff_max": 3600.0}
    assert body["links"] == {"self": f"/v1/requests/{body['id']}", "status": f"/v1/requests/{body['id']}/status",
                             "response": f"/v1/requests/{body['id']}/response"}
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 24
    assert sender.deliveries()[0][:2] == [body["id"], 1]


def test_delayed_request_is_scheduled_not_published(client, sender):
    body = create(client, delay=3600).get_json()
    assert body["status"] == "scheduled" and sender.sent == []
    assert body["next_attempt_at"] == body["due_at"]


def test_eta_accepts_rfc3339_and_epoch_and_past_means_now(client):
    future = time.time() + 7200
    by_epoch = create(client, eta=future).get_json()
    assert by_epoch["status"] == "scheduled"
    by_text = create(client, eta="2001-01-01T00:00:00+00:00").get_json()
    assert by_text["status"] == "queued"


@pytest.mark.parametrize("body, field", [
    ({}, "url"),
    ({"url": "ftp://x/y"}, "url"),
    ({"url": "/relative"}, "url"),
    ({"url": "http://user:pw@example.com/"}, "url"),
    ({"url": "http://example.com/" + "a" * 2048}, "url"),
    ({"url": URL, "method": "BREW"}, "method"),
    ({"url": URL, "headers": {"Bad\nName": "x"}}, "headers"),
    ({"url": URL, "headers": {"X-A": "line\r\nbreak"}}, "headers"),
    ({"url": URL, "headers": {"Host": "evil"}}, "headers"),
    ({"url": URL, "headers": {"Proxy-Authorization": "x"}}, "headers"),
    ({"url": URL, "headers": {f"X-{i}": "v" for i in range(65)}}, "headers"),
    ({"url": URL, "headers": {"X-Big": "v" * 9000}}, "headers"),
    ({"url": URL, "headers": {"X-Num": 5}}, "headers"),
    ({"url": URL, "body": "a", "json": {}}, "json"),
    ({"url": URL, "delay": -1}, "delay"),
    ({"url": URL, "delay": 1, "eta": 5}, "eta"),
    ({"url": URL, "eta": "2026-01-01T00:00:00"}, "eta"),
    ({"url": URL, "eta": "tomorrow"}, "eta"),
    ({"url": URL, "timeout": 0.5}, "timeout"),
    ({"url": URL, "timeout": 1801}, "timeout"),
    ({"url": URL, "retry": {"max_attempts": 0}}, "retry"),
    ({"url": URL, "retry": {"max_attempts": 101}}, "retry"),
    ({"url": URL, "retry": {"surprise": 1}}, "retry"),
    ({"url": URL, "callback_url": "nope"}, "callback_url"),
    ({"url": URL, "cancel_notify": "maybe"}, "cancel_notify"),
    ({"url": URL, "unknown": 1}, "unknown"),
    ({"url": URL, "delay": 366 * 86400}, "delay"),
    ({"url": URL, "eta": 4_000_000_000}, "eta"),
])
def test_invalid_fields_are_422_with_field_errors_and_nothing_stored(client, store, body, field):
    response = client.post("/v1/requests", json=body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()
    assert error["code"] == 422 and error["status"] == "Unprocessable Entity" and field in error["errors"]
    assert store.redis.zcard(keys.requests_all()) == 0


def test_malformed_json_is_400(client):
    response = client.post("/v1/requests", data="{nope", content_type="application/json")
    assert response.status_code == 400 and response.get_json()["code"] == 400


def test_non_json_content_type_is_415(client):
    response = client.post("/v1/requests", data="url=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_body_over_the_limit_is_413(client, store):
    response = create(client, body="x" * 1025)
    assert response.status_code == 413 and "body" in response.get_json()["errors"]
    assert create(client, json=["x" * 1100]).status_code == 413
    assert store.redis.zcard(keys.requests_all()) == 0


def test_whole_request_over_the_cap_is_413(client):
    response = client.post("/v1/requests", data=b"{" + b" " * (17 * 1024 + 70 * 1024) + b"}",
                           content_type="application/json")
    assert response.status_code == 413


def test_idempotency_key_replays_and_rejects_a_different_body(client, store):
    first = client.post("/v1/requests", json={"url": URL}, headers={"Idempotency-Key": "k1"})
    again = client.post("/v1/requests", json={"url": URL}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json()["id"] == first.get_json()["id"]
    other = client.post("/v1/requests", json={"url": URL, "body": "x"}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 422
    assert client.post("/v1/requests", json={"url": URL}, headers={"Idempotency-Key": "k" * 256}).status_code == 422
    assert store.redis.zcard(keys.requests_all()) == 1


def test_batch_creates_all_or_none(client, store, sender):
    good = client.post("/v1/requests/batch", json={"requests": [{"url": URL}, {"url": URL, "delay": 3600}]})
    assert good.status_code == 201
    items = good.get_json()["items"]
    assert [i["status"] for i in items] == ["queued", "scheduled"]
    bad = client.post("/v1/requests/batch", json={"requests": [{"url": URL}, {"url": "nope"}]})
    assert bad.status_code == 422 and "requests" in bad.get_json()["errors"]
    too_many = client.post("/v1/requests/batch", json={"requests": [{"url": URL}] * 101})
    assert too_many.status_code == 422
    assert client.post("/v1/requests/batch", json={"requests": []}).status_code == 422
    assert store.redis.zcard(keys.requests_all()) == 2
    assert len(sender.deliveries()) == 1


def test_list_pages_newest_first_and_filters_by_status(client):
    ids = [create(client).get_json()["id"] for _ in range(3)]
    scheduled = create(client, delay=999).get_json()["id"]
    page = client.get("/v1/requests?limit=2").get_json()
    assert [i["id"] for i in page["items"]] == [scheduled, ids[2]]
    rest = client.get(f"/v1/requests?limit=2&cursor={page['next_cursor']}").get_json()
    assert [i["id"] for i in rest["items"]] == [ids[1], ids[0]] and rest["next_cursor"] is None
    only = client.get("/v1/requests?status=scheduled").get_json()
    assert [i["id"] for i in only["items"]] == [scheduled]
    assert client.get("/v1/requests?status=nope").status_code == 422
    assert client.get("/v1/requests?limit=0").status_code == 422
    assert client.get("/v1/requests?cursor=garbage").status_code == 422


def test_get_status_attempts_of_a_new_request(client):
    request_id = create(client, delay=600).get_json()["id"]
    assert client.get(f"/v1/requests/{request_id}").get_json()["id"] == request_id
    status = client.get(f"/v1/requests/{request_id}/status").get_json()
    assert status["status"] == "scheduled" and status["attempts"] == 0 and status["next_attempt_at"]
    assert client.get(f"/v1/requests/{request_id}/attempts").get_json() == {"items": []}


def test_unknown_ids_are_404_everywhere(client):
    for path in ("", "/status", "/attempts", "/response"):
        response = client.get(f"/v1/requests/01ARZ3NDEKTSV4RRFFQ69G5FAV{path}")
        assert response.status_code == 404 and response.get_json()["code"] == 404
    assert client.get("/v1/requests/not-an-id").status_code == 404
    assert client.delete("/v1/requests/01ARZ3NDEKTSV4RRFFQ69G5FAV").status_code == 404
    assert client.post("/v1/requests/01ARZ3NDEKTSV4RRFFQ69G5FAV/retry").status_code == 404
    assert client.post("/v1/requests/01ARZ3NDEKTSV4RRFFQ69G5FAV/run").status_code == 404


def test_response_is_202_until_the_request_ends(client):
    request_id = create(client, delay=600).get_json()["id"]
    response = client.get(f"/v1/requests/{request_id}/response")
    assert response.status_code == 202 and response.get_json()["status"] == "scheduled"
    assert client.get(f"/v1/requests/{request_id}/response?wait=31").status_code == 422


def test_response_wait_returns_after_the_wait_when_nothing_happens(client):
    request_id = create(client, delay=600).get_json()["id"]
    started = time.monotonic()
    assert client.get(f"/v1/requests/{request_id}/response?wait=0.3").status_code == 202
    assert 0.25 < time.monotonic() - started < 2


def test_cancel_then_response_is_404_and_repeat_cancel_is_204(client):
    request_id = create(client, delay=600).get_json()["id"]
    assert client.delete(f"/v1/requests/{request_id}").status_code == 204
    assert client.delete(f"/v1/requests/{request_id}").status_code == 204
    assert client.get(f"/v1/requests/{request_id}/status").get_json()["status"] == "canceled"
    assert client.get(f"/v1/requests/{request_id}/response").status_code == 404


def test_retry_requeues_a_canceled_request_and_conflicts_otherwise(client, sender):
    request_id = create(client, delay=600).get_json()["id"]
    assert client.post(f"/v1/requests/{request_id}/retry").status_code == 409
    client.delete(f"/v1/requests/{request_id}")
    response = client.post(f"/v1/requests/{request_id}/retry")
    assert response.status_code == 202 and response.get_json()["status"] == "queued"
    assert sender.deliveries()[-1][:2] == [request_id, 1]


def test_run_publishes_a_scheduled_request_now_and_conflicts_once_it_ended(client, sender):
    request_id = create(client, delay=3600).get_json()["id"]
    assert sender.sent == []
    response = client.post(f"/v1/requests/{request_id}/run")
    body = response.get_json()
    assert response.status_code == 202 and body["status"] == "queued"
    assert body["due_at"] == body["next_attempt_at"]
    [(published_id, attempt, due_ms)] = sender.deliveries()
    assert (published_id, attempt) == (request_id, 1) and abs(due_ms / 1000 - time.time()) < 5
    assert client.post(f"/v1/requests/{request_id}/run").status_code == 202  # due already: left as it is
    assert len(sender.deliveries()) == 1
    client.delete(f"/v1/requests/{request_id}")
    response = client.post(f"/v1/requests/{request_id}/run")
    assert response.status_code == 409 and "canceled" in response.get_json()["message"]


def test_finished_request_cancel_is_409_and_response_can_be_deleted(app, client, store):
    from app.core.attempts import Attempts
    from app.core.outcome import Outcome

    request_id = create(client).get_json()["id"]
    with app.app_context():
        svc = services()
        attempts = Attempts(svc.store, svc.publisher, svc.settings)
        [attempt] = attempts.start([(request_id, 1, 0)], "worker@test")
        attempts.finish([(attempt, Outcome(verdict="succeeded", status_code=201, reason="Created",
                                            headers={"A": "b"}, body=b"\xff\x00", elapsed_ms=7))])
    assert client.delete(f"/v1/requests/{request_id}").status_code == 409
    response = client.get(f"/v1/requests/{request_id}/response?wait=5").get_json()
    assert response["status_code"] == 201 and response["body_encoding"] == "base64" and response["body"] == "/wA="
    assert response["attempt"] == 1 and response["truncated"] is False and response["error"] is None
    attempts = client.get(f"/v1/requests/{request_id}/attempts").get_json()["items"]
    assert attempts[0]["status_code"] == 201 and attempts[0]["elapsed_ms"] == 7
    assert client.delete(f"/v1/requests/{request_id}/response").status_code == 204
    assert client.get(f"/v1/requests/{request_id}/response").status_code == 404


def test_expired_request_is_410(app, client, store):
    from app.storage import requests as store_requests

    request_id = create(client).get_json()["id"]
    client.delete(f"/v1/requests/{request_id}")
    store_requests.expire_ended(store, cutoff_ms=int(time.time() * 1000) + 1, limit=10)
    response = client.get(f"/v1/requests/{request_id}")
    assert response.status_code == 410 and response.get_json()["status"] == "Gone"


def test_openapi_and_docs_are_served(client):
    spec = client.get("/openapi.json").get_json()
    assert "/v1/requests" in spec["paths"] and spec["info"]["title"] == "htq"
    assert client.get("/docs").status_code == 200


def test_health_and_readiness(client):
    assert client.get("/healthz").data == b"OK"
    assert client.get("/readyz").get_json()["ready"] is True


def test_redis_outage_is_503_with_retry_after(redis_url):
    app = create_app(make_settings("redis://127.0.0.1:1/0"))
    response = app.test_client().post("/v1/requests", json={"url": URL})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["code"] == 503
    assert app.test_client().get("/readyz").status_code == 503


def test_tokens_guard_every_route_but_healthz(redis_url):
    client = create_app(make_settings(redis_url, api_tokens=("s3cret",))).test_client()
    assert client.get("/healthz").status_code == 200
    denied = client.get("/v1/requests")
    assert denied.status_code == 401 and denied.get_json()["code"] == 401
    assert client.get("/v1/requests", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/requests", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert json.loads(client.get("/openapi.json").data)["code"] == 401


def test_broker_down_still_stores_the_request_for_the_relay(redis_url, store):
    """The store answers but the broker does not: 201, and the request waits in flight for the relay."""
    app = create_app(make_settings(redis_url, broker_url="redis://127.0.0.1:1/0"))
    response = app.test_client().post("/v1/requests", json={"url": URL})
    assert response.status_code == 201
    request_id = response.get_json()["id"]
    assert store.redis.zscore(keys.requests_inflight(), request_id) is not None


def test_metrics_report_requests_by_status(client):
    create(client, delay=600)
    create(client)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'htq_requests{status="scheduled"} 1.0' in text and 'htq_requests{status="queued"} 1.0' in text
    assert "htq_redis_up 1.0" in text and "process_cpu_seconds_total" in text


@pytest.mark.parametrize("body, field", [
    ({"success": {"status": [99]}}, "success"), ({"success": {"status": ["2XX"]}}, "success"),
    ({"success": {"status": [True]}}, "success"), ({"success": {"json": {"path": "a"}}}, "success"),
    ({"success": {"json": {"path": "a..b", "equals": 1}}}, "success"), ({"success": {"other": 1}}, "success"),
    ({"retry": {"on": ["network", "dns"]}}, "retry"), ({"retry": {"on": []}}, "retry"),
    ({"retry": {"max_duration": 0}}, "retry"), ({"retry": {"max_duration": "60"}}, "retry"),
])
def test_delivery_rules_are_validated_naming_the_field(client, body, field):
    response = client.post("/v1/requests", json={"url": "http://example.com/hook", **body})
    assert response.status_code == 422 and field in response.get_json()["errors"]


def test_delivery_rules_are_kept_and_shown(client):
    rules = {"success": {"status": [200, "3xx"], "json": {"path": "data.0.ok", "equals": None}},
             "retry": {"on": [404, "5xx", "timeout"], "max_duration": 3600}}
    created = client.post("/v1/requests", json={"url": "http://example.com/hook", "delay": 60, **rules}).get_json()
    shown = client.get(f"/v1/requests/{created['id']}").get_json()
    assert shown["success"] == rules["success"]
    assert shown["retry"]["on"] == [404, "5xx", "timeout"] and shown["retry"]["max_duration"] == 3600
    plain = client.post("/v1/requests", json={"url": "http://example.com/hook", "delay": 60}).get_json()
    assert plain["success"] == {"status": ["2xx"]}


def test_bulk_cancel_takes_the_matching_requests_not_ended(app, client, sender):
    later = [client.post("/v1/requests", json={"url": f"http://a.example.com/{n}", "delay": 600}).get_json()["id"]
             for n in range(3)]
    other = client.post("/v1/requests", json={"url": "http://b.example.com/x", "delay": 600}).get_json()["id"]
    now = client.post("/v1/requests", json={"url": "http://a.example.com/now"}).get_json()["id"]  # queued
    answer = client.post("/v1/requests/cancel", json={"url_prefix": "http://a.example.com/", "status": ["scheduled"]})
    assert answer.status_code == 200 and answer.get_json() == {"canceled": 3}
    statuses = {rid: client.get(f"/v1/requests/{rid}/status").get_json()["status"] for rid in [*later, other, now]}
    assert statuses == {**dict.fromkeys(later, "canceled"), other: "scheduled", now: "queued"}
    assert client.post("/v1/requests/cancel", json={"status": ["queued", "scheduled"]}).get_json() == {"canceled": 2}
    assert client.post("/v1/requests/cancel", json={"status": ["canceled"]}).get_json() == {"canceled": 0}


def test_bulk_cancel_goes_in_chunks_over_a_whole_index(app, client, monkeypatch):
    from app.core import requests as core_requests

    monkeypatch.setattr(core_requests, "CANCEL_CHUNK", 7)
    created = client.post("/v1/requests/batch", json={"requests": [
        {"url": f"http://a.example.com/{n}", "delay": 600} for n in range(30)]}).get_json()["items"]
    assert client.post("/v1/requests/cancel", json={"url_prefix": "http://a.example.com/"}).get_json() == {
        "canceled": 30}
    assert {client.get(f"/v1/requests/{r['id']}/status").get_json()["status"] for r in created} == {"canceled"}


@pytest.mark.parametrize("body", [{}, {"status": []}, {"status": ["sleeping"]}, {"url_prefix": ""},
                                  {"schedule_name": "x"}])
def test_bulk_cancel_needs_a_valid_filter(client, body):
    answer = client.post("/v1/requests/cancel", json=body)
    assert answer.status_code == 422 and answer.get_json()["errors"]
