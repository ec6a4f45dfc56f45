"""What the web server refuses, through a real gunicorn (config/gunicorn.py, gevent's pywsgi): a
body over the request limit whether or not it is chunked (413, never cut short and stored), a
header block too large (431), a request line too long (414), and garbage (400), each in htq's
JSON error shape (a compat profile's own for the body limit, which the app answers)."""
from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterable

import pytest

from app.embedded import free_port
from app.processes import ServiceProcesses, service_env
from config.web_worker import MAX_HEADER_BYTES, MAX_HEADER_FIELDS

MAX_BODY_BYTES = 4096
REQUEST_LIMIT = 16 * MAX_BODY_BYTES + 64 * 1024  # Settings.max_request_bytes
TWENTY_MB = 20 * 1000 * 1000


@pytest.fixture(scope="module")
def web(redis_server, tmp_path_factory):
    procs = ServiceProcesses(service_env(redis_server.url, HTQ_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
                                         WEB_CONCURRENCY="1"), tmp_path_factory.mktemp("web"))
    port = free_port()
    procs.start_web(port)
    yield port
    procs.stop_all()


def exchange(port: int, head: bytes, chunks: Iterable[bytes] = (), chunked: bool = False):
    """Send a request (its body in `chunks`, with chunked framing if asked) on a fresh connection
    and read the answer: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for chunk in chunks:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.headers, response.read()


def post(port: int, path: str, body_chunks: list[bytes], *, chunked: bool,
         content_type: str = "application/json"):
    framing = (b"Transfer-Encoding: chunked" if chunked
               else b"Content-Length: %d" % sum(len(chunk) for chunk in body_chunks))
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n%s\r\n\r\n" % (
        path.encode(), content_type.encode(), framing)
    return exchange(port, head, body_chunks, chunked)


def padded(json_text: bytes, size: int) -> list[bytes]:
    """Valid JSON followed by whitespace up to `size` bytes, in 64 KiB pieces: a body whose
    first bytes, wherever it is cut, still parse."""
    body = json_text + b" " * (size - len(json_text))
    return [body[i:i + 65536] for i in range(0, len(body), 65536)]


def get(port: int, path: str = "/healthz", extra: bytes = b"") -> tuple[int, http.client.HTTPMessage, bytes]:
    return exchange(port, b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path.encode(), extra))


def native_error(status: int, headers, body: bytes, code: int) -> dict:
    assert status == code, body
    assert headers["Content-Type"].startswith("application/json")
    error = json.loads(body)
    assert set(error) == {"code", "status", "message"} and error["code"] == code
    return error


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
@pytest.mark.parametrize("size", [REQUEST_LIMIT + 1, TWENTY_MB])
def test_a_body_over_the_limit_is_413_and_nothing_is_stored(web, chunked, size):
    queue = f"over{size}{chunked}".lower()
    batch = b'{"messages": [{"body": 1}, {"body": 2}]}'
    status, headers, body = post(web, f"/v1/queues/{queue}/messages/batch", padded(batch, size), chunked=chunked)
    assert native_error(status, headers, body, 413)["message"] == "Request body too large"
    assert get(web, f"/v1/queues/{queue}")[0] == 404


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "content-length"])
def test_a_body_at_the_limit_is_taken_whole(web, chunked):
    queue = f"atlimit{chunked}".lower()
    batch = b'{"messages": [{"body": 1}, {"body": "' + b"x" * 1000 + b'"}]}'
    status, _, body = post(web, f"/v1/queues/{queue}/messages/batch", padded(batch, REQUEST_LIMIT), chunked=chunked)
    assert status == 201 and len(json.loads(body)["ids"]) == 2, body
    assert json.loads(get(web, f"/v1/queues/{queue}")[2])["visible"] == 2


@pytest.mark.parametrize("path, content_type, shape", [
    ("/v1/requests", "application/json", lambda body: json.loads(body)["code"] == 413),
    ("/v1/batches/log/records", "application/json", lambda body: json.loads(body)["code"] == 413),
    ("/compat/wq/", "application/json", lambda body: set(json.loads(body)) == {"error"}),
    ("/compat/timers/timers", "application/json", lambda body: json.loads(body)["error"]["code"] == 413),
    ("/compat/forwarder/log", "application/json",
     lambda body: json.loads(body)["message"].startswith("decode: http: request body too large")),
    ("/compat/pushpull/push/chunky", "text/plain",
     lambda body: body == f"Message is over the limit of {MAX_BODY_BYTES} bytes".encode()),
])
def test_a_chunked_body_over_the_limit_is_413_in_each_profiles_shape(web, path, content_type, shape):
    status, _, body = post(web, path, padded(b'{"url": "http://127.0.0.1:9/x", "user_id": 1}', TWENTY_MB),
                           chunked=True, content_type=content_type)
    assert status == 413 and shape(body), body


def test_headers_over_the_byte_limit_are_431(web):
    for path in ("/healthz", "/compat/pushpull/pull/q"):  # before any route: the same shape everywhere
        error = native_error(*get(web, path, b"X-Big: " + b"a" * 70_000 + b"\r\n"), 431)
        assert str(MAX_HEADER_BYTES) in error["message"]
    many_lines = b"".join(b"X-%d: %s\r\n" % (i, b"a" * 1000) for i in range(MAX_HEADER_BYTES // 1000 + 1))
    native_error(*get(web, "/healthz", many_lines), 431)


def test_more_header_fields_than_the_limit_are_431(web):
    fields = b"".join(b"X-%d: a\r\n" % i for i in range(MAX_HEADER_FIELDS))  # and Host: one too many
    native_error(*get(web, "/healthz", fields), 431)


def test_headers_within_the_limits_are_served(web):
    fields = b"".join(b"X-%d: %s\r\n" % (i, b"a" * 500) for i in range(MAX_HEADER_FIELDS - 1))  # and Host
    assert len(fields) < MAX_HEADER_BYTES
    status, _, body = get(web, "/healthz", fields)
    assert (status, body) == (200, b"OK")


def test_a_request_line_too_long_is_414_and_garbage_is_400(web):
    assert "request line" in native_error(*get(web, "/healthz?" + "a" * 9000), 414)["message"]
    native_error(*exchange(web, b"NOT HTTP AT ALL\r\n\r\n"), 400)
