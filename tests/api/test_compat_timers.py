"""/compat/timers (httpqueue timers) through the Flask app on a real Redis: every documented example
and error, the webhook request it schedules, and time_left before, after sending and after expiry."""
from __future__ import annotations

import json
import uuid

import pytest

from app import create_app
from app.core.attempts import Attempts
from app.core.outcome import FAILED, RETRY, SUCCEEDED, Outcome
from app.core.publish import Publisher
from app.core.relay import RequestRelay
from app.embedded import free_port
from app.extensions import services
from app.storage import keys
from tests.support.clock import FakeClock
from tests.support.settings import make_settings

T0 = 1_800_000_000_000
HOOK = "http://127.0.0.1:9/hook"
BAD_PAYLOAD = {"error": {"code": 400, "details": "Bad Request - cannot set timers, bad request payload"}}
BAD_URL = {"error": {"code": 422, "details": "Invalid params - invalid param: invalid 'POST' field 'url'"}}
NOT_FOUND = {"error": {"code": 404, "details": "Not found - timer does not exist"}}


@pytest.fixture
def clock():
    return FakeClock(T0)


@pytest.fixture
def app(redis_url, sender, clock):
    return create_app(make_settings(redis_url, max_body_bytes=1024), publisher=Publisher(sender), clock_ms=clock)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def attempts(app, store, sender, clock):
    return Attempts(store, Publisher(sender), app.config["HTQ_SETTINGS"], clock_ms=clock, rng=lambda: 0.5)


def set_timer(client, **body):
    response = client.post("/compat/timers/timers", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def native(app, timer_id):
    with app.app_context():
        requests = services().requests
        return requests.get(requests.find("timers", timer_id))


def time_left(client, timer_id):
    response = client.get(f"/compat/timers/timers/{timer_id}")
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["ID", "time_left"] and body["ID"] == timer_id
    return body["time_left"]


def send_once(attempts, app, timer_id, outcome):
    request = native(app, timer_id)
    [attempt] = attempts.start([(request["id"], request["attempts"] + 1, T0)], "worker@test")
    attempts.finish([(attempt, outcome)])


def test_set_timer_answers_201_with_a_uuid4_and_schedules_the_webhook(app, client, store, sender):
    response = client.post("/compat/timers/timers", json={"hours": 1, "minutes": 2, "seconds": 3,
                                                          "url": HOOK + "?source=billing"})
    assert response.status_code == 201 and response.is_json
    timer_id = response.get_json()["id"]
    assert list(response.get_json()) == ["id"] and uuid.UUID(timer_id).version == 4
    request = native(app, timer_id)
    assert request["url"] == f"{HOOK}/{timer_id}?source=billing"
    assert request["method"] == "POST" and "body" not in request and "json" not in request
    assert request["status"] == "scheduled" and sender.sent == []
    assert request["due_at"] == "2027-01-15T09:02:03.000Z"  # T0 (08:00:00) + 1 h 2 min 3 s
    assert store.redis.get(keys.request_alias("timers", timer_id)) == request["id"]
    assert request["retry"]["max_attempts"] == 10  # the native retry policy


def test_missing_delay_fields_count_as_zero_and_the_webhook_is_due_now(app, client, sender):
    timer_id = set_timer(client, url=HOOK, hours=None)
    request = native(app, timer_id)
    assert request["status"] == "queued" and sender.deliveries()[0][:2] == [request["id"], 1]
    assert time_left(client, timer_id) == 0


@pytest.mark.parametrize("url, webhook", [
    ("http://127.0.0.1:9/hooks/", "http://127.0.0.1:9/hooks/{id}"),
    ("http://127.0.0.1:9", "http://127.0.0.1:9/{id}"),
    ("https://example.com/a/b?x=1&y=2#frag", "https://example.com/a/b/{id}?x=1&y=2"),
])
def test_webhook_is_the_url_path_plus_the_id_with_the_query_kept(app, client, url, webhook):
    timer_id = set_timer(client, url=url, seconds=30)
    assert native(app, timer_id)["url"] == webhook.format(id=timer_id)


def test_only_the_total_delay_must_not_be_negative(app, client):
    timer_id = set_timer(client, url=HOOK, minutes=1, seconds=-30)
    assert time_left(client, timer_id) == 30


def test_body_is_read_as_json_whatever_its_content_type_and_unknown_fields_are_ignored(client):
    response = client.post("/compat/timers/timers", data=json.dumps({"url": HOOK, "seconds": 5, "note": "x"}),
                           content_type="text/plain")
    assert response.status_code == 201


def test_time_left_counts_down_in_whole_seconds_and_never_goes_below_zero(client, clock):
    timer_id = set_timer(client, url=HOOK, seconds=10)
    assert time_left(client, timer_id) == 10
    clock.advance_ms(1)
    assert time_left(client, timer_id) == 9
    clock.advance_ms(8_998)
    assert time_left(client, timer_id) == 1
    clock.advance_ms(60_000)  # due long ago, not sent yet (no worker): still never negative
    assert time_left(client, timer_id) == 0


@pytest.mark.parametrize("outcome", [
    Outcome(SUCCEEDED, status_code=204),
    Outcome(FAILED, status_code=404),
    Outcome(RETRY, status_code=503),
])
def test_time_left_is_zero_once_the_webhook_was_sent(app, client, attempts, clock, outcome):
    timer_id = set_timer(client, url=HOOK, seconds=0)
    send_once(attempts, app, timer_id, outcome)
    assert time_left(client, timer_id) == 0


def test_server_errors_are_retried_and_other_answers_end_the_timer(app, client, attempts, sender):
    retried = set_timer(client, url=HOOK)
    send_once(attempts, app, retried, Outcome(RETRY, status_code=429))
    assert native(app, retried)["status"] in ("queued", "retrying")
    ended = set_timer(client, url=HOOK)
    send_once(attempts, app, ended, Outcome(FAILED, status_code=400))
    assert native(app, ended)["status"] == "failed"


def test_time_left_is_zero_after_expiry_through_the_archive(app, client, attempts, store, clock):
    timer_id = set_timer(client, url=HOOK)
    send_once(attempts, app, timer_id, Outcome(SUCCEEDED, status_code=200))
    request_id = native(app, timer_id)["id"]
    clock.advance_ms(app.config["HTQ_SETTINGS"].retention_s * 1000 + 1)
    assert RequestRelay(store, attempts.publisher, attempts.settings, attempts, clock_ms=clock).expire() == 1
    assert not store.redis.exists(keys.request(request_id), keys.request_alias("timers", timer_id))
    assert store.redis.zcard(keys.request_aliases("timers")) == 0
    assert time_left(client, timer_id) == 0
    assert client.get(f"/compat/timers/timers/{uuid.uuid4()}").get_json() == NOT_FOUND


@pytest.mark.parametrize("timer_id", [str(uuid.uuid4()), "not-a-uuid", str(uuid.uuid4()).upper()])
def test_unknown_timer_is_404_in_httpqueue_envelope(client, timer_id):
    response = client.get(f"/compat/timers/timers/{timer_id}")
    assert response.status_code == 404 and response.get_json() == NOT_FOUND


@pytest.mark.parametrize("raw", [
    b"not json", b"", b"[1, 2]", b'"text"', b"null", b"\xff\xfe",
    json.dumps({"url": HOOK, "hours": 1.5}).encode(),
    json.dumps({"url": HOOK, "minutes": "2"}).encode(),
    json.dumps({"url": HOOK, "seconds": True}).encode(),
    json.dumps({"url": HOOK, "seconds": False}).encode(),
    json.dumps({"url": HOOK, "seconds": [1]}).encode(),
    json.dumps({"url": HOOK, "hours": 2**63}).encode(),
    json.dumps({"url": 5}).encode(),
    json.dumps({"url": False}).encode(),
])
def test_payload_that_is_not_an_object_of_integers_is_400(client, raw):
    response = client.post("/compat/timers/timers", data=raw, content_type="application/json")
    assert response.status_code == 400 and response.get_json() == BAD_PAYLOAD


@pytest.mark.parametrize("body", [
    {"seconds": 1},
    {"url": ""},
    {"url": None},
    {"url": "/relative/path"},
    {"url": "ftp://example.com/x"},
    {"url": "http://user:secret@example.com/"},
    {"url": "http://example.com/" + "a" * 2048},
])
def test_url_that_is_not_absolute_http_is_422(client, body):
    response = client.post("/compat/timers/timers", json=body)
    assert response.status_code == 422 and response.get_json() == BAD_URL


def test_negative_total_delay_is_422_in_the_same_envelope(client):
    response = client.post("/compat/timers/timers", json={"url": HOOK, "hours": 1, "minutes": -61})
    assert response.status_code == 422
    assert response.get_json() == {"error": {"code": 422, "details": "Invalid params - invalid param: hours, "
                                                                    "minutes and seconds must not add up to a "
                                                                    "negative delay"}}


def test_delay_beyond_the_maximum_is_422_in_the_same_envelope(client):
    response = client.post("/compat/timers/timers", json={"url": HOOK, "hours": 366 * 24})
    assert response.status_code == 422
    assert response.get_json() == {"error": {"code": 422, "details": "Invalid params - Too far in the future"}}


def test_body_over_the_limit_is_413_in_the_same_envelope(client):
    response = client.post("/compat/timers/timers", json={"url": HOOK, "pad": "x" * 100_000})
    assert response.status_code == 413 and response.get_json()["error"]["code"] == 413


def test_redis_down_is_503_with_retry_after_in_the_same_envelope():
    client = create_app(make_settings(f"redis://127.0.0.1:{free_port()}/0")).test_client()
    response = client.post("/compat/timers/timers", json={"url": HOOK})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"]["code"] == 503


def test_health_answers_ok(client):
    response = client.get("/compat/timers/health")
    assert response.status_code == 200 and response.get_data() == b"ok"
