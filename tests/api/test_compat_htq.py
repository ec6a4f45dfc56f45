"""/compat/htq (HTTP Task Queue 2014) through the Flask app on a real Redis: the 303 create, the
request, status and response resources with their Link headers, the status mapping, the response
wait, cancel, purge, and every documented error. Attempts are settled by the core's Attempts."""
from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from app import create_app
from app.compat import htq
from app.core.attempts import Attempts
from app.core.outcome import FAILED, RETRY, SUCCEEDED, Outcome
from app.core.publish import Publisher
from app.core.relay import RequestRelay
from app.core.task_names import NOTIFY_CANCEL
from app.extensions import services
from app.storage import keys
from app.storage.requests import ended_channel
from tests.support.settings import make_settings
from tests.support.waiting import wait_parked

TARGET = "http://127.0.0.1:9/task"
BASE = "http://localhost/compat/htq/"


@pytest.fixture
def app(redis_url, sender):
    return create_app(make_settings(redis_url, max_body_bytes=1024), publisher=Publisher(sender))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def attempts(app, store, sender):
    return Attempts(store, Publisher(sender), app.config["HTQ_SETTINGS"], rng=lambda: 0.5)


def send(client, **body) -> str:
    response = client.post("/compat/htq/", json={"url": TARGET, **body})
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"].removeprefix(BASE).rstrip("/")


def native(app, public_id) -> dict:
    with app.app_context():
        requests = services().requests
        return requests.get(requests.find("htq", public_id))


def native_spec(app, store, public_id) -> dict:
    return json.loads(store.redis.hget(keys.request(native(app, public_id)["id"]), "spec"))


def start(attempts, app, public_id):
    [attempt] = attempts.start([(native(app, public_id)["id"], 1, 0)], "worker@test")
    return attempt


def settle(attempts, app, public_id, outcome):
    attempts.finish([(start(attempts, app, public_id), outcome)])


def status(client, public_id) -> str:
    response = client.get(f"/compat/htq/{public_id}/status/")
    assert response.status_code == 200 and list(response.get_json()) == ["status"]
    return response.get_json()["status"]


def link_header(**rels) -> str:
    return ", ".join(f'<{url}>; rel="{rel}"' for rel, url in rels.items())


def test_post_answers_303_to_the_absolute_request_url_with_an_empty_body(client):
    response = client.post("/compat/htq/", json={"url": TARGET})
    assert response.status_code == 303 and response.get_data() == b""
    location = response.headers["Location"]
    assert location.startswith(BASE) and location.endswith("/")
    assert uuid.UUID(location.removeprefix(BASE).rstrip("/")).version == 4


def test_request_resource_has_the_documented_fields_defaults_and_link_header(client):
    before = int(time.time() * 1000)
    public_id = send(client)
    response = client.get(f"/compat/htq/{public_id}/")
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["uuid", "status", "time", "url", "method", "headers", "timeout", "data"]
    assert body["uuid"] == public_id and body["status"] == "queued" and body["url"] == TARGET
    assert body["method"] == "get" and body["data"] is None and body["headers"] == {} and body["timeout"] == 60
    assert before <= body["time"] <= int(time.time() * 1000)
    url = f"{BASE}{public_id}/"
    assert response.headers["Link"] == link_header(self=url, status=url + "status/", response=url + "response/")


def test_method_is_post_with_data_and_a_given_method_headers_and_timeout_are_kept(app, client, store):
    with_data = send(client, data="a=1&b=2")
    assert client.get(f"/compat/htq/{with_data}/").get_json()["method"] == "post"
    assert native(app, with_data)["body"] == "a=1&b=2"
    put = send(client, method="PUT", data={"k": [1, 2]}, headers={"X-Token": "t"}, timeout=5)
    body = client.get(f"/compat/htq/{put}/").get_json()
    assert body["method"] == "put" and body["data"] == {"k": [1, 2]}
    assert body["headers"] == {"X-Token": "t"} and body["timeout"] == 5
    assert native(app, put)["json"] == {"k": [1, 2]}  # a JSON value is sent as JSON


def test_requests_are_sent_once_with_any_answer_a_success_and_delete_on_cancel(app, client, store, sender):
    public_id = send(client)
    spec = native_spec(app, store, public_id)
    assert spec["retry"]["max_attempts"] == 1 and spec["success_on_any_status"] is True
    assert spec["cancel_notify"] is True and spec["timeout"] == 60 and spec["method"] == "GET"
    assert sender.deliveries()[0][:2] == [native(app, public_id)["id"], 1]
    assert store.redis.get(keys.request_alias("htq", public_id)) == native(app, public_id)["id"]


def test_listing_shows_only_waiting_htq_requests_newest_first_with_links(app, client, attempts):
    older, running, newer = send(client), send(client), send(client)
    client.post("/v1/requests", json={"url": TARGET})
    client.post("/compat/timers/timers", json={"url": TARGET})
    start(attempts, app, running)
    response = client.get("/compat/htq/")
    assert response.status_code == 200 and response.headers["Link"] == link_header(self=BASE)
    items = response.get_json()
    assert [item["uuid"] for item in items] == [newer, older]
    assert items[0]["status"] == "queued" and items[0]["url"] == TARGET
    url = f"{BASE}{newer}/"
    assert items[0]["links"] == {"self": url, "status": url + "status/", "response": url + "response/"}


def test_status_goes_queued_pending_success(app, client, attempts):
    public_id = send(client)
    assert status(client, public_id) == "queued"
    attempt = start(attempts, app, public_id)
    assert status(client, public_id) == "pending"
    attempts.finish([(attempt, Outcome(SUCCEEDED, status_code=200))])
    assert status(client, public_id) == "success"


@pytest.mark.parametrize("outcome", [Outcome(FAILED, status_code=404, reason="Not Found", body=b"nope"),
                                     Outcome(RETRY, status_code=503, reason="Service Unavailable", body=b"busy"),
                                     Outcome(FAILED, status_code=302, reason="Found", body=b"")])
def test_any_http_answer_is_a_success_and_is_not_retried(app, client, attempts, sender, outcome):
    public_id = send(client)
    settle(attempts, app, public_id, outcome)
    assert status(client, public_id) == "success" and len(sender.deliveries()) == 1
    body = client.get(f"/compat/htq/{public_id}/response/").get_json()
    assert body["code"] == outcome.status_code and body["data"] == outcome.body.decode()


@pytest.mark.parametrize("error, expected", [("timeout after 60s", "timeout"),
                                             ("connection error: connection refused", "error"),
                                             ("destination refused: 10.0.0.1 is not a public address", "error")])
def test_timeouts_and_network_errors_end_the_request_without_retry(app, client, attempts, sender, error, expected):
    public_id = send(client)
    settle(attempts, app, public_id, Outcome(RETRY, error=error))
    assert status(client, public_id) == expected and len(sender.deliveries()) == 1
    response = client.get(f"/compat/htq/{public_id}/response/")
    body = response.get_json()
    assert response.status_code == 200 and list(body) == ["status", "message", "time"]
    assert body["status"] == expected and body["message"] == error and isinstance(body["time"], int)


def test_response_has_the_documented_fields_and_link_header(app, client, attempts):
    public_id = send(client)
    settle(attempts, app, public_id, Outcome(SUCCEEDED, status_code=200, reason="OK", body=b'{"origin": "x"}',
                                              headers={"Content-Type": "application/json"}, elapsed_ms=80))
    response = client.get(f"/compat/htq/{public_id}/response/")
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["uuid", "status", "code", "reason", "headers", "data", "elapsed", "time"]
    assert body["uuid"] == public_id and body["status"] == "success" and body["code"] == 200
    assert body["reason"] == "OK" and body["headers"] == {"Content-Type": "application/json"}
    assert body["data"] == '{"origin": "x"}' and body["elapsed"] == 80.0
    assert abs(body["time"] - time.time() * 1000) < 5000
    url = f"{BASE}{public_id}/"
    assert response.headers["Link"] == link_header(self=url + "response/", request=url)


def test_binary_response_data_is_base64_and_flagged(app, client, attempts):
    public_id = send(client)
    settle(attempts, app, public_id, Outcome(SUCCEEDED, status_code=200, body=b"\xff\x00\xfe"))
    body = client.get(f"/compat/htq/{public_id}/response/").get_json()
    assert body["data"] == "/wD+" and body["data_encoding"] == "base64"


def test_response_waits_for_the_end_without_blocking_other_clients(app, client, attempts):
    public_id = send(client)
    answers = []
    waiter = threading.Thread(target=lambda: answers.append(client.get(f"/compat/htq/{public_id}/response/")))
    waiter.start()
    try:
        started = time.monotonic()
        for _ in range(5):  # other clients are answered at once meanwhile
            assert client.get("/compat/htq/").status_code == 200
            assert status(client, public_id) == "queued"
        assert time.monotonic() - started < 2
        with app.app_context():
            wait_parked(services().notifier, ended_channel(native(app, public_id)["id"]))
        assert waiter.is_alive() and answers == []  # waiting for the end, not answered
        settle(attempts, app, public_id, Outcome(SUCCEEDED, status_code=201, reason="Created"))
        waiter.join(5)
    finally:
        if waiter.is_alive():  # unblock the waiter so a failing test does not hang
            settle(attempts, app, public_id, Outcome(SUCCEEDED, status_code=200))
            waiter.join(5)
    [response] = answers
    assert response.status_code == 200 and response.get_json()["code"] == 201


def test_response_wait_is_bounded_and_then_answers_202_with_the_status(client, monkeypatch):
    monkeypatch.setattr(htq, "RESPONSE_WAIT_LIMIT_S", 0.2)
    public_id = send(client)
    response = client.get(f"/compat/htq/{public_id}/response/")
    assert response.status_code == 202 and response.get_json() == {"status": "queued"}


def test_cancel_of_a_queued_request_is_204_and_its_response_is_empty(app, client, sender):
    public_id = send(client)
    assert client.delete(f"/compat/htq/{public_id}/").status_code == 204
    assert status(client, public_id) == "canceled"
    response = client.get(f"/compat/htq/{public_id}/response/")
    assert response.status_code == 200 and response.get_json() == {}
    assert client.delete(f"/compat/htq/{public_id}/").status_code == 204
    assert NOTIFY_CANCEL not in [name for name, _, _ in sender.sent]  # nothing was in flight


def test_cancel_in_flight_sends_delete_and_drops_the_late_response(app, client, attempts, sender):
    public_id = send(client)
    attempt = start(attempts, app, public_id)
    assert client.delete(f"/compat/htq/{public_id}/").status_code == 204
    assert [args for name, args, _ in sender.sent if name == NOTIFY_CANCEL] == [[native(app, public_id)["id"]]]
    attempts.finish([(attempt, Outcome(SUCCEEDED, status_code=200, body=b"late"))])
    assert status(client, public_id) == "canceled"
    assert client.get(f"/compat/htq/{public_id}/response/").get_json() == {}


def test_cancel_after_the_end_deletes_the_response(app, client, attempts):
    public_id = send(client)
    settle(attempts, app, public_id, Outcome(SUCCEEDED, status_code=200))
    assert client.delete(f"/compat/htq/{public_id}/").status_code == 204
    assert client.get(f"/compat/htq/{public_id}/response/").get_json() == {}
    assert status(client, public_id) == "success"  # an ended request keeps its final status


def test_purge_deletes_the_response_204_then_404(app, client, attempts):
    public_id = send(client)
    assert client.delete(f"/compat/htq/{public_id}/response/").status_code == 404  # none yet
    settle(attempts, app, public_id, Outcome(SUCCEEDED, status_code=200))
    assert client.delete(f"/compat/htq/{public_id}/response/").status_code == 204
    assert client.delete(f"/compat/htq/{public_id}/response/").status_code == 404
    assert client.get(f"/compat/htq/{public_id}/response/").get_json() == {}
    assert status(client, public_id) == "success"


@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/status/"), ("GET", "/response/"),
                                          ("DELETE", "/"), ("DELETE", "/response/")])
@pytest.mark.parametrize("public_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_uuid_is_404_everywhere(client, method, path, public_id):
    assert client.open(f"/compat/htq/{public_id}{path}", method=method).status_code == 404


def test_expired_request_is_404(app, client, attempts, store):
    public_id = send(client)
    settle(attempts, app, public_id, Outcome(SUCCEEDED, status_code=200))
    later = RequestRelay(store, attempts.publisher, app.config["HTQ_SETTINGS"], attempts,
                         clock_ms=lambda: int(time.time() * 1000) + 8 * 86400 * 1000)
    assert later.expire() == 1
    assert client.get(f"/compat/htq/{public_id}/").status_code == 404
    assert client.get(f"/compat/htq/{public_id}/response/").status_code == 404
    assert store.redis.zcard(keys.request_aliases("htq")) == 0


@pytest.mark.parametrize("body, field", [
    ({}, "url"),
    ({"url": None}, "url"),
    ({"url": "/relative"}, "url"),
    ({"url": "ftp://example.com/"}, "url"),
    ({"url": TARGET, "method": "BREW"}, "method"),
    ({"url": TARGET, "headers": {"Host": "evil"}}, "headers"),
    ({"url": TARGET, "headers": ["X-A"]}, "headers"),
    ({"url": TARGET, "timeout": 0}, "timeout"),
    ({"url": TARGET, "timeout": "soon"}, "timeout"),
])
def test_invalid_request_description_is_422(client, body, field):
    response = client.post("/compat/htq/", json=body)
    assert response.status_code == 422 and field in response.get_json()["errors"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"url": '])
def test_malformed_json_is_400(client, raw):
    assert client.post("/compat/htq/", data=raw, content_type="application/json").status_code == 400


def test_json_that_is_not_an_object_is_422(client):
    assert client.post("/compat/htq/", json=[TARGET]).status_code == 422


def test_data_over_the_body_limit_is_413(client):
    assert client.post("/compat/htq/", json={"url": TARGET, "data": "x" * 2000}).status_code == 413
