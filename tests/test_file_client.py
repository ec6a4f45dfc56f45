"""app/file_client.py against a real HTTP server on 127.0.0.1 (tests/support/http_target.py): typed
errors decided from the status and the error body, 413 splits, and which failures are retried."""
from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from app import file_client
from app.cli import main
from app.embedded import free_port
from app.file_client import (
    ClientError,
    HTTPError,
    LineTooLarge,
    NoReply,
    QueueClient,
    QueueMissing,
    Unreachable,
    push_lines,
)
from tests.support.http_target import HttpTarget, Reply

PUSH = "/v1/queues/q/messages/batch"
RECEIVE = "/v1/queues/q/messages/receive"
ACK = "/v1/queues/q/messages/ack"
QUEUES = "/v1/queues"
NO_QUEUE = Reply(404, json.dumps({"code": 404, "status": "Not Found", "message": "No queue q"}).encode())
NO_ROUTE = Reply(404, json.dumps({"code": 404, "status": "Not Found",
                                  "message": "The requested URL was not found on the server."}).encode())
STORED = Reply(201, b'{"ids": []}')
NOTHING = Reply(200, b'{"messages": []}')
ONE_MESSAGE = Reply(200, b'{"messages": [{"id": "m1", "receipt": "r1", "body": "hello"}]}')
UNAVAILABLE = Reply(503, json.dumps({"code": 503, "status": "Service Unavailable",
                                     "message": "Storage unavailable, try again shortly"}).encode(),
                    {"Retry-After": "5"})


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(http_target, sleeps) -> QueueClient:
    return QueueClient(http_target.url, "q", "tok", sleep=sleeps.append)


def pushed_bodies(target: HttpTarget) -> list[list[str]]:
    return [[m["body"] for m in json.loads(r.body)["messages"]] for r in target.requests_to(PUSH)]


def lines(*texts: str) -> list[bytes]:
    return [f"{text}\n".encode() for text in texts]


# -- typed errors ---------------------------------------------------------------------------------

def test_an_error_answer_carries_its_status_message_and_field_errors(http_target, client):
    body = {"code": 422, "status": "Unprocessable Entity", "message": "Bad queue name",
            "errors": {"name": ["Must match [A-Za-z0-9_-]{1,80}."]}}
    http_target.reply(PUSH, Reply(422, json.dumps(body).encode()))
    with pytest.raises(HTTPError) as raised:
        client.push(["x"])
    assert (raised.value.status, raised.value.message, raised.value.errors) == (
        422, "Bad queue name", {"name": ["Must match [A-Za-z0-9_-]{1,80}."]})
    assert str(raised.value) == (f"POST {http_target.url}{PUSH}: HTTP 422: Bad queue name "
                                 '{"name": ["Must match [A-Za-z0-9_-]{1,80}."]}')


def test_a_404_in_the_api_shape_is_a_missing_queue_once_the_queue_api_answers(http_target, client):
    http_target.reply(RECEIVE, NO_QUEUE)  # GET /v1/queues: the target's default 200
    with pytest.raises(QueueMissing) as raised:
        client.receive(0)
    assert raised.value.status == 404
    assert [r.path for r in http_target.received] == [RECEIVE, QUEUES]


def test_the_queue_api_is_asked_once_per_client(http_target, client):
    http_target.reply(RECEIVE, NO_QUEUE, NO_QUEUE)
    for _ in range(2):
        with pytest.raises(QueueMissing):
            client.receive(0)
    assert len(http_target.requests_to(QUEUES)) == 1


def test_a_404_after_a_successful_call_is_a_missing_queue_without_asking(http_target, client):
    http_target.reply(RECEIVE, NOTHING, NO_QUEUE)
    assert client.receive(0) == []
    with pytest.raises(QueueMissing):
        client.receive(0)  # deleted in between
    assert http_target.requests_to(QUEUES) == []


def test_pending_is_zero_for_a_missing_queue(http_target, client):
    http_target.reply("/v1/queues/q", NO_QUEUE)
    assert client.pending() == 0


def test_a_404_where_the_queue_api_is_not_is_an_http_error_not_a_missing_queue(http_target, client):
    """A wrong base URL: the same error shape, but GET /v1/queues is 404 too."""
    http_target.reply(RECEIVE, NO_ROUTE)
    http_target.reply(QUEUES, NO_ROUTE)
    with pytest.raises(HTTPError) as raised:
        client.receive(0)
    assert not isinstance(raised.value, QueueMissing)
    assert raised.value.status == 404 and "HTTP 404: The requested URL was not found" in str(raised.value)


def test_a_404_page_not_in_the_api_shape_is_not_a_missing_queue(http_target, client):
    http_target.reply(RECEIVE, Reply(404, b"<html>Not Found</html>", {"Content-Type": "text/html"}))
    with pytest.raises(HTTPError) as raised:
        client.receive(0)
    assert not isinstance(raised.value, QueueMissing) and raised.value.status == 404
    assert http_target.requests_to(QUEUES) == []


def test_a_success_whose_body_is_not_json_is_a_client_error(http_target, client):
    http_target.reply(RECEIVE, Reply(200, b"<html>a login page</html>"))
    with pytest.raises(ClientError, match="not JSON") as raised:
        client.receive(0)
    assert raised.value.status is None


# -- pushing lines: 413 splits --------------------------------------------------------------------

def test_a_batch_the_server_finds_too_large_is_split_in_halves(http_target, client):
    http_target.reply(PUSH, Reply(413))
    pushed = list(push_lines(client, lines("a", "bb", "ccc", "dddd")))
    assert pushed_bodies(http_target) == [["a", "bb", "ccc", "dddd"], ["a", "bb"], ["ccc", "dddd"]]
    assert pushed == [(2, 5), (2, 9)]


def test_a_single_line_the_server_refuses_is_named_after_the_lines_before_it_are_pushed(http_target, client):
    http_target.reply(PUSH, Reply(413), STORED, Reply(413))
    pushed = []
    with pytest.raises(LineTooLarge) as raised:
        pushed.extend(push_lines(client, lines("fine", "huge")))
    assert pushed == [(1, 5)]
    assert (raised.value.line, raised.value.status) == (2, 413)
    assert str(raised.value).startswith("line 2 is too large for the server: POST ")


def test_lines_go_in_batches_of_100(http_target, client):
    pushed = list(push_lines(client, lines(*(str(n) for n in range(250)))))
    assert [len(batch) for batch in pushed_bodies(http_target)] == [100, 100, 50]
    assert [count for count, _ in pushed] == [100, 100, 50]


def test_a_line_that_is_not_utf8_is_named(client):
    with pytest.raises(file_client.LineNotText) as raised:
        list(push_lines(client, [b"fine\n", b"caf\xe9\n"]))
    assert raised.value.line == 2


def test_write_says_how_many_lines_were_pushed_before_a_failure(http_target, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("".join(f"{n}\n" for n in range(150)))
    unauthorized = {"code": 401, "status": "Unauthorized", "message": "Missing or wrong bearer token"}
    http_target.reply(PUSH, STORED, Reply(401, json.dumps(unauthorized).encode()))
    result = CliRunner().invoke(main, ["client", "write", http_target.url, "q", str(source), "--token", "x"])
    assert result.exit_code == 1
    assert ("HTTP 401: Missing or wrong bearer token (give a token with --token or HTQ_TOKEN) "
            "(100 lines were pushed before this)") in result.output


# -- retries --------------------------------------------------------------------------------------

def refusing_target() -> HttpTarget:
    """An HttpTarget not listening yet: its port refuses connections until listen()."""
    target = HttpTarget()
    target.server.socket.close()
    return target


def listen(target: HttpTarget) -> None:
    server = target.server
    server.socket = socket.socket(server.address_family, server.socket_type)
    server.server_bind()
    server.server_activate()
    target.start()


def test_a_refused_push_is_retried_and_succeeds_once_the_server_listens():
    target = refusing_target()
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) == 2:
            listen(target)

    try:
        assert list(push_lines(QueueClient(target.url, "q", None, sleep=sleep), lines("a", "b"))) == [(2, 4)]
        assert waited == [0.5, 1.0]
        assert pushed_bodies(target) == [["a", "b"]]  # once
    finally:
        target.stop()


def test_a_server_that_never_listens_is_unreachable_after_growing_waits(sleeps):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable) as raised:
        QueueClient(url, "q", None, sleep=sleeps.append).push(["a"])
    assert sleeps == [0.5, 1.0, 2.0]
    assert (raised.value.status, raised.value.attempts) == (None, file_client.ATTEMPTS)
    assert str(raised.value).startswith(f"cannot reach {url}: ")
    assert str(raised.value).endswith("Connection refused (after 4 attempts)")


def test_a_401_is_not_retried(http_target, client, sleeps):
    http_target.reply(RECEIVE, Reply(401, b'{"code": 401, "message": "Missing or wrong bearer token"}'))
    with pytest.raises(HTTPError) as raised:
        client.receive(0)
    assert raised.value.status == 401 and raised.value.attempts == 1
    assert len(http_target.requests_to(RECEIVE)) == 1 and sleeps == []


def test_a_push_whose_answer_timed_out_is_not_sent_again(http_target, sleeps):
    """It may have been stored: sending it again could push its lines twice."""
    http_target.reply(PUSH, Reply(201, b"{}", delay_s=1.0))
    with pytest.raises(NoReply) as raised:
        QueueClient(http_target.url, "q", None, timeout_s=0.2, sleep=sleeps.append).push(["a"])
    assert raised.value.status is None and "timed out" in str(raised.value)
    assert len(http_target.requests_to(PUSH)) == 1 and sleeps == []


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_push_answered_with_a_gateway_or_storage_error_is_not_sent_again(http_target, client, sleeps, status):
    http_target.reply(PUSH, Reply(status, UNAVAILABLE.body, UNAVAILABLE.headers))
    with pytest.raises(HTTPError) as raised:
        client.push(["a"])
    assert raised.value.status == status
    assert len(http_target.requests_to(PUSH)) == 1 and sleeps == []


def test_a_push_answered_503_with_nothing_stored_is_retried_after_its_retry_after(http_target, client, sleeps):
    """A full Redis (or one never reached) stored nothing, and the server says so."""
    http_target.reply(PUSH, Reply(503, UNAVAILABLE.body, {"Retry-After": "30", "Htq-Nothing-Stored": "true"}))
    client.push(["a"])
    assert pushed_bodies(http_target) == [["a"], ["a"]] and sleeps == [10.0]  # Retry-After capped


def test_a_push_refused_with_429_is_retried_after_its_retry_after(http_target, client, sleeps):
    http_target.reply(PUSH, Reply(429, b"", {"Retry-After": "3"}))
    client.push(["a"])
    assert pushed_bodies(http_target) == [["a"], ["a"]] and sleeps == [3.0]


def test_a_receive_answered_503_is_retried_after_its_retry_after(http_target, client, sleeps):
    http_target.reply(RECEIVE, UNAVAILABLE, ONE_MESSAGE)
    assert [m["body"] for m in client.receive(0)] == ["hello"]
    assert sleeps == [5.0]


@pytest.mark.parametrize("status", [502, 504])
def test_a_receive_answered_by_a_failing_gateway_is_retried_with_backoff(http_target, client, sleeps, status):
    http_target.reply(RECEIVE, Reply(status), Reply(status), ONE_MESSAGE)
    assert len(client.receive(0)) == 1
    assert sleeps == [0.5, 1.0]


def test_a_receive_whose_answer_timed_out_is_retried(http_target, sleeps):
    http_target.reply(RECEIVE, Reply(200, NOTHING.body, delay_s=1.0), ONE_MESSAGE)
    client = QueueClient(http_target.url, "q", None, timeout_s=0.2, sleep=sleeps.append)
    assert len(client.receive(0)) == 1
    assert len(http_target.requests_to(RECEIVE)) == 2 and sleeps == [0.5]


def test_an_ack_answered_503_is_retried(http_target, client, sleeps):
    http_target.reply(ACK, Reply(503), Reply(200, b'{"acked": 1, "failed": []}'))
    assert client.ack([{"id": "m1", "receipt": "r1"}]) == []
    assert len(http_target.requests_to(ACK)) == 2 and sleeps == [0.5]


def test_a_transient_failure_that_lasts_gives_up_after_the_last_attempt(http_target, client, sleeps):
    http_target.reply(RECEIVE, *[Reply(502)] * file_client.ATTEMPTS)
    with pytest.raises(HTTPError) as raised:
        client.receive(0)
    assert raised.value.status == 502 and raised.value.attempts == file_client.ATTEMPTS
    assert "HTTP 502 (after 4 attempts)" in str(raised.value)
    assert len(http_target.requests_to(RECEIVE)) == file_client.ATTEMPTS


def test_a_retry_after_is_capped_and_read_as_a_date_too(http_target, client, sleeps):
    http_target.reply(RECEIVE, Reply(503, b"", {"Retry-After": "3600"}),
                      Reply(503, b"", {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}), NOTHING)
    assert client.receive(0) == []
    assert sleeps == [file_client.RETRY_AFTER_MAX_S] * 2
