"""A 204 carries no body and no Content-Type, on every kind of route: native, compat, long poll."""
from __future__ import annotations

import pytest

from app import create_app
from tests.support.settings import make_settings


@pytest.fixture
def client(redis_url, sender):
    from app.core.publish import Publisher

    return create_app(make_settings(redis_url, long_poll_timeout_s=0.1), publisher=Publisher(sender)).test_client()


def assert_no_content(response):
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.data == b""
    assert "Content-Type" not in response.headers, dict(response.headers)


def test_deleting_a_queue_and_acknowledging_a_message_answer_204_without_a_content_type(client):
    client.put("/v1/queues/q", json={})
    pushed = client.post("/v1/queues/q/messages", json={"n": 1}).get_json()["id"]
    assert_no_content(client.delete(f"/v1/queues/q/messages/{pushed}"))
    assert_no_content(client.delete("/v1/queues/q"))


def test_deleting_a_batch_and_canceling_a_request_answer_204_without_a_content_type(client):
    client.put("/v1/batches/b", json={"endpoint": "http://127.0.0.1:9/hook"})
    assert_no_content(client.delete("/v1/batches/b"))
    created = client.post("/v1/requests", json={"url": "http://127.0.0.1:9/hook", "delay": 600}).get_json()
    assert_no_content(client.delete(f"/v1/requests/{created['id']}"))
    assert_no_content(client.delete(f"/v1/requests/{created['id']}"))  # repeated


def test_compat_routes_answer_204_without_a_content_type(client):
    assert_no_content(client.get("/compat/pushpull/pull/empty"))  # the long poll ran out
    assert client.get("/healthz").headers["Content-Type"].startswith("text/plain")  # others keep theirs
