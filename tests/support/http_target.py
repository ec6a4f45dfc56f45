"""A real HTTP server (on 127.0.0.1 unless given an address) that records what it receives and
answers as scripted."""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The longest a held reply waits for its release: a test that never releases it fails, not hangs.
RELEASE_TIMEOUT_S = 60.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    release: threading.Event | None = None  # answer only once the test sets it


class HttpTarget:
    def __init__(self, host: str = "127.0.0.1"):
        self.received: list[Received] = []
        self._replies: dict[str, deque[Reply]] = defaultdict(deque)
        self._responders: dict[str, Callable[[Received], Reply]] = {}
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The body goes out in a write of its own after the headers: with Nagle's algorithm it
            # waited for the client's delayed ACK of the headers, 40 ms per answer.
            disable_nagle_algorithm = True

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                with target._lock:
                    received = Received(self.command, self.path, dict(self.headers), body, time.time())
                    target.received.append(received)
                    queue = target._replies.get(path)
                    responder = target._responders.get(path)
                    reply = queue.popleft() if queue else responder(received) if responder else Reply()
                    target._arrived.notify_all()
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.release is not None:
                    reply.release.wait(RELEASE_TIMEOUT_S)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reply(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to `path` with these replies, in order; then 200 "ok"."""
        with self._lock:
            self._replies[path].extend(replies)

    def respond(self, path: str, responder: Callable[[Received], Reply]) -> None:
        """Answer requests to `path` with what `responder` makes of each (once the scripted
        replies of `reply` are used up)."""
        with self._lock:
            self._responders[path] = responder

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.split("?", 1)[0] == path]

    def wait_for(self, count: int, path: str | None = None, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while True:
                got = [r for r in self.received if path is None or r.path.split("?", 1)[0] == path]
                if len(got) >= count:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} requests to {path or 'any path'}, got {len(got)}")
                self._arrived.wait(remaining)
