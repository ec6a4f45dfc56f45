"""/compat/pushpull (the stdlib long-polling queue) on a real Redis: push and pull on both route
spellings, raw bodies, the newline rule, 204 after the long-poll timeout, one message to one
puller, and no message lost to a puller that went away (WSGI-level, and on a real gunicorn server
with a client that disconnects)."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import redis
import requests
from werkzeug.test import EnvironBuilder

from app import create_app
from app.compat.pushpull import PULL_LOCK_S, client_gone
from app.embedded import free_port
from app.extensions import services
from app.processes import ServiceProcesses, service_env
from app.storage.queues import channel
from tests.support.clock import FakeClock
from tests.support.settings import make_settings
from tests.support.waiting import wait_parked, wait_until

T0 = 1_800_000_000_000


@pytest.fixture
def app(redis_url):
    return create_app(make_settings(redis_url, long_poll_timeout_s=0.3, max_body_bytes=1024))


@pytest.fixture
def client(app):
    return app.test_client()


def pull(client, path: str):
    """GET as a server would: the body read in full, then the response closed."""
    response = client.get(path)
    response.get_data()
    response.close()
    return response


def counts(client, name: str) -> dict:
    queue = client.get(f"/v1/queues/{name}").get_json()
    return {key: queue[key] for key in ("visible", "in_flight")}


@pytest.mark.parametrize("push_route, pull_route", [("queues", "queues"), ("push", "pull"), ("queues", "pull"),
                                                    ("push", "queues")])
def test_push_then_pull_on_both_route_spellings(client, push_route, pull_route):
    pushed = client.post(f"/compat/pushpull/{push_route}/myqueue", data=b"my fancy data")
    assert pushed.status_code == 200 and pushed.data == b""
    pulled = pull(client, f"/compat/pushpull/{pull_route}/myqueue")
    assert pulled.status_code == 200
    assert pulled.data == b"my fancy data"


def test_messages_come_out_in_push_order_and_raw(client):
    bodies = [b'{"a": 1}', "caf\u00e9 \u2713".encode(), b"  spaces kept  ", b"tab\there", b"\r"]
    for body in bodies:
        assert client.post("/compat/pushpull/push/raw", data=body, content_type="application/json").status_code == 200
    assert [pull(client, "/compat/pushpull/pull/raw").data for _ in bodies] == bodies


def test_a_body_with_a_newline_is_refused_with_the_original_text(client):
    for body in (b"two\nlines", b"trailing\n", b"\n"):
        response = client.post("/compat/pushpull/push/lines", data=body)
        assert response.status_code == 400
        assert response.get_data(as_text=True) == "Message cannot contain newlines"
        assert response.mimetype == "text/plain"
    assert pull(client, "/compat/pushpull/pull/lines").status_code == 204


def test_an_empty_body_is_a_valid_message(client):
    assert client.post("/compat/pushpull/queues/empty", data=b"").status_code == 200
    pulled = pull(client, "/compat/pushpull/queues/empty")
    assert pulled.status_code == 200 and pulled.data == b""
    assert pull(client, "/compat/pushpull/queues/empty").status_code == 204


def test_pull_answers_204_after_the_long_poll_timeout(client):
    started = time.monotonic()
    response = pull(client, "/compat/pushpull/pull/nothing")
    elapsed = time.monotonic() - started
    assert response.status_code == 204 and response.data == b""
    assert 0.3 <= elapsed < 2


def test_long_poll_timeout_comes_from_htq_long_poll_timeout(redis_url):
    client = create_app(make_settings(redis_url, long_poll_timeout_s=0)).test_client()
    started = time.monotonic()
    assert pull(client, "/compat/pushpull/pull/instant").status_code == 204
    assert time.monotonic() - started < 0.3


def test_a_waiting_pull_answers_as_soon_as_a_message_is_pushed(redis_url):
    app = create_app(make_settings(redis_url, long_poll_timeout_s=10))
    result = {}

    def wait_for_message():
        started = time.monotonic()
        response = pull(app.test_client(), "/compat/pushpull/pull/wake")
        result.update(status=response.status_code, data=response.data, elapsed=time.monotonic() - started)

    puller = threading.Thread(target=wait_for_message)
    puller.start()
    with app.app_context():
        wait_parked(services().notifier, channel("wake"))
    assert app.test_client().post("/compat/pushpull/push/wake", data=b"now").status_code == 200
    puller.join(10)
    assert result["status"] == 200 and result["data"] == b"now"
    assert result["elapsed"] < 3


def test_a_message_goes_to_exactly_one_of_several_pullers(redis_url):
    app = create_app(make_settings(redis_url, long_poll_timeout_s=1.5))
    answers = []

    def one_pull():
        response = pull(app.test_client(), "/compat/pushpull/pull/one")
        answers.append((response.status_code, response.data))

    pullers = [threading.Thread(target=one_pull) for _ in range(4)]
    for puller in pullers:
        puller.start()
    with app.app_context():
        wait_parked(services().notifier, channel("one"), count=4)
    app.test_client().post("/compat/pushpull/push/one", data=b"only once")
    for puller in pullers:
        puller.join(10)
    assert sorted(answers) == [(200, b"only once")] + [(204, b"")] * 3


def test_a_written_message_is_acknowledged(client):
    client.post("/compat/pushpull/push/acked", data=b"x")
    assert pull(client, "/compat/pushpull/pull/acked").data == b"x"
    assert counts(client, "acked") == {"visible": 0, "in_flight": 0}


def test_a_json_message_pushed_natively_is_pulled_as_json_text(client):
    client.post("/v1/queues/mixed/messages", json={"k": [1, "\u00e9"]})
    client.post("/v1/queues/mixed/messages", data="plain", content_type="text/plain")
    assert pull(client, "/compat/pushpull/pull/mixed").data == '{"k":[1,"\u00e9"]}'.encode()
    assert pull(client, "/compat/pushpull/pull/mixed").data == b"plain"


def test_errors_are_plain_text(client):
    too_large = client.post("/compat/pushpull/push/big", data=b"x" * 1025)
    assert too_large.status_code == 413 and too_large.mimetype == "text/plain"
    assert "1024" in too_large.get_data(as_text=True)
    not_text = client.post("/compat/pushpull/push/bytes", data=b"\xff\xfe")
    assert not_text.status_code == 400 and not_text.get_data(as_text=True) == "Message must be UTF-8 text"
    for method in (client.post, client.get):
        bad_name = method("/compat/pushpull/queues/bad.name")
        assert bad_name.status_code == 400 and bad_name.mimetype == "text/plain"
        assert bad_name.get_data(as_text=True).startswith("Queue name must be")
    assert client.post("/compat/pushpull/push/big", data=b"x" * 1024).status_code == 200


# -- the response is what acknowledges: checked at the WSGI level ---------------------------------


def start_pull(app, name: str):
    """Call the app as a WSGI server does, up to the point where it would write the body."""
    started = {}

    def start_response(status, headers, exc_info=None):
        started.update(status=status, headers=dict(headers))

    environ = EnvironBuilder(path=f"/compat/pushpull/pull/{name}", method="GET").get_environ()
    return app(environ, start_response), started


def test_a_response_closed_before_its_body_was_written_gives_the_message_back_at_once(app, client):
    client.post("/compat/pushpull/push/unwritten", data=b"keep me")
    client.post("/compat/pushpull/push/unwritten", data=b"second")
    app_iter, started = start_pull(app, "unwritten")
    assert started["status"].startswith("200") and started["headers"]["Content-Length"] == "7"
    assert counts(client, "unwritten") == {"visible": 1, "in_flight": 1}
    app_iter.close()  # the server could not write the body: the client had gone
    assert counts(client, "unwritten") == {"visible": 2, "in_flight": 0}
    assert pull(client, "/compat/pushpull/pull/unwritten").data == b"keep me"  # at its place, first


def test_a_response_whose_write_failed_midway_gives_the_message_back(app, client):
    client.post("/compat/pushpull/push/broken", data=b"payload")
    app_iter, _ = start_pull(app, "broken")
    chunks = iter(app_iter)
    assert next(chunks) == b"payload"  # handed to the server, whose write then raised
    app_iter.close()
    assert counts(client, "broken") == {"visible": 1, "in_flight": 0}


def test_a_response_written_in_full_acknowledges_its_message_on_close(app, client):
    client.post("/compat/pushpull/push/written", data=b"done")
    app_iter, _ = start_pull(app, "written")
    assert b"".join(app_iter) == b"done"
    assert counts(client, "written") == {"visible": 0, "in_flight": 1}  # not before the server is done
    app_iter.close()
    assert counts(client, "written") == {"visible": 0, "in_flight": 0}


def test_a_web_process_that_died_mid_pull_leaves_the_message_to_come_back_when_its_lock_ends(redis_url):
    clock = FakeClock(T0)
    app = create_app(make_settings(redis_url, long_poll_timeout_s=0.3, max_body_bytes=1024), clock_ms=clock)
    client = app.test_client()
    client.post("/compat/pushpull/push/orphan", data=b"survivor")
    start_pull(app, "orphan")  # never written, never closed: the process died
    assert pull(client, "/compat/pushpull/pull/orphan").status_code == 204
    clock.advance(PULL_LOCK_S + 0.001)
    assert pull(client, "/compat/pushpull/pull/orphan").data == b"survivor"


def test_a_closed_client_connection_is_seen_without_blocking():
    server_side, client_side = socket.socketpair()
    with server_side:
        assert client_gone({"gunicorn.socket": server_side}) is False  # waiting, silent
        client_side.sendall(b"GET /next HTTP/1.1\r\n")  # a pipelined request is no goodbye
        assert client_gone({"werkzeug.socket": server_side}) is False
        client_side.close()
        server_side.recv(100)
        assert client_gone({"gunicorn.socket": server_side}) is True
    assert client_gone({}) is False  # no socket to look at: the write decides


# -- a real gunicorn server and a client that disconnects ---------------------------------------


@pytest.fixture
def gunicorn(redis_url, tmp_path):
    port = free_port()
    procs = ServiceProcesses(service_env(redis_url, WEB_CONCURRENCY="1", HTQ_LONG_POLL_TIMEOUT="3",
                                         LOG_LEVEL="WARNING"), tmp_path)
    try:
        yield procs.start_web(port), port
    finally:
        procs.stop_all()


def pattern_subscribers(client: redis.Redis) -> int:
    """Connections subscribed to a pattern: a web process's notifier has one once a long poll waits."""
    return sum(1 for connection in client.client_list() if int(connection.get("psub", 0)))


def server_saw_close(server_port: int, client_port: int) -> bool:
    """The server's end of the connection from client_port is in CLOSE_WAIT: the client's FIN arrived."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if (int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)) == (server_port, client_port):
            return state == "08"
    return False


def test_a_puller_that_disconnected_while_waiting_does_not_lose_the_message(gunicorn, redis_url):
    base, port = gunicorn
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    notices = store.pubsub(ignore_subscribe_messages=True)
    notices.subscribe(channel("files"))
    subscribers_before = pattern_subscribers(store)
    gone = socket.create_connection(("127.0.0.1", port))
    gone.sendall(b"GET /compat/pushpull/pull/files HTTP/1.1\r\nHost: test\r\n\r\n")
    # Its long poll waits on the server: the web process's notifier subscribed for it.
    wait_until(lambda: pattern_subscribers(store) > subscribers_before, 10)
    client_port = gone.getsockname()[1]
    gone.close()
    wait_until(lambda: server_saw_close(port, client_port), 5, 0.005)
    assert requests.post(base + "/compat/pushpull/push/files", data=b"line 1", timeout=5).status_code == 200
    # Two notices on the queue's channel: the push, then the departed puller (the only one, so it
    # received the message) giving it back.
    assert [wait_until(lambda: notices.get_message(timeout=1), 5)["data"] for _ in range(2)] == ["1", "1"]
    notices.close()
    store.close()
    queue = requests.get(base + "/v1/queues/files", timeout=5).json()
    assert (queue["visible"], queue["in_flight"]) == (1, 0)
    received = requests.post(base + "/v1/queues/files/messages/receive", json={}, timeout=5).json()["messages"]
    assert [(m["body"], m["receive_count"]) for m in received] == [("line 1", 2)]


def test_gunicorn_pushes_and_pulls_over_keep_alive_connections(gunicorn):
    base, _ = gunicorn
    with requests.Session() as session:
        for index in range(20):
            assert session.post(base + "/compat/pushpull/push/x", data=f"m{index}", timeout=5).status_code == 200
        pulled = [session.get(base + "/compat/pushpull/pull/x", timeout=10).text for _ in range(20)]
        assert pulled == [f"m{index}" for index in range(20)]
        assert session.get(base + "/compat/pushpull/pull/x", timeout=10).status_code == 204
