"""Delivery against real HTTP servers on 127.0.0.1: classification, limits, headers, signing, SSRF guard."""
from __future__ import annotations

import base64
import hashlib
import hmac
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from workers import delivery
from workers.delivery import Deliverer, DeliveryConfig, classify, parse_retry_after

SECRET_KEY = b"htq test signing key"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int


@dataclass
class Server:
    url: str
    received: list[Received] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def paths(self) -> list[str]:
        return [r.path for r in self.received]


class Handler(BaseHTTPRequestHandler):
    """Answers by path: /status/<code>, /redirect, /target, /big?size=, /trickle, /slow, /echo."""

    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be observed
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        state: Server = self.server.state  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        state.received.append(Received(self.command, url.path, dict(self.headers), body,
                                        self.client_address[1]))
        try:
            if url.path.startswith("/status/"):
                names = {"retry_after": "Retry-After", "set_cookie": "Set-Cookie"}
                extra = {header: query[name] for name, header in names.items() if name in query}
                self._answer(int(url.path.rsplit("/", 1)[1]), b"answer", extra)
            elif url.path == "/redirect":
                self._answer(302, b"", {"Location": "/target"})
            elif url.path == "/echo":
                self._answer(200, body)
            elif url.path == "/big":
                self._stream(int(query["size"]), chunk=64 * 1024, pause_s=0)
            elif url.path == "/trickle":
                self._stream(200, chunk=1, pause_s=0.05)
            elif url.path == "/slow":
                state.stop.wait(5)
                self._answer(200, b"late")
            else:
                self._answer(200, b"ok")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped reading, as it should

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, size: int, chunk: int, pause_s: float) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        state: Server = self.server.state  # type: ignore[attr-defined]
        sent = 0
        while sent < size and not state.stop.is_set():
            piece = b"x" * min(chunk, size - sent)
            self.wfile.write(piece)
            self.wfile.flush()
            sent += len(piece)
            if pause_s:
                state.stop.wait(pause_s)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serving(ssl_context: ssl.SSLContext | None = None) -> Iterator[Server]:
    """A threaded HTTP(S) server on a free port; handler threads are joined at the end."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = False  # so server_close() joins every handler thread
    if ssl_context is not None:
        httpd.socket = ssl_context.wrap_socket(httpd.socket, server_side=True)
    scheme = "https" if ssl_context else "http"
    state = Server(url=f"{scheme}://127.0.0.1:{httpd.server_port}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as state:
        yield state


@pytest.fixture
def make_deliverer(server):
    """Deliverers closed before the server stops, so no keep-alive connection holds a handler."""
    made: list[Deliverer] = []

    def make(**config) -> Deliverer:
        config.setdefault("allow_private", True)
        made.append(Deliverer(DeliveryConfig(**config)))
        return made[-1]

    yield make
    for deliverer in made:
        deliverer.close()


def send(deliverer: Deliverer, url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
         body: bytes | None = None, timeout_s: float = 5.0, attempt: int = 1):
    return deliverer.send(delivery_id="req_1", attempt=attempt, method=method, url=url,
                          headers=headers or {}, body=body, timeout_s=timeout_s)


# classification

@pytest.mark.parametrize("status, verdict", [
    (200, "succeeded"), (201, "succeeded"), (204, "succeeded"), (299, "succeeded"),
    (301, "failed"), (304, "failed"), (400, "failed"), (401, "failed"), (404, "failed"), (422, "failed"),
    (408, "retry"), (425, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"),
    (599, "retry"), (100, "failed"), (600, "failed"),
])
def test_classify_follows_the_retry_rule(status, verdict):
    assert classify(status) == verdict


@pytest.mark.parametrize("status, verdict", [
    (200, "succeeded"), (204, "succeeded"), (303, "failed"), (404, "failed"), (408, "retry"),
    (425, "retry"), (429, "retry"), (500, "retry"), (503, "retry"),
])
def test_answer_status_decides_the_verdict(make_deliverer, server, status, verdict):
    outcome = send(make_deliverer(), f"{server.url}/status/{status}")
    assert (outcome.verdict, outcome.status_code, outcome.error) == (verdict, status, None)


def test_outcome_carries_reason_headers_body_and_elapsed(make_deliverer, server):
    outcome = send(make_deliverer(), f"{server.url}/status/429")
    assert outcome.reason == "Too Many Requests"
    assert outcome.headers["Content-Length"] == "6"
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in outcome.headers.items())
    assert outcome.body == b"answer" and outcome.truncated is False
    assert 0 <= outcome.elapsed_ms < 2000


def test_request_body_and_method_are_sent_as_given(make_deliverer, server):
    outcome = send(make_deliverer(), f"{server.url}/echo", method="put", body=b'{"a": 1}')
    assert outcome.body == b'{"a": 1}'
    assert server.received[0].method == "PUT"


def test_head_request_succeeds_with_an_empty_body(make_deliverer, server):
    outcome = send(make_deliverer(), f"{server.url}/status/200", method="HEAD")
    assert (outcome.verdict, outcome.body, outcome.error) == ("succeeded", b"", None)
    assert server.received[0].method == "HEAD"


def test_cookies_from_one_answer_are_never_sent_again(make_deliverer, server):
    deliverer = make_deliverer()
    send(deliverer, f"{server.url}/status/200?set_cookie=session=secret; Path=/")
    send(deliverer, f"{server.url}/status/200")
    assert "Cookie" not in server.received[1].headers


# Retry-After

def test_retry_after_seconds_is_reported_on_retry(make_deliverer, server):
    outcome = send(make_deliverer(), f"{server.url}/status/429?retry_after=7")
    assert outcome.retry_after_s == 7


def test_retry_after_http_date_is_reported_on_retry(make_deliverer, server):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    outcome = send(make_deliverer(), f"{server.url}/status/503?retry_after={when}")
    assert 115 <= outcome.retry_after_s <= 121


def test_retry_after_is_ignored_when_not_retrying(make_deliverer, server):
    outcome = send(make_deliverer(), f"{server.url}/status/200?retry_after=7")
    assert outcome.retry_after_s is None


@pytest.mark.parametrize("value, expected", [
    ("120", 120.0), (" 5 ", 5.0), ("0", 0.0), ("1.5", 1.5),
    ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),   # now is 07:28:00
    ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),    # in the past: no wait, never negative
    ("Wed, 21 Oct 2015 07:28:10 -0000", 10.0),
    (None, None), ("", None), ("soon", None), ("-5", None), ("1e400", None), ("nan", None),
])
def test_parse_retry_after_reads_seconds_and_http_dates(value, expected):
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=now) == expected


# time and size limits

def test_timeout_bounds_the_whole_attempt_even_when_bytes_keep_trickling(make_deliverer, server):
    outcome = send(make_deliverer(), f"{server.url}/trickle", timeout_s=0.5)
    assert outcome.verdict == "retry"
    assert outcome.error == "timeout after 0.5s"
    assert 450 <= outcome.elapsed_ms <= 1000
    assert outcome.status_code == 200 and 0 < len(outcome.body) < 200


def test_timeout_while_waiting_for_the_answer_is_retried(make_deliverer, server):
    outcome = send(make_deliverer(), f"{server.url}/slow", timeout_s=0.3)
    assert (outcome.verdict, outcome.status_code, outcome.error) == ("retry", None, "timeout after 0.3s")
    assert outcome.elapsed_ms < 1000


def test_connection_refused_is_retried(make_deliverer):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = send(make_deliverer(), f"http://127.0.0.1:{port}/")
    assert outcome.verdict == "retry" and outcome.status_code is None
    assert outcome.error.startswith("connection error")


def test_body_over_the_cap_is_truncated_to_exactly_the_cap(make_deliverer, server):
    outcome = send(make_deliverer(response_max_bytes=1000), f"{server.url}/big?size=5000")
    assert outcome.verdict == "succeeded"
    assert outcome.truncated is True and outcome.body == b"x" * 1000


def test_body_at_the_cap_is_not_truncated(make_deliverer, server):
    outcome = send(make_deliverer(response_max_bytes=1000), f"{server.url}/big?size=1000")
    assert outcome.truncated is False and len(outcome.body) == 1000


def test_huge_body_is_not_drained_after_the_cap(make_deliverer, server):
    outcome = send(make_deliverer(response_max_bytes=10), f"{server.url}/big?size={10 * 1024**3}")
    assert outcome.truncated is True and outcome.body == b"x" * 10
    assert outcome.elapsed_ms < 1000


def test_keep_alive_connection_is_reused_across_calls(make_deliverer, server):
    deliverer = make_deliverer()
    send(deliverer, f"{server.url}/status/200")
    send(deliverer, f"{server.url}/status/200")
    assert len({r.client_port for r in server.received}) == 1


def test_concurrent_sends_from_threads_all_succeed(make_deliverer, server):
    deliverer = make_deliverer()
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda i: send(deliverer, f"{server.url}/echo", method="POST",
                                                body=str(i).encode()), range(48)))
    assert [o.body for o in outcomes] == [str(i).encode() for i in range(48)]


# redirects and headers

def test_redirect_is_not_followed_and_fails(make_deliverer, server):
    outcome = send(make_deliverer(), f"{server.url}/redirect")
    assert (outcome.verdict, outcome.status_code) == ("failed", 302)
    assert outcome.headers["Location"] == "/target"
    assert server.paths() == ["/redirect"]


def test_idempotency_key_and_attempt_headers_are_sent(make_deliverer, server):
    send(make_deliverer(), f"{server.url}/status/200", attempt=3,
         headers={"X-Custom": "yes", "Idempotency-Key": "caller's own"})
    headers = server.received[0].headers
    assert headers["Idempotency-Key"] == "req_1"
    assert headers["Htq-Attempt"] == "3"
    assert headers["X-Custom"] == "yes"
    assert headers["User-Agent"] == "htq/0.1"
    assert "webhook-signature" not in {name.lower() for name in headers}


def test_non_ascii_header_value_is_sent_as_utf8(make_deliverer, server):
    outcome = send(make_deliverer(), f"{server.url}/status/200", headers={"X-Name": "Zoë €"})
    assert outcome.verdict == "succeeded"
    assert server.received[0].headers["X-Name"].encode("latin-1").decode() == "Zoë €"


def test_signature_headers_verify_with_the_secret(make_deliverer, server):
    body = b'{"hello": "world"}'
    send(make_deliverer(signing_secret=SECRET), f"{server.url}/echo", method="POST", body=body)
    headers = server.received[0].headers
    assert headers["webhook-id"] == "req_1"
    timestamp = headers["webhook-timestamp"]
    assert abs(int(timestamp) - time.time()) < 5
    expected = hmac.new(SECRET_KEY, b"req_1." + timestamp.encode() + b"." + body, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()


def test_malformed_signing_secret_is_refused_at_construction():
    with pytest.raises(ValueError):
        Deliverer(DeliveryConfig(signing_secret="whsec_not base64!"))


# SSRF guard

def test_loopback_is_refused_by_default_and_never_contacted(make_deliverer, server):
    outcome = send(make_deliverer(allow_private=False), f"{server.url}/status/200")
    assert outcome.verdict == "failed" and outcome.status_code is None
    assert outcome.error.startswith("destination refused")
    assert server.received == []


def test_host_name_resolving_to_loopback_is_refused(make_deliverer, server):
    url = server.url.replace("127.0.0.1", "localhost")
    outcome = send(make_deliverer(allow_private=False), f"{url}/status/200")
    assert outcome.verdict == "failed"
    assert outcome.error.startswith("destination refused: localhost resolves to")
    assert server.received == []


@pytest.mark.parametrize("host", [
    "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
    "240.0.0.1", "255.255.255.255", "[::1]", "[::]", "[fe80::1]", "[fc00::1]", "[ff02::1]",
    "[::ffff:127.0.0.1]", "[::ffff:169.254.169.254]", "[64:ff9b::a00:1]", "[2002:c0a8:101::1]",
])
def test_non_public_addresses_are_refused(make_deliverer, host):
    outcome = send(make_deliverer(allow_private=False), f"http://{host}:9/")
    assert outcome.verdict == "failed"
    assert outcome.error.startswith("destination refused")


@pytest.mark.parametrize("allowed, host", [
    ("127.0.0.1", "127.0.0.1"), ("127.0.0.0/8", "127.0.0.1"), ("localhost", "localhost"),
    ("LocalHost", "localhost"),
])
def test_allowed_hosts_open_private_destinations(make_deliverer, server, allowed, host):
    deliverer = make_deliverer(allow_private=False, allowed_hosts=("10.0.0.0/8", allowed))
    outcome = send(deliverer, f"{server.url.replace('127.0.0.1', host)}/status/200")
    assert outcome.verdict == "succeeded"
    assert server.paths() == ["/status/200"]


def test_allowed_hosts_do_not_open_other_private_addresses(make_deliverer, server):
    outcome = send(make_deliverer(allow_private=False, allowed_hosts=("10.0.0.0/8", "example.org")),
                   f"{server.url}/status/200")
    assert outcome.error.startswith("destination refused")
    assert server.received == []


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_https_through_the_guard_checks_the_certificate_against_the_host_name(tmp_path, make_deliverer):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server_names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    with serving(context) as tls_server:
        # Trusting the test's own certificate authority.
        deliverer = make_deliverer(allow_private=False, allowed_hosts=("localhost", "127.0.0.1"), ca_certs=str(cert))
        by_name = send(deliverer, f"{tls_server.url.replace('127.0.0.1', 'localhost')}/status/200")
        by_address = send(deliverer, f"{tls_server.url}/status/200")
        deliverer.close()  # before the server stops, so no handler waits on a kept-alive socket
    assert by_name.verdict == "succeeded" and server_names[0] == "localhost"
    assert by_address.verdict == "retry" and "CERTIFICATE_VERIFY_FAILED" in by_address.error


def test_allow_private_opens_everything(make_deliverer, server):
    outcome = send(make_deliverer(allow_private=True), f"{server.url}/status/200")
    assert outcome.verdict == "succeeded"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/file", "file:///etc/passwd", "gopher://127.0.0.1:70/"])
def test_non_http_scheme_is_refused(make_deliverer, server, url):
    outcome = send(make_deliverer(), url)
    assert outcome.verdict == "failed"
    assert outcome.error.startswith("destination refused")


def test_delivery_config_reads_the_settings():
    from config.settings import Settings

    settings = Settings(allow_private_targets=True, allowed_hosts=("a.example",), signing_secret=SECRET,
                        response_max_bytes=10)
    assert DeliveryConfig.from_settings(settings) == DeliveryConfig(True, ("a.example",), SECRET, 10)


def test_a_target_keeps_one_pool_whatever_the_urls_spelling(make_deliverer, server):
    deliverer = make_deliverer()
    port = server.url.rsplit(":", 1)[1]
    for url in (f"{server.url}/a", f"HTTP://127.0.0.1:{port}/b?c=1#d", f"http://127.0.0.1:{port}"):
        assert send(deliverer, url).status_code == 200
    assert len(deliverer._recent) == 1
    pool = next(iter(deliverer._recent.values()))
    assert type(pool).__name__ == "GuardedHTTPConnectionPool" and pool.num_connections == 1
    assert deliverer._pool(None, "http", "example.com", None) is deliverer._pool(None, "http", "example.com", 80)


def test_pools_a_pool_manager_drops_are_forgotten():
    """Past POOL_SIZE targets (and past ALLOWLIST_POOLS allowlists) the least recently used pool
    is dropped by its PoolManager, and no longer handed out from the deliverer's own lookup."""
    deliverer = Deliverer(DeliveryConfig())
    try:
        first = deliverer._pool(None, "https", "host-0.example", None)
        for n in range(1, delivery.POOL_SIZE + 1):
            deliverer._pool(None, "https", f"host-{n}.example", None)
        assert len(deliverer._recent) == delivery.POOL_SIZE
        assert deliverer._pool(None, "https", "host-0.example", None) is not first
        listed = deliverer._pool(["a.example"], "https", "a.example", None)
        for n in range(delivery.ALLOWLIST_POOLS):
            deliverer._pool([f"b{n}.example"], "https", f"b{n}.example", None)
        assert all(key[0] != ("a.example",) for key in deliverer._recent)
        assert deliverer._pool(["a.example"], "https", "a.example", None) is not listed
    finally:
        deliverer.close()
