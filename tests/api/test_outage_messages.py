"""A 503 on a write says whether the write may have happened: nothing was stored when Redis
refused the connection; it may have been when Redis took the command and did not answer in time.
Both outages are real: a closed port, and a server that accepts connections and never answers."""
from __future__ import annotations

import socket
import threading

import pytest

from app import create_app
from app.embedded import free_port
from app.storage import client as storage_client
from tests.support.settings import make_settings

URL = "http://127.0.0.1:9/hook"
NOTHING_STORED = "Storage unavailable: nothing was stored; try again shortly"
MAY_HAVE_BEEN_STORED = "the write may have been stored; check before retrying"
RETRY_WITH_THE_KEY = "the request may have been stored; retry with the same Idempotency-Key"


@pytest.fixture
def silent_redis():
    """A TCP server that accepts connections, reads what it is sent and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            held.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()
    for connection in held:
        connection.close()


def client_of(redis_url: str):
    return create_app(make_settings(redis_url, webhook_post_endpoint=URL)).test_client()


WRITES = [
    ("post", "/v1/requests", {"url": URL}),
    ("put", "/v1/queues/q", {}),
    ("post", "/v1/queues/q/messages", {"a": 1}),
    ("delete", "/v1/queues/q/messages/m1", None),
    ("post", "/v1/batches/b/records", {"a": 1}),
]


@pytest.mark.parametrize("method, path, body", WRITES)
def test_a_write_refused_a_connection_says_nothing_was_stored(method, path, body):
    response = getattr(client_of(f"redis://127.0.0.1:{free_port()}/0"), method)(path, json=body)
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["message"] == NOTHING_STORED
    assert response.headers["Htq-Nothing-Stored"] == "true"  # for programs: safe to send again


@pytest.mark.parametrize("method, path, body", WRITES)
def test_a_write_that_timed_out_says_it_may_have_been_stored(monkeypatch, silent_redis, method, path, body):
    monkeypatch.setattr(storage_client, "SOCKET_TIMEOUT_S", 0.3)
    response = getattr(client_of(silent_redis), method)(path, json=body)
    assert response.status_code == 503 and response.headers["Retry-After"]
    expected = RETRY_WITH_THE_KEY if path == "/v1/requests" else MAY_HAVE_BEEN_STORED
    assert response.get_json()["message"] == f"Storage unavailable: {expected}"
    assert "Htq-Nothing-Stored" not in response.headers


def test_a_read_says_only_to_try_again(monkeypatch, silent_redis):
    monkeypatch.setattr(storage_client, "SOCKET_TIMEOUT_S", 0.3)
    for redis_url in (silent_redis, f"redis://127.0.0.1:{free_port()}/0"):
        response = client_of(redis_url).get("/v1/requests")
        assert response.status_code == 503
        assert response.get_json()["message"] == "Storage unavailable, try again shortly"
        assert "Htq-Nothing-Stored" not in response.headers  # a read: nothing to store


def test_compat_profiles_say_it_in_their_own_shape(monkeypatch, silent_redis):
    refused = client_of(f"redis://127.0.0.1:{free_port()}/0")
    assert refused.post("/compat/wq/", json={"a": 1}).get_json() == {"error": NOTHING_STORED}
    pushed = refused.post("/compat/pushpull/push/q", data=b"x")
    assert pushed.get_data(as_text=True) == NOTHING_STORED and pushed.headers["Htq-Nothing-Stored"] == "true"
    monkeypatch.setattr(storage_client, "SOCKET_TIMEOUT_S", 0.3)
    timed_out = client_of(silent_redis).post("/compat/forwarder/log", json={"user_id": 1})
    assert timed_out.status_code == 503
    assert timed_out.get_json() == {"message": f"Storage unavailable: {MAY_HAVE_BEEN_STORED}"}
