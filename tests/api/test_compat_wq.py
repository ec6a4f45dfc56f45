"""/compat/wq (WQ's single queue) on a real Redis: push, receive with `amount` and the visibility
timeout, confirm with WQ's error body, and expired locks giving messages back with the same id.
Time is injected into the queue service, so lock expiry needs no sleeping."""
from __future__ import annotations

import json
import re
import uuid

import pytest

from app import create_app
from app.core.queues import STORED_DEFAULTS
from app.storage import queues as store_queues
from tests.support.clock import FakeClock
from tests.support.settings import make_settings

T0 = 1_800_000_000_000
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture
def clock():
    return FakeClock(T0)


def make_app(redis_url, clock, **overrides):
    return create_app(make_settings(redis_url, max_body_bytes=1024, **overrides), clock_ms=clock)


@pytest.fixture
def app(redis_url, clock):
    return make_app(redis_url, clock)


@pytest.fixture
def client(app):
    return app.test_client()


def push(client, body) -> str:
    response = client.post("/compat/wq/", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["messageID"]


def receive(client, query: str = "") -> list[dict]:
    response = client.get(f"/compat/wq/{query}")
    assert response.status_code == 200
    return response.get_json()["messages"]


def not_available(message_id: str) -> dict:
    return {"error": f"Message with ID {message_id} it's not available for confirm"}


def test_the_readme_example_push_receive_confirm(client):
    body = {"user": "foo", "value": 12, "valid": True, "binary": "MHgxZjFmMWY=", "samples": [1, 2, 3]}
    response = client.post("/compat/wq/", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 201
    assert list(response.get_json()) == ["messageID"]
    message_id = response.get_json()["messageID"]
    assert UUID.fullmatch(message_id) and str(uuid.UUID(message_id)) == message_id
    assert client.get("/compat/wq/").get_json() == {"messages": [{"id": message_id, "body": body}]}
    confirmed = client.patch(f"/compat/wq/{message_id}")
    assert confirmed.status_code == 204 and confirmed.data == b""
    assert receive(client) == []


def test_the_base_url_without_a_trailing_slash_works_too(client):
    response = client.post("/compat/wq", data='{"value": 12}', content_type="application/json")
    assert response.status_code == 201
    assert [m["body"] for m in client.get("/compat/wq").get_json()["messages"]] == [{"value": 12}]


def test_arrays_are_messages_too_and_any_content_type_is_read_as_json(client):
    response = client.post("/compat/wq/", data="[1, 2, 3]", content_type="text/plain")
    assert response.status_code == 201
    assert [m["body"] for m in receive(client)] == [[1, 2, 3]]


@pytest.mark.parametrize("raw", ['{"value": ', "not json", "", "NaN", "[1, Infinity]", "\ufeff{}"])
def test_malformed_json_is_400_with_an_error_body(client, raw):
    response = client.post("/compat/wq/", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert isinstance(response.get_json()["error"], str)


@pytest.mark.parametrize("raw", ["12", '"text"', "true", "null", "1.5"])
def test_a_json_scalar_is_400(client, raw):
    response = client.post("/compat/wq/", data=raw, content_type="application/json")
    assert response.status_code == 400
    assert "object or array" in response.get_json()["error"]
    assert receive(client) == []


def test_a_body_over_the_limit_is_413(client):
    big = json.dumps({"x": "y" * 1100})
    response = client.post("/compat/wq/", data=big, content_type="application/json")
    assert response.status_code == 413 and "1024" in response.get_json()["error"]
    assert client.post("/compat/wq/", json={"x": "y" * 1000}).status_code == 201


def test_messages_come_oldest_first_ten_by_default(client):
    ids = [push(client, {"n": n}) for n in range(12)]
    first = receive(client)
    assert [m["id"] for m in first] == ids[:10]
    assert [m["body"] for m in first] == [{"n": n} for n in range(10)]
    assert [m["id"] for m in receive(client)] == ids[10:]  # the first ten are locked
    assert receive(client) == []


@pytest.mark.parametrize("query, expected", [("?amount=3", 3), ("?amount=100", 12), ("?amount=2.9", 2),
                                             ("?amount=", 10), ("?amount=+4", 4)])
def test_amount_sets_how_many_messages_come(client, query, expected):
    for n in range(12):
        push(client, {"n": n})
    assert [m["body"]["n"] for m in receive(client, query)] == list(range(expected))


@pytest.mark.parametrize("query", ["?amount=0", "?amount=-5", "?amount=abc", "?amount=1e3", "?amount=ten"])
def test_an_unusable_amount_returns_no_messages(client, query):
    push(client, {"n": 1})
    assert receive(client, query) == []
    assert len(receive(client)) == 1  # nothing was locked by it


def test_a_huge_amount_is_capped(client):
    for _ in range(3):
        push(client, [])
    assert len(receive(client, "?amount=99999999999999999999")) == 3


def test_receiving_from_a_queue_never_pushed_to_is_empty(client):
    assert client.get("/compat/wq/").get_json() == {"messages": []}


def test_locked_messages_come_back_with_the_same_id_after_the_default_1000_ms(client, clock):
    first, second = push(client, {"a": 1}), push(client, {"b": 2})
    assert [m["id"] for m in receive(client)] == [first, second]
    clock.advance_ms(999)
    assert receive(client) == []
    clock.advance_ms(1)
    again = receive(client)
    assert again == [{"id": first, "body": {"a": 1}}, {"id": second, "body": {"b": 2}}]


def test_the_visibility_timeout_comes_from_wq_visibility_timeout_ms(redis_url, clock):
    client = make_app(redis_url, clock, wq_visibility_timeout_ms=5000).test_client()
    message_id = push(client, {"x": 1})
    assert len(receive(client)) == 1
    clock.advance_ms(4999)
    assert receive(client) == []
    clock.advance_ms(1)
    assert [m["id"] for m in receive(client)] == [message_id]


def test_confirm_deletes_a_locked_message_for_good(client, clock):
    message_id = push(client, {"x": 1})
    receive(client)
    assert client.patch(f"/compat/wq/{message_id}").status_code == 204
    clock.advance_ms(60_000)
    assert receive(client) == []
    again = client.patch(f"/compat/wq/{message_id}")
    assert again.status_code == 404 and again.get_json() == not_available(message_id)


def test_confirming_a_message_that_was_never_received_is_404(client):
    message_id = push(client, {"x": 1})
    response = client.patch(f"/compat/wq/{message_id}")
    assert response.status_code == 404 and response.get_json() == not_available(message_id)
    assert [m["id"] for m in receive(client)] == [message_id]  # still there


def test_confirming_after_the_lock_expired_is_404_and_the_message_stays(client, clock):
    message_id = push(client, {"x": 1})
    receive(client)
    clock.advance_ms(1000)
    response = client.patch(f"/compat/wq/{message_id}")
    assert response.status_code == 404 and response.get_json() == not_available(message_id)
    assert [m["id"] for m in receive(client)] == [message_id]
    assert client.patch(f"/compat/wq/{message_id}").status_code == 204  # locked again: confirmable


@pytest.mark.parametrize("message_id", ["c2d94881-8722-4c8e-a621-2114f83727c6", "not-a-uuid", "000000000001abc"])
def test_confirming_an_unknown_id_is_404_with_wqs_error_body(client, message_id):
    push(client, {"x": 1})
    response = client.patch(f"/compat/wq/{message_id}")
    assert response.status_code == 404
    assert response.get_json() == not_available(message_id)


def test_the_wq_queue_is_a_native_queue(client):
    message_id = push(client, {"native": True})
    queue = client.get("/v1/queues/wq").get_json()
    assert queue["visible"] == 1
    received = client.post("/v1/queues/wq/messages/receive", json={}).get_json()["messages"]
    assert [(m["id"], m["body"]) for m in received] == [(message_id, {"native": True})]


def test_ids_stay_unique_and_in_push_order_across_many_pushes(client):
    ids = [push(client, {"n": n}) for n in range(30)]
    assert len(set(ids)) == 30 and ids == sorted(ids)
    assert all(UUID.fullmatch(message_id) for message_id in ids)


@pytest.mark.parametrize("suffix", ["-4abcdef", "-4ab-8cd-0123", "-4abc-8def-0123456789a"])
def test_native_ids_keep_their_layout_whatever_their_random_suffix(store, suffix):
    """Only a suffix shaped exactly like the end of a UUID asks for the UUID layout; a native
    suffix (token_urlsafe, which may start with '-') never does, so push order is kept."""
    ids = store_queues.push(store, "q", now_ms=T0, id_suffix=suffix, defaults=STORED_DEFAULTS,
                            messages=[("tx", None), ("ty", None)])
    assert ids == [f"000000000001{suffix}", f"000000000002{suffix}"]
    uuid_ids = store_queues.push(store, "q", now_ms=T0, id_suffix="-4abc-8def-0123456789ab",
                                 defaults=STORED_DEFAULTS, messages=[("tz", None)])
    assert uuid_ids == ["00000000-0003-4abc-8def-0123456789ab"]
