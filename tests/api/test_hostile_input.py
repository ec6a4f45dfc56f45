"""Hostile input on every JSON route, native and compat, through the Flask app on a real Redis:
never a 500, each profile's own error shape, nothing stored; and what was stored before depth
was limited still lists and reads. (Limits the web server enforces, on chunked bodies and
header sizes, are tested through gunicorn in tests/e2e/test_web_server_limits.py.)"""
from __future__ import annotations

import json
import sys

import pytest

from app import create_app
from app.core.jsontext import MAX_DEPTH
from app.core.publish import Publisher
from app.storage import keys
from tests.support.settings import make_settings

URL = "http://127.0.0.1:9/hook"
TOO_DEEP_FOR_PYTHON = sys.getrecursionlimit() + 500
TOO_DEEP_FOR_ORJSON = 600  # orjson writes at most 255 levels; Python's json module reads this


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.fixture
def app(redis_url, sender):
    settings = make_settings(redis_url, webhook_post_endpoint="http://127.0.0.1:9/log", max_body_bytes=64 * 1024)
    app = create_app(settings, publisher=Publisher(sender))
    client = app.test_client()
    assert client.put("/v1/batches/b", json={"endpoint": URL}).status_code == 201
    assert client.put("/v1/queues/q", json={}).status_code == 201
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def native(response) -> dict:
    body = response.get_json()
    assert set(body) <= {"code", "status", "message", "errors"} and body["code"] == response.status_code
    assert isinstance(body["status"], str) and isinstance(body["message"], str)
    assert isinstance(body.get("errors", {}), dict), body
    return body


def timers(response) -> dict:
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == response.status_code
    return body


def wq_or_forwarder(key: str):
    def check(response) -> dict:
        body = response.get_json()
        assert set(body) == {key} and isinstance(body[key], str), body
        return body
    return check


# (method, path, body with @ where a value nests, levels around the @, error shape)
JSON_ROUTES = [
    ("POST", "/v1/requests", f'{{"url": "{URL}", "json": @}}', 1, native),
    ("POST", "/v1/requests/batch", f'{{"requests": [{{"url": "{URL}", "json": @}}]}}', 3, native),
    ("PUT", "/v1/queues/q", '{"delay": @}', 1, native),
    ("POST", "/v1/queues/q/messages", "@", 0, native),
    ("POST", "/v1/queues/q/messages/batch", '{"messages": [{"body": @}]}', 3, native),
    ("POST", "/v1/queues/q/messages/receive", '{"max": @}', 1, native),
    ("POST", "/v1/queues/q/messages/ack", '{"messages": [{"id": @}]}', 3, native),
    ("PATCH", "/v1/queues/q/messages/m1", '{"receipt": @, "visibility_timeout": 1}', 1, native),
    ("PUT", "/v1/batches/b", f'{{"endpoint": "{URL}", "headers": @}}', 1, native),
    ("POST", "/v1/batches/b/records", "@", 0, native),
    ("POST", "/v1/batches/b/records/batch", '{"records": [@]}', 2, native),
    ("POST", "/compat/timers/timers", f'{{"url": "{URL}", "seconds": 1, "x": @}}', 1, timers),
    ("POST", "/compat/htq/", f'{{"url": "{URL}", "data": @}}', 1, native),
    ("POST", "/compat/wq/", "[@]", 1, wq_or_forwarder("error")),
    ("POST", "/compat/forwarder/log", '{"user_id": 1, "x": @}', 1, wq_or_forwarder("message")),
]
ROUTE_IDS = [f"{method} {path}" for method, path, *_ in JSON_ROUTES]
# The routes above that store the JSON they are sent, and how to find it again.
STORING = {"/v1/requests", "/v1/requests/batch", "/v1/queues/q/messages", "/v1/queues/q/messages/batch",
           "/v1/batches/b/records", "/v1/batches/b/records/batch", "/compat/htq/", "/compat/wq/"}


def stored(app) -> dict[str, str]:
    """Every key in Redis with its type and size: what a refused call must leave unchanged."""
    client = app.extensions["htq"].store.redis
    return {key: (client.type(key), client.memory_usage(key)) for key in client.keys("*")}


def send(client, method: str, path: str, body: str | bytes):
    return client.open(path, method=method, data=body, content_type="application/json")


@pytest.mark.parametrize("method, path, template, levels, shape", JSON_ROUTES, ids=ROUTE_IDS)
def test_json_nested_beyond_the_limit_is_400_in_the_profiles_shape_and_nothing_is_stored(
        app, client, method, path, template, levels, shape):
    before = stored(app)
    response = send(client, method, path, template.replace("@", deep(MAX_DEPTH + 1 - levels)))
    assert response.status_code == 400, response.get_data(as_text=True)
    body = shape(response)
    assert "errors" not in body
    assert any(why in json.dumps(body) for why in (f"deeper than {MAX_DEPTH} levels", "exceeded max depth",
                                                    "cannot set timers, bad request payload"))
    assert stored(app) == before


@pytest.mark.parametrize("method, path, template, levels, shape", JSON_ROUTES, ids=ROUTE_IDS)
def test_json_far_too_deep_for_python_is_400_not_a_recursion_error(client, method, path, template, levels, shape):
    response = send(client, method, path, template.replace("@", deep(TOO_DEEP_FOR_PYTHON * 10)))
    assert response.status_code == 400, response.get_data(as_text=True)
    shape(response)


@pytest.mark.parametrize("method, path, template, levels, shape",
                         [route for route in JSON_ROUTES if route[1] in STORING], ids=lambda v: str(v)[:40])
def test_json_at_the_limit_is_stored_and_comes_back_whole(app, client, method, path, template, levels, shape):
    value = deep(MAX_DEPTH - levels)
    response = send(client, method, path, template.replace("@", value))
    assert response.status_code in (201, 202, 303), response.get_data(as_text=True)
    if path.startswith("/v1/requests") or path == "/compat/htq/":
        listed = client.get("/v1/requests").get_data(as_text=True)
    elif path.startswith("/v1/queues"):
        listed = client.post("/v1/queues/q/messages/receive", json={"max": 10}).get_data(as_text=True)
    elif path == "/compat/wq/":
        listed = client.get("/compat/wq/").get_data(as_text=True)
    else:
        with app.app_context():
            pending = app.extensions["htq"].store.redis.lrange(keys.batch_pending("b"), 0, -1)
        listed = json.dumps(pending)
    assert value.replace(" ", "") in listed.replace(" ", "")


BAD_JSON = {
    "not UTF-8": b'{"url": "http://127.0.0.1:9/\xff", "user_id": 1}',
    "encoded surrogate": b'{"url": "http://127.0.0.1:9/\xed\xa0\x80", "user_id": 1}',
    "NaN": b'{"url": "http://127.0.0.1:9/x", "user_id": 1, "json": NaN, "seconds": NaN}',
    "1e400": b'{"url": "http://127.0.0.1:9/x", "user_id": 1, "json": 1e400, "seconds": 1e400, "delay": 1e400}',
    "5000 digits": b'{"url": "http://127.0.0.1:9/x", "user_id": 1' + b', "json": 1' + b"0" * 5000 + b"}",
    "truncated": b'{"url": ',
}


# In a field its record does not have, the forwarder (as Go's decoder) takes any number: see below.
NOT_JSON_CASES = [pytest.param(method, path, shape, case, id=f"{case}-{method} {path}")
                  for method, path, _, _, shape in JSON_ROUTES for case in BAD_JSON
                  if not (path == "/compat/forwarder/log" and case in ("1e400", "5000 digits"))]


@pytest.mark.parametrize("method, path, shape, case", NOT_JSON_CASES)
def test_what_is_not_json_is_refused_in_the_profiles_shape_and_nothing_is_stored(app, client, method, path, shape,
                                                                                  case):
    before = stored(app)
    response = send(client, method, path, BAD_JSON[case])
    assert response.status_code in (400, 422), response.get_data(as_text=True)  # 422: NaN in a record
    body = shape(response)
    if shape is native and response.status_code == 400:
        assert body["message"].startswith("Malformed JSON body: ") and "errors" not in body
    assert stored(app) == before


@pytest.mark.parametrize("path, body, field", [
    ("/v1/requests", {"url": "http://127.0.0.1:9/\\ud800"}, "url"),
    ("/v1/requests", {"url": URL, "body": "a \\udc00 b"}, "body"),
    ("/v1/requests", {"url": URL, "headers": {"X-A": "\\ud800"}}, "headers"),
    ("/v1/requests", {"url": URL, "callback_url": "http://127.0.0.1:9/\\ud800"}, "callback_url"),
    ("/v1/requests/batch", {"requests": [{"url": URL}, {"url": URL, "body": "\\ud800"}]}, "requests"),
    ("/v1/queues/q/messages/ack", {"messages": [{"id": "\\ud800", "receipt": "r"}]}, "messages"),
    ("/v1/queues/q/messages/ack", {"messages": [{"id": "m", "receipt": "\\udfff"}]}, "messages"),
    ("/compat/htq/", {"url": URL, "data": "\\ud800"}, "body"),
])
def test_a_lone_surrogate_in_text_that_is_sent_or_stored_as_text_is_422(app, client, path, body, field):
    before = stored(app)
    raw = json.dumps(body).replace("\\\\u", "\\u")  # the escape as a client writes it: "\ud800"
    response = send(client, "POST", path, raw)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert field in native(response)["errors"]
    assert stored(app) == before


def test_a_lone_surrogate_in_a_visibility_receipt_is_422(client):
    response = send(client, "PATCH", "/v1/queues/q/messages/m1", '{"receipt": "\\ud800", "visibility_timeout": 1}')
    assert response.status_code == 422 and "receipt" in native(response)["errors"]


def test_a_lone_surrogate_inside_json_values_is_kept_as_sent(client):
    created = send(client, "POST", "/v1/requests", f'{{"url": "{URL}", "json": ["\\ud800"]}}')
    assert created.status_code == 201 and '"json":["\\ud800"]' in created.get_data(as_text=True)
    assert send(client, "POST", "/v1/queues/q/messages", '"\\ud800"').status_code == 201
    assert send(client, "POST", "/compat/pushpull/push/q", b"x").status_code == 200
    assert client.get("/compat/pushpull/pull/q").data == b"\\ud800"  # a JSON string is pulled as its text


@pytest.mark.parametrize("number", ["1e400", "-1" + "0" * 5000])
def test_the_forwarder_takes_numbers_out_of_range_as_go_does(client, number):
    """Go skips any number in a field its struct does not have, and refuses one that does not fit."""
    assert send(client, "POST", "/compat/forwarder/log", f'{{"user_id": 1, "other": {number}}}').status_code == 201
    for field, go_type in (("user_id", "int"), ("total", "float64")):
        response = send(client, "POST", "/compat/forwarder/log", f'{{"user_id": 1, "{field}": {number}}}')
        assert response.status_code == 400
        message = wq_or_forwarder("message")(response)["message"]
        assert message.startswith(f"decode: json: cannot unmarshal number {number[:10]}")
        assert message.endswith(f"into Go struct field Log.{field} of type {go_type}")


def test_the_forwarder_reads_a_lone_surrogate_as_go_does(app, client):
    response = send(client, "POST", "/compat/forwarder/log", '{"user_id": 1, "title": "a\\ud800b"}')
    assert response.status_code == 201
    with app.app_context():
        (record,) = app.extensions["htq"].store.redis.lrange(keys.batch_pending("log"), 0, -1)
    assert json.loads(record.split(" ", 1)[-1])["title"] == "a\ufffdb"


@pytest.mark.parametrize("method, path, allowed", [
    ("PUT", "/v1/requests", {"GET", "POST"}),
    ("POST", "/v1/queues/q", {"GET", "PUT", "DELETE"}),
    ("PATCH", "/v1/queues/q/messages/receive", {"POST"}),  # not also a message named "receive"
    ("GET", "/v1/requests/batch", {"POST"}),  # not also a request named "batch"
    ("DELETE", "/compat/wq/", {"GET", "POST"}),
    ("PUT", "/compat/forwarder/log", {"POST"}),
])
def test_a_wrong_method_is_405_with_allow(client, method, path, allowed):
    response = client.open(path, method=method)
    assert response.status_code == 405 and native(response)
    assert {name.strip() for name in response.headers["Allow"].split(",")} - {"HEAD", "OPTIONS"} == allowed


@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/requests"), ("PUT", "/v1/queues/q"), ("POST", "/v1/queues/q/messages/batch"),
    ("PUT", "/v1/batches/b"), ("POST", "/v1/batches/b/records"),
])
def test_a_body_that_is_not_json_is_415_in_the_native_shape(client, method, path):
    response = client.open(path, method=method, data="a=1", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and native(response)["message"]


# -- stored before depth was limited ---------------------------------------------------------------


def plant(app, request_id: str, value: str) -> None:
    """Replace the `json` (1) of a stored request's spec by `value`, as an older htq stored it."""
    client = app.extensions["htq"].store.redis
    spec = client.hget(keys.request(request_id), "spec")
    assert '"json": 1' in spec
    client.hset(keys.request(request_id), "spec", spec.replace('"json": 1', f'"json": {value}'))


@pytest.mark.parametrize("depth", [TOO_DEEP_FOR_ORJSON, TOO_DEEP_FOR_PYTHON])
def test_a_stored_request_too_deep_to_write_back_lists_reads_and_cancels(app, client, depth):
    first = client.post("/v1/requests", json={"url": URL, "json": 1}).get_json()["id"]
    planted = client.post("/v1/requests", json={"url": URL, "json": 1}).get_json()["id"]
    last = client.post("/v1/requests", json={"url": URL, "json": 1}).get_json()["id"]
    plant(app, planted, deep(depth))
    for page in (client.get("/v1/requests"), client.get("/v1/requests?status=queued&limit=3")):
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        assert all(request_id in text for request_id in (first, planted, last)) and deep(depth) in text
    after_last = client.get("/v1/requests?limit=1&cursor=" + last).get_data(as_text=True)
    assert planted in after_last and last not in after_last and f'"next_cursor":"{planted}"' in after_last
    one = client.get(f"/v1/requests/{planted}")
    assert one.status_code == 200 and deep(depth) in one.get_data(as_text=True)
    assert client.get(f"/v1/requests/{planted}/status").get_json()["status"] == "queued"
    assert client.delete(f"/v1/requests/{planted}").status_code == 204
    assert client.post(f"/v1/requests/{planted}/retry").status_code == 202


def test_a_stored_compat_request_too_deep_to_write_back_lists(app, client):
    assert client.post("/compat/htq/", json={"url": URL, "data": 1}).status_code == 303
    (request_id,) = app.extensions["htq"].store.redis.zrange(keys.requests_all(), 0, -1)
    plant(app, request_id, deep(TOO_DEEP_FOR_PYTHON))
    listed = client.get("/compat/htq/")
    assert listed.status_code == 200 and deep(TOO_DEEP_FOR_PYTHON) in listed.get_data(as_text=True)


@pytest.mark.parametrize("depth", [TOO_DEEP_FOR_ORJSON, TOO_DEEP_FOR_PYTHON])
def test_stored_messages_too_deep_to_write_back_are_received_and_pulled(app, client, depth):
    redis_client = app.extensions["htq"].store.redis
    for queue, push in (("wq", lambda: client.post("/compat/wq/", json=[1])),
                        ("pp", lambda: client.post("/v1/queues/pp/messages", json=1)),
                        ("q", lambda: client.post("/v1/queues/q/messages", json=1))):
        assert push().status_code == 201
        (message_id,) = redis_client.hkeys(keys.queue_bodies(queue))
        redis_client.hset(keys.queue_bodies(queue), message_id, "j" + deep(depth))
    wq = client.get("/compat/wq/")
    assert wq.status_code == 200 and deep(depth) in wq.get_data(as_text=True)
    pulled = client.get("/compat/pushpull/pull/pp")
    assert pulled.status_code == 200 and pulled.get_data(as_text=True) == deep(depth)
    client.put("/v1/queues/q", json={"max_receives": 1})
    received = client.post("/v1/queues/q/messages/receive", json={"visibility_timeout": 0})
    assert received.status_code == 200 and deep(depth) in received.get_data(as_text=True)
    assert client.post("/v1/queues/q/messages/receive", json={}).get_json() == {"messages": []}
    dead = client.get("/v1/queues/q/dead")
    assert dead.status_code == 200 and deep(depth) in dead.get_data(as_text=True)


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/v1/requests", {"url": URL, "delay": 1e308}),
    ("POST", "/v1/requests/batch", {"requests": [{"url": URL, "delay": 1e308}]}),
    ("POST", "/v1/queues/q/messages?delay=1e308", 1),
    ("POST", "/v1/queues/q/messages/batch", {"messages": [{"body": 1, "delay": 1e308}]}),
])
def test_a_delay_too_large_to_count_in_milliseconds_is_422(app, client, method, path, body):
    before = stored(app)
    response = client.open(path, method=method, json=body)
    assert response.status_code == 422 and "delay" in json.dumps(native(response)["errors"])
    assert stored(app) == before


@pytest.mark.parametrize("path, body, field", [
    ("/v1/requests", {"url": URL, "timeout": "30"}, "timeout"),
    ("/v1/requests", {"url": URL, "delay": True}, "delay"),
    ("/v1/requests", {"url": URL, "cancel_notify": 1}, "cancel_notify"),
    ("/v1/requests", {"url": URL, "cancel_notify": "yes"}, "cancel_notify"),
    ("/v1/requests", {"url": URL, "retry": {"max_attempts": 2.0}}, "retry"),
    ("/v1/queues/q/messages/receive", {"wait": "1"}, "wait"),
    ("/v1/queues/q/messages/batch", {"messages": [{"body": 1, "delay": "5"}]}, "messages"),
])
def test_numbers_and_booleans_in_a_json_body_are_json_numbers_and_booleans(client, path, body, field):
    """As the API document says: "30" is a string, 1 is not true (marshmallow took both)."""
    response = client.post(path, json=body)
    assert response.status_code == 422 and field in native(response)["errors"]


def test_a_query_parameter_given_twice_is_422(client):
    response = client.post("/v1/queues/q/messages?delay=0&delay=60", json=1)
    assert response.status_code == 422 and native(response)["errors"] == {"delay": ["Give this parameter once."]}


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/\x01", "\x7fhttp://127.0.0.1:9/", "http://127.0.0.1:9/\x1b[0m"])
def test_a_url_with_a_control_character_is_422(client, url):
    """urlsplit skips some of them, but the URL would be stored and sent as it was given."""
    response = client.post("/v1/requests", json={"url": url})
    assert response.status_code == 422 and "url" in native(response)["errors"]
