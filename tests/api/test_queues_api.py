"""/v1/queues through the Flask app on a real Redis: every route, every validation rule of the contract."""
from __future__ import annotations

import json
import threading
import time

import pytest

from app import create_app
from app.extensions import services
from app.storage.queues import channel
from tests.support.settings import make_settings
from tests.support.waiting import wait_parked


@pytest.fixture
def app(redis_url):
    return create_app(make_settings(redis_url, max_body_bytes=1024))


@pytest.fixture
def client(app):
    return app.test_client()


def push(client, name="q", body=None, **kwargs):
    return client.post(f"/v1/queues/{name}/messages", json=body if body is not None else {"n": 1}, **kwargs)


def receive(client, name="q", **body):
    response = client.post(f"/v1/queues/{name}/messages/receive", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["messages"]


def assert_error(response, code, *fields):
    assert response.status_code == code, response.get_data(as_text=True)
    body = response.get_json()
    assert body["code"] == code and body["status"] and body["message"]
    for field in fields:
        assert field in body["errors"], body
    return body


# -- queues -------------------------------------------------------------------------------------


def test_put_creates_then_replaces_omitted_fields_taking_their_defaults(client):
    created = client.put("/v1/queues/orders", json={"visibility_timeout": 45, "max_receives": 3,
                                                    "retention": 3600, "delay": 1.5})
    assert created.status_code == 201
    assert created.get_json() | {"created_at": None, "updated_at": None} == {
        "name": "orders", "visibility_timeout": 45, "max_receives": 3, "retention": 3600, "delay": 1.5,
        "dead_letter_queue": None, "created_at": None, "updated_at": None,
        "visible": 0, "in_flight": 0, "delayed": 0, "dead": 0}
    updated = client.put("/v1/queues/orders", json={"delay": 0, "retention": 7200})
    assert updated.status_code == 200
    body = client.get("/v1/queues/orders").get_json()
    assert (body["delay"], body["retention"], body["visibility_timeout"], body["max_receives"]) == (0, 7200, 30, 0)


def test_put_with_an_empty_body_creates_with_defaults(client):
    response = client.put("/v1/queues/plain", json={})
    assert response.status_code == 201
    body = response.get_json()
    assert (body["visibility_timeout"], body["max_receives"], body["retention"], body["delay"]) == (30, 0, 345600, 0)


@pytest.mark.parametrize("field,value", [
    ("visibility_timeout", -1), ("visibility_timeout", 43201), ("visibility_timeout", "soon"),
    ("max_receives", -1), ("max_receives", 1001), ("max_receives", 1.5), ("max_receives", "3"),
    ("retention", 59), ("retention", 1209601), ("delay", -0.1), ("delay", 901), ("delay", None),
    ("colour", "blue"),
])
def test_put_rejects_each_bad_field(client, field, value):
    assert_error(client.put("/v1/queues/q", json={field: value}), 422, field)
    assert client.get("/v1/queues/q").status_code == 404


@pytest.mark.parametrize("name", ["a:b", "a.b", "x" * 81, "%C3%A9", "a%20b"])
def test_bad_name_is_422_on_put_and_push_and_404_on_lookups(client, name):
    assert_error(client.put(f"/v1/queues/{name}", json={}), 422, "name")
    assert_error(push(client, name), 422, "name")
    assert_error(client.get(f"/v1/queues/{name}"), 404)
    assert_error(client.delete(f"/v1/queues/{name}"), 404)
    assert_error(client.post(f"/v1/queues/{name}/messages/receive", json={}), 404)


def test_put_body_must_be_json(client):
    assert_error(client.put("/v1/queues/q", data="x=1", content_type="application/x-www-form-urlencoded"), 415)
    assert_error(client.put("/v1/queues/q", data="{nope", content_type="application/json"), 400)


def test_list_get_and_delete(client):
    client.put("/v1/queues/b", json={})
    push(client, "a")
    listing = client.get("/v1/queues").get_json()["items"]
    assert [(q["name"], q["visible"]) for q in listing] == [("a", 1), ("b", 0)]
    assert client.get("/v1/queues/a").get_json()["visible"] == 1
    assert client.delete("/v1/queues/a").status_code == 204
    assert_error(client.get("/v1/queues/a"), 404)
    assert_error(client.delete("/v1/queues/a"), 404)
    assert [q["name"] for q in client.get("/v1/queues").get_json()["items"]] == ["b"]


def test_counts_follow_messages_through_their_states(client):
    client.put("/v1/queues/q", json={"max_receives": 1})
    for _ in range(3):
        push(client)
    push(client, query_string={"delay": 600})
    receive(client, max=1, visibility_timeout=0)  # back at once: dead, its one receive used
    receive(client, max=1)
    assert {k: v for k, v in client.get("/v1/queues/q").get_json().items()
            if k in ("visible", "in_flight", "delayed", "dead")} == {"visible": 1, "in_flight": 1, "delayed": 1,
                                                                      "dead": 1}


# -- pushing ------------------------------------------------------------------------------------


def test_push_json_answers_201_with_id_and_location_and_creates_the_queue(client):
    response = push(client, "new", {"order": 7})
    assert response.status_code == 201
    message_id = response.get_json()["id"]
    assert response.headers["Location"] == f"/v1/queues/new/messages/{message_id}"
    assert [(m["id"], m["body"]) for m in receive(client, "new")] == [(message_id, {"order": 7})]


def test_push_any_json_value_and_text(client):
    for value in ([1, 2], "a string", 3.5, None, False):
        assert client.post("/v1/queues/q/messages", data=json.dumps(value),
                           content_type="application/json").status_code == 201
    assert client.post("/v1/queues/q/messages", data="line one\nline two", content_type="text/plain").status_code == 201
    assert client.post("/v1/queues/q/messages", data="café".encode("latin-1"),
                       content_type="text/plain; charset=latin-1").status_code == 201
    assert client.post("/v1/queues/q/messages", data=b"", content_type="text/plain").status_code == 201
    bodies = [m["body"] for m in receive(client, max=10)]
    assert bodies == [[1, 2], "a string", 3.5, None, False, "line one\nline two", "café", ""]


def test_push_keeps_the_json_text_as_sent(client):
    client.post("/v1/queues/q/messages", data='{"b": 1, "a": [1.0, 2]}', content_type="application/json")
    response = client.post("/v1/queues/q/messages/receive", json={})
    assert '"body":{"b":1,"a":[1.0,2]}' in response.get_data(as_text=True).replace(" ", "")


def test_push_refuses_other_content_types_and_malformed_bodies(client):
    assert_error(client.post("/v1/queues/q/messages", data="a,b", content_type="text/csv"), 415)
    assert_error(client.post("/v1/queues/q/messages"), 415)
    assert_error(client.post("/v1/queues/q/messages", data="{nope", content_type="application/json"), 400)
    assert_error(client.post("/v1/queues/q/messages", data=b"", content_type="application/json"), 400)
    assert_error(client.post("/v1/queues/q/messages", data=b"\xff\xfe", content_type="application/json"), 400)
    assert_error(client.post("/v1/queues/q/messages", data=b"\xff", content_type="text/plain"), 400)
    assert client.get("/v1/queues/q").status_code == 404


def test_push_over_the_body_limit_is_413(client):
    assert_error(push(client, body={"x": "y" * 1100}), 413)
    assert_error(client.post("/v1/queues/q/messages", data="z" * 1025, content_type="text/plain"), 413)
    assert client.post("/v1/queues/q/messages", data="z" * 1024, content_type="text/plain").status_code == 201


@pytest.mark.parametrize("delay", ["-1", "soon", "nan", str(366 * 86400)])
def test_push_rejects_a_bad_delay(client, delay):
    assert_error(push(client, query_string={"delay": delay}), 422, "delay")


def test_push_with_delay_is_invisible_until_due(client):
    push(client, query_string={"delay": "60"})
    assert receive(client) == []
    assert client.get("/v1/queues/q").get_json()["delayed"] == 1


def test_batch_push_returns_ids_in_order(client):
    response = client.post("/v1/queues/q/messages/batch",
                           json={"messages": [{"body": i} for i in range(100)]})
    assert response.status_code == 201
    ids = response.get_json()["ids"]
    got = receive(client, max=100)
    assert [m["id"] for m in got] == ids and [m["body"] for m in got] == list(range(100))


@pytest.mark.parametrize("body,field", [
    ({"messages": []}, "messages"),
    ({"messages": [{"body": 1}] * 101}, "messages"),
    ({}, "messages"),
    ({"messages": [{"delay": 1}]}, "messages"),
    ({"messages": [{"body": 1, "delay": -1}]}, "messages"),
    ({"messages": [{"body": 1, "colour": "red"}]}, "messages"),
    ({"messages": "x"}, "messages"),
    ({"messages": [{"body": 1}], "extra": 1}, "extra"),
])
def test_batch_push_validation(client, body, field):
    assert_error(client.post("/v1/queues/q/messages/batch", json=body), 422, field)
    assert client.get("/v1/queues/q").status_code == 404


def test_batch_push_is_all_or_none_over_the_body_limit(client):
    body = {"messages": [{"body": "small"}, {"body": "x" * 1100}]}
    error = assert_error(client.post("/v1/queues/q/messages/batch", json=body), 413, "messages")
    assert error["errors"]["messages"] == {"1": {"body": ["at most 1024 bytes"]}}
    assert client.get("/v1/queues/q").status_code == 404


def test_batch_push_with_per_message_delay(client):
    client.post("/v1/queues/q/messages/batch", json={"messages": [{"body": "late", "delay": 30}, {"body": "now"}]})
    assert [m["body"] for m in receive(client)] == ["now"]


@pytest.mark.parametrize("text", ['{"big": 123456789012345678901234567890}', '"\\ud800 lone"',
                                  '[1.5, "caf\u00e9", "\u2028"]', '-9223372036854775809'])
def test_batch_pushed_bodies_come_back_exactly(client, text):
    """Bodies are written again after parsing: big integers and lone surrogates must survive it."""
    response = client.post("/v1/queues/q/messages/batch", data=f'{{"messages": [{{"body": {text}}}]}}',
                           content_type="application/json")
    assert response.status_code == 201, response.get_json()
    (message,) = json.loads(client.post("/v1/queues/q/messages/receive", json={}).get_data(as_text=True))["messages"]
    assert message["body"] == json.loads(text)


@pytest.mark.parametrize("text", ["NaN", '{"x": Infinity}', "[-Infinity]"])
def test_nan_and_infinity_are_not_json(client, text):
    error = assert_error(client.post("/v1/queues/q/messages", data=text, content_type="application/json"), 400)
    assert error["message"].startswith("Malformed JSON body")
    error = assert_error(client.post("/v1/queues/q/messages/batch", data=f'{{"messages": [{{"body": {text}}}]}}',
                                     content_type="application/json"), 400)
    assert error["message"].startswith("Malformed JSON body")
    assert client.get("/v1/queues/q").status_code == 404


def test_batch_push_needs_json(client):
    assert_error(client.post("/v1/queues/q/messages/batch", data="x", content_type="text/plain"), 415)


# -- receiving ----------------------------------------------------------------------------------


def test_receive_returns_the_contract_fields(client):
    message_id = push(client, body={"k": "v"}).get_json()["id"]
    (message,) = receive(client)
    assert set(message) == {"id", "receipt", "body", "receive_count", "enqueued_at"}
    assert (message["id"], message["body"], message["receive_count"]) == (message_id, {"k": "v"}, 1)
    assert message["enqueued_at"].endswith("Z") and message["receipt"]


def test_receive_with_no_body_uses_the_defaults(client):
    for _ in range(12):
        push(client)
    response = client.post("/v1/queues/q/messages/receive")
    assert response.status_code == 200 and len(response.get_json()["messages"]) == 10


@pytest.mark.parametrize("field,value", [
    ("max", 0), ("max", 101), ("max", 1.5), ("max", "2"), ("wait", -1), ("wait", 21),
    ("visibility_timeout", -1), ("visibility_timeout", 43201), ("colour", 1),
])
def test_receive_validation(client, field, value):
    push(client)
    assert_error(client.post("/v1/queues/q/messages/receive", json={field: value}), 422, field)


def test_receive_from_an_unknown_queue_is_404(client):
    assert_error(client.post("/v1/queues/nope/messages/receive", json={"wait": 1}), 404)


def test_received_message_stays_invisible_until_acknowledged(client):
    push(client)
    receive(client)
    assert receive(client) == []
    assert client.get("/v1/queues/q").get_json()["in_flight"] == 1


def test_long_poll_answers_when_a_message_arrives(app, client):
    client.put("/v1/queues/q", json={})
    results = []
    waiter = threading.Thread(target=lambda: results.append(
        (app.test_client().post("/v1/queues/q/messages/receive", json={"wait": 10}), time.monotonic())))
    waiter.start()
    with app.app_context():
        wait_parked(services().notifier, channel("q"))
    pushed_at = time.monotonic()
    message_id = push(client).get_json()["id"]
    waiter.join(5)
    response, answered_at = results[0]
    assert [m["id"] for m in response.get_json()["messages"]] == [message_id]
    assert answered_at - pushed_at < 1.0  # woken by the push, not by the periodic re-check


def test_long_poll_answers_empty_after_the_wait(client):
    client.put("/v1/queues/q", json={})
    started = time.monotonic()
    assert receive(client, wait=0.5) == []
    assert 0.5 <= time.monotonic() - started < 1.2


# -- acknowledging and visibility ---------------------------------------------------------------


def test_delete_acknowledges_with_or_without_receipt(client):
    push(client)
    push(client)
    first, second = receive(client)
    assert client.delete(f"/v1/queues/q/messages/{first['id']}",
                         query_string={"receipt": first["receipt"]}).status_code == 204
    assert client.delete(f"/v1/queues/q/messages/{second['id']}").status_code == 204
    assert_error(client.delete(f"/v1/queues/q/messages/{second['id']}"), 404)
    assert_error(client.delete("/v1/queues/q/messages/unknown"), 404)
    assert_error(client.delete("/v1/queues/nope/messages/unknown"), 404)
    assert client.get("/v1/queues/q").get_json()["in_flight"] == 0


def test_delete_with_a_stale_receipt_is_409(client):
    push(client)
    old = receive(client, visibility_timeout=0)[0]
    receive(client)
    assert_error(client.delete(f"/v1/queues/q/messages/{old['id']}", query_string={"receipt": old["receipt"]}), 409)


def test_batch_ack(client):
    for _ in range(3):
        push(client)
    one, two, three = receive(client)
    response = client.post("/v1/queues/q/messages/ack", json={"messages": [
        {"id": one["id"], "receipt": one["receipt"]}, {"id": two["id"], "receipt": "stale"},
        {"id": three["id"]}, {"id": "missing"}]})
    assert response.status_code == 200
    assert response.get_json() == {"acked": 2, "failed": [{"id": two["id"], "reason": "stale"},
                                                          {"id": "missing", "reason": "not_found"}]}


@pytest.mark.parametrize("body,field", [
    ({"messages": []}, "messages"), ({"messages": [{"id": "x"}] * 101}, "messages"),
    ({"messages": [{"receipt": "r"}]}, "messages"), ({"messages": [{"id": "x", "other": 1}]}, "messages"),
    ({}, "messages"),
])
def test_batch_ack_validation(client, body, field):
    push(client)
    assert_error(client.post("/v1/queues/q/messages/ack", json=body), 422, field)


def test_batch_ack_on_an_unknown_queue_is_404(client):
    assert_error(client.post("/v1/queues/nope/messages/ack", json={"messages": [{"id": "x"}]}), 404)


def test_patch_extends_and_zero_releases(client):
    push(client)
    message = receive(client)[0]
    url = f"/v1/queues/q/messages/{message['id']}"
    extended = client.patch(url, json={"receipt": message["receipt"], "visibility_timeout": 120})
    assert extended.status_code == 200
    assert set(extended.get_json()) == {"id", "receipt", "visible_at", "dead"}
    released = client.patch(url, json={"receipt": message["receipt"], "visibility_timeout": 0})
    assert released.status_code == 200
    again = receive(client)
    assert [(m["id"], m["receive_count"]) for m in again] == [(message["id"], 2)]
    assert_error(client.patch(url, json={"receipt": message["receipt"], "visibility_timeout": 5}), 409)


@pytest.mark.parametrize("body,field", [
    ({"visibility_timeout": 5}, "receipt"), ({"receipt": "r"}, "visibility_timeout"),
    ({"receipt": "r", "visibility_timeout": 43201}, "visibility_timeout"),
    ({"receipt": "r", "visibility_timeout": -1}, "visibility_timeout"),
    ({"receipt": "", "visibility_timeout": 1}, "receipt"),
    ({"receipt": "r", "visibility_timeout": 1, "x": 1}, "x"),
])
def test_patch_validation(client, body, field):
    message_id = push(client).get_json()["id"]
    assert_error(client.patch(f"/v1/queues/q/messages/{message_id}", json=body), 422, field)


def test_patch_unknown_message_is_404(client):
    push(client)
    assert_error(client.patch("/v1/queues/q/messages/nope", json={"receipt": "r", "visibility_timeout": 1}), 404)


# -- dead letters -------------------------------------------------------------------------------


def test_dead_letters_listed_and_redriven(client):
    client.put("/v1/queues/q", json={"max_receives": 1})
    message_id = push(client, body="poison").get_json()["id"]
    receive(client, visibility_timeout=0)
    assert receive(client) == []
    dead = client.get("/v1/queues/q/dead").get_json()["items"]
    assert [(m["id"], m["body"], m["receive_count"]) for m in dead] == [(message_id, "poison", 1)]
    assert set(dead[0]) == {"id", "body", "receive_count", "enqueued_at", "dead_at"}
    redriven = client.post("/v1/queues/q/dead/redrive")
    assert redriven.status_code == 200 and redriven.get_json() == {"moved": 1}
    assert [m["id"] for m in receive(client)] == [message_id]
    assert client.get("/v1/queues/q/dead").get_json()["items"] == []


def test_dead_letters_of_unknown_queue_and_bad_limit(client):
    assert_error(client.get("/v1/queues/nope/dead"), 404)
    assert_error(client.post("/v1/queues/nope/dead/redrive"), 404)
    client.put("/v1/queues/q", json={})
    assert_error(client.get("/v1/queues/q/dead", query_string={"limit": 0}), 422, "limit")


def test_dead_letter_queue_receives_the_message_with_its_id_and_body(client):
    client.put("/v1/queues/failed", json={})
    put = client.put("/v1/queues/q", json={"max_receives": 1, "dead_letter_queue": "failed"})
    assert put.status_code == 201 and put.get_json()["dead_letter_queue"] == "failed"
    assert client.get("/v1/queues/q").get_json()["dead_letter_queue"] == "failed"
    assert [q["dead_letter_queue"] for q in client.get("/v1/queues").get_json()["items"]] == [None, "failed"]
    message_id = push(client, body={"poison": [1, 2]}).get_json()["id"]
    [first] = receive(client, visibility_timeout=0)
    assert receive(client) == []  # received once already: it moves instead
    assert client.get("/v1/queues/q/dead").get_json()["items"] == []
    counts = client.get("/v1/queues/q").get_json()
    assert (counts["visible"], counts["in_flight"], counts["dead"]) == (0, 0, 0)
    assert client.get("/v1/queues/failed").get_json()["visible"] == 1
    [moved] = receive(client, "failed")
    assert (moved["id"], moved["body"], moved["receive_count"]) == (message_id, {"poison": [1, 2]}, 1)
    assert moved["enqueued_at"] == first["enqueued_at"]
    acked = client.delete(f"/v1/queues/failed/messages/{message_id}", query_string={"receipt": moved["receipt"]})
    assert acked.status_code == 204


def test_put_replaces_the_dead_letter_queue_too(client):
    client.put("/v1/queues/failed", json={})
    client.put("/v1/queues/q", json={"max_receives": 1, "dead_letter_queue": "failed"})
    assert client.put("/v1/queues/q", json={"max_receives": 1}).get_json()["dead_letter_queue"] is None
    client.put("/v1/queues/q", json={"max_receives": 1, "dead_letter_queue": "failed"})
    cleared = client.put("/v1/queues/q", json={"max_receives": 1, "dead_letter_queue": None})
    assert cleared.get_json()["dead_letter_queue"] is None


def test_a_deleted_dead_letter_queue_leaves_messages_in_the_own_dead_letters(client):
    client.put("/v1/queues/failed", json={})
    client.put("/v1/queues/q", json={"max_receives": 1, "dead_letter_queue": "failed"})
    message_id = push(client).get_json()["id"]
    receive(client, visibility_timeout=0)
    assert client.delete("/v1/queues/failed").status_code == 204
    assert receive(client) == []
    assert [m["id"] for m in client.get("/v1/queues/q/dead").get_json()["items"]] == [message_id]
    assert client.get("/v1/queues/q").get_json()["dead_letter_queue"] == "failed"  # as configured
    assert client.get("/v1/queues/failed").status_code == 404


@pytest.mark.parametrize("config,words", [
    ({"max_receives": 1, "dead_letter_queue": "nope"}, "No queue nope"),
    ({"max_receives": 1, "dead_letter_queue": "q"}, "its own"),
    ({"max_receives": 0, "dead_letter_queue": "failed"}, "max_receives"),
    ({"dead_letter_queue": "failed"}, "max_receives"),
    ({"max_receives": 1, "dead_letter_queue": "a:b"}, "A-Za-z0-9"),
    ({"max_receives": 1, "dead_letter_queue": ""}, "A-Za-z0-9"),
    ({"max_receives": 1, "dead_letter_queue": 7}, "string"),
])
def test_put_rejects_a_bad_dead_letter_queue_naming_the_field(client, config, words):
    client.put("/v1/queues/failed", json={})
    body = assert_error(client.put("/v1/queues/q", json=config), 422, "dead_letter_queue")
    assert words in json.dumps(body["errors"]["dead_letter_queue"]), body
    assert client.get("/v1/queues/q").status_code == 404  # nothing was created


def test_put_refuses_a_dead_letter_queue_cycle(client):
    for name in ("a", "b", "c"):
        client.put(f"/v1/queues/{name}", json={})
    assert client.put("/v1/queues/b", json={"max_receives": 2, "dead_letter_queue": "c"}).status_code == 200
    assert client.put("/v1/queues/c", json={"max_receives": 2, "dead_letter_queue": "a"}).status_code == 200
    body = assert_error(client.put("/v1/queues/a", json={"max_receives": 2, "dead_letter_queue": "b"}), 422,
                        "dead_letter_queue")
    assert "cycle" in body["errors"]["dead_letter_queue"][0]
    assert client.get("/v1/queues/a").get_json()["dead_letter_queue"] is None  # unchanged
    assert client.put("/v1/queues/a", json={"max_receives": 2, "dead_letter_queue": "c"}).status_code == 422
    client.put("/v1/queues/c", json={})  # c no longer leads anywhere: a -> b -> c is a chain, not a cycle
    assert client.put("/v1/queues/a", json={"max_receives": 2, "dead_letter_queue": "b"}).status_code == 200


# -- the rest -----------------------------------------------------------------------------------


def test_routes_require_the_token_when_tokens_are_set(redis_url):
    client = create_app(make_settings(redis_url, api_tokens=("secret",))).test_client()
    assert client.get("/v1/queues").status_code == 401
    assert client.get("/v1/queues", headers={"Authorization": "Bearer secret"}).status_code == 200


def test_openapi_documents_the_queue_routes(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for path in ("/v1/queues", "/v1/queues/{name}", "/v1/queues/{name}/messages",
                 "/v1/queues/{name}/messages/batch", "/v1/queues/{name}/messages/receive",
                 "/v1/queues/{name}/messages/ack", "/v1/queues/{name}/messages/{message_id}",
                 "/v1/queues/{name}/dead", "/v1/queues/{name}/dead/redrive"):
        assert path in paths
    push_body = paths["/v1/queues/{name}/messages"]["post"]["requestBody"]["content"]
    assert set(push_body) == {"application/json", "text/plain"}
